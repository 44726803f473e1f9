"""AioContext: one "process" of the AIO kernel (vfs_aio.c's ``struct kaioinfo``).

A context owns its jobs from submit to reap, with vfs_aio.c's quotas:
``max_queued`` jobs not yet reaped (EAGAIN past it), ``max_active`` jobs
running in the daemon pool at once, ``max_buf`` jobs in the kernel path.

The way of a job (docs/architecture.md draws it, with the module of each step):
1. submit: checked and snapshotted (``aioposix._context.submit``);
2. admit: counted against the quotas and marked in flight
   (``aioposix._kernel.quotas``), the only place that does so;
3. route: ``aioposix._routing.route`` says where it runs;
4. backend: inline now (``aioposix._backends.inline``), or handed to the
   readiness bridge, the io_uring ring or the daemon pool through the one
   backend contract (``aioposix._core.contract``), holding its own dup of
   the fd so a closed and reused fd number never receives its data;
5. complete: the backend reports ``(job, result, errno)`` to ``_finish``,
   which updates the bookkeeping first;
6. notify: then the waiter, the sigevent, the lio batch and the sleepers, on
   the loop thread, never inside a submit call (docs/contract.md, rule 21);
7. reap: aio_return, ``await cb`` or aio_waitcomplete.

Per-fd order: ``_fds`` keeps, per fd number, the jobs that went past the
inline attempt, in submission order.  An fsync (and an O_APPEND write)
waits there as WAITING until every job before it has finished: vfs_aio.c's
fsync barrier, and O_APPEND writes landing in submission order.

Each job lives in exactly one of: ``_fds`` (in flight), ``_done`` (finished,
not reaped), nowhere (reaped).  ``_quota.count`` is their sum.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Sequence
from stat import S_ISREG
from typing import Any, Self

from aioposix._backends.bridge import Bridge, BridgePort, bridge_for
from aioposix._backends.inline import RWF_NOWAIT, Inline
from aioposix._backends.pool import POOL, PoolPort
from aioposix._backends.ring import RingPort
from aioposix._context import listio, rundown, submit, waits
from aioposix._context.affinity import LoopAffinity
from aioposix._context.budget import Budget
from aioposix._context.checks import ContextStatistics, check_cb, count_jobs, limit
from aioposix._context.pipeline import Pipeline
from aioposix._core import faults
from aioposix._core.constants import (
    AIO_ALLDONE,
    AIO_CANCELED,
    AIO_NOTCANCELED,
    LIO_DSYNC,
    LIO_READ,
    LIO_READV,
    LIO_SYNC,
    LIO_WRITE,
    LIO_WRITEV,
    SIGEV_NONE,
)
from aioposix._core.contract import Backend, Notice
from aioposix._core.errors import einval, failed
from aioposix._core.fdqueue import FdQueue
from aioposix._core.job import DONE, IDLE, PARKED, QUEUED, RUNNING, WAITING, Aiocb
from aioposix._core.sigevent import SigEvent
from aioposix._core.sleepers import Sleepers
from aioposix._core.states import STARTED, TAKEN, Route
from aioposix._kernel.kernel import KERNEL as _KERNEL
from aioposix._kernel.quotas import Quota
from aioposix._kernel.reaper import REAPER
from aioposix._notify.lio import LioBatch
from aioposix._notify.sigevent import usable as sigevent_usable
from aioposix._routing import writable_stat

_preadv = os.preadv
_running_loop = asyncio._get_running_loop  # the C call: None when no loop runs here
_thread = threading.get_ident
_FD_MAX = 0x7FFFFFFF



class AioContext(Pipeline, LoopAffinity):
    """The per-"process" AIO state: queues, quotas and every AIO call.

    ``max_active``, ``max_queued`` and ``max_buf`` default to the sysctls
    vfs.aio.max_aio_per_proc, max_aio_queue_per_proc and max_buf_aio, copied
    when the context is made.  Use it as ``async with AioContext() as ctx``;
    leaving the block runs it down (see ``aclose``).
    """

    _quota = Quota(0)  # (class defaults: __del__ may meet a context whose __init__ failed)
    _fds: dict[int, FdQueue] = {}  # noqa: RUF012

    def __init__(self, *, max_active: int | None = None, max_queued: int | None = None,
                 max_buf: int | None = None) -> None:
        self.max_active = limit(max_active, "vfs.aio.max_aio_per_proc")
        self.max_queued = limit(max_queued, "vfs.aio.max_aio_queue_per_proc")
        self.max_buf = limit(max_buf, "vfs.aio.max_buf_aio")
        self._quota = Quota(self.max_queued)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0  # see aioposix._context.affinity
        self._running: Callable[[], bool] = bool
        self._closed = False
        self._closing = False
        self._fds: dict[int, FdQueue] = {}  # {fd number: its jobs in flight}
        self._spare: FdQueue | None = None  # an emptied queue, kept for the next fd
        self._done: dict[Aiocb, None] = {}  # {cb: None} finished, in completion order
        self._batch: dict[Route, list[Aiocb]] | None = None  # an lio_listio's jobs, per route
        self._later: list[Notice] = []  # notifications due after the current call
        self._in_call = 0  # > 0 inside a call of ours that may finish jobs (submit, cancel)
        self._waiters = Sleepers()  # aio_suspend, aio_waitcomplete and rundown
        self._asleep = self._waiters.waiting  # (the same list: tested on the fast path)
        self._budget = Budget()  # the inline yield budget of each loop iteration
        self._inline = Inline() if _KERNEL.sysctl["vfs.aio.inline"] else None
        self._ring_files = _KERNEL.backend() == "io_uring"  # regular files via io_uring
        self._ring_usable = self._ring_files or _KERNEL.ring_unavailable() is None
        self._pool = PoolPort(POOL, self, self.max_active, self._finish, self._orphan)
        self._ports: dict[Route, Backend] = {Route.POOL: self._pool}
        self._bridge: Bridge | None = None
        self._ring: RingPort | None = None  # the loop's ring, once this context used it
        self._buf_jobs = 0  # jobs routed to the kernel path and not finished (max_buf)
        self._refacts()
        self._sentinel: object = None  # runs the context down at loop shutdown
        self._default = False  # the default context of its loop
        _KERNEL.contexts.add(self)

    # -- the loop ----------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def _bind(self) -> asyncio.AbstractEventLoop:
        """The context's loop, checked to be the one running here (rule 27).

        A context belongs to the loop it is first used on: every call from
        anywhere else (another loop, a thread with no running loop) raises
        RuntimeError before anything is queued.  The first test is the cheap
        one of ``aioposix._context.affinity``; the full one follows if it fails.
        """
        if self._thread == _thread() and self._running() and not self._closing:
            return self._loop  # type: ignore[return-value]  # (bound: _running is its loop's)
        loop = _running_loop()
        if loop is None or loop is not self._loop or self._closing:
            return self._bind_slow(loop)
        self._thread = _thread()
        return loop

    def _bind_slow(self, loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
        self._check_loop(loop)
        if self._closed or self._closing:
            raise RuntimeError("the AioContext is closed")
        if self._loop is None:
            assert loop is not None
            self._loop = loop
            self._running = loop.is_running
            self._bridge = bridge_for(loop)
            self._ports[Route.BRIDGE] = BridgePort(self._bridge, self._finish)
            self._pool.bind(loop)
            self._sentinel = rundown.shutdown_hook(self)
            REAPER.watch(self)
        self._thread = _thread()
        return self._loop

    # -- submission: the fast paths --------------------------------------------

    def aio_read(self, cb: Aiocb) -> None:
        """Queue a read of cb.nbytes at cb.offset into cb.buf."""
        if type(cb) is not Aiocb:
            check_cb(cb)
        # The hot case, in one piece: a whole bytearray, a plain offset, no
        # sigevent, inline on and nothing else of ours in flight on the fd:
        # route's first rule.  The job is admitted and the read tried straight
        # away; anything unusual, and every error (EBADF for a closed or
        # write-only fd included), takes the general path, which validates
        # and explains itself.
        buf = cb.buf
        fd = cb.fildes
        offset = cb.offset
        if not (type(buf) is bytearray and type(offset) is int and type(fd) is int
                and offset >= 0 and cb._ctx is None
                and cb.nbytes == len(buf) and cb.reqprio == 0 and self._inline is not None
                and 0 <= fd <= _FD_MAX and fd not in self._fds
                and self._thread == _thread() and self._running()  # (affinity's test)
                and not self._closing and not faults.ARMED
                and (cb.sigevent is None or sigevent_usable(cb.sigevent))):
            self._submit(cb, LIO_READ)
            return
        try:
            self._quota.admit(cb, self)
        except OSError:
            cb._ctx = None
            self._submit(cb, LIO_READ)  # refused there, after the checks, with the reason
            return
        cb._op = LIO_READ  # (the rest of the snapshot only for a job that goes on)
        sev = cb.sigevent
        if sev is not None and sev.notify != SIGEV_NONE:
            cb._sev = sev  # submit.notifying's rule, without the call: the hot path
        try:
            got = _preadv(fd, (buf,), offset, RWF_NOWAIT)
        except OSError as exc:
            cb._key, cb._off, cb._n, cb._progress = fd, offset, len(buf), 0
            if exc.errno == errno.ESPIPE:  # a socket, pipe or tty: ready, or parked
                cb._views = [memoryview(buf)]
                self._start(cb, os.O_RDONLY, None, tried=True)
            elif exc.errno == errno.EAGAIN:  # not in the page cache
                cb._views = [memoryview(buf)]
                self._start(cb, os.O_RDONLY, None, tried=True, checked=False)
            else:
                self._unadmit(cb)
                self._submit(cb, LIO_READ)  # validates; a real error is reported there
            return
        if got == len(buf) or got == 0:
            cb._status, cb._error, cb._state = got, 0, DONE
            self._done[cb] = None
            if cb._sev is not None:
                self._notify_later(cb)  # it runs after this call
            if self._asleep:
                self._waiters.wake()
            return
        # partly cached: the rest from where the cache ended
        cb._key, cb._off, cb._n, cb._progress = fd, offset, len(buf), got
        cb._views = [memoryview(buf)]
        self._start(cb, os.O_RDONLY, None, tried=True, checked=False)

    def aio_write(self, cb: Aiocb) -> None:
        """Queue a write of cb.nbytes from cb.buf at cb.offset."""
        if type(cb) is not Aiocb:
            check_cb(cb)
        # The hot case, in one piece: a whole bytes/bytearray, a plain offset,
        # no sigevent, an fd open for writing without O_APPEND or O_DIRECT.  The
        # job is admitted and routed at once: inline for a regular file while
        # the inline route is open to writes, the bridge for a socket or pipe,
        # the backend otherwise.  Anything else, and every error, takes the
        # general path, which checks and explains itself.
        buf = cb.buf
        kind = type(buf)
        fd = cb.fildes
        offset = cb.offset
        if not ((kind is bytes or kind is bytearray) and type(offset) is int
                and type(fd) is int and 0 <= fd <= _FD_MAX and offset >= 0 and cb._ctx is None
                and cb.sigevent is None and cb.nbytes == len(buf) and cb.reqprio == 0
                and self._thread == _thread() and self._running()  # (affinity's, as in aio_read)
                and not self._closing):
            self._submit(cb, LIO_WRITE)
            return
        st = writable_stat(fd)
        if st is None:
            self._submit(cb, LIO_WRITE)
            return
        try:
            self._quota.admit(cb, self)
        except OSError:
            cb._ctx = None
            self._submit(cb, LIO_WRITE)
            return
        cb._key, cb._op, cb._off, cb._n, cb._progress = fd, LIO_WRITE, offset, len(buf), 0
        cb._views = [memoryview(buf)] if kind is bytearray else [buf]
        self._start(cb, os.O_WRONLY, st, tried=not S_ISREG(st.st_mode))

    def aio_readv(self, cb: Aiocb) -> None:
        """Queue a scatter read into the buffers of cb.iov."""
        check_cb(cb)
        self._submit(cb, LIO_READV)

    def aio_writev(self, cb: Aiocb) -> None:
        """Queue a gather write from the buffers of cb.iov."""
        check_cb(cb)
        self._submit(cb, LIO_WRITEV)

    def aio_fsync(self, op: int, cb: Aiocb) -> None:
        """Sync cb.fildes (os.O_SYNC: fsync, os.O_DSYNC: fdatasync) once every
        job this context submitted earlier on that fd has finished."""
        check_cb(cb)
        if op == os.O_DSYNC:
            self._submit(cb, LIO_DSYNC)
        elif op == os.O_SYNC:
            self._submit(cb, LIO_SYNC)
        else:
            self._bind()
            submit.refuse(cb, einval("aio_fsync op must be os.O_SYNC or os.O_DSYNC"))

    # -- submission: the general path -------------------------------------------

    def _submit(self, cb: Aiocb, op: int, lio: LioBatch | None = None) -> None:
        """Check, admit, route and start a job (completions meanwhile notify later)."""
        self._in_call += 1
        try:
            self._bind()
            if cb._ctx is not None:
                raise einval("the aiocb is already in flight; reap it before submitting it again")
            flags = submit.checked(cb, op, self._quota, self)
            if lio is not None:
                lio.add(cb)
            self._start(cb, flags, None, tried=False)
        finally:
            self._in_call -= 1

    def _unadmit(self, cb: Aiocb) -> None:
        """The fast path admitted a job the general path must check first."""
        cb._ctx, cb._state, cb._views, cb._sev = None, IDLE, None, None
        self._quota.release()

    def aio_error(self, cb: Aiocb) -> int:
        """EINPROGRESS while in flight, else the job's errno (0 for success)."""
        if type(cb) is not Aiocb:
            check_cb(cb)
        if self._closed or not (self._thread == _thread() and self._running()):
            self._check_open()  # (affinity's test first: it needs no call)
        if cb._ctx is not self:
            raise einval("the aiocb is not known to this context")
        if cb._state is RUNNING:
            self._collect()
        return cb._error

    def aio_return(self, cb: Aiocb) -> int:
        """Reap a finished job: its byte count, or -1 if it failed."""
        if type(cb) is not Aiocb:
            check_cb(cb)
        if self._closed or not (self._thread == _thread() and self._running()):
            self._check_open()  # (affinity's test first: it needs no call)
        if cb._state is RUNNING:
            self._collect()
        return self._reap(cb, False)  # (raising: positional, a specialized call)

    def await_job(self, cb: Aiocb) -> Generator[Any, None, int]:
        """``await cb``: wait for the job, reap it and return its count.

        An inline job is done already; its await goes through the context's
        yield budget (``aioposix._context.budget``), which may make it wait
        its turn at the gate so that timers and other tasks run.
        """
        budget = self._budget
        if self._thread == _thread() and self._running():  # on the context's loop (affinity)
            if cb._state is DONE and budget.credit:  # a credit of the yield budget
                budget.credit -= 1
                return self._reap(cb, True)  # (raising: positional, a specialized call)
            loop = self._loop
        else:
            loop = self._full_check()
        if cb._state is not DONE:  # park the awaiting task on the job's future
            waiter = cb._waiter
            if waiter is None:
                assert loop is not None
                waiter = cb._waiter = loop.create_future()
            try:
                yield from waiter.__await__()
            except asyncio.CancelledError:
                self._cancelled_while_waiting(cb)
                raise
        else:
            assert loop is not None
            turn = budget.gate(loop)
            if turn is not None:
                try:
                    yield from turn.__await__()  # the slice is spent: wait at the gate
                except BaseException:  # cancelled there: the job is done, reap it
                    if cb._ctx is self:
                        self._reap(cb, raising=False)
                    raise
        if cb._ctx is not self:  # reaped meanwhile (a rundown, a waitcomplete loop)
            if cb._error:
                raise failed(cb._error)
            return cb._status
        return self._reap(cb, True)  # (raising: positional, a call the interpreter specializes)

    def _cancelled_while_waiting(self, cb: Aiocb) -> None:
        """Rule 8: cancel the job if it is still waiting its turn; otherwise it
        finishes on its own and reaps itself."""
        if cb._ctx is self and cb._state is not DONE:
            self._cancel_one(cb)
        if cb._ctx is self:
            cb._autoreap = True
            if cb._state is DONE:  # its notifications were snapshotted: reap now
                self._reap(cb, raising=False)

    async def aio_suspend(self, cbs: Iterable[Aiocb | None],
                          timeout: float | None = None) -> None:
        """Wait until one listed job is done (EAGAIN when timeout passes)."""
        await waits.suspend(self, cbs, timeout)

    def aio_waitcomplete(self, timeout: float | None = None) -> AsyncIterator[Aiocb]:
        """Yield each job of this context as it completes, already reaped.

        Ends when nothing is queued, running, parked or unreaped; a step that
        waits longer than ``timeout`` raises OSError(EAGAIN).
        """
        self._check_open()
        return waits.WaitComplete(self, timeout)

    # -- cancelling -------------------------------------------------------

    def aio_cancel(self, fildes: int, cb: Aiocb | None = None) -> int:
        """Cancel this context's queued jobs on ``fildes`` (or just ``cb``)."""
        self._in_call += 1  # cancelled jobs notify after this call returns
        try:
            return self._cancel(fildes, cb)
        finally:
            self._in_call -= 1

    def _cancel(self, fildes: int, cb: Aiocb | None) -> int:
        if cb is not None:
            check_cb(cb)
        self._bind()
        submit.flags_of(fildes)
        if cb is not None:
            if cb._ctx is not self or cb._state is DONE or cb._key != fildes:
                return AIO_ALLDONE
            targets = [cb]
        else:
            queue = self._fds.get(fildes)
            # jobs behind a barrier first: cancelling the job ahead of one first
            # would hand it to its backend, where a worker could start it at once
            jobs = list(queue.jobs) if queue is not None else []
            targets = [cb for cb in jobs if cb._state is WAITING]
            targets += [cb for cb in jobs if cb._state is not WAITING]
        if not targets:
            return AIO_ALLDONE
        result = AIO_CANCELED
        for job in targets:
            if not self._cancel_one(job):
                result = AIO_NOTCANCELED
        return result

    def _cancel_one(self, cb: Aiocb) -> bool:
        """Cancel one in-flight job if it has not started; True if cancelled."""
        state = cb._state
        if state is WAITING:
            outcome = TAKEN  # behind a barrier: no backend has it yet
        elif state is QUEUED or state is PARKED:
            outcome = self._ports[cb._route].take_back(cb)
        else:
            outcome = STARTED  # running on a worker or in the kernel
        if outcome is TAKEN:
            self._finish(cb, -1, errno.ECANCELED)
        return outcome is TAKEN

    # -- lio_listio and the rundown ---------------------------------------------

    async def lio_listio(self, mode: int, cbs: Sequence[Aiocb | None],
                         sigevent: SigEvent | None = None) -> None:
        """Submit a list of jobs at once (cb.lio_opcode says what each does)."""
        await listio.lio_listio(self, mode, cbs, sigevent)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Run the context down (vfs_aio.c's aio_proc_rundown).

        Queued and parked jobs are cancelled (ECANCELED; their notifications
        fire), running ones are awaited up to vfs.aio.aiod_timeout, then
        every job is freed and every fd or buffer the context held released.
        """
        await rundown.aclose(self)

    def _orphan(self) -> None:
        rundown.without_loop(self)

    def loop_gone(self) -> bool:
        """For the reaper: the context's loop closed under it."""
        loop = self._loop
        return loop is not None and loop.is_closed() and not self._closed

    def run_down_without_loop(self) -> bool:
        """For the reaper: run down with no loop, then let go of the ring."""
        rundown.without_loop(self)
        self._drop_ring()
        return True

    def __del__(self) -> None:
        rundown.dropped(self)

    def _forget_after_fork(self) -> None:
        rundown.after_fork(self)

    # -- inspection ---------------------------------------------------------

    def statistics(self) -> ContextStatistics:
        """How many jobs are in each state now, and the limits."""
        self._collect()  # jobs a worker finished are done, not active
        return count_jobs(self._fds.values(), len(self._done), self._buf_jobs,
                          (self.max_active, self.max_queued, self.max_buf))

    def __repr__(self) -> str:
        s = self.statistics()
        state = "closed" if self._closed else "open"
        return (f"<AioContext {state} queued={s.queued} active={s.active} done={s.done} "
                f"parked={s.parked} buffer_jobs={s.buffer_jobs}>")

