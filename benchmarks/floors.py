"""The measured floors: aioposix beside bare loops of the same system calls and
the same asyncio calls, so that what aioposix adds of its own can be read off.

Four workloads, each on the asyncio default loop and on uvloop, ``--rounds``
rounds per engine, the order of the engines reversed every other round:

* ``cached 4 KiB randread, qd 64`` (a file read once beforehand, so every
  read is a page-cache hit): ``aioposix natural`` (per read a new
  ``Aiocb(fd, buf, 4096, off)``, ``aioposix.aio_read(cb)``, ``await cb``)
  against ``preadv NOWAIT + done future``: 64 tasks each calling
  ``os.preadv(fd, [buf], off, os.RWF_NOWAIT)``, putting the count into a new
  future (``loop.create_future()``, ``set_result``) and awaiting it (a done
  future does not suspend), and yielding with ``await asyncio.sleep(0)``
  once per half millisecond of work (a deadline the tasks share: the task
  that finds it passed sets the next one and yields).  And the plain
  ``os.preadv NOWAIT loop``, no event loop.
* ``O_DIRECT 4 KiB randread, qd 64`` (the file opened with O_DIRECT,
  page-aligned mmap buffers): ``aioposix natural`` against ``bare io_uring
  loop``: one ring of 256 entries made with ``io_uring_setup``, an eventfd
  registered with IORING_REGISTER_EVENTFD and watched with
  ``loop.add_reader``; each of 64 tasks packs one IORING_OP_READ SQE with
  struct, makes a future and awaits it; one ``io_uring_enter`` per loop
  iteration (scheduled with ``call_soon``) publishes the SQ tail; the
  eventfd callback reads the eventfd, drains the CQ with
  ``struct.iter_unpack`` and sets each future's result.  And ``fio``
  (io_uring, --direct=1, iodepth 64, one job) when it is installed.
* ``buffered 4 KiB randwrite, qd 64`` into a fully written file:
  ``aioposix natural`` (``Aiocb(fd, data, 4096, off)``, ``aio_write``)
  against ``os.pwrite + done future``: 64 tasks each calling ``os.pwrite``
  on the loop thread, a done future awaited, the same half-millisecond
  yield; and the plain ``os.pwrite loop``.
* ``64-byte socketpair ping-pong`` (AF_UNIX stream, one client task, one
  echo task; µs per round trip): ``aioposix natural`` (as
  ``benchmarks/sockets.py`` runs it, on blocking sockets) against ``bare
  bridge syscalls``: the calls aioposix makes for a read that has to
  wait, done by hand (``os.preadv`` at offset 0, which fails with ESPIPE
  on a socket; ``os.fstat``; ``os.preadv`` with RWF_NOWAIT, EAGAIN;
  ``os.dup``; ``loop.add_reader`` on the dup; await a future; when ready
  ``os.preadv``, ``loop.remove_reader``, ``os.close``), and for a write
  ESPIPE, ``os.fstat`` and ``os.pwritev`` with RWF_NOWAIT; and ``loop
  sock calls`` (the loop's own ``sock_recv_into``/``sock_sendall``).

Every row shows the median (min-max) of its rounds, CPU µs per op (process
CPU time over ops), the heartbeat (a task sleeping 1 ms: p99 and worst
lateness), and the ratio of medians to the workload's floors ("vs ref" is
the bare asyncio floor, "vs lim" the second floor).  Then, per workload and
loop, what aioposix adds: its time and CPU per op minus the floor's.  Reads
are checked (the first and last 8 bytes of every block read, which hold the
block's offset; every ping-pong reply in full); after each write run every
block it wrote is read back and compared in full.

Run: ``python benchmarks/floors.py [--seconds 1.5] [--rounds 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import errno
import mmap
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any

import direct
import sockets
from _common import (
    CHECK_EVERY,
    Engine,
    MiB,
    Window,
    Worker,
    Workload,
    common_args,
    filesystem,
    fmt_ratio,
    idle_heartbeat,
    loops_available,
    machine,
    machine_line,
    parse_size,
    read_all,
    report,
    run_on,
    run_rounds,
    run_window,
    sample,
    select,
    sysctls,
    wrong,
)

import aioposix
from aioposix._backends import uring_abi as abi

BLOCK = 4096
SLICE = 0.0005  # seconds of work between two yields of the asyncio floors
NATURAL = "aioposix natural"
CACHED_W, DIRECT_W = "cached 4 KiB randread, qd {qd}", "O_DIRECT 4 KiB randread, qd {qd}"
WRITE_W, PING_W = "buffered 4 KiB randwrite, qd {qd}", sockets.PING_W
READ_FLOOR, READ_SYNC = "preadv NOWAIT + done future", "os.preadv NOWAIT loop"
CAPPED = " (capped)"  # the floor that holds a loop iteration to about SLICE
RING_FLOOR, FIO = "bare io_uring loop", "fio"
WRITE_FLOOR, WRITE_SYNC = "os.pwrite + done future", "os.pwrite loop"
PING_FLOOR, PING_LOOP = "bare bridge syscalls", sockets.LOOP
Job = tuple[int, bytes]  # (offset, what to compare or write)
Result = dict[str, Any]
Bench = Callable[[], Coroutine[Any, Any, Result]]


class Slice:
    """The deadline the tasks of an asyncio floor share.

    Plain: the task that finds it passed sets the next one and yields once
    (``await asyncio.sleep(0)``): one yield per SLICE of work, but a loop
    iteration holds a slice per ready task.  Capped: the task that finds it
    passed marks the iteration's slice spent and schedules ``renew`` (which
    runs in the next iteration); until then every task yields after each op,
    so an iteration holds about one slice, as aioposix's yield budget keeps it.
    """

    __slots__ = ("ends", "spent")

    def __init__(self) -> None:
        self.ends = time.perf_counter() + SLICE
        self.spent = False

    def renew(self) -> None:
        self.spent = False
        self.ends = time.perf_counter() + SLICE


def key(off: int) -> bytes:
    """What every 8 bytes of the block at ``off`` hold (fio's ``%o`` pattern)."""
    return off.to_bytes(8, "little")


class Reads:
    """The read file's random offsets, each worker's share, and the check."""

    def __init__(self, fd: int, args: argparse.Namespace) -> None:
        self.fd, self.args = fd, args
        rng = random.Random(args.seed)
        blocks = args.size // BLOCK
        # Block 0 is all zeros, as an untouched buffer is: leave it out.
        self.jobs = [(off, key(off)) for off in
                     (rng.randrange(1, blocks) * BLOCK for _ in range(1 << 16))]

    def share(self, worker: int) -> list[Job]:
        return self.jobs[worker::self.args.qd]


def intact(buf: Any, expect: bytes) -> bool:
    """The block's first and last 8 bytes hold its offset (mmap or bytearray)."""
    return bool(buf[:8] == expect and buf[BLOCK - 8:BLOCK] == expect)


def counted(window: Window, k: int) -> int:
    """One more op; every CHECK_EVERY ops the clock is read: -1 once over."""
    window.ops += 1
    k += 1
    if k == CHECK_EVERY:
        return 0 if window.tick() else -1
    return k


async def measure(make: Callable[[Window], Worker], args: argparse.Namespace,
                  name: str) -> Result:
    window, beats = await run_window(make, args.qd, args.warmup, args.seconds, 60, name)
    return sample(window, beats)


def read_nowait(fd: int, bufs: list[Any], off: int, missed: list[int]) -> int:
    """preadv with RWF_NOWAIT; should the page cache say EAGAIN after all (a page
    being read ahead or locked), the read is done again without it, and counted."""
    try:
        return os.preadv(fd, bufs, off, os.RWF_NOWAIT)
    except BlockingIOError:
        missed[0] += 1
        return os.preadv(fd, bufs, off)


# -- cached randread --------------------------------------------------------------------


async def natural_reads(plan: Reads, buffer: Callable[[], Any]) -> Result:
    """The README's way, one read per new Aiocb, each task into its own ``buffer()``."""
    fd = plan.fd

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            buf = buffer()
            Aiocb, read = aioposix.Aiocb, aioposix.aio_read
            k = 0
            while k >= 0:
                for off, expect in plan.share(i):
                    cb = Aiocb(fd, buf, BLOCK, off)
                    read(cb)
                    if await cb != BLOCK or not intact(buf, expect):
                        raise wrong(NATURAL, off)
                    k = counted(window, k)
                    if k < 0:
                        return
        return worker

    return await measure(make, plan.args, NATURAL)


async def cached_natural(plan: Reads) -> Result:
    return await natural_reads(plan, lambda: bytearray(BLOCK))


async def cached_floor(plan: Reads, capped: bool) -> Result:
    fd = plan.fd
    loop = asyncio.get_running_loop()
    shared = Slice()
    missed = [0]

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            buf = bytearray(BLOCK)
            bufs = [buf]
            preadv, nowait, new = os.preadv, os.RWF_NOWAIT, loop.create_future
            clock, sleep, soon = time.perf_counter, asyncio.sleep, loop.call_soon
            k = 0
            while k >= 0:
                for off, expect in plan.share(i):
                    fut: asyncio.Future[int] = new()
                    try:
                        n = preadv(fd, bufs, off, nowait)
                    except BlockingIOError:
                        n = read_nowait(fd, bufs, off, missed)
                    fut.set_result(n)
                    if await fut != BLOCK or not intact(buf, expect):
                        raise wrong(READ_FLOOR, off)
                    if capped:
                        if shared.spent:
                            await sleep(0)
                        elif clock() > shared.ends:
                            shared.spent = True
                            soon(shared.renew)
                            await sleep(0)
                    elif clock() > shared.ends:
                        shared.ends = clock() + SLICE
                        await sleep(0)
                    k = counted(window, k)
                    if k < 0:
                        return
        return worker

    got = await measure(make, plan.args, READ_FLOOR + (CAPPED if capped else ""))
    got["eagain"] = missed[0]  # reads the page cache refused with RWF_NOWAIT, done again
    return got


def cached_sync(plan: Reads) -> Result:
    fd, args = plan.fd, plan.args
    window = Window(args.warmup, args.seconds)
    buf = bytearray(BLOCK)
    bufs = [buf]
    preadv, nowait = os.preadv, os.RWF_NOWAIT
    missed = [0]
    k = 0
    while k >= 0:
        for off, expect in plan.jobs:
            try:
                n = preadv(fd, bufs, off, nowait)
            except BlockingIOError:
                n = read_nowait(fd, bufs, off, missed)
            if n != BLOCK or not intact(buf, expect):
                raise wrong(READ_SYNC, off)
            k = counted(window, k)
            if k < 0:
                break
    return sample(window, None, eagain=missed[0])


# -- O_DIRECT randread ------------------------------------------------------------------


class BareRing:
    """The least an asyncio program does with io_uring: SQEs packed with struct,
    one io_uring_enter per loop iteration, CQEs drained on the eventfd."""

    def __init__(self, loop: asyncio.AbstractEventLoop, entries: int = 256) -> None:
        self.loop = loop
        p = abi.Params()
        self.fd = abi.check(abi.syscall(abi.NR_SETUP, entries, ctypes.byref(p)))
        self._map(p)
        self.efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        efd = ctypes.c_int32(self.efd)
        abi.check(abi.syscall(abi.NR_REGISTER, self.fd, abi.REGISTER_EVENTFD,
                              ctypes.byref(efd), 1))
        self.futures: dict[int, asyncio.Future[int]] = {}
        self.next_id = 1
        self.pending = 0  # SQEs written since the last io_uring_enter
        self.scheduled = False
        loop.add_reader(self.efd, self.reap)

    def _map(self, p: abi.Params) -> None:
        size = max(p.sq_off.array + p.sq_entries * 4, p.cq_off.cqes + p.cq_entries * 16)
        if not p.features & abi.FEAT_SINGLE_MMAP:
            raise OSError(errno.ENOSYS, "the kernel has no IORING_FEAT_SINGLE_MMAP")
        flags, prot = mmap.MAP_SHARED | mmap.MAP_POPULATE, mmap.PROT_READ | mmap.PROT_WRITE
        self.sq = mmap.mmap(self.fd, size, flags, prot, offset=abi.OFF_SQ_RING)
        self.sqes = mmap.mmap(self.fd, p.sq_entries * abi.SQE.size, flags, prot,
                              offset=abi.OFF_SQES)
        for index in range(p.sq_entries):  # SQE i sits at index i of the SQ array
            abi.U32.pack_into(self.sq, p.sq_off.array + index * 4, index)
        self.sq_tail, self.sq_mask = p.sq_off.tail, p.sq_entries - 1
        self.cq_head, self.cq_tail = p.cq_off.head, p.cq_off.tail
        self.cq_mask, self.cq_entries, self.cqes = p.cq_entries - 1, p.cq_entries, p.cq_off.cqes
        self.tail = abi.U32.unpack_from(self.sq, self.sq_tail)[0]

    def read(self, fd: int, address: int, length: int, off: int) -> asyncio.Future[int]:
        """One IORING_OP_READ SQE; it reaches the kernel at the end of this iteration."""
        uid = self.next_id
        self.next_id = uid + 1
        tail = self.tail
        abi.SQE.pack_into(self.sqes, (tail & self.sq_mask) * 64, abi.OP_READ, 0, 0, fd, off,
                          address, length, 0, uid, 0, 0, 0, 0, 0)
        self.tail = (tail + 1) & 0xFFFFFFFF
        self.pending += 1
        fut: asyncio.Future[int] = self.loop.create_future()
        self.futures[uid] = fut
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)
        return fut

    def flush(self) -> None:
        """Publish the SQ tail, and one io_uring_enter for every SQE written."""
        self.scheduled = False
        count, self.pending = self.pending, 0
        abi.U32.pack_into(self.sq, self.sq_tail, self.tail)
        while count > 0:
            count -= abi.check(abi.syscall(abi.NR_ENTER, self.fd, count, 0, 0, None, 0))

    def reap(self) -> None:
        """The eventfd fired: every CQE ready sets its future."""
        try:
            os.eventfd_read(self.efd)
        except BlockingIOError:
            pass
        cq = self.sq
        head = abi.U32.unpack_from(cq, self.cq_head)[0]
        ready = (abi.U32.unpack_from(cq, self.cq_tail)[0] - head) & 0xFFFFFFFF
        if not ready:
            return
        start = head & self.cq_mask
        first = min(ready, self.cq_entries - start)
        base = self.cqes
        done = list(abi.CQE.iter_unpack(cq[base + start * 16:base + (start + first) * 16]))
        if first < ready:
            done += abi.CQE.iter_unpack(cq[base:base + (ready - first) * 16])
        abi.U32.pack_into(cq, self.cq_head, (head + ready) & 0xFFFFFFFF)
        futures = self.futures
        for uid, res, _ in done:
            fut = futures.pop(uid)
            if fut.cancelled():  # its task was cancelled at the end of the window
                continue
            if res >= 0:
                fut.set_result(res)
            else:
                fut.set_exception(OSError(-res, os.strerror(-res)))

    def close(self) -> None:
        """Wait for every request in flight (the kernel writes into our buffers), close."""
        while self.futures:
            abi.syscall(abi.NR_ENTER, self.fd, 0, 1, abi.ENTER_GETEVENTS, None, 0)
            self.reap()
        self.loop.remove_reader(self.efd)
        os.close(self.efd)
        self.sqes.close()
        self.sq.close()
        os.close(self.fd)


