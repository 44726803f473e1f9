"""AioContext: one "process" of the AIO kernel (the seed's ``struct kaioinfo``).

A context owns its jobs from submit to reap, with the seed's quotas:
``max_queued`` jobs not yet reaped (EAGAIN past it), ``max_active`` jobs
running in the daemon pool at once, ``max_buf`` jobs in the kernel path.

A job's life, and the path it takes:
1. submit validates and snapshots (``_validate``), counts the job against
   the quotas, and marks it EINPROGRESS;
2. a read or write on a file with nothing else in flight on that fd is
   tried inline with ``RWF_NOWAIT``: a page-cache hit finishes right there,
   with no thread and no coroutine (the common case, and the fast one);
3. otherwise it goes where it can wait without blocking the loop: the
   readiness bridge for pollable fds (``_bridge``), or the daemon pool
   (``_daemon``), holding its own dup of the fd so a closed and reused fd
   number never receives its data;
4. completion updates the bookkeeping first, then notifies (waiter future,
   sigevent, lio batch, aio_suspend/aio_waitcomplete sleepers) on the loop
   thread: never inside a submit call, never half-updated (rule 21);
5. aio_return, ``await cb`` or aio_waitcomplete reap it.

Per-fd order: ``_fds`` keeps, per fd number, the jobs that went past the
inline attempt, in submission order.  An fsync (and an O_APPEND write)
waits there as WAITING until every job before it has finished: the seed's
fsync barrier, and O_APPEND writes landing in submission order.

Each job lives in exactly one of: ``_fds`` (in flight), ``_done`` (finished,
not reaped), nowhere (reaped).  ``_count`` is their sum, the quota figure.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self

from . import _faults, _io, _loopdata, _paths, _uring, _validate
from ._bridge import Bridge, bridge_for
from ._constants import (
    AIO_ALLDONE,
    AIO_CANCELED,
    AIO_NOTCANCELED,
    EVFILT_AIO,
    LIO_DSYNC,
    LIO_NOP,
    LIO_NOWAIT,
    LIO_READ,
    LIO_READV,
    LIO_SYNC,
    LIO_WAIT,
    LIO_WRITE,
    LIO_WRITEV,
    SIGEV_KEVENT,
    SIGEV_NONE,
)
from ._daemon import PoolQueue
from ._fdqueue import FdQueue
from ._job import (
    DONE,
    IDLE,
    KERNEL,
    PARKED,
    PATH_BRIDGE,
    PATH_BUF,
    PATH_POOL,
    PATH_RING,
    QUEUED,
    RUNNING,
    WAITING,
    YIELD_EVERY,
    Aiocb,
    einval,
)
from ._kernel import KERNEL as _KERNEL
from ._lio import LioBatch
from ._notify import SigEvent, deliver
from ._notify import validate as validate_sigevent
from ._reaper import REAPER
from ._running import TRIO_MESSAGE, in_trio, running_loop
from ._sleepers import Sleepers
from ._validate import error

_RW = (LIO_READ, LIO_READV, LIO_WRITE, LIO_WRITEV)
_OPS = (*_RW, LIO_SYNC, LIO_DSYNC)
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_preadv = os.preadv
_running_loop = asyncio._get_running_loop  # the C call: None when no loop runs here
_FD_MAX = 0x7FFFFFFF
_RWF_NOWAIT = _io.RWF_NOWAIT


@dataclass(frozen=True, slots=True)
class ContextStatistics:
    """A snapshot of one context's queues and limits."""

    queued: int  # accepted, waiting for a worker or a barrier
    active: int  # running on a worker (or in the kernel)
    done: int  # finished, not yet reaped
    parked: int  # waiting on the readiness of their fd
    buffer_jobs: int  # in the kernel-submitted path
    max_active: int
    max_queued: int
    max_buf: int


def _limit(value: int | None, name: str) -> int:
    if value is None:
        return _KERNEL.sysctl.get_int(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} limit must be an int")
    if value < 1:
        raise ValueError(f"{name} limit must be at least 1")
    return value


def _check_cb(cb: object) -> None:
    """TypeError for anything that is not an Aiocb (rule 27)."""
    if not isinstance(cb, Aiocb):
        raise TypeError(f"expected an Aiocb, got {type(cb).__name__}")


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise einval("timeout must be a number of seconds or None")
    if not timeout >= 0:  # also refuses NaN
        raise einval("negative timeout")
    return float(timeout)


