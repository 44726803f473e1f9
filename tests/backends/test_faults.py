"""Reliability under faults: device errors, injected EIO, a worker that raises,
fds reused under a saturated pool, a loop closed under running jobs, fork,
one context at its limit beside a working one, and fairness under a deep queue.

Faults come from real devices (/dev/full) or from the documented hook
``aioposix.testing.inject_fault``, which replaces only the final system call
of a job: the job still travels through the real queues, workers and ring.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvloop
from helpers import open_fds, run_in_a_thread, wait_child

import aioposix
from aioposix import LIO_NOWAIT, LIO_READ, LIO_WAIT, LIO_WRITE, Aiocb, AioContext, sysctl
from aioposix.testing import inject_fault

if TYPE_CHECKING:
    from conftest import Env

BLOCK = 4096
# the fault path that serves file writes on each of the fixture's backends
WRITE_PATH = {"inline": "inline", "pool": "pool", "io_uring": "io_uring",
              "io_uring+inline": "inline"}


def counter(name: str) -> int:
    value = sysctl[name]
    assert isinstance(value, int)
    return value


def aiod_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("aiod-")]


async def outcome(cb: Aiocb) -> int:
    """``await cb``: the byte count, or minus the errno it failed with."""
    try:
        return await cb
    except OSError as exc:
        assert exc.errno is not None
        return -exc.errno


def block(i: int) -> bytes:
    return bytes([65 + i % 26]) * BLOCK


# -- device errors ------------------------------------------------------------------------------


async def test_write_to_dev_full_is_enospc(aio: Env) -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, b"x" * 100)
            ctx.aio_write(cb)
            with pytest.raises(OSError) as info:
                await cb
            assert info.value.errno == errno.ENOSPC
            assert (cb.error, cb.status) == (errno.ENOSPC, -1)
            vec = Aiocb(fd, iov=[b"ab", bytearray(b"cd")])
            ctx.aio_writev(vec)
            assert await outcome(vec) == -errno.ENOSPC
            # a batch: every entry fails with ENOSPC, the batch with EIO
            cbs = [Aiocb(fd, b"y" * 10, lio_opcode=LIO_WRITE) for _ in range(4)]
            with pytest.raises(OSError) as info:
                await ctx.lio_listio(LIO_WAIT, cbs)
            assert info.value.errno == errno.EIO
            assert [ctx.aio_error(cb) for cb in cbs] == [errno.ENOSPC] * 4
            assert [ctx.aio_return(cb) for cb in cbs] == [-1] * 4
            assert ctx.statistics().done == 0
    finally:
        os.close(fd)


async def test_read_from_dev_full_gives_zeros(aio: Env) -> None:
    fd = os.open("/dev/full", os.O_RDONLY)
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, bytearray(b"\xff" * 64))
            ctx.aio_read(cb)
            assert await cb == 64
            assert cb.buf == bytes(64)
    finally:
        os.close(fd)


# -- injected EIO -------------------------------------------------------------------------------


async def test_injected_eio_writes_never_land_and_the_backend_keeps_serving(aio: Env) -> None:
    count, faults = 12, 4
    fd = aio.file(b"")
    try:
        async with AioContext() as ctx:
            cbs = [Aiocb(fd, block(i), None, i * BLOCK) for i in range(count)]
            with inject_fault(errno.EIO, count=faults, path=WRITE_PATH[aio.backend]):
                for cb in cbs:
                    ctx.aio_write(cb)
                results = [await outcome(cb) for cb in cbs]
            assert sorted(results) == [-errno.EIO] * faults + [BLOCK] * (count - faults)
            data = os.pread(fd, (count + 1) * BLOCK, 0)
            for i, status in enumerate(results):
                got = data[i * BLOCK:(i + 1) * BLOCK]
                if status == BLOCK:
                    assert got == block(i), i
                else:  # a hole, or past the end of the file
                    assert got in (bytes(BLOCK), b""), i
            # armed no more: the same backend serves every job again
            again = [Aiocb(fd, block(i + 1), None, i * BLOCK) for i in range(count)]
            for cb in again:
                ctx.aio_write(cb)
            assert [await cb for cb in again] == [BLOCK] * count
            back = Aiocb(fd, bytearray(count * BLOCK))
            ctx.aio_read(back)
            assert await back == count * BLOCK
            assert back.buf == b"".join(block(i + 1) for i in range(count))
    finally:
        os.close(fd)


@pytest.mark.backends("pool", "io_uring")  # the backends that serve every read on one path
async def test_injected_eio_read_leaves_the_buffer_alone(aio: Env) -> None:
    path = aio.slow_path
    fd = aio.file(b"0123456789" * 100)
    try:
        async with AioContext() as ctx:
            bufs = [bytearray(b"\xee" * 100) for _ in range(6)]
            cbs = [Aiocb(fd, buf, None, 100 * i, lio_opcode=LIO_READ) for i, buf in enumerate(bufs)]
            with inject_fault(errno.EIO, count=2, path=path):
                await ctx.lio_listio(LIO_NOWAIT, [*cbs[:3], None, *cbs[3:]])
                await aio.until(lambda: ctx.statistics().done == 6)
            errors = [ctx.aio_error(cb) for cb in cbs]
            assert sorted(errors) == [0] * 4 + [errno.EIO] * 2
            statuses = [ctx.aio_return(cb) for cb in cbs]
            for err, status, buf in zip(errors, statuses, bufs, strict=True):
                if err:
                    assert (status, bytes(buf)) == (-1, b"\xee" * 100)
                else:
                    assert (status, bytes(buf)) == (100, b"0123456789" * 10)
            cb = Aiocb(fd, bytearray(10), None, 990)
            ctx.aio_read(cb)
            assert (await cb, bytes(cb.buf)) == (10, b"0123456789")
    finally:
        os.close(fd)


@pytest.mark.backends("pool")  # a behaviour of the worker daemons
async def test_exception_in_a_worker_ends_the_job_with_eio(aio: Env) -> None:
    count, faults = 16, 4
    fd = aio.file(b"")
    try:
        async with AioContext(max_active=4) as ctx:
            cbs = [Aiocb(fd, block(i), None, i * BLOCK) for i in range(count)]
            with inject_fault(errno.EIO, count=faults, path="pool", raise_in_worker=True):
                for cb in cbs:
                    ctx.aio_write(cb)
                results = [await outcome(cb) for cb in cbs]
            assert sorted(results) == [-errno.EIO] * faults + [BLOCK] * (count - faults)
            assert all(cb.error == errno.EIO for cb in cbs if cb.status == -1)
            # the workers survived it, and keep serving
            assert counter("vfs.aio.num_aio_procs") > 0
            alive = aiod_threads()
            assert len(alive) >= counter("vfs.aio.num_aio_procs")
            again = [Aiocb(fd, block(i + 3), None, i * BLOCK) for i in range(count)]
            for cb in again:
                ctx.aio_write(cb)
            assert [await cb for cb in again] == [BLOCK] * count
            assert os.pread(fd, (count + 1) * BLOCK, 0) == b"".join(
                block(i + 3) for i in range(count))
            assert all(t.is_alive() for t in alive)
    finally:
        os.close(fd)


# -- a closed and reused fd under a saturated pool ------------------------------------------------


@pytest.mark.backends("pool")  # a behaviour of the worker daemons
async def test_fd_reused_while_jobs_wait_in_a_saturated_pool(aio: Env) -> None:
    sysctl["vfs.aio.max_aio_procs"] = 1
    size, count = 1 << 16, 128
    paths = [aio.tmp / "old-a.bin", aio.tmp / "old-b.bin"]
    news = [aio.tmp / "new-a.bin", aio.tmp / "new-b.bin"]
    blocks = [bytes([65 + i % 26]) * size for i in range(count)]
    fds = [os.open(p, os.O_RDWR | os.O_CREAT) for p in paths]
    reused: list[int] = []
    try:
        async with AioContext(max_active=1) as a, AioContext(max_active=1) as b:
            jobs = []
            for ctx, fd in zip((a, b), fds, strict=True):
                cbs = [Aiocb(fd, blk, None, i * size) for i, blk in enumerate(blocks)]
                for cb in cbs:
                    ctx.aio_write(cb)
                sync = Aiocb(fd)
                ctx.aio_fsync(os.O_SYNC, sync)  # waits behind them all
                jobs.append((cbs, sync))
            numbers, fds = fds, []
            for fd in numbers:
                os.close(fd)
            reused = [os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC) for p in news]
            assert sorted(reused) == sorted(numbers)
            for (cbs, sync), old in zip(jobs, paths, strict=True):
                # rule 4: each job holds its own reference to the file it was
                # submitted on, and finishes there, in full
                assert [await outcome(cb) for cb in cbs] == [size] * count
                assert await outcome(sync) == 0
                assert old.read_bytes() == b"".join(blocks)
            for fd, path in zip(reused, news, strict=True):
                assert os.fstat(fd).st_size == 0
                assert path.read_bytes() == b""
    finally:
        for fd in fds + reused:
            os.close(fd)


# -- the loop closed with jobs in flight -----------------------------------------------------------


@contextmanager
def unraisables() -> Iterator[list[Any]]:
    """Collect what would be reported as 'Exception ignored in ...' meanwhile."""
    seen: list[Any] = []
    saved = sys.unraisablehook
    sys.unraisablehook = lambda info: seen.append((info.exc_value, info.object))
    try:
        yield seen
    finally:
        sys.unraisablehook = saved


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def submit_and_close(loop: asyncio.AbstractEventLoop, fd: int, default: bool,
                     count: int) -> tuple[AioContext, list[Aiocb]]:
    """Queue ``count`` writes and an fsync behind them, then close the loop
    without awaiting any of them."""
    async def submit() -> tuple[AioContext, list[Aiocb]]:
        ctx = aioposix.current_context() if default else AioContext(max_active=1)
        cbs = [Aiocb(fd, block(i), None, i * BLOCK) for i in range(count)]
        for cb in cbs:
            ctx.aio_write(cb)
        sync = Aiocb(fd)
        ctx.aio_fsync(os.O_SYNC, sync)
        return ctx, [*cbs, sync]

    try:
        return loop.run_until_complete(submit())
    finally:
        loop.close()


LOOP_FACTORIES = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
def pool_tunables() -> Iterator[None]:
    sysctl.reset()  # type: ignore[attr-defined]
    sysctl["vfs.aio.backend"], sysctl["vfs.aio.inline"] = "threads", 0
    yield
    sysctl.reset()  # type: ignore[attr-defined]


@pytest.mark.parametrize("default", [True, False], ids=["default-context", "own-context"])
@pytest.mark.parametrize("loop", list(LOOP_FACTORIES))
def test_loop_closed_with_jobs_in_flight_leaves_a_working_kernel(
        pool_tunables: None, tmp_path: Path, loop: str, default: bool) -> None:
    fd = os.open(tmp_path / "data.bin", os.O_RDWR | os.O_CREAT)
    ctx: AioContext | None = None
    cbs: list[Aiocb] = []
    try:
        with warnings.catch_warnings(), unraisables() as ignored:
            warnings.simplefilter("error")
            ctx, cbs = submit_and_close(LOOP_FACTORIES[loop](), fd, default, 64)
            gc.collect()

            async def fresh() -> bytes:
                cb = Aiocb(fd, b"fresh", None, 1 << 20)
                aioposix.aio_write(cb)
                assert await cb == 5
                back = Aiocb(fd, bytearray(5), None, 1 << 20)
                aioposix.aio_read(back)
                assert await back == 5
                return bytes(back.buf)

            assert asyncio.run(fresh()) == b"fresh"
            gc.collect()
        assert ignored == []
        assert counter("vfs.aio.num_aio_procs") > 0
        assert all(t.is_alive() for t in aiod_threads())
    finally:
        if ctx is not None:  # every context is run down with its loop: the jobs end
            wait_for(lambda: all(cb.error != errno.EINPROGRESS for cb in cbs), 20)
        os.close(fd)


@pytest.mark.parametrize("default", [True, False], ids=["default-context", "own-context"])
@pytest.mark.parametrize("loop", list(LOOP_FACTORIES))
def test_loop_closed_with_jobs_in_flight_gives_back_queue_slots_and_fds(
        pool_tunables: None, tmp_path: Path, loop: str, default: bool) -> None:
    """Nothing the jobs held may stay taken for the life of the process: every
    job ends (every context, the default one or one of one's own, is run down
    with its loop, and no call can reach it from another loop), then the
    process-wide queue count and the descriptors are back where they were."""
    gc.collect()  # contexts dropped by earlier tests give their slots back now, not midway
    baseline = counter("vfs.aio.num_queue_count")
    fd = os.open(tmp_path / "data.bin", os.O_RDWR | os.O_CREAT)
    before = open_fds()
    try:
        ctx, cbs = submit_and_close(LOOP_FACTORIES[loop](), fd, default, 64)
        assert wait_for(lambda: all(cb.error != errno.EINPROGRESS for cb in cbs), 20), (
            f"jobs never ended: {[cb for cb in cbs if cb.error == errno.EINPROGRESS][:3]}")
        with pytest.raises(RuntimeError):  # the context went with its loop
            ctx.aio_return(cbs[0])
        # (<=: a context an earlier test dropped may give its own slots back meanwhile)
        assert wait_for(lambda: counter("vfs.aio.num_queue_count") <= baseline, 10), (
            f"num_queue_count stays at {counter('vfs.aio.num_queue_count')}, was {baseline}")
        assert wait_for(lambda: not open_fds() - before, 10), (
            f"descriptors left open: {sorted(open_fds() - before)}")
    finally:
        os.close(fd)


# -- fork with jobs in flight --------------------------------------------------------------------


async def _child_work(path: Path) -> int:
    """In the child: a fresh kernel that works.  The exit code says what failed."""
    if counter("vfs.aio.num_queue_count") or counter("vfs.aio.num_aio_procs"):
        return 10
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    r, w = socket.socketpair()
    try:
        async with AioContext() as ctx:
            cbs = [Aiocb(fd, block(i), None, i * BLOCK) for i in range(8)]
            for cb in cbs:
                ctx.aio_write(cb)
            if [await cb for cb in cbs] != [BLOCK] * 8:
                return 11
            parked = Aiocb(r.fileno(), bytearray(5))
            ctx.aio_read(parked)
            w.send(b"child")
            if await asyncio.wait_for(parked, 10) != 5 or parked.buf != b"child":
                return 12
    finally:
        os.close(fd)
        r.close()
        w.close()
    return 0 if counter("vfs.aio.num_queue_count") == 0 else 13


def _in_child(path: Path) -> None:
    code = 99
    try:
        code = run_in_a_thread(lambda: _child_work(path))
    finally:
        os._exit(code)


async def test_fork_with_jobs_queued_and_parked(aio: Env) -> None:
    sysctl["vfs.aio.inline"] = 0
    count = 48
    path = aio.tmp / "parent.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    a, b = socket.socketpair()
    try:
        async with AioContext(max_active=1) as ctx:
            parked = Aiocb(a.fileno(), bytearray(6))
            ctx.aio_read(parked)
            cbs = [Aiocb(fd, block(i), None, i * BLOCK) for i in range(count)]
            for cb in cbs:
                ctx.aio_write(cb)
            pid = os.fork()
            if pid == 0:
                _in_child(aio.tmp / "child.bin")
            b.send(b"parent")
            assert await asyncio.wait_for(parked, 10) == 6
            assert parked.buf == b"parent"
            assert [await cb for cb in cbs] == [BLOCK] * count
            code = await wait_child(pid, 40)
        assert code == 0
        assert path.read_bytes() == b"".join(block(i) for i in range(count))
        assert (aio.tmp / "child.bin").read_bytes() == b"".join(block(i) for i in range(8))
    finally:
        os.close(fd)
        a.close()
        b.close()


# -- one context at its limit, another working -----------------------------------------------------


async def test_context_at_its_queue_limit_does_not_stop_another(aio: Env) -> None:
    limit = 8
    r, w = socket.socketpair()
    fd = aio.file(b"")
    try:
        async with AioContext(max_queued=limit) as full, AioContext() as other:
            parked = [Aiocb(r.fileno(), bytearray(1)) for _ in range(limit)]
            for cb in parked:
                full.aio_read(cb)
            assert full.statistics().parked == limit
            for refused, submit in ((Aiocb(r.fileno(), bytearray(1)), full.aio_read),
                                    (Aiocb(fd, b"no"), full.aio_write)):
                with pytest.raises(BlockingIOError) as info:
                    submit(refused)
                assert info.value.errno == errno.EAGAIN
                assert (refused.error, refused.status) == (errno.EAGAIN, -1)
            # the other context is not limited by it
            cbs = [Aiocb(fd, block(i), None, i * BLOCK) for i in range(100)]
            for cb in cbs:
                other.aio_write(cb)
            assert [await cb for cb in cbs] == [BLOCK] * 100
            back = Aiocb(fd, bytearray(100 * BLOCK))
            other.aio_read(back)
            assert await back == 100 * BLOCK
            assert back.buf == b"".join(block(i) for i in range(100))
            assert full.statistics().parked == limit
            # one byte ends one parked read; reaping it frees one slot
            w.send(b"1")
            await full.aio_suspend(parked, 10)
            first = next(cb for cb in parked if full.aio_error(cb) == 0)
            assert full.aio_return(first) == 1
            late = Aiocb(fd, b"ok", None, 0)
            full.aio_write(late)
            assert await late == 2
            w.send(b"x" * (limit - 1))
            rest = [cb for cb in parked if cb is not first]
            assert [await asyncio.wait_for(cb, 10) for cb in rest] == [1] * (limit - 1)
    finally:
        os.close(fd)
        r.close()
        w.close()


# -- fairness under a deep queue ------------------------------------------------------------------


@pytest.mark.backends("pool")  # a behaviour of the worker daemons
async def test_job_of_another_context_runs_before_a_10000_job_queue_drains(aio: Env) -> None:
    """With 10,000 jobs of A queued, B's job runs long before A's queue is empty.

    A's job i writes block i of a file, in queue order, so the file's size
    says how far A had got.  B's one job reads the whole file: its byte count
    is how much of A's queue ran before it.  Counted from what A had started
    when B's job was queued, fewer than 10% of A's jobs may run first; an
    unfair FIFO pool would run all of A's remaining jobs first.
    """
    count, size = 10_000, 512
    sysctl["vfs.aio.max_aio_queue"] = 2 * count
    sysctl["vfs.aio.max_aio_queue_per_proc"] = count
    a_fd = aio.file(b"", name="a.bin")
    b_fd = os.open(aio.tmp / "a.bin", os.O_RDONLY)
    try:
        async with AioContext() as a, AioContext() as b:
            a_cbs = [Aiocb(a_fd, bytes([48 + i % 10]) * size, None, i * size,
                           lio_opcode=LIO_WRITE) for i in range(count)]
            await a.lio_listio(LIO_NOWAIT, a_cbs)
            probe = Aiocb(b_fd, bytearray(count * size))
            b.aio_read(probe)
            # how far A had got once B's job was queued: A's workers run while the
            # loop thread waits for the GIL, and no pool can run B's job before that
            started = count - a.statistics().queued
            ran_before_b = await probe // size
            assert ran_before_b - started < count // 10, (
                f"{started} of A's {count} jobs had started when B's was queued, "
                f"{ran_before_b} when it ran")
            await aio.until(lambda: a.statistics().done == count, 50)
            assert [a.aio_return(cb) for cb in a_cbs] == [size] * count
        assert os.pread(a_fd, (count + 1) * size, 0) == b"".join(
            bytes(cb.buf) for cb in a_cbs)
    finally:
        os.close(a_fd)
        os.close(b_fd)


# -- a job that reaps itself still wakes the rundown ---------------------------------------------


async def collect(ctx: AioContext) -> list[Aiocb]:
    return [done async for done in ctx.aio_waitcomplete()]


@pytest.mark.parametrize("closing", ["aclose", "aio_waitcomplete"])
async def test_job_reaping_itself_after_a_cancelled_await_wakes_the_sleepers(
        aio: Env, closing: str) -> None:
    """A running job whose awaiting task was cancelled finishes and reaps
    itself (rule 8); whoever sleeps on the context (the rundown, or an
    aio_waitcomplete loop with nothing else in flight) must see it go, not
    wait for vfs.aio.aiod_timeout or forever."""
    sysctl["vfs.aio.inline"] = 0
    sysctl["vfs.aio.aiod_timeout"] = 600.0
    size = 8 << 20
    fd = aio.file(b"")
    try:
        ctx = AioContext()
        try:
            cb = Aiocb(fd, b"r" * size)
            ctx.aio_write(cb)
            task = asyncio.ensure_future(outcome(cb))
            await aio.until(lambda: ctx.statistics().active == 1 or cb.error != errno.EINPROGRESS)
            task.cancel()
            try:
                await task  # cancelled, unless the job beat the cancel and it returned
            except asyncio.CancelledError:
                pass
            if closing == "aio_waitcomplete":
                seen = await asyncio.wait_for(collect(ctx), 15)
                assert seen in ([], [cb])  # it may be reaped by itself first
                assert ctx.statistics().done == 0
        finally:
            await asyncio.wait_for(ctx.aclose(), 15)
        assert (cb.error, cb.status) in ((0, size), (errno.ECANCELED, -1))
        assert os.fstat(fd).st_size in (0, size)
    finally:
        os.close(fd)