async def direct_natural(plan: Reads) -> Result:
    cb = direct.probe(aioposix.aio_read, plan.fd)
    if await cb != BLOCK or not intact(cb.buf, key(BLOCK)):
        raise wrong(NATURAL, BLOCK)
    return await natural_reads(plan, lambda: mmap.mmap(-1, BLOCK))


async def direct_floor(plan: Reads) -> Result:
    fd, qd = plan.fd, plan.args.qd
    ring = BareRing(asyncio.get_running_loop())
    # The buffers outlive the tasks: the kernel may still write into them when
    # the window's end cancels a task; ring.close() waits for those reads.
    bufs = [mmap.mmap(-1, BLOCK) for _ in range(qd)]
    chars = [ctypes.c_char.from_buffer(buf) for buf in bufs]
    try:
        def make(window: Window) -> Worker:
            async def worker(i: int) -> None:
                buf, address, read = bufs[i], ctypes.addressof(chars[i]), ring.read
                k = 0
                while k >= 0:
                    for off, expect in plan.share(i):
                        if await read(fd, address, BLOCK, off) != BLOCK or not intact(
                                buf, expect):
                            raise wrong(RING_FLOOR, off)
                        k = counted(window, k)
                        if k < 0:
                            return
            return worker

        return await measure(make, plan.args, RING_FLOOR)
    finally:
        ring.close()
        chars.clear()
        for buf in bufs:
            buf.close()


