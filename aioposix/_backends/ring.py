"""The io_uring ring: the kernel path (vfs_aio.c's aio_qphysio/aio_physwakeup) and
the file backend.

In vfs_aio.c, a request on a raw disk skips the daemons: ``aio_qphysio``
hands a buffer straight to the driver and ``aio_physwakeup`` completes the
job from the interrupt.  Such jobs are limited by ``max_buf_aio`` per
process, counted in ``num_buf_aio``, and cannot be cancelled once started.
The modern equivalent is io_uring: the request goes to the kernel with no
thread of ours, straight into the caller's buffer.

Why our own small layer: the maintained Python bindings either need a newer
kernel than many hosts run, replace the event loop, or copy buffers; we
need reads into the caller's buffer and completion through an eventfd the
loop watches.  So this module talks to the three system calls with ctypes
and reads the rings through mmap (the structures and calls are in
``aioposix._backends.uring_abi``):

- one ring per event loop (the loop thread is the only submitter), made on
  first use and closed when the loop's last context closes, or, if the loop
  goes away first, by the process-wide reaper (``_reaper``) once the kernel
  has completed every request on it;
- SQEs written during one loop iteration are submitted together by one
  ``io_uring_enter`` at the end of the iteration (``call_soon``); an lio
  batch flushes at once, so a batch is always one call;
- the kernel signals completions on an eventfd registered with
  IORING_REGISTER_EVENTFD, watched with ``loop.add_reader``: one wake-up
  drains every ready CQE;
- each in-flight request keeps its job, iovec array and ctypes views of the
  buffers alive until its CQE is reaped, and the ring itself is held by the
  reaper while it is open, so neither a cancelled task, a closed context nor
  a loop that went away frees memory the kernel still writes into;
- at most as many requests are in flight as the CQ holds; should the CQ
  overflow all the same, the overflow flag is checked after every reap and
  submit and the kernel is asked to move the overflowed CQEs in (see
  ``Ring._overflowed``).

Ring memory is shared with the kernel: the CQ head is ours to advance, the
SQ tail ours to publish.  The kernel reads the tail with an acquire load and
expects the SQE stores to be visible before the tail store.  From Python we
cannot issue a store-release, so we rely on x86-64's memory model (stores
are never reordered with other stores); ``probe()`` reports io_uring as
unavailable on other architectures and everything then uses the pool.

Each context reaches the ring through a ``RingPort`` (the backend contract
of ``aioposix._core.contract``): it finishes a short write by submitting
the rest, and reports each job once through the context's ``Finish``
callback, or, once the loop is gone, through its loop-less one.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import mmap
import os
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aioposix._backends import uring_abi as abi
from aioposix._backends.uring_abi import CQE, SQE, U32
from aioposix._core import faults, loopdata
from aioposix._core.constants import LIO_DSYNC, LIO_READ, LIO_READV, LIO_SYNC, LIO_WRITE, LIO_WRITEV
from aioposix._core.contract import Finish
from aioposix._core.job import KERNEL as IN_KERNEL
from aioposix._core.states import STARTED, TakeBack
from aioposix._core.syscalls import remaining
from aioposix._kernel.kernel import KERNEL
from aioposix._kernel.reaper import REAPER

if TYPE_CHECKING:
    from aioposix._core.job import Aiocb

OnDone = Callable[["Aiocb", int, int], None]
_SYNCS = (LIO_SYNC, LIO_DSYNC)
_READS = (LIO_READ, LIO_READV)
_WRITES = (LIO_WRITE, LIO_WRITEV)
_SQE_SIZE = SQE.size
WATCHDOG = 0.1  # seconds between looks at a ring with requests in flight (Ring._watch)


class Ring:
    """One io_uring instance, used from one loop's thread.

    It stays open (held by the reaper, see ``_reaper``) until it is closed
    with nothing left in flight: whatever happens to its loop or its
    contexts, the buffers and fds of a submitted request live until its CQE
    has been reaped.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, entries: int = 256,
                 cq_entries: int = 0, max_inflight: int = 0) -> None:
        self._loop_ref = weakref.ref(loop)
        params = abi.Params()
        if cq_entries:
            params.flags = abi.SETUP_CQSIZE
            params.cq_entries = cq_entries
        self.fd = abi.check(abi.syscall(abi.NR_SETUP, entries, ctypes.byref(params)))
        try:
            self._map(params)
            self.efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            efd = ctypes.c_int32(self.efd)
            abi.check(abi.syscall(abi.NR_REGISTER, self.fd, abi.REGISTER_EVENTFD,
                                  ctypes.byref(efd), 1))
        except BaseException:
            self._unmap()
            os.close(self.fd)
            if getattr(self, "efd", -1) >= 0:
                os.close(self.efd)
            raise
        # {user_data: (cb, on_done, keepalive)}
        self._inflight: dict[int, tuple[Aiocb, OnDone, Any]] = {}
        self._next_id = 1
        self._unsubmitted: list[int] = []  # user_data of SQEs written, not yet entered
        self._backlog: list[tuple[Aiocb, OnDone]] = []
        # never more requests in flight than the CQ holds (a test may ask for more,
        # to make the CQ overflow on purpose)
        self._capacity = max_inflight or params.cq_entries
        self._flush_scheduled = False
        self._closed = False
        self._orphaned = False  # the loop is gone: completions go to _ring_lost
        self.users = 0  # contexts holding this ring
        self.overflows = 0  # times overflowed CQEs had to be moved in (a health figure)
        self.late = 0  # completions found by the watchdog, not announced by the eventfd
        self._watchdog: asyncio.TimerHandle | None = None
        loop.add_reader(self.efd, self._reap)
        REAPER.watch(self, strong=True)

    def _map(self, p: abi.Params) -> None:
        self.sq_entries = p.sq_entries
        self.cq_entries = p.cq_entries
        sq_size = p.sq_off.array + p.sq_entries * 4
        cq_size = p.cq_off.cqes + p.cq_entries * CQE.size
        single = bool(p.features & abi.FEAT_SINGLE_MMAP)
        if single:
            sq_size = cq_size = max(sq_size, cq_size)
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        self._sq = mmap.mmap(self.fd, sq_size, flags, prot, offset=abi.OFF_SQ_RING)
        self._cq = self._sq if single else mmap.mmap(self.fd, cq_size, flags, prot,
                                                     offset=abi.OFF_CQ_RING)
        self._sqes = mmap.mmap(self.fd, p.sq_entries * SQE.size, flags, prot,
                               offset=abi.OFF_SQES)
        self._sq_head, self._sq_tail = p.sq_off.head, p.sq_off.tail
        self._sq_flags = p.sq_off.flags
        self._sq_mask = U32.unpack_from(self._sq, p.sq_off.ring_mask)[0]
        # SQE i always sits at index i of the SQ array (we write SQEs at tail & mask):
        # the array is filled once here, not per request
        for index in range(p.sq_entries):
            U32.pack_into(self._sq, p.sq_off.array + index * 4, index)
        self._cq_head, self._cq_tail = p.cq_off.head, p.cq_off.tail
        self._tail = U32.unpack_from(self._sq, self._sq_tail)[0]  # ours: we alone publish it
        self._head = U32.unpack_from(self._sq, self._sq_head)[0]  # the kernel's, cached
        self._cq_mask = U32.unpack_from(self._cq, p.cq_off.ring_mask)[0]
        self._cqes = p.cq_off.cqes

    def _unmap(self) -> None:
        for name in ("_sqes", "_cq", "_sq"):
            area = getattr(self, name, None)
            if area is not None and not area.closed:
                area.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop_ref()

    @property
    def inflight(self) -> int:
        """Requests the kernel holds (or will hold once entered)."""
        return len(self._inflight)

    def space(self) -> int:
        """Free SQ slots; the kernel's head is read only when our cached view is full."""
        used = (self._tail - self._head) & 0xFFFFFFFF
        if used >= self.sq_entries:
            self._head = U32.unpack_from(self._sq, self._sq_head)[0]
            used = (self._tail - self._head) & 0xFFFFFFFF
        return int(self.sq_entries - used)

    def submit(self, cb: Aiocb, on_done: OnDone,
               batch: bool = False) -> None:
        """Write the job's SQE; it reaches the kernel at the end of this loop
        iteration (or at ``flush()`` for a batch)."""
        if len(self._inflight) >= self._capacity:
            self._backlog.append((cb, on_done))  # the CQ could overflow: wait for room
            return
        loop = self._loop_ref()
        assert loop is not None
        if faults.ARMED and (code := faults.take("io_uring")):
            loop.call_soon(on_done, cb, -1, code)  # as its CQE would, later
            return
        tail = self._tail
        if (tail - self._head) & 0xFFFFFFFF >= self.sq_entries and self.space() == 0:
            self._make_room()
            tail = self._tail
        user_data = self._next_id
        self._next_id = user_data + 1
        opcode, address, length, rw_flags, keep = self._prepare(cb)
        offset = cb._off + cb._progress if cb._off >= 0 else -1
        SQE.pack_into(self._sqes, (tail & self._sq_mask) * _SQE_SIZE, opcode, 0, 0, cb._fd,
                      offset & 0xFFFFFFFFFFFFFFFF, address, length, rw_flags, user_data,
                      0, 0, 0, 0, 0)
        self._tail = (tail + 1) & 0xFFFFFFFF  # published to the kernel by flush()
        self._inflight[user_data] = (cb, on_done, keep)
        self._unsubmitted.append(user_data)
        if not batch and not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self.flush)
        if self._watchdog is None:
            self._watchdog = loop.call_later(WATCHDOG, self._watch, loop)

    def submit_op(self, token: object, on_done: Callable[[Any, int, int], None], keep: Any,
                  opcode: int, fd: int, *, off: int = 0, addr: int = 0, length: int = 0,
                  op_flags: int = 0, file_index: int = 0) -> None:
        """Write one SQE of any opcode (statx, renameat, openat ...): the fields
        as io_uring_sqe names them; ``keep`` holds what the kernel reads or
        writes (paths, buffers) until the CQE; ``on_done(token, result, errno)``
        runs on the loop, or on the reaper's thread if the loop has gone.

        BlockingIOError when the ring holds as many requests as its CQ can take
        (the caller runs the call another way)."""
        if len(self._inflight) >= self._capacity or self._closed:
            raise BlockingIOError(errno.EAGAIN, "the ring is full")
        loop = self._loop_ref()
        assert loop is not None
        if self.space() == 0:
            self._make_room()
        user_data = self._next_id
        self._next_id += 1
        index = self._tail & self._sq_mask
        SQE.pack_into(self._sqes, index * _SQE_SIZE, opcode, 0, 0, fd,
                      off & 0xFFFFFFFFFFFFFFFF, addr, length, op_flags, user_data,
                      0, 0, file_index, 0, 0)
        self._tail = (self._tail + 1) & 0xFFFFFFFF  # published to the kernel by flush()
        self._inflight[user_data] = (token, on_done, keep)  # type: ignore[assignment]
        self._unsubmitted.append(user_data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self.flush)
        if self._watchdog is None:
            self._watchdog = loop.call_later(WATCHDOG, self._watch, loop)

    def _make_room(self) -> None:
        """Every SQ slot holds an SQE: enter them, and wait until the kernel took them."""
        self.flush()
        while self.space() == 0:  # the kernel has not consumed them yet
            self._wait_for_sq()

    def _prepare(self, cb: Aiocb) -> tuple[int, int, int, int, Any]:
        op = cb._op
        if op in _SYNCS:
            return abi.OP_FSYNC, 0, 0, abi.FSYNC_DATASYNC if op == LIO_DSYNC else 0, None
        writable = op in _READS
        views: Sequence[Any] = cb._views or []
        if cb._progress:
            views = remaining(views, cb._progress)
        if len(views) == 1:  # one buffer: IORING_OP_READ/WRITE, no iovec array
            address, length, keep = abi.address(views[0], writable)
            return (abi.OP_READ if writable else abi.OP_WRITE), address, length, 0, keep
        parts = [abi.address(v, writable) for v in views]
        iovs = (abi.Iovecs * max(len(parts), 1))()
        for slot, (address, length, _) in zip(iovs, parts, strict=False):
            slot.base, slot.len = address, length
        keep = (iovs, [part[2] for part in parts])
        opcode = abi.OP_READV if writable else abi.OP_WRITEV
        return opcode, ctypes.addressof(iovs), len(parts), 0, keep

    def flush(self) -> None:
        """One io_uring_enter for everything written since the last one."""
        self._flush_scheduled = False
        ids, self._unsubmitted = self._unsubmitted, []
        count = len(ids)
        if count:
            U32.pack_into(self._sq, self._sq_tail, self._tail)  # the kernel's view of our SQEs
        # While SQEs are published but not entered, no completion is reported:
        # its callback could write new SQEs behind them (see _refused).
        held: list[tuple[int, int, int]] = []
        while count > 0 and not self._closed:
            submitted = abi.syscall(abi.NR_ENTER, self.fd, count, 0, 0, None, 0)
            if submitted >= 0:
                count -= submitted
                continue
            code = ctypes.get_errno()
            if code in (errno.EAGAIN, errno.EBUSY, errno.EINTR):
                held += self._drain_cq()  # make room in the CQ, then try again
                continue
            self._refused(ids[-count:], code)
            break
        if held:
            self._report(held)
        if self._overflowed():
            self._reap()

    def _refused(self, ids: list[int], code: int) -> None:
        """The kernel would not take the last SQEs: unpublish them, fail their jobs."""
        self._tail = (self._tail - len(ids)) & 0xFFFFFFFF
        U32.pack_into(self._sq, self._sq_tail, self._tail)
        for user_data in ids:
            cb, on_done, _ = self._inflight.pop(user_data)
            self._finish(cb, on_done, -1, code)

    def _wait_for_sq(self) -> None:
        """Every SQ slot is taken by SQEs the kernel has not consumed: let it run."""
        abi.syscall(abi.NR_ENTER, self.fd, 0, 1, abi.ENTER_GETEVENTS, None, 0)
        self._reap()

    def _overflowed(self) -> bool:
        """The kernel holds CQEs that did not fit in the CQ (IORING_SQ_CQ_OVERFLOW).

        Once one CQE has overflowed, the kernel sends every later one to its
        overflow list too (to keep completion order), and moves them into the
        CQ only when asked to with IORING_ENTER_GETEVENTS: until then no
        completion reaches us and nothing wakes the loop.  So the flag is read
        after every reap and every submit.
        """
        return bool(U32.unpack_from(self._sq, self._sq_flags)[0] & abi.SQ_CQ_OVERFLOW)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """While requests are in flight, look at the ring every WATCHDOG seconds.

        The eventfd announces every completion; this is the net under that:
        one ``io_uring_enter`` with GETEVENTS (which also runs completion work
        the kernel queued for this thread) and a look at the CQ, so that a
        completion the eventfd did not announce is reaped within WATCHDOG
        seconds instead of never, and SQEs written but not entered go in."""
        self._watchdog = None
        if self._closed or not self._inflight or loop.is_closed():
            return
        if self._unsubmitted:
            self.flush()
        abi.syscall(abi.NR_ENTER, self.fd, 0, 0, abi.ENTER_GETEVENTS, None, 0)
        head = U32.unpack_from(self._cq, self._cq_head)[0]
        if head != U32.unpack_from(self._cq, self._cq_tail)[0]:
            self.late += 1
            self._reap()
        if self._inflight and not self._closed:
            self._watchdog = loop.call_later(WATCHDOG, self._watch, loop)

    def _reap(self) -> None:
        """Drain every ready CQE (the eventfd said some are there)."""
        try:
            os.eventfd_read(self.efd)
        except BlockingIOError:
            pass
        while True:
            self._report(self._drain_cq())
            if not self._overflowed():
                break
            # move the overflowed CQEs into the CQ (min_complete 0: never waits)
            self.overflows += 1
            abi.syscall(abi.NR_ENTER, self.fd, 0, 0, abi.ENTER_GETEVENTS, None, 0)
        self._resubmit_backlog()

    def _report(self, cqes: list[tuple[int, int, int]]) -> None:
        """Each CQE's job to its callback: (job, result, 0) or (job, -1, errno).

        The CQEs have left the CQ already: should one callback raise, the
        others are still reported, and the first error is raised after them."""
        inflight = self._inflight
        failed: BaseException | None = None
        for user_data, res, _ in cqes:
            entry = inflight.pop(user_data, None)
            if entry is None:
                continue
            try:
                if res >= 0:
                    entry[1](entry[0], res, 0)
                else:
                    entry[1](entry[0], -1, -res)
            except BaseException as exc:  # raised below, once all are told
                failed = failed or exc
        if failed is not None:
            raise failed

    def _drain_cq(self) -> list[tuple[int, int, int]]:
        """Every CQE the kernel has posted, as (user_data, res, flags); the CQ head
        moves past them (the entries are copied out first)."""
        cq = self._cq
        head = U32.unpack_from(cq, self._cq_head)[0]
        ready = (U32.unpack_from(cq, self._cq_tail)[0] - head) & 0xFFFFFFFF
        if not ready:
            return []
        start = head & self._cq_mask
        first = min(ready, self.cq_entries - start)  # up to the end of the ring, then from 0
        base = self._cqes
        done = list(CQE.iter_unpack(cq[base + start * 16:base + (start + first) * 16]))
        if first < ready:
            done += CQE.iter_unpack(cq[base:base + (ready - first) * 16])
        U32.pack_into(cq, self._cq_head, (head + ready) & 0xFFFFFFFF)
        return done

    def _resubmit_backlog(self) -> None:
        while self._backlog and len(self._inflight) < self._capacity:
            cb, on_done = self._backlog.pop(0)
            if self._orphaned:
                self._finish(cb, on_done, -1, errno.ECANCELED)  # it never reached the kernel
            else:
                self.submit(cb, on_done)

    def _finish(self, cb: Aiocb, on_done: OnDone, status: int, err: int) -> None:
        on_done(cb, status, err)  # (the port knows whether the loop is gone: ``orphaned``)

    @property
    def orphaned(self) -> bool:
        """The loop went away: completions can no longer run on it."""
        return self._orphaned

    def wait_all(self) -> None:
        """Block until the kernel has finished every request (used at close)."""
        if self._orphaned:
            self._resubmit_backlog()
        while self._inflight or self._backlog:
            if self._unsubmitted:
                self.flush()
            abi.syscall(abi.NR_ENTER, self.fd, 0, 1, abi.ENTER_GETEVENTS, None, 0)
            self._reap()

    def close(self) -> None:
        """Wait for what is in flight, then tear the ring down."""
        if self._closed:
            return
        loop = self._loop_ref()
        if loop is None or loop.is_closed():
            self._orphaned = True
        self.wait_all()
        self._closed = True
        if self._watchdog is not None:
            if loop is not None and not loop.is_closed():
                self._watchdog.cancel()
            self._watchdog = None
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.efd)
        os.close(self.efd)
        self._unmap()
        os.close(self.fd)
        REAPER.unwatch(self)

    # -- as watched by the reaper ------------------------------------------------

    def loop_gone(self) -> bool:
        loop = self._loop_ref()
        return loop is None or loop.is_closed()

    def run_down_without_loop(self) -> bool:
        """The loop went away with the ring open: finish every request, then close."""
        self.close()
        return True

    def __repr__(self) -> str:
        return f"<Ring fd={self.fd} inflight={len(self._inflight)}>"


