"""The way of a job past its submit call: route, backend, complete, notify.

``Pipeline`` is the part of the context (``aioposix._context.context``)
that moves an admitted job along: it asks ``route`` where the job runs,
serves it inline or puts it in its fd's queue (holding a dup of the fd)
and hands it to its backend through the contract, takes each completion
back through ``_finish`` (bookkeeping first, then the next job behind a
barrier), and delivers notifications, snapshotted as ``Notice`` records,
on the loop thread after the current call (docs/contract.md, rule 21).
vfs_aio.c's counterparts: aio_queue_file and aio_qphysio (hand-off),
aio_complete and aio_bio_done_notify (completion and notification).
"""

from __future__ import annotations

import asyncio
import errno
import os

from aioposix._backends import ring as uring
from aioposix._backends.bridge import Bridge
from aioposix._backends.inline import Inline
from aioposix._backends.pool import PoolPort
from aioposix._backends.ring import RingPort
from aioposix._context import submit
from aioposix._core.constants import EVFILT_AIO
from aioposix._core.contract import Backend, Notice
from aioposix._core.errors import einval, failed
from aioposix._core.fdqueue import FdQueue
from aioposix._core.job import DONE, IDLE, KERNEL, WAITING, Aiocb
from aioposix._core.peers import Owner
from aioposix._core.sleepers import Sleepers
from aioposix._core.states import BRIDGE, DIRECT, INLINE, RING, Route
from aioposix._kernel.kernel import KERNEL as _KERNEL
from aioposix._kernel.quotas import Quota
from aioposix._notify.sigevent import deliver
from aioposix._routing import Facts
from aioposix._routing import route as route_of

_notice = tuple.__new__  # a Notice from its fields in one C call (NamedTuple's __new__ is Python)