def fio_round(path: str, args: argparse.Namespace) -> Result:
    fio = shutil.which(FIO)
    assert fio is not None
    spec = argparse.Namespace(iodepth=args.qd, size=args.size,
                              seconds=max(1, round(args.seconds)),
                              warmup=max(0, round(args.warmup)))
    return direct.bench_fio(fio, path, spec)


# -- buffered randwrite -----------------------------------------------------------------


class Writes:
    """The written file and, per run, a generation of payloads for distinct
    random blocks (each worker writes its own blocks, over and over)."""

    def __init__(self, path: str, args: argparse.Namespace) -> None:
        self.path, self.args = path, args
        self.blocks = args.write_size // BLOCK
        count = min(args.write_blocks, self.blocks)
        self.sequence = random.Random(args.seed).sample(range(self.blocks), count)
        self.fill = random.Random(BLOCK).randbytes(BLOCK - 8)
        self.gen = 0
        with open(path, "wb") as f:  # written in full, not sparse
            for b in range(self.blocks):
                f.write(self.head(b, 0) + self.fill)
            f.flush()
            os.fsync(f.fileno())
        self.fd = os.open(path, os.O_RDWR)

    @staticmethod
    def head(block: int, gen: int) -> bytes:
        return ((block + 1) | (gen << 40)).to_bytes(8, "little")

    def start(self) -> list[Job]:
        """The next generation's jobs, in the order of the sequence."""
        self.gen += 1
        return [(b * BLOCK, self.head(b, self.gen) + self.fill) for b in self.sequence]

    def check(self, jobs: list[Job], done: list[int], qd: int, name: str) -> None:
        """Every block a run wrote holds what it wrote; then fsync (off the clock)."""
        for i, count in enumerate(done):
            mine = jobs[i::qd]
            for off, data in mine[:count]:
                if os.pread(self.fd, BLOCK, off) != data:
                    raise wrong(name, off)
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


