"""Waiting for a context's jobs: aio_suspend and aio_waitcomplete.

vfs_aio.c's aio_suspend sleeps on the process's kaioinfo until one listed
job is done or the timeout passes (EAGAIN); FreeBSD's aio_waitcomplete
sleeps until any job of the process is done and reaps it.  Here both sleep
on the context's ``Sleepers``, woken by every completion.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterable
from typing import Protocol

from aioposix._context.checks import check_cb, check_list_length, check_timeout
from aioposix._core.errors import error
from aioposix._core.job import DONE, Aiocb
from aioposix._core.peers import Owner
from aioposix._core.sleepers import Sleepers
from aioposix._kernel.quotas import Quota


class AioContext(Owner, Protocol):
    """What waiting needs of the context (``aioposix._context.context``)."""

    _loop: asyncio.AbstractEventLoop | None
    _waiters: Sleepers
    _done: dict[Aiocb, None]
    _quota: Quota

    def _check_open(self) -> None: ...

    def _reap(self, cb: Aiocb, raising: bool) -> int: ...


async def suspend(ctx: AioContext, cbs: Iterable[Aiocb | None],
                  timeout: float | None) -> None:
    """Wait until one listed job of ``ctx`` is done (EAGAIN when timeout passes)."""
    ctx._check_open()
    entries = list(cbs)
    for cb in entries:
        if cb is not None:
            check_cb(cb)
    check_list_length(len(entries))
    deadline = _deadline(ctx, check_timeout(timeout))
    while True:
        mine = [cb for cb in entries if cb is not None and cb._ctx is ctx]
        if not mine or any(cb._state is DONE for cb in mine):
            return
        if not await sleep(ctx, deadline):
            raise error(errno.EAGAIN, "aio_suspend timed out")


def _deadline(ctx: AioContext, timeout: float | None) -> float | None:
    loop = ctx._loop or asyncio.get_running_loop()
    return None if timeout is None else loop.time() + timeout


async def sleep(ctx: AioContext, deadline: float | None) -> bool:
    """Wait for any completion of ``ctx``; False once ``deadline`` passed."""
    return await ctx._waiters.sleep(ctx._loop or asyncio.get_running_loop(), deadline)


class WaitComplete:
    """The async iterator behind aio_waitcomplete."""

    def __init__(self, ctx: AioContext, timeout: float | None) -> None:
        self._ctx = ctx
        self._timeout = check_timeout(timeout)

    def __aiter__(self) -> WaitComplete:
        return self

    async def __anext__(self) -> Aiocb:
        ctx = self._ctx
        deadline = _deadline(ctx, self._timeout)
        while True:
            if ctx._done:
                cb = next(iter(ctx._done))
                ctx._reap(cb, raising=False)
                return cb
            if ctx._quota.count == 0:
                raise StopAsyncIteration
            if not await sleep(ctx, deadline):
                raise error(errno.EAGAIN, "aio_waitcomplete timed out")
