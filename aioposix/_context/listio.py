"""lio_listio: a list of jobs submitted at once (vfs_aio.c's kern_lio_listio).

Every entry is checked for its type before any is queued; then each is
submitted in turn (a refused entry records its errno and the others go on),
the jobs for one backend are handed over together at the end (one hand-off
to the pool, one ``io_uring_enter`` for the ring), and the batch's guard is
released (``aioposix._notify.lio``).  LIO_WAIT waits for every entry and
raises EIO if any failed; LIO_NOWAIT returns at once, raising EAGAIN or EIO
for entries that were not queued.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Sequence
from typing import Protocol

from aioposix._context import submit
from aioposix._context.checks import check_cb, check_list_length
from aioposix._core.constants import (
    LIO_DSYNC,
    LIO_NOP,
    LIO_NOWAIT,
    LIO_READ,
    LIO_READV,
    LIO_SYNC,
    LIO_WAIT,
    LIO_WRITE,
    LIO_WRITEV,
)
from aioposix._core.errors import einval, error
from aioposix._core.job import Aiocb
from aioposix._core.sigevent import SigEvent
from aioposix._core.states import Route
from aioposix._notify.lio import LioBatch
from aioposix._notify.sigevent import validate as validate_sigevent

_OPS = (LIO_READ, LIO_READV, LIO_WRITE, LIO_WRITEV, LIO_SYNC, LIO_DSYNC)


class AioContext(Protocol):
    """What lio_listio needs of the context (``aioposix._context.context``)."""

    _batch: dict[Route, list[Aiocb]] | None
    _in_call: int

    def _bind(self) -> asyncio.AbstractEventLoop: ...

    def _submit(self, cb: Aiocb, op: int, lio: LioBatch | None = None) -> None: ...

    def _flush_batch(self) -> None: ...


async def lio_listio(ctx: AioContext, mode: int, cbs: Sequence[Aiocb | None],
                     sigevent: SigEvent | None) -> None:
    """Submit ``cbs`` on ``ctx``; see the module docstring for the outcome."""
    loop = ctx._bind()
    if mode not in (LIO_WAIT, LIO_NOWAIT):
        raise einval(f"lio_listio mode {mode!r} is neither LIO_WAIT nor LIO_NOWAIT")
    check_list_length(len(cbs))
    for cb in cbs:  # every entry's type, before any is queued
        if cb is not None:
            check_cb(cb)
    if mode == LIO_NOWAIT and sigevent is not None:
        validate_sigevent(sigevent)
    batch = LioBatch(loop, cbs, sigevent if mode == LIO_NOWAIT else None, mode == LIO_WAIT)
    refused = _queue_list(ctx, cbs, batch)
    batch.arm()
    if mode == LIO_WAIT:
        assert batch.waiter is not None
        await batch.waiter
        if refused or batch.failed:
            raise error(errno.EIO, "an entry of the list failed")
    elif refused:
        code = errno.EAGAIN if refused == {errno.EAGAIN} else errno.EIO
        raise error(code, "some entries of the list were not queued")


def _queue_list(ctx: AioContext, cbs: Sequence[Aiocb | None], batch: LioBatch) -> set[int]:
    """Submit every entry, handing each backend its jobs in one go; the errnos refused."""
    refused: set[int] = set()
    ctx._batch = {}
    ctx._in_call += 1
    try:
        for cb in cbs:
            if cb is None:
                continue
            try:
                _submit_entry(ctx, cb, batch)
            except OSError as exc:
                refused.add(exc.errno or errno.EIO)
    finally:
        ctx._flush_batch()
        ctx._in_call -= 1
    return refused


def _submit_entry(ctx: AioContext, cb: Aiocb, batch: LioBatch) -> None:
    op = cb.lio_opcode
    if op == LIO_NOP:
        try:
            submit.flags_of(cb.fildes)
        except OSError as exc:
            submit.refuse(cb, exc)
    elif op in _OPS:
        ctx._submit(cb, op, batch)
    else:
        submit.refuse(cb, einval(f"unknown lio_opcode {op!r}"))