async def write_async(disk: Writes, name: str, floor: bool, capped: bool = False) -> Result:
    fd, qd = disk.fd, disk.args.qd
    jobs = disk.start()
    done = [0] * qd
    loop = asyncio.get_running_loop()
    shared = Slice()

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            mine = jobs[i::qd]
            Aiocb, write, pwrite, new = aioposix.Aiocb, aioposix.aio_write, os.pwrite, \
                loop.create_future
            clock, sleep, soon = time.perf_counter, asyncio.sleep, loop.call_soon
            k = 0
            while k >= 0:
                for off, data in mine:
                    if floor:
                        fut: asyncio.Future[int] = new()
                        fut.set_result(pwrite(fd, data, off))
                        n = await fut
                        if capped:
                            if shared.spent:
                                await sleep(0)
                            elif clock() > shared.ends:
                                shared.spent = True
                                soon(shared.renew)
                                await sleep(0)
                        elif clock() > shared.ends:
                            shared.ends = clock() + SLICE
                            await sleep(0)
                    else:
                        cb = Aiocb(fd, data, BLOCK, off)
                        write(cb)
                        n = await cb
                    if n != BLOCK:
                        raise wrong(name, off)
                    done[i] += 1
                    k = counted(window, k)
                    if k < 0:
                        return
        return worker

    got = await measure(make, disk.args, name)
    disk.check(jobs, done, qd, name)
    return got