class Pipeline(Owner):
    """The context's job tables and the steps every job goes through."""

    max_buf: int
    _loop: asyncio.AbstractEventLoop | None
    _closed: bool
    _quota: Quota
    _fds: dict[int, FdQueue]  # {fd number: its jobs in flight, in submission order}
    _spare: FdQueue | None  # the last queue emptied, for the next fd (it holds no dup)
    _done: dict[Aiocb, None]  # {cb: None} finished, in completion order
    _batch: dict[Route, list[Aiocb]] | None  # an lio_listio's jobs, per route
    _later: list[Notice]  # notifications due after the current call
    _in_call: int  # > 0 inside a call of ours that may finish jobs (submit, cancel)
    _waiters: Sleepers  # aio_suspend, aio_waitcomplete and rundown
    _asleep: list[asyncio.Future[bool]]  # _waiters' futures (a list: a C-level truth test)
    _inline: Inline | None  # None: vfs.aio.inline is off
    _ring_files: bool  # regular files go to io_uring
    _ring_usable: bool  # io_uring works here (for the kernel path)
    _pool: PoolPort
    _ports: dict[Route, Backend]
    _bridge: Bridge | None
    _ring: RingPort | None  # the loop's ring, once this context used it
    _buf_jobs: int  # jobs routed to the kernel path and not finished (max_buf)
    _facts: Facts  # what routing asks of the context

    def _start(self, cb: Aiocb, flags: int, st: os.stat_result | None, *, tried: bool,
               checked: bool = True) -> None:
        """Route an admitted job and hand it to its backend.  ``tried``: a submit
        fast path made the inline attempt (and holds the views: they need no
        pinning); ``checked``: the fd's flags are known (not a guess)."""
        self._in_call += 1
        try:
            if not checked:
                flags = submit.flags_of(cb._key)
            cb._stat = st
            where = route_of(cb, flags, cb._key in self._fds, tried, self._facts)
            if where is INLINE:
                assert self._inline is not None
                result = self._inline.attempt(cb, cb._progress)
                if result is not None:
                    self._finish_now(cb, *result)
                    return
                where = route_of(cb, flags, False, True, self._facts)
            if not tried:
                submit.pin(cb)
            self._enqueue(cb, where, flags)
        except OSError as exc:
            self._finish_now(cb, -1, exc.errno or errno.EIO)
        finally:
            self._in_call -= 1

    def _refacts(self) -> None:
        """The routing facts changed (a kernel-path job came or went)."""
        self._facts = Facts(self._inline, self._ring_files, self._ring_usable,
                            self._buf_jobs < self.max_buf)

    def _enqueue(self, cb: Aiocb, where: Route, flags: int) -> None:
        """Put the job in its fd's queue and hand it to its backend.

        What may fail (our dup of the fd, the loop's ring: EMFILE) is taken
        before the job enters the queue; a job that cannot get it finishes
        at once with that errno, and nothing of it is left anywhere else.
        An ordered job (fsync, O_APPEND write: ``submit.ordered``) waits as
        WAITING until every job before it on the fd has finished.
        """
        queue = self._fds.get(cb._key)
        if queue is None:
            queue, self._spare = self._spare or FdQueue(), None
        try:
            if where is not BRIDGE:  # (the bridge holds a descriptor per channel)
                if (where is RING or where is DIRECT) and self._ring is None:
                    self._take_ring()
                st = cb._stat
                assert st is not None
                cb._fd = queue.descriptor(cb._key, st)
        except OSError as exc:
            self._finish_now(cb, -1, exc.errno or errno.EIO)
            return
        cb._route = where
        if where is DIRECT:
            self._buf_jobs += 1
            _KERNEL.buf_tokens.append(None)
            if self._buf_jobs == self.max_buf:
                self._refacts()  # no room left
        self._fds[cb._key] = queue
        jobs = queue.jobs
        barrier = bool(jobs) and submit.ordered(cb, flags)
        jobs[cb] = None
        if barrier:
            return
        if self._batch is None:  # (_dispatch's common case, without the call)
            self._ports[where].submit([cb])
            cb._stat = None
        else:
            self._dispatch(cb)

    def _dispatch(self, cb: Aiocb) -> None:
        batch = self._batch
        if batch is not None and cb._route is not BRIDGE:
            batch.setdefault(cb._route, []).append(cb)  # handed over at the end of the list
        else:
            self._ports[cb._route].submit([cb])
        cb._stat = None  # the backend has what it needs: a parked job stays small

    def _batched(self, cb: Aiocb) -> bool:
        """A job behind a barrier, already handed to this lio_listio's batch (it
        stays WAITING there until the batch goes to the backends)."""
        batch = self._batch
        return batch is not None and cb in batch.get(cb._route, ())

    def _flush_batch(self) -> None:
        batch, self._batch = self._batch, None
        for where, jobs in (batch or {}).items():
            self._ports[where].submit(jobs)

    # -- completion ----------------------------------------------------------

    def _finish_now(self, cb: Aiocb, status: int, err: int) -> None:
        """A job that finished before entering any queue (inline, or refused)."""
        submit.release_views(cb)
        cb._stat = None
        cb._status, cb._error, cb._state = status, err, DONE
        self._done[cb] = None
        self._announce(cb)

    def _finish(self, cb: Aiocb, status: int, err: int) -> None:
        """The backends' Finish: bookkeeping first, notifications after."""
        cb._status, cb._error, cb._state = status, err, DONE
        queue = self._leave_queue(cb)
        if queue is not None:
            head = next(iter(queue.jobs))
            if head._state is WAITING and not self._batched(head):
                self._dispatch(head)
        self._done[cb] = None
        self._announce(cb)
        if self._closed and self._ring is not None:
            self._release_ring()

    def _leave_queue(self, cb: Aiocb) -> FdQueue | None:
        """Take a finished job out of its fd's queue; the queue if jobs remain."""
        if cb._route is DIRECT:
            self._buf_jobs -= 1
            _KERNEL.buf_tokens.pop()
            if self._buf_jobs == self.max_buf - 1:
                self._refacts()  # room again
        queue = self._fds[cb._key]
        if cb._fd >= 0:
            queue.unref(cb._fd)
            cb._fd = -1
        submit.release_views(cb)
        cb._stat = None
        del queue.jobs[cb]
        if queue.jobs:
            return queue
        del self._fds[cb._key]
        self._spare = queue  # empty, every dup closed: the next fd's queue
        return None

    def _announce(self, cb: Aiocb) -> None:
        """A job just finished: wake who waits for it now (that runs no user code)
        and queue its notifications, snapshotted, for after the current call."""
        # the notifications are queued before the waiter is woken, so that they
        # run before the awaiting task resumes and reaps the job
        if cb._sev is not None or cb._lio is not None:
            if not self._in_call and not self._later:
                # from a loop callback: at once, like the kernel
                self._tell(_notice(Notice, (cb, cb._gen, cb._sev, cb._lio, cb._error)))
            else:
                self._notify_later(cb)
        elif cb._autoreap:
            self._reap(cb, raising=False)  # its awaiting task was cancelled; nothing to tell
            self._waiters.wake()  # a rundown or aio_waitcomplete may wait for this one
            return
        waiter = cb._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._asleep:
            self._waiters.wake()

    def _notify_later(self, cb: Aiocb) -> None:
        """Queue the finished job's notifications, snapshotted, for after this call."""
        later = self._later
        later.append(_notice(Notice, (cb, cb._gen, cb._sev, cb._lio, cb._error)))
        if len(later) == 1:
            assert self._loop is not None
            self._loop.call_soon(self._flush_later)

    def _flush_later(self) -> None:
        """Deliver the notifications queued during our calls."""
        while self._later:
            notices, self._later = self._later, []
            for notice in notices:
                self._tell(notice)

    def _tell(self, notice: Notice) -> None:
        """Deliver one finished job's notifications, as they were when it finished."""
        cb, gen, sigevent, batch, error = notice  # (one unpack: cheaper than the fields)
        if sigevent is not None:
            assert self._loop is not None
            deliver(sigevent, self._loop, cb, error, EVFILT_AIO, gen)  # (all positional)
        if batch is not None:
            batch.job_done(error)
        if cb._autoreap and cb._gen == gen and cb._ctx is self and cb._state is DONE:
            self._reap(cb, raising=False)

    # -- reaping and status ---------------------------------------------------

    def _reap(self, cb: Aiocb, raising: bool) -> int:
        if cb._ctx is not self or cb._state is not DONE:
            raise einval("the job is not done, or not known to this context")
        del self._done[cb]
        self._quota.release()
        # an idle cb has no waiter, batch, sigevent or autoreap: the fast path relies on it
        cb._ctx, cb._state, cb._waiter, cb._lio, cb._sev, cb._autoreap = (
            None, IDLE, None, None, None, False)
        cb._gen += 1
        if raising and cb._error:
            raise failed(cb._error)
        return cb._status

    def _collect(self) -> None:
        """Take in what the workers finished, so that status calls see it at once
        (their notifications still wait for the end of the call)."""
        if self._pool.pending():
            self._in_call += 1
            try:
                self._pool.drain()
            finally:
                self._in_call -= 1

    def _take_ring(self) -> None:
        """Hold the loop's ring (made on first use) and reach it through a port."""
        assert self._loop is not None
        port = RingPort(uring.acquire(self._loop), self._finish, self._pool.post)
        self._ports[RING] = self._ports[DIRECT] = port
        self._ring = port

    def _release_ring(self) -> None:
        """A closed context lets go of the loop's ring once none of its jobs is in it."""
        if self._ring is None or any(
                cb._state is KERNEL for queue in self._fds.values() for cb in queue.jobs):
            return
        self._drop_ring()

    def _drop_ring(self) -> None:
        port, self._ring = self._ring, None
        if port is not None:
            uring.release(port.ring)  # closed once nothing of any context is in flight on it