class AioContext:
    """The per-"process" AIO state: queues, quotas and every AIO call.

    ``max_active``, ``max_queued`` and ``max_buf`` default to the sysctls
    vfs.aio.max_aio_per_proc, max_aio_queue_per_proc and max_buf_aio, copied
    when the context is made.  Use it as ``async with AioContext() as ctx``;
    leaving the block runs it down (see ``aclose``).
    """

    _count = 0  # (class defaults: __del__ may meet a context whose __init__ failed)
    _posted: list[tuple[Aiocb, int, int]] = []  # noqa: RUF012
    _fds: dict[int, FdQueue] = {}  # noqa: RUF012

    def __init__(self, *, max_active: int | None = None, max_queued: int | None = None,
                 max_buf: int | None = None) -> None:
        self.max_active = _limit(max_active, "vfs.aio.max_aio_per_proc")
        self.max_queued = _limit(max_queued, "vfs.aio.max_aio_queue_per_proc")
        self.max_buf = _limit(max_buf, "vfs.aio.max_buf_aio")
        self._kernel = _KERNEL
        self._tokens = _KERNEL.tokens
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bridge: Bridge | None = None
        self._queue = PoolQueue(self, self.max_active)
        self._closed = False
        self._closing = False
        self._count = 0  # jobs accepted and not reaped
        self._fds: dict[int, FdQueue] = {}  # {fd number: its jobs in flight}
        self._done: dict[Aiocb, None] = {}  # {cb: None} finished, in completion order
        self._batch: list[Aiocb] | None = None  # pool jobs of an lio_listio being queued
        # notifications due, snapshotted when the job finished, so that reaping or
        # reusing the cb before they run changes nothing: [(cb, gen, sigevent, batch, errno)]
        self._later: list[tuple[Aiocb, int, SigEvent | None, LioBatch | None, int]] = []
        self._in_call = 0  # > 0 inside a call of ours that may finish jobs (submit, cancel)
        self._posted: list[tuple[Aiocb, int, int]] = []  # [(cb, status, error)] from workers
        self._post_lock = threading.Lock()
        self._waiters = Sleepers()  # aio_suspend, aio_waitcomplete and rundown
        self._streak = 0
        self._inline = bool(self._kernel.sysctl["vfs.aio.inline"])
        self._file_ring = self._kernel.backend() == "io_uring"  # regular files via io_uring
        self._ring: _uring.Ring | None = None  # the loop's ring, once this context used it
        self._buf_jobs = 0  # kernel-submitted jobs in flight (max_buf)
        # Buffered writes with RWF_NOWAIT: tried until a file refuses them (EOPNOTSUPP:
        # ext4 and others take them only through io_uring), then left to the backend.
        self._nowait_writes = True
        self._sentinel: object = None  # runs the context down at loop shutdown
        self._thread = 0  # the thread of its loop
        self._default = False  # the default context of its loop
        self._kernel.contexts.add(self)

    # -- properties and small helpers -------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def _bind(self) -> asyncio.AbstractEventLoop:
        """The context's loop, checked to be the one running here (rule 27).

        A context belongs to the loop it is first used on: every call from
        anywhere else (another loop, a thread with no running loop) raises
        RuntimeError before anything is queued.
        """
        loop = _running_loop()
        if loop is None or loop is not self._loop or self._closing:
            return self._bind_slow(loop)
        return loop

    def _bind_slow(self, loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
        self._check_loop(loop)
        if self._closed or self._closing:
            raise RuntimeError("the AioContext is closed")
        if self._loop is None:
            assert loop is not None
            self._loop = loop
            self._thread = threading.get_ident()
            self._bridge = bridge_for(loop)
            self._sentinel = _shutdown_hook(self)
            REAPER.watch(self)
        return self._loop

    def _check_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """RuntimeError unless ``loop`` (the running one) may use this context."""
        if loop is None:
            if in_trio():
                raise RuntimeError(TRIO_MESSAGE)
            raise RuntimeError("AioContext calls must be made from a running event loop "
                               "(none runs in this thread)")
        if self._loop is not None and loop is not self._loop:
            raise RuntimeError("this AioContext belongs to another event loop; use "
                               "aioposix.current_context() or a context made on this loop")

    def _must_yield(self) -> bool:
        """True once this loop iteration has seen its budget of inline completions.

        Awaiting a job that finished inline does not suspend the task, so a
        busy loop of cached reads would never let timers and other tasks in.
        The budget is per loop iteration, not per task: the first inline
        await of an iteration schedules the reset, and every await past the
        budget yields once, so one iteration holds the loop for at most about
        YIELD_EVERY completions (about a millisecond of cached reads).
        """
        streak = self._streak
        if streak == 0:
            assert self._loop is not None
            self._loop.call_soon(self._reset_streak)
        self._streak = streak + 1
        return streak >= YIELD_EVERY

    def _reset_streak(self) -> None:
        self._streak = 0

    # -- submission ---------------------------------------------------------

    def aio_read(self, cb: Aiocb) -> None:
        """Queue a read of cb.nbytes at cb.offset into cb.buf."""
        if type(cb) is not Aiocb:
            _check_cb(cb)
        # The hot case, in one piece: a whole bytearray, a plain offset, no
        # sigevent, nothing else of ours in flight on the fd.  The read is
        # tried straight away; anything unusual, and every error (EBADF for
        # a closed or write-only fd included), takes the general path, which
        # validates and explains itself.
        buf = cb.buf
        fd = cb.fildes
        offset = cb.offset
        if not (type(buf) is bytearray and type(offset) is int and type(fd) is int
                and offset >= 0 and cb._ctx is None
                and cb.nbytes == len(buf) and cb.reqprio == 0 and self._inline
                and 0 <= fd <= _FD_MAX and fd not in self._fds and self._loop is _running_loop()
                and self._loop is not None and not self._closing
                and self._count < self.max_queued and self._fast_sigevent(cb)):
            self._submit(cb, LIO_READ)
            return
        tokens = self._tokens
        tokens.append(None)
        if len(tokens) > self._kernel.max_aio_queue:
            tokens.pop()
            self._submit(cb, LIO_READ)  # refused there, with the reason
            return
        try:
            got = _preadv(fd, [buf], offset, _RWF_NOWAIT)
        except OSError as exc:
            tokens.pop()
            if exc.errno == errno.ESPIPE and cb.sigevent is None:  # a socket, pipe or tty
                self._read_pollable(cb, fd, buf)
                return
            if exc.errno == errno.ESPIPE:
                self._submit(cb, LIO_READ, progress=0)
                return
            if exc.errno != errno.EAGAIN:
                self._submit(cb, LIO_READ)  # validates; a real error is reported there
                return
            got = -1  # not in the page cache
        else:
            if got == len(buf) or got == 0:
                self._count += 1
                cb._ctx = self
                cb._status, cb._error, cb._state = got, 0, DONE
                self._done[cb] = None
                sev = cb.sigevent
                if sev is not None and sev.notify != SIGEV_NONE:
                    self._later.append((cb, cb._gen, sev, None, 0))  # after this call
                    if len(self._later) == 1:
                        self._loop.call_soon(self._flush_later)
                if self._waiters:
                    self._wake_waiters()
                return
            tokens.pop()
        self._read_rest(cb, max(got, 0))

    def _fast_sigevent(self, cb: Aiocb) -> bool:
        """No sigevent, or a valid one (an invalid one is refused by the general path)."""
        sev = cb.sigevent
        if sev is None:
            return True
        try:
            validate_sigevent(sev)
        except OSError:
            return False
        return True

    def _read_pollable(self, cb: Aiocb, fd: int, buf: bytearray) -> None:
        """ESPIPE from the fast read: park it on the bridge without the general checks
        (ESPIPE, not EBADF, means the fd is open for reading)."""
        try:
            st = os.fstat(fd)
        except OSError:
            st = None
        full = len(self._tokens) >= self._kernel.max_aio_queue
        if st is None or not _paths.is_pollable(st) or full:
            self._submit(cb, LIO_READ, progress=0)
            return
        self._start_fast(cb, LIO_READ, -1, [memoryview(buf)], len(buf), st, PATH_BRIDGE)

    def _read_rest(self, cb: Aiocb, done: int) -> None:
        """The fast read came up short (EOF or partly cached) or would block."""
        self._submit(cb, LIO_READ, progress=done)

    def aio_write(self, cb: Aiocb) -> None:
        """Queue a write of cb.nbytes from cb.buf at cb.offset."""
        if type(cb) is not Aiocb:
            _check_cb(cb)
        # The hot cases, in one piece: a whole bytes/bytearray to a socket or
        # pipe (the bridge), or to a regular file (not O_APPEND, not O_DIRECT)
        # where inline writes are known not to work (the backend).  Anything
        # else, and every error, takes the general path.
        buf = cb.buf
        kind = type(buf)
        fd = cb.fildes
        offset = cb.offset
        if not ((kind is bytes or kind is bytearray) and type(offset) is int
                and type(fd) is int and 0 <= fd <= _FD_MAX and offset >= 0 and cb._ctx is None
                and cb.sigevent is None and cb.nbytes == len(buf) and cb.reqprio == 0
                and self._loop is _running_loop() and self._loop is not None
                and not self._closing
                and self._count < self.max_queued):
            self._submit(cb, LIO_WRITE)
            return
        st = _paths.writable_stat(fd)
        if st is None:
            path = -1
        elif stat.S_ISREG(st.st_mode):
            path = -1 if self._nowait_writes else PATH_RING if self._file_ring else PATH_POOL
        else:
            path = PATH_BRIDGE if _paths.is_pollable(st) else -1
        if path < 0 or len(self._tokens) >= self._kernel.max_aio_queue:
            self._submit(cb, LIO_WRITE)
            return
        assert st is not None
        views = [memoryview(buf)] if kind is bytearray else [buf]
        self._start_fast(cb, LIO_WRITE, offset, views, len(buf), st, path)

    def _start_fast(self, cb: Aiocb, op: int, offset: int, views: list[Any], nbytes: int,
                    st: os.stat_result, path: int) -> None:
        """Admit a job the fast paths checked, and hand it to ``path``."""
        self._tokens.append(None)
        self._count += 1
        cb._ctx = self
        cb._error, cb._status, cb._state = errno.EINPROGRESS, -1, WAITING
        cb._key, cb._op, cb._off, cb._n, cb._progress = cb.fildes, op, offset, nbytes, 0
        cb._views = views
        self._in_call += 1
        try:
            self._enqueue(cb, st, path, False)
        finally:
            self._in_call -= 1

    def aio_readv(self, cb: Aiocb) -> None:
        """Queue a scatter read into the buffers of cb.iov."""
        _check_cb(cb)
        self._submit(cb, LIO_READV)

    def aio_writev(self, cb: Aiocb) -> None:
        """Queue a gather write from the buffers of cb.iov."""
        _check_cb(cb)
        self._submit(cb, LIO_WRITEV)

    def aio_fsync(self, op: int, cb: Aiocb) -> None:
        """Sync cb.fildes (os.O_SYNC: fsync, os.O_DSYNC: fdatasync) once every
        job this context submitted earlier on that fd has finished."""
        _check_cb(cb)
        if op == os.O_DSYNC:
            self._submit(cb, LIO_DSYNC)
        elif op == os.O_SYNC:
            self._submit(cb, LIO_SYNC)
        else:
            self._bind()
            self._refuse(cb, error(errno.EINVAL, "aio_fsync op must be os.O_SYNC or os.O_DSYNC"))

    def _refuse(self, cb: Aiocb, exc: OSError) -> None:
        if cb._ctx is None:
            cb._error, cb._status = exc.errno or errno.EINVAL, -1
        raise exc

    def _submit(self, cb: Aiocb, op: int, lio: LioBatch | None = None,
                progress: int = -1) -> None:
        self._in_call += 1  # completions meanwhile notify later (rule 21)
        try:
            self._submit_now(cb, op, lio, progress)
        finally:
            self._in_call -= 1

    def _submit_now(self, cb: Aiocb, op: int, lio: LioBatch | None, progress: int) -> None:
        """Validate, count and start a job.  ``progress`` >= 0: the fast read
        already moved that many bytes (or found nothing cached at 0)."""
        self._bind()
        if cb._ctx is not None:
            raise einval("the aiocb is already in flight; reap it before submitting it again")
        try:
            flags = self._prepare(cb, op)
            self._admit(cb, lio)
        except OSError as exc:
            _validate.release(cb._views)
            cb._views = None
            self._refuse(cb, exc)
        inline = op in _RW and self._inline and cb._key not in self._fds
        if op in (LIO_WRITE, LIO_WRITEV) and not self._nowait_writes:
            inline = False
        if progress == 0:
            inline = False  # it was just tried: not in the page cache
        if inline and not flags & _O_DIRECT and self._try_inline(cb, max(progress, 0)):
            return
        self._start_slow(cb, flags)

    def _prepare(self, cb: Aiocb, op: int) -> int:
        """Validate and snapshot; returns the fd's status flags."""
        fd = cb.fildes
        flags = _validate.fd_flags(fd)
        _validate.check_access(fd, flags, op)
        sync = op in (LIO_SYNC, LIO_DSYNC)
        if not sync:  # aio_fsync ignores buf, nbytes, offset and reqprio
            _validate.check_reqprio(cb)
        offset = 0 if sync else _validate.offset_of(cb, fd)
        sev = cb.sigevent
        if sev is not None:
            validate_sigevent(sev)
        views, nbytes = _validate.target(cb, op)
        cb._key, cb._op, cb._off, cb._n, cb._views = fd, op, offset, nbytes, views
        cb._sev = sev if sev is not None and sev.notify != SIGEV_NONE else None
        cb._progress = 0
        return flags

    def _admit(self, cb: Aiocb, lio: LioBatch | None) -> None:
        """Count the job against the quotas (EAGAIN) and make it in flight."""
        if self._count >= self.max_queued:
            raise error(errno.EAGAIN, f"the context has {self._count} jobs not yet reaped "
                                      f"(max_queued={self.max_queued})")
        self._kernel.reserve()
        self._count += 1
        cb._ctx = self
        cb._error, cb._status, cb._state = errno.EINPROGRESS, -1, WAITING
        if lio is not None:
            lio.add(cb)

    def _try_inline(self, cb: Aiocb, done: int = 0) -> bool:
        """A page-cache hit, done now with RWF_NOWAIT; False: take the slow path."""
        is_read = cb._op == LIO_READ or cb._op == LIO_READV
        views = cb._views
        assert views is not None
        if _faults.ARMED and (code := _faults.take("inline")):
            self._finish_now(cb, -1, code)
            return True
        try:
            while True:
                part = _io.remaining(views, done)
                pos = cb._off + done if cb._off >= 0 else -1
                if is_read:
                    moved = _io.read_once(cb._key, part, pos, _io.RWF_NOWAIT)
                else:
                    moved = _io.write_once(cb._key, part, pos, _io.RWF_NOWAIT)
                done += moved
                if moved == 0 or done >= cb._n:
                    break
        except BlockingIOError:
            cb._progress = done
            return False
        except OSError as exc:
            if exc.errno in (errno.ESPIPE, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                if exc.errno == errno.EOPNOTSUPP and not is_read and cb._off >= 0:
                    self._nowait_writes = False  # this filesystem has no RWF_NOWAIT writes
                cb._progress = done
                return False
            self._finish_now(cb, done or -1, 0 if done else exc.errno or errno.EIO)
            return True
        self._finish_now(cb, done, 0)
        return True

    def _finish_now(self, cb: Aiocb, status: int, err: int) -> None:
        _validate.release(cb._views)
        cb._views = None
        cb._status, cb._error, cb._state = status, err, DONE
        self._done[cb] = None
        self._announce(cb)

    def _start_slow(self, cb: Aiocb, flags: int) -> None:
        """Everything the inline attempt could not finish: bridge, ring or pool."""
        assert cb._views is not None
        try:
            st = os.fstat(cb._key)
            cb._views = _validate.pin(cb._views)
            path = self._path_for(cb, flags, st)
        except OSError as exc:
            self._finish_now(cb, -1, exc.errno or errno.EIO)
            return
        ordered = cb._op in (LIO_SYNC, LIO_DSYNC) or (
            cb._op in (LIO_WRITE, LIO_WRITEV) and bool(flags & os.O_APPEND))
        self._enqueue(cb, st, path, ordered)

    def _enqueue(self, cb: Aiocb, st: os.stat_result, path: int, ordered: bool) -> None:
        """Put the job in its fd's queue and hand it to its path.

        What may fail (our dup of the fd, the loop's ring: EMFILE) is taken
        before the job enters the queue; a job that cannot get it finishes
        at once with that errno, and nothing of it is left anywhere else.
        An ``ordered`` job (fsync, O_APPEND write) waits as WAITING until
        every job before it on the fd has finished.
        """
        queue = self._fds.get(cb._key)
        try:
            if path in (PATH_RING, PATH_BUF) and self._ring is None:
                assert self._loop is not None
                self._ring = _uring.acquire(self._loop)
            if path != PATH_BRIDGE:
                queue = queue or FdQueue()
                cb._fd = queue.descriptor(cb._key, st)
        except OSError as exc:
            self._finish_now(cb, -1, exc.errno or errno.EIO)
            return
        queue = queue or FdQueue()
        cb._path = path
        self._fds[cb._key] = queue
        jobs = queue.jobs
        barrier = ordered and bool(jobs)
        jobs[cb] = None
        if path == PATH_BRIDGE:
            assert self._bridge is not None
            self._bridge.park(cb, self, st)
        elif not barrier:
            self._dispatch(cb)

    def _path_for(self, cb: Aiocb, flags: int, st: os.stat_result) -> int:
        if cb._op in _RW and _paths.is_pollable(st):
            return PATH_BRIDGE
        direct = flags & _O_DIRECT or stat.S_ISBLK(st.st_mode)
        if direct and self._ring_usable() and _paths.aligned(cb, st):
            return PATH_BUF if cb._op in _RW else PATH_RING
        if direct:
            return PATH_POOL  # misaligned: the daemons, as in the seed (the kernel says EINVAL)
        if self._file_ring and stat.S_ISREG(st.st_mode):
            return PATH_RING
        return PATH_POOL

    def _ring_usable(self) -> bool:
        return self._file_ring or _uring.probe() is None

    def _dispatch(self, cb: Aiocb) -> None:
        if cb._path == PATH_BUF and self._buf_jobs >= self.max_buf:
            cb._path = PATH_POOL  # past max_buf: the daemons take it, as aio_qphysio's -1
        if cb._path == PATH_POOL:
            if self._batch is not None:
                self._batch.append(cb)
            else:
                self._kernel.pool.submit(self._queue, [cb])
            return
        assert self._ring is not None  # taken at _enqueue
        if cb._path == PATH_BUF:
            self._buf_jobs += 1
            self._kernel.buf_tokens.append(None)
        cb._state = KERNEL
        self._ring.submit(cb, self._ring_done, batch=self._batch is not None)

    def _ring_done(self, cb: Aiocb, status: int, err: int) -> None:
        """A CQE for ``cb``: finish it, or go on with the rest of a short write."""
        if status > 0 and cb._op in (LIO_WRITE, LIO_WRITEV) and cb._progress + status < cb._n:
            cb._progress += status
            assert self._ring is not None
            self._ring.submit(cb, self._ring_done)
            return
        self._ring_left(cb)
        if status >= 0 and cb._op in _RW:
            status += cb._progress
        self._bridge_done(cb, status, err)

    def _ring_left(self, cb: Aiocb) -> None:
        if cb._path == PATH_BUF:
            self._buf_jobs -= 1
            self._kernel.buf_tokens.pop()

    def _ring_lost(self, cb: Aiocb, status: int, err: int) -> None:
        """A CQE reaped with the loop gone (from the reaper): the loop-less path.
        A short write ends short, with what moved."""
        self._ring_left(cb)
        if status >= 0 and cb._op in _RW:
            status += cb._progress
        self._post(cb, status, err)

    # -- completion ---------------------------------------------------------

    def _post(self, cb: Aiocb, status: int, err: int) -> None:
        """From a worker: queue the result; wake the loop once per batch."""
        loop = self._loop
        assert loop is not None
        with self._post_lock:
            self._posted.append((cb, status, err))
            if len(self._posted) > 1 and not loop.is_closed():
                return  # a drain is already on its way
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody will reap these
            self._orphan()
        else:
            self._kernel.pool.watch(self)  # in case it closes before running the drain

    def _check_orphaned(self) -> None:
        """From an idle worker: results still waiting for a loop that closed."""
        loop = self._loop
        if self._posted and loop is not None and loop.is_closed():
            self._orphan()

    def _drain(self) -> None:
        with self._post_lock:
            batch, self._posted = self._posted, []
        for cb, status, err in batch:
            self._complete(cb, status, err)
        if not self._in_call:
            self._flush_later()  # a loop callback, not one of our calls: notify now

    def _collect(self) -> None:
        """Take in what the workers finished, so that status calls see it at once
        (their notifications still wait for the end of the call)."""
        if self._posted and self._loop is not None and not self._loop.is_closed():
            self._in_call += 1
            try:
                self._drain()
            finally:
                self._in_call -= 1

    def _orphan(self) -> None:
        """The loop closed under this context: a rundown with no loop (rule 25).

        Runs on a worker's or the reaper's thread, under the post lock.  Jobs
        the workers finished and jobs that will now never start (queued,
        behind a barrier, parked on the dead loop) end, the latter with
        ECANCELED, with no notification (there is no loop to run one); then
        every finished job is freed, as aclose() frees them: nobody can reap
        them any more (every call from another loop is refused), so their
        queue slots and descriptors go back at once.  Jobs still on a worker
        or in the kernel come back through here when they end.
        """
        with self._post_lock:
            batch, self._posted = self._posted, []
            ended = [(cb, status, err) for cb, status, err in batch]
            for queue in list(self._fds.values()):
                ended += [(cb, -1, errno.ECANCELED) for cb in queue.jobs if self._never_runs(cb)]
            for cb, status, err in ended:
                self._leave_queue(cb)
                cb._status, cb._error, cb._state = status, err, DONE
                self._done[cb] = None
            self._closed = True
            for cb in list(self._done):
                del self._done[cb]
                self._forget(cb)
            self._kernel.pool.forget(self._queue)
            if self._bridge is not None:
                self._bridge.abandon()

    # -- as watched by the reaper ----------------------------------------------

    def loop_gone(self) -> bool:
        loop = self._loop
        return loop is not None and loop.is_closed() and not self._closed

    def run_down_without_loop(self) -> bool:
        """The reaper found the loop closed: run down, then let go of the ring."""
        self._orphan()
        ring, self._ring = self._ring, None
        if ring is not None:
            _uring.release(ring)  # closed once nothing of any context is in flight on it
        return True

    def _never_runs(self, cb: Aiocb) -> bool:
        state = cb._state
        if state is QUEUED:
            return self._kernel.pool.take_back(cb)
        return state is WAITING or state is PARKED

    def _forget(self, cb: Aiocb) -> None:
        """Free a job nobody can reap any more (its loop is gone)."""
        cb._ctx, cb._state = None, IDLE
        cb._gen += 1
        self._count -= 1
        self._tokens.pop()

    def __del__(self) -> None:
        # A context dropped with its loop, never closed: give back its queue
        # slots and descriptors (nothing can run its jobs any more).
        if self._count > 0:  # (no worker holds it: none of its jobs is still running)
            for _ in range(self._count):
                self._tokens.pop()
            self._count = 0
            for queue in self._fds.values():
                for dup in list(queue.refs):
                    os.close(dup)
                queue.refs.clear()

    def _leave_queue(self, cb: Aiocb) -> FdQueue | None:
        """Take a finished job out of its fd's queue; the queue if jobs remain."""
        queue = self._fds[cb._key]
        if cb._fd >= 0:
            queue.unref(cb._fd)
            cb._fd = -1
        _validate.release(cb._views)
        cb._views = None
        del queue.jobs[cb]
        if queue.jobs:
            return queue
        del self._fds[cb._key]
        return None

    def _complete(self, cb: Aiocb, status: int, err: int) -> None:
        """Bookkeeping for a finished slow-path job; notifications come after."""
        cb._status, cb._error, cb._state = status, err, DONE
        queue = self._leave_queue(cb)
        if queue is not None:
            head = next(iter(queue.jobs))
            if head._state is WAITING:
                self._dispatch(head)
        self._done[cb] = None
        self._announce(cb)
        if self._closed and self._ring is not None:
            self._release_ring()

    def _bridge_done(self, cb: Aiocb, status: int, err: int) -> None:
        self._complete(cb, status, err)

    def _announce(self, cb: Aiocb) -> None:
        """A job just finished: wake who waits for it now (that runs no user code)
        and queue its notifications, snapshotted, for after the current call."""
        # the notifications are queued before the waiter is woken, so that they
        # run before the awaiting task resumes and reaps the job
        if cb._sev is not None or cb._lio is not None:
            notice = (cb, cb._gen, cb._sev, cb._lio, cb._error)
            if not self._in_call:
                self._tell(*notice)  # from a loop callback: at once, like the kernel
            else:
                self._later.append(notice)
                if len(self._later) == 1:
                    assert self._loop is not None
                    self._loop.call_soon(self._flush_later)
        elif cb._autoreap:
            self._reap(cb, raising=False)  # its awaiting task was cancelled; nothing to tell
            self._wake_waiters()  # a rundown or aio_waitcomplete may wait for this one
            return
        waiter = cb._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._waiters:
            self._wake_waiters()

    def _flush_later(self) -> None:
        """Deliver due notifications (never inside a submit call: rule 21)."""
        batch, self._later = self._later, []
        tell = self._tell
        for cb, gen, sev, lio, err in batch:
            tell(cb, gen, sev, lio, err)

    def _tell(self, cb: Aiocb, gen: int, sev: SigEvent | None, lio: LioBatch | None,
              err: int) -> None:
        """Deliver one finished job's notifications, as they were when it finished."""
        if sev is not None:
            assert self._loop is not None
            deliver(sev, self._loop, cb, err, EVFILT_AIO, gen)
        if lio is not None:
            lio.job_done(err)
        if cb._autoreap and cb._gen == gen and cb._ctx is self and cb._state is DONE:
            self._reap(cb, raising=False)

    def _wake_waiters(self) -> None:
        self._waiters.wake()

    # -- reaping and status ---------------------------------------------------

    def _reap(self, cb: Aiocb, raising: bool) -> int:
        if cb._ctx is not self or cb._state is not DONE:
            raise einval("the job is not done, or not known to this context")
        del self._done[cb]
        self._count -= 1
        self._tokens.pop()
        # an idle cb has no waiter, batch, sigevent or autoreap: the fast path relies on it
        cb._ctx, cb._state, cb._waiter, cb._lio, cb._sev, cb._autoreap = (
            None, IDLE, None, None, None, False)
        cb._gen += 1
        if raising and cb._error:
            raise OSError(cb._error, os.strerror(cb._error))
        return cb._status

    def _check_open(self) -> None:
        """RuntimeError if the context is closed or this is not its loop (rule 27)."""
        if self._closed:
            raise RuntimeError("the AioContext is closed")
        loop = _running_loop()
        if loop is None or (loop is not self._loop and self._loop is not None):
            self._check_loop(loop)

    def aio_error(self, cb: Aiocb) -> int:
        """EINPROGRESS while in flight, else the job's errno (0 for success)."""
        _check_cb(cb)
        self._check_open()
        if cb._ctx is not self:
            raise einval("the aiocb is not known to this context")
        if cb._state is RUNNING:
            self._collect()
        return cb._error

    def aio_return(self, cb: Aiocb) -> int:
        """Reap a finished job: its byte count, or -1 if it failed."""
        _check_cb(cb)
        self._check_open()
        if cb._state is RUNNING:
            self._collect()
        return self._reap(cb, raising=False)

    def _wait_done(self, cb: Aiocb) -> Generator[Any, None, None]:
        """Park the awaiting task on the job's future (``await cb``)."""
        waiter = cb._waiter
        if waiter is None:
            assert self._loop is not None
            waiter = cb._waiter = self._loop.create_future()
        try:
            yield from waiter.__await__()
        except asyncio.CancelledError:
            # Rule 8: cancel the job if it is still waiting its turn;
            # otherwise it finishes on its own and reaps itself.
            if cb._ctx is self and cb._state is not DONE:
                self._cancel_one(cb)
            if cb._ctx is self:
                cb._autoreap = True
                if cb._state is DONE:  # its notifications were snapshotted: reap now
                    self._reap(cb, raising=False)
            raise

    async def aio_suspend(self, cbs: Iterable[Aiocb | None],
                          timeout: float | None = None) -> None:
        """Wait until one listed job is done (EAGAIN when timeout passes)."""
        self._check_open()
        entries = list(cbs)
        for cb in entries:
            if cb is not None:
                _check_cb(cb)
        limit = self._kernel.sysctl.get_int("vfs.aio.max_aio_queue_per_proc")
        if len(entries) > limit:
            raise einval(f"{len(entries)} entries is over p1003_1b.aio_listio_max ({limit})")
        deadline = self._deadline(_check_timeout(timeout))
        while True:
            mine = [cb for cb in entries if cb is not None and cb._ctx is self]
            if not mine or any(cb._state is DONE for cb in mine):
                return
            if not await self._sleep(deadline):
                raise error(errno.EAGAIN, "aio_suspend timed out")

    def _deadline(self, timeout: float | None) -> float | None:
        loop = self._loop or asyncio.get_running_loop()
        return None if timeout is None else loop.time() + timeout

    async def _sleep(self, deadline: float | None) -> bool:
        """Wait for any completion of this context; False once ``deadline`` passed."""
        return await self._waiters.sleep(self._loop or asyncio.get_running_loop(), deadline)

    def aio_waitcomplete(self, timeout: float | None = None) -> AsyncIterator[Aiocb]:
        """Yield each job of this context as it completes, already reaped.

        Ends when nothing is queued, running, parked or unreaped; a step that
        waits longer than ``timeout`` raises OSError(EAGAIN).
        """
        self._check_open()
        return _WaitComplete(self, _check_timeout(timeout))

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
            _check_cb(cb)
        self._bind()
        _validate.fd_flags(fildes)
        if cb is not None:
            if cb._ctx is not self or cb._state is DONE or cb._key != fildes:
                return AIO_ALLDONE
            targets = [cb]
        else:
            queue = self._fds.get(fildes)
            targets = list(queue.jobs) if queue is not None else []
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
            taken = True
        elif state is QUEUED:
            taken = self._kernel.pool.take_back(cb)
        elif state is PARKED:
            assert self._bridge is not None
            taken = self._bridge.take_back(cb)
            if not taken:  # a socket write that moved bytes ends short, not cancelled
                self._bridge_done(cb, self._bridge.complete_short(cb), 0)
                return False
        else:
            return False  # running on a worker or in the kernel
        if taken:
            self._bridge_done(cb, -1, errno.ECANCELED)
        return taken

    # -- lio_listio ---------------------------------------------------------

    async def lio_listio(self, mode: int, cbs: Sequence[Aiocb | None],
                         sigevent: SigEvent | None = None) -> None:
        """Submit a list of jobs at once (cb.lio_opcode says what each does)."""
        loop = self._bind()
        if mode not in (LIO_WAIT, LIO_NOWAIT):
            raise einval(f"lio_listio mode {mode!r} is neither LIO_WAIT nor LIO_NOWAIT")
        limit = self._kernel.sysctl.get_int("vfs.aio.max_aio_queue_per_proc")
        if len(cbs) > limit:
            raise einval(f"{len(cbs)} entries is over p1003_1b.aio_listio_max ({limit})")
        for cb in cbs:  # every entry's type, before any is queued
            if cb is not None:
                _check_cb(cb)
        if mode == LIO_NOWAIT and sigevent is not None:
            validate_sigevent(sigevent)
        batch = LioBatch(loop, cbs, sigevent if mode == LIO_NOWAIT else None, mode == LIO_WAIT)
        refused = self._queue_list(cbs, batch)
        batch.arm()
        if mode == LIO_WAIT:
            assert batch.waiter is not None
            await batch.waiter
            if refused or batch.failed:
                raise error(errno.EIO, "an entry of the list failed")
        elif refused:
            code = errno.EAGAIN if refused == {errno.EAGAIN} else errno.EIO
            raise error(code, "some entries of the list were not queued")

    def _queue_list(self, cbs: Sequence[Aiocb | None], batch: LioBatch) -> set[int]:
        """Submit every entry, handing the pool jobs over in one go; the errnos refused."""
        refused: set[int] = set()
        self._batch = []
        self._in_call += 1
        try:
            for cb in cbs:
                if cb is None:
                    continue
                try:
                    self._submit_entry(cb, batch)
                except OSError as exc:
                    refused.add(exc.errno or errno.EIO)
        finally:
            jobs, self._batch = self._batch, None
            if jobs:
                self._kernel.pool.submit(self._queue, jobs)
            if self._ring is not None:
                self._ring.flush()  # the batch reaches the kernel in one io_uring_enter
            self._in_call -= 1
        return refused

    def _submit_entry(self, cb: Aiocb, batch: LioBatch) -> None:
        op = cb.lio_opcode
        if op == LIO_NOP:
            try:
                _validate.fd_flags(cb.fildes)
            except OSError as exc:
                self._refuse(cb, exc)
        elif op in _OPS:
            self._submit(cb, op, batch)
        else:
            self._refuse(cb, einval(f"unknown lio_opcode {op!r}"))

    # -- lifetime -----------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Run the context down (the seed's aio_proc_rundown).

        Queued and parked jobs are cancelled (ECANCELED; their notifications
        fire), running ones are awaited up to vfs.aio.aiod_timeout, then
        every job is freed and every fd or buffer the context held released.
        """
        if self._closed or self._closing:
            return
        if self._loop is not None:
            self._check_loop(_running_loop())
        self._closing = True
        REAPER.unwatch(self)
        if self._loop is not None:
            for queue in list(self._fds.values()):
                for cb in list(queue.jobs):
                    self._cancel_one(cb)
            deadline = self._loop.time() + self._kernel.sysctl.get_float("vfs.aio.aiod_timeout")
            while self._fds and await self._sleep(deadline):
                pass
            self._flush_later()
        for cb in list(self._done):
            _keep_kevent_once(cb)
            self._reap(cb, raising=False)
        self._abandon_running()
        self._closed = True
        self._sentinel = None
        self._release_ring()

    def _release_ring(self) -> None:
        """A closed context lets go of the loop's ring once none of its jobs is in it."""
        if self._ring is None or any(
                cb._state is KERNEL for queue in self._fds.values() for cb in queue.jobs):
            return
        ring, self._ring = self._ring, None
        _uring.release(ring)

    def _abandon_running(self) -> None:
        """Jobs still on a worker after aiod_timeout: free them when they end."""
        for queue in self._fds.values():
            for cb in queue.jobs:
                cb._autoreap = True

    def _forget_after_fork(self) -> None:
        """In a forked child: the parent's jobs do not exist here."""
        for queue in self._fds.values():
            for dup in queue.refs:
                os.close(dup)
        self._fds.clear()
        self._done.clear()
        self._posted = []
        self._post_lock = threading.Lock()
        self._closed = True

    def statistics(self) -> ContextStatistics:
        """How many jobs are in each state now, and the limits."""
        self._collect()  # jobs a worker finished are done, not active
        counts = {state: 0 for state in (WAITING, QUEUED, RUNNING, PARKED, KERNEL)}
        for queue in self._fds.values():
            for cb in queue.jobs:
                counts[cb._state] = counts.get(cb._state, 0) + 1
        return ContextStatistics(
            queued=counts[WAITING] + counts[QUEUED], active=counts[RUNNING] + counts[KERNEL],
            done=len(self._done), parked=counts[PARKED], buffer_jobs=self._buf_jobs,
            max_active=self.max_active, max_queued=self.max_queued, max_buf=self.max_buf)

    def __repr__(self) -> str:
        s = self.statistics()
        state = "closed" if self._closed else "open"
        return (f"<AioContext {state} queued={s.queued} active={s.active} done={s.done} "
                f"parked={s.parked} buffer_jobs={s.buffer_jobs}>")



def _keep_kevent_once(cb: Aiocb) -> None:
    """The rundown frees a finished job: its EVFILT_AIO event, if it was never
    collected, is still delivered once to a Kqueue that outlives the context."""
    sev = cb._sev
    if sev is not None and sev.notify == SIGEV_KEVENT and sev.kqueue is not None:
        sev.kqueue._keep_once(cb, cb._gen)


class _WaitComplete:
    """The async iterator behind aio_waitcomplete."""

    def __init__(self, ctx: AioContext, timeout: float | None) -> None:
        self._ctx = ctx
        self._timeout = timeout

    def __aiter__(self) -> _WaitComplete:
        return self

    async def __anext__(self) -> Aiocb:
        ctx = self._ctx
        deadline = ctx._deadline(self._timeout)
        while True:
            if ctx._done:
                cb = next(iter(ctx._done))
                ctx._reap(cb, raising=False)
                return cb
            if ctx._count == 0:
                raise StopAsyncIteration
            if not await ctx._sleep(deadline):
                raise error(errno.EAGAIN, "aio_waitcomplete timed out")


async def _rundown_at_shutdown(ref: weakref.ref[AioContext]) -> AsyncGenerator[None, None]:
    """An async generator the loop closes in shutdown_asyncgens(): the hook
    through which a loop's default context is run down when the loop ends."""
    try:
        yield
    finally:
        ctx = ref()
        if ctx is not None and not ctx.closed:
            await ctx.aclose()


def _shutdown_hook(ctx: AioContext) -> object:
    """Hook the context's rundown into its loop's shutdown_asyncgens()
    (asyncio.run calls it before closing the loop)."""
    sentinel = _rundown_at_shutdown(weakref.ref(ctx))
    try:
        sentinel.asend(None).send(None)
    except StopIteration:
        pass
    return sentinel


def current_context() -> AioContext:
    """The running loop's default context, made on first use."""
    loop = _running_loop()
    if loop is None:
        running_loop()  # raises, saying why (trio, or no loop at all)
    assert loop is not None
    ctx: AioContext | None = _loopdata.get(loop, "context")
    if ctx is None or ctx.closed:
        ctx = AioContext()
        ctx._bind()
        ctx._default = True
        _loopdata.put(loop, "context", ctx)
    return ctx