def write_sync(disk: Writes) -> Result:
    fd, args = disk.fd, disk.args
    jobs = disk.start()
    window = Window(args.warmup, args.seconds)
    pwrite = os.pwrite
    written = k = 0
    while k >= 0:
        for off, data in jobs:
            if pwrite(fd, data, off) != BLOCK:
                raise wrong(WRITE_SYNC, off)
            written += 1
            k = counted(window, k)
            if k < 0:
                break
    disk.check(jobs, [written], 1, WRITE_SYNC)
    return sample(window, None)


# -- socketpair ping-pong ---------------------------------------------------------------


class BareBridge:
    """By hand, the system calls aioposix makes for a read or write on a socket."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    @staticmethod
    def tried_at_offset(fd: int, views: list[Any], is_write: bool) -> None:
        try:
            if is_write:
                os.pwritev(fd, views, 0, os.RWF_NOWAIT)
            else:
                os.preadv(fd, views, 0, os.RWF_NOWAIT)
        except OSError as exc:
            if exc.errno != errno.ESPIPE:
                raise
        else:
            raise AssertionError("a positioned call worked on a socket")

    async def read(self, fd: int, view: memoryview) -> int:
        views = [view]
        self.tried_at_offset(fd, views, False)
        os.fstat(fd)
        try:
            return os.preadv(fd, views, -1, os.RWF_NOWAIT)
        except BlockingIOError:
            pass
        loop = self.loop
        dup = os.dup(fd)
        fut: asyncio.Future[int] = loop.create_future()

        def ready() -> None:
            try:
                n = os.preadv(dup, views, -1, os.RWF_NOWAIT)
            except BlockingIOError:
                return
            loop.remove_reader(dup)
            os.close(dup)
            fut.set_result(n)

        loop.add_reader(dup, ready)
        try:
            return await fut
        except asyncio.CancelledError:
            if not fut.done():
                loop.remove_reader(dup)
                os.close(dup)
            raise

    async def write(self, fd: int, data: Any) -> int:
        views = [data]
        self.tried_at_offset(fd, views, True)
        os.fstat(fd)
        fut: asyncio.Future[int] = self.loop.create_future()
        fut.set_result(os.pwritev(fd, views, -1, os.RWF_NOWAIT))
        return await fut


async def ping_floor(args: argparse.Namespace) -> Result:
    bridge = BareBridge(asyncio.get_running_loop())
    message_size = sockets.MESSAGE

    async def recv_exact(fd: int, view: memoryview) -> bool:
        got = 0
        while got < message_size:
            n = await bridge.read(fd, view[got:] if got else view)
            if n == 0:
                return False
            got += n
        return True

    def make(window: Window, a: socket.socket, b: socket.socket) -> Worker:
        async def client() -> None:
            fd, buf = b.fileno(), bytearray(message_size)
            view = memoryview(buf)
            j = k = 0
            while k >= 0:
                message = sockets.MESSAGES[j]
                if await bridge.write(fd, message) != message_size:
                    raise sockets.Broken("ping-pong: short write")
                if not await recv_exact(fd, view) or buf != message:
                    raise sockets.Broken("ping-pong: the reply is not the message")
                j = j + 1 if j < sockets.PERIOD - 1 else 0
                k = counted(window, k)
            b.shutdown(socket.SHUT_WR)

        async def echo() -> None:
            fd, buf = a.fileno(), bytearray(message_size)
            view = memoryview(buf)
            while await recv_exact(fd, view):
                if await bridge.write(fd, buf) != message_size:
                    raise sockets.Broken("ping-pong: short write")

        async def worker(i: int) -> None:
            await (client() if i == 0 else echo())
        return worker

    window, beats = await sockets.run_pair(make, args, True)
    ops = max(1, window.end_ops - window.start_ops)
    return sample(window, beats, window.elapsed / ops * 1e6)


# -- the table --------------------------------------------------------------------------


def async_engine(workload: str, name: str, loop: str, bench: Bench, role: str, note: str,
                 tunables: dict[str, Any] | None = None) -> Engine:
    def run() -> Result:
        with sysctls(**(tunables or {})):
            return dict(run_on(loop, bench()))
    return Engine(workload, name, loop, run, note, role=role)


def cached_engines(plan: Reads, loops: list[str]) -> list[Engine]:
    w = CACHED_W.format(qd=plan.args.qd)
    out = [Engine(w, READ_SYNC, "-", lambda: cached_sync(plan),
                  "os.preadv(fd, [buf], off, RWF_NOWAIT), no event loop", role="limit")]
    for loop in loops:
        out += [async_engine(w, NATURAL, loop, lambda: cached_natural(plan), "natural",
                             "new Aiocb per read, aioposix.aio_read, await cb"),
                async_engine(w, READ_FLOOR, loop, lambda: cached_floor(plan, False), "ref",
                             "preadv NOWAIT, await a done future, sleep(0) per 0.5 ms"),
                async_engine(w, READ_FLOOR + CAPPED, loop, lambda: cached_floor(plan, True),
                             "floor", "as the floor, and about 0.5 ms per loop iteration")]
    return out


def direct_engines(plan: Reads, path: str, loops: list[str]) -> list[Engine]:
    w, args = DIRECT_W.format(qd=plan.args.qd), plan.args
    fio = shutil.which(FIO) is not None
    out = [Engine(w, FIO, "-", (lambda: fio_round(path, args)) if fio else None,
                  "io_uring, one job, --verify=pattern", "ok" if fio else "not installed",
                  "limit")]
    for loop in loops:
        out += [async_engine(w, NATURAL, loop, lambda: direct_natural(plan), "natural",
                             f"new Aiocb per read, vfs.aio.max_buf_aio={args.qd}",
                             {"max_buf_aio": args.qd}),
                async_engine(w, RING_FLOOR, loop, lambda: direct_floor(plan), "ref",
                             "256-entry ring, eventfd reader, one enter per iteration")]
    return out


def write_engines(disk: Writes, loops: list[str]) -> list[Engine]:
    w = WRITE_W.format(qd=disk.args.qd)
    out = [Engine(w, WRITE_SYNC, "-", lambda: write_sync(disk),
                  "os.pwrite, no event loop", role="limit")]
    for loop in loops:
        out += [async_engine(w, NATURAL, loop, lambda: write_async(disk, NATURAL, False),
                             "natural", "new Aiocb per write, aioposix.aio_write, await cb"),
                async_engine(w, WRITE_FLOOR, loop,
                             lambda: write_async(disk, WRITE_FLOOR, True), "ref",
                             "os.pwrite inline, await a done future, sleep(0) per 0.5 ms"),
                async_engine(w, WRITE_FLOOR + CAPPED, loop,
                             lambda: write_async(disk, WRITE_FLOOR + CAPPED, True, True),
                             "floor", "as the floor, and about 0.5 ms per loop iteration")]
    return out


def ping_engines(args: argparse.Namespace, loops: list[str]) -> list[Engine]:
    out: list[Engine] = []
    for loop in loops:
        out += [async_engine(PING_W, NATURAL, loop,
                             lambda: sockets.pingpong_aioposix(args, True), "natural",
                             "new Aiocb per op, aio_read/aio_write, blocking sockets"),
                async_engine(PING_W, PING_FLOOR, loop, lambda: ping_floor(args), "ref",
                             "ESPIPE, fstat, EAGAIN, dup, add_reader, readv, close"),
                async_engine(PING_W, PING_LOOP, loop, lambda: sockets.pingpong_loop(args),
                             "limit", "loop.sock_recv_into / loop.sock_sendall")]
    return out


def overheads(workloads: list[Workload], engines: list[Engine]) -> list[Result]:
    """Per workload and loop: aioposix's wall and CPU µs per op beside each floor's
    (the floors on the same loop, and those with no loop)."""
    out: list[Result] = []
    for w in workloads:
        mine = [e for e in engines if e.workload == w.name and e.samples]
        for engine in (e for e in mine if e.name == NATURAL):
            wall, cpu = per_op(engine, w)
            for floor in mine:
                if floor.name == NATURAL or floor.loop not in (engine.loop, "-"):
                    continue
                base_wall, base_cpu = per_op(floor, w)
                out.append({"workload": w.name, "loop": engine.loop, "floor": floor.name,
                            "us_per_op": wall, "floor_us_per_op": base_wall,
                            "cpu_us_per_op": cpu, "floor_cpu_us_per_op": base_cpu})
    return out


def per_op(engine: Engine, w: Workload) -> tuple[float, float]:
    """(median wall µs per op, median CPU µs per op) of an engine's rounds."""
    values = [s["value"] for s in engine.samples]
    wall = statistics.median(v if w.unit.startswith("µs") else 1e6 / v for v in values if v)
    cpu = statistics.median(s.get("cpu_us_per_op") or 0.0 for s in engine.samples)
    return float(wall), float(cpu)


