"""A context's end: aclose, the rundown with no loop, a fork, a dropped context.

vfs_aio.c's aio_proc_rundown runs when a process exits: it cancels what it
can, waits for what is running, frees every job.  A context ends the same
way in ``aclose``; when its loop closes under it, the reaper
(``aioposix._kernel.reaper``) or an idle worker runs ``without_loop``
instead, on its own thread (docs/contract.md, rule 25).  The loop's ring,
shared by the loop's contexts, is taken and given back here too.
"""

from __future__ import annotations

import asyncio
import errno
import os
import weakref
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Protocol

from aioposix._backends.ring import RingPort
from aioposix._context.waits import AioContext as Waiting
from aioposix._context.waits import sleep
from aioposix._core.constants import SIGEV_KEVENT
from aioposix._core.contract import Backend
from aioposix._core.fdqueue import FdQueue
from aioposix._core.job import DONE, IDLE, PARKED, QUEUED, WAITING, Aiocb
from aioposix._core.sleepers import Sleepers
from aioposix._core.states import Route
from aioposix._kernel.kernel import KERNEL as _KERNEL
from aioposix._kernel.quotas import Quota
from aioposix._kernel.reaper import REAPER, Watched

if TYPE_CHECKING:
    from aioposix._backends.bridge import Bridge
    from aioposix._backends.pool import PoolPort

_running_loop = asyncio._get_running_loop


class AioContext(Waiting, Watched, Protocol):
    """What the rundown needs of the context (``aioposix._context.context``)."""

    _loop: asyncio.AbstractEventLoop | None
    _thread: int
    _running: Callable[[], bool]
    _closed: bool
    _closing: bool
    _fds: dict[int, FdQueue]
    _done: dict[Aiocb, None]
    _quota: Quota
    _waiters: Sleepers
    _pool: PoolPort
    _bridge: Bridge | None
    _ring: RingPort | None
    _ports: dict[Route, Backend]
    _sentinel: object

    @property
    def closed(self) -> bool: ...

    def _check_loop(self, loop: asyncio.AbstractEventLoop | None) -> None: ...

    def _cancel_one(self, cb: Aiocb) -> bool: ...

    def _flush_later(self) -> None: ...

    def _reap(self, cb: Aiocb, raising: bool) -> int: ...

    def _leave_queue(self, cb: Aiocb) -> FdQueue | None: ...

    async def aclose(self) -> None: ...

    def _finish(self, cb: Aiocb, status: int, err: int) -> None: ...

    def _release_ring(self) -> None: ...


async def aclose(ctx: AioContext) -> None:
    """Cancel what waits, wait up to vfs.aio.aiod_timeout for what runs, free all."""
    if ctx._closed or ctx._closing:
        return
    if ctx._loop is not None:
        ctx._check_loop(_running_loop())
    ctx._closing = True
    REAPER.unwatch(ctx)
    if ctx._loop is not None:
        for queue in list(ctx._fds.values()):
            for cb in list(queue.jobs):
                ctx._cancel_one(cb)
        deadline = ctx._loop.time() + _KERNEL.sysctl.get_float("vfs.aio.aiod_timeout")
        while ctx._fds and await sleep(ctx, deadline):
            pass
        ctx._flush_later()
    for cb in list(ctx._done):
        _keep_kevent_once(cb)
        ctx._reap(cb, raising=False)
    for queue in ctx._fds.values():  # still on a worker after aiod_timeout:
        for cb in queue.jobs:  # freed when they end
            cb._autoreap = True
    ctx._closed = True
    ctx._sentinel = None
    ctx._release_ring()


def _keep_kevent_once(cb: Aiocb) -> None:
    """The rundown frees a finished job: its EVFILT_AIO event, if it was never
    collected, is still delivered once to a Kqueue that outlives the context."""
    sev = cb._sev
    if sev is not None and sev.notify == SIGEV_KEVENT and sev.kqueue is not None:
        sev.kqueue._keep_once(cb, cb._gen)


def without_loop(ctx: AioContext) -> None:
    """The loop closed under this context: a rundown with no loop (rule 25).

    Runs on a worker's or the reaper's thread, under the pool port's lock.
    Jobs the workers finished and jobs that will now never start (queued,
    behind a barrier, parked on the dead loop) end, the latter with
    ECANCELED, with no notification (there is no loop to run one); then
    every finished job is freed, as aclose() frees them: nobody can reap
    them any more (every call from another loop is refused), so their
    queue slots and descriptors go back at once.  Jobs still on a worker
    or in the kernel come back through here when they end.
    """
    with ctx._pool.lock:
        ended = ctx._pool.take_posted()
        for queue in list(ctx._fds.values()):
            ended += [(cb, -1, errno.ECANCELED) for cb in queue.jobs if _never_runs(ctx, cb)]
        for cb, status, err in ended:
            ctx._leave_queue(cb)
            cb._status, cb._error, cb._state = status, err, DONE
            ctx._done[cb] = None
        ctx._closed = True
        for cb in list(ctx._done):
            del ctx._done[cb]
            _forget(ctx, cb)
        ctx._pool.forget()
        if ctx._bridge is not None:
            ctx._bridge.abandon()


def _never_runs(ctx: AioContext, cb: Aiocb) -> bool:
    state = cb._state
    if state is QUEUED:
        return ctx._pool._pool.take_back(cb)
    return state is WAITING or state is PARKED


def _forget(ctx: AioContext, cb: Aiocb) -> None:
    """Free a job nobody can reap any more (its loop is gone)."""
    cb._ctx, cb._state = None, IDLE
    cb._gen += 1
    ctx._quota.release()


def dropped(ctx: AioContext) -> None:
    """A context dropped with its loop, never closed: give back its queue slots
    and descriptors (nothing can run its jobs any more; no worker holds it)."""
    quota = ctx._quota
    if quota.count > 0:
        quota.release_all()
        for queue in ctx._fds.values():
            for dup in list(queue.refs):
                os.close(dup)
            queue.refs.clear()


def after_fork(ctx: AioContext) -> None:
    """In a forked child: the parent's jobs do not exist here."""
    for queue in ctx._fds.values():
        for dup in queue.refs:
            os.close(dup)
    ctx._fds.clear()
    ctx._done.clear()
    ctx._pool.after_fork()
    ctx._closed = True
    ctx._thread, ctx._running = 0, bool  # the loop check is the full one again (no loop here)


# -- the loop's shutdown ----------------------------------------------------------


async def _rundown_at_shutdown(ref: weakref.ref[AioContext]) -> AsyncGenerator[None, None]:
    """An async generator the loop closes in shutdown_asyncgens(): the hook
    through which a loop's contexts are run down when the loop ends."""
    try:
        yield
    finally:
        ctx = ref()
        if ctx is not None and not ctx.closed:
            await ctx.aclose()


def shutdown_hook(ctx: AioContext) -> object:
    """Hook the context's rundown into its loop's shutdown_asyncgens()
    (asyncio.run calls it before closing the loop)."""
    sentinel = _rundown_at_shutdown(weakref.ref(ctx))
    try:
        sentinel.asend(None).send(None)
    except StopIteration:
        pass
    return sentinel