def acquire(loop: asyncio.AbstractEventLoop) -> Ring:
    """The loop's ring, made on first use; each context that uses it holds it."""
    ring: Ring | None = loopdata.get(loop, "ring")
    if ring is None or ring._closed:
        ring = Ring(loop)
        loopdata.put(loop, "ring", ring)
    ring.users += 1
    return ring


def release(ring: Ring) -> None:
    """A context is done with the ring; the last one closes it."""
    ring.users -= 1
    if ring.users == 0:
        loop = ring.loop
        if loop is not None and loopdata.get(loop, "ring") is ring:
            loopdata.drop(loop, "ring")
        ring.close()


_RW = (LIO_READ, LIO_READV, LIO_WRITE, LIO_WRITEV)


class RingPort:
    """One context's use of its loop's ring (the backend contract)."""

    __slots__ = ("_finish", "_lost", "ring")

    def __init__(self, ring: Ring, finish: Finish, lost: Finish) -> None:
        self.ring = ring
        self._finish = finish  # on the loop
        self._lost = lost  # from the reaper's thread, once the loop is gone

    def submit(self, jobs: Sequence[Aiocb]) -> None:
        """Write the jobs' SQEs: one io_uring_enter at the end of this loop
        iteration, or at once for a batch of several (an lio_listio)."""
        ring = self.ring
        batch = len(jobs) > 1
        for cb in jobs:
            cb._state = IN_KERNEL
            ring.submit(cb, self._done, batch=batch)
        if batch:
            ring.flush()

    def take_back(self, cb: Aiocb) -> TakeBack:
        return STARTED  # a request given to the kernel runs to its end

    def _done(self, cb: Aiocb, status: int, err: int) -> None:
        """A CQE for ``cb``: finish it, or go on with the rest of a short write."""
        orphaned = self.ring.orphaned
        if (status > 0 and cb._op in _WRITES and cb._progress + status < cb._n
                and not orphaned):
            cb._progress += status
            self.ring.submit(cb, self._done)
            return
        if status >= 0 and cb._op in _RW:
            status += cb._progress  # what the inline attempt had moved (a partly cached read)
        (self._lost if orphaned else self._finish)(cb, status, err)


def probe() -> str | None:
    """None if io_uring works here, else the reason (see ``uring_abi.probe``)."""
    return abi.probe()


KERNEL.install(ring_probe=abi.probe, after_fork=abi.after_fork_in_child)