def print_overheads(found: list[Result]) -> None:
    """aioposix natural against each floor: µs per op, their ratio, the difference."""
    if not found:
        return
    print("\naioposix natural against each floor, medians in µs per op "
          "(wall: time per op at the workload's depth; CPU: process CPU per op)")
    last = ""
    for o in found:
        if o["workload"] != last:
            last = o["workload"]
            print(f"  {last}")
        wall, base = o["us_per_op"], o["floor_us_per_op"]
        cpu, base_cpu = o["cpu_us_per_op"], o["floor_cpu_us_per_op"]
        print(f"    {o['loop']:8} vs {o['floor']:36} wall {wall:7.2f} vs {base:7.2f} "
              f"({fmt_ratio(wall, base)}, {wall - base:+7.2f})   CPU {cpu:6.2f} vs "
              f"{base_cpu:6.2f} ({fmt_ratio(cpu, base_cpu)}, {cpu - base_cpu:+6.2f})")


# -- the run ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=1.5, help="measured seconds per round")
    p.add_argument("--warmup", type=float, default=0.3, help="warm-up seconds per round")
    p.add_argument("--qd", type=int, default=64, help="worker tasks of the file workloads")
    p.add_argument("--size", type=parse_size, default=256 * MiB,
                   help="the read file (cached and O_DIRECT reads)")
    p.add_argument("--write-size", type=parse_size, default=64 * MiB, help="the written file")
    p.add_argument("--write-blocks", type=int, default=4096,
                   help="distinct random blocks the writes go to")
    p.add_argument("--workloads", nargs="+", default=["cached", "direct", "write", "ping"],
                   choices=["cached", "direct", "write", "ping"])
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where the files go")
    p.add_argument("--seed", type=int, default=1)
    common_args(p)
    args = p.parse_args(argv)
    if args.qd < 1 or args.seconds <= 0 or args.size < 2 * BLOCK or args.write_size < BLOCK:
        p.error("--qd, --seconds, --size and --write-size must be positive")
    return args


def workloads(args: argparse.Namespace, fs: str) -> list[Workload]:
    each = f"{args.seconds:g} s per round after {args.warmup:g} s warm-up"
    qd = args.qd
    table = {
        "cached": Workload(CACHED_W.format(qd=qd), "ops/s", True, READ_FLOOR, READ_SYNC,
                           f"{args.size // MiB} MiB file in the page cache, {each}"),
        "direct": Workload(DIRECT_W.format(qd=qd), "IOPS", True, RING_FLOOR, FIO,
                           f"{args.size // MiB} MiB file ({fs}), O_DIRECT, {each}"),
        "write": Workload(WRITE_W.format(qd=qd), "writes/s", True, WRITE_FLOOR, WRITE_SYNC,
                          f"{args.write_size // MiB} MiB file ({fs}), {args.write_blocks} "
                          f"distinct blocks, {each}"),
        "ping": Workload(PING_W, "µs/RTT", False, PING_FLOOR, PING_LOOP,
                         f"AF_UNIX socketpair, {each}; every reply is compared")}
    return [table[name] for name in args.workloads]


def build(args: argparse.Namespace, read_path: str, write_path: str, loops: list[str],
          opened: list[int]) -> tuple[list[Engine], list[Writes]]:
    """Prepare the files the chosen workloads need and list their engines."""
    out: list[Engine] = []
    disks: list[Writes] = []
    if {"cached", "direct"} & set(args.workloads):
        direct.prepare_file(read_path, args.size)
    if "cached" in args.workloads:
        read_all(read_path)
        fd = os.open(read_path, os.O_RDONLY)
        opened.append(fd)
        out += cached_engines(Reads(fd, args), loops)
    if "direct" in args.workloads:
        try:
            fd = os.open(read_path, os.O_RDONLY | os.O_DIRECT)
        except OSError as exc:
            print(f"the file system refuses O_DIRECT: {exc}", file=sys.stderr)
        else:
            opened.append(fd)
            out += direct_engines(Reads(fd, args), read_path, loops)
    if "write" in args.workloads:
        disks.append(Writes(write_path, args))
        out += write_engines(disks[0], loops)
    if "ping" in args.workloads:
        out += ping_engines(args, loops)
    return out, disks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    info["filesystem"] = filesystem(args.dir)
    print(machine_line(info))
    loops = loops_available(args.loops)
    chosen = workloads(args, info["filesystem"])
    opened: list[int] = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="floors-") as tmp:
        disks: list[Writes] = []
        try:
            table, disks = build(args, os.path.join(tmp, "read.bin"),
                                 os.path.join(tmp, "write.bin"), loops, opened)
            idle = {loop: run_on(loop, idle_heartbeat()) for loop in loops}
            table = select(table, args.only)
            orders = run_rounds(table, args.rounds)
        finally:
            for fd in opened:
                os.close(fd)
            for disk in disks:
                disk.close()
    found = overheads(chosen, table)
    report("floors", "aioposix beside the bare floors of the same calls", info, args, chosen,
           table, orders, idle, {"overheads": found})
    print_overheads(found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
