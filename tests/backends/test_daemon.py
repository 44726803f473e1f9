"""The daemon pool (docs/contract.md, rule 23-24): per-context max_active, fairness, sizing.

These are pool behaviours, so they run on the ``pool`` backend only (file
jobs go to the worker daemons, nothing is served inline).  The pool is
process-wide and other tests use it too: every wait is deadline-bounded and
every assertion is about what the pool did, never how fast.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from aioposix import LIO_NOWAIT, LIO_WRITE, Aiocb, AioContext, sysctl

if TYPE_CHECKING:
    from conftest import Env


pytestmark = pytest.mark.backends("pool")  # behaviours of the worker daemons


@pytest.fixture(autouse=True)
def pool_only(aio: Env) -> None:
    assert aio.backend == "pool"


def procs() -> int:
    value = sysctl["vfs.aio.num_aio_procs"]
    assert isinstance(value, int)
    return value


def sampler(sample: Callable[[], int], seen: list[int],
            done: Callable[[], bool]) -> Callable[[], bool]:
    """A predicate for ``aio.until`` that records ``sample()`` each time it is polled."""
    def poll() -> bool:
        seen.append(sample())
        return done()
    return poll


async def wake_every_idle_worker(aio: Env) -> int:
    """Workers sleep with the aiod_lifetime they read when they went idle: a burst
    wide enough to wake all of them makes them read the current tunables.
    Returns the number of workers just after the burst was handed over."""
    fd = aio.file(b"", name="wake.bin")
    try:
        async with AioContext(max_active=64, max_queued=64) as ctx:
            cbs = [Aiocb(fd, b"w", None, i, lio_opcode=LIO_WRITE) for i in range(64)]
            await ctx.lio_listio(LIO_NOWAIT, cbs)
            grown = procs()
            assert [await cb for cb in cbs] == [1] * 64
        assert os.pread(fd, 65, 0) == b"w" * 64
        return grown
    finally:
        os.close(fd)


@pytest.mark.parametrize("max_active", [1, 3])
async def test_context_never_runs_more_than_max_active_jobs(aio: Env, max_active: int) -> None:
    size, count, slots = 1 << 21, 64, 8  # big writes: the batch takes a while
    block = b"m" * size
    fd = aio.file(b"", name="big.bin")
    try:
        async with AioContext(max_active=max_active, max_queued=count) as ctx:
            assert ctx.statistics().max_active == max_active
            cbs = [Aiocb(fd, block, None, (i % slots) * size, lio_opcode=LIO_WRITE)
                   for i in range(count)]
            await ctx.lio_listio(LIO_NOWAIT, cbs)
            seen: list[int] = []
            await aio.until(sampler(lambda: ctx.statistics().active, seen,
                                    lambda: ctx.statistics().done == count), 30)
            assert max(seen) <= max_active
            assert [await cb for cb in cbs] == [size] * count
        assert os.pread(fd, (slots + 1) * size, 0) == block * slots
    finally:
        os.close(fd)


@pytest.mark.parametrize("max_active", [1, 3])
async def test_max_active_holds_while_more_workers_are_awake(aio: Env, max_active: int) -> None:
    """Jobs submitted one call at a time each wake an idle worker: the workers
    beyond max_active must find the context at its limit and leave its jobs
    queued.  The jobs are 64 MiB reads of /dev/zero (a character device that is
    not a tty: the worker daemons run them), long enough that workers taking
    them beyond the limit would be seen running together."""
    count = 24
    assert await wake_every_idle_worker(aio) >= count  # idle workers to spare
    buf = bytearray(1 << 26)  # shared: every job reads zeros into it
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        async with AioContext(max_active=max_active, max_queued=count) as ctx:
            cbs = [Aiocb(fd, buf, None, -1) for _ in range(count)]
            seen: list[int] = []
            for cb in cbs:
                ctx.aio_read(cb)
                seen.append(ctx.statistics().active)
            await aio.until(sampler(lambda: ctx.statistics().active, seen,
                                    lambda: ctx.statistics().done == count), 60)
            assert max(seen) <= max_active, f"{max(seen)} jobs ran at once"
            assert [await cb for cb in cbs] == [len(buf)] * count
        assert buf.count(0) == len(buf)
    finally:
        os.close(fd)


async def test_statistics_active_counts_only_running_jobs_while_the_loop_is_busy(
        aio: Env) -> None:
    """Jobs a worker has finished are no longer active, even before the loop
    (busy with other work here) has collected their results."""
    size, count = 1 << 16, 16
    fd = aio.file(b"", name="busy.bin")
    try:
        async with AioContext(max_active=1) as ctx:
            cbs = [Aiocb(fd, bytes([65 + i]) * size, None, i * size) for i in range(count)]
            for cb in cbs:
                ctx.aio_write(cb)
            # Hold the loop thread (as CPU-bound work on the loop would) until the
            # file shows that the worker finished at least four jobs, one at a time.
            deadline = time.monotonic() + 20
            while os.fstat(fd).st_size < 5 * size and time.monotonic() < deadline:
                time.sleep(0.001)
            assert os.fstat(fd).st_size >= 5 * size
            stats = ctx.statistics()
            assert stats.active <= 1
            assert stats.queued + stats.active + stats.done == count
            assert [await cb for cb in cbs] == [size] * count
    finally:
        os.close(fd)


async def test_another_context_is_served_before_a_long_queue(aio: Env) -> None:
    """FreeBSD's aio_selectjob fairness: a job of context B, submitted after
    context A queued 2000, runs before the rest of A's queue.

    A's job i writes block i of a file, in queue order, so the file's size says
    how far into its queue A had got.  B's job reads that whole file: what it
    reads is the part of A's queue that ran before B.  With fair picking that
    is about what had started when B was submitted (plus the jobs running
    beside it); a FIFO pool would make B wait for all 2000.
    """
    count, block, slack = 2000, 4096, 256
    sysctl["vfs.aio.max_aio_queue"] = 4096
    sysctl["vfs.aio.max_aio_queue_per_proc"] = count
    # O_DSYNC: A's jobs wait for the disk with the GIL released, so the loop
    # and B's worker are not starved while A's 32 workers run
    a_fd = aio.file(b"", name="a.bin", flags=os.O_RDWR | os.O_DSYNC)
    b_fd = os.open(aio.tmp / "a.bin", os.O_RDONLY)
    try:
        async with AioContext() as a, AioContext() as b:
            assert a.statistics().max_queued == count
            a_cbs = [Aiocb(a_fd, bytes([48 + i % 10]) * block, None, i * block,
                           lio_opcode=LIO_WRITE) for i in range(count)]
            await a.lio_listio(LIO_NOWAIT, a_cbs)
            probe = Aiocb(b_fd, bytearray(count * block))
            b.aio_read(probe)
            # how far A had got once B's job was queued (submitting releases the
            # GIL, and A's workers run meanwhile)
            started = count - a.statistics().queued
            ran_before_b = await probe // block
            assert ran_before_b <= started + slack, (
                f"{started} of A's jobs had started when B's was queued, "
                f"{ran_before_b} when it ran")
            await aio.until(lambda: a.statistics().done == count, 50)
            assert [a.aio_return(cb) for cb in a_cbs] == [block] * count
        assert os.pread(a_fd, (count + 1) * block, 0) == b"".join(bytes(cb.buf) for cb in a_cbs)
    finally:
        os.close(a_fd)
        os.close(b_fd)


async def test_pool_grows_up_to_max_aio_procs_and_no_further(aio: Env) -> None:
    sysctl["vfs.aio.max_aio_procs"] = 3
    sysctl["vfs.aio.target_aio_procs"] = 1
    sysctl["vfs.aio.aiod_lifetime"] = 0.05
    await wake_every_idle_worker(aio)
    await aio.until(lambda: procs() <= 1, 30)  # workers from earlier tests are gone
    sysctl["vfs.aio.aiod_lifetime"] = 30.0  # nobody leaves while we count
    fd = aio.file(b"", name="grow.bin")
    try:
        async with AioContext(max_active=32, max_queued=200) as ctx:
            cbs = [Aiocb(fd, b"g" * 4096, None, i * 4096, lio_opcode=LIO_WRITE)
                   for i in range(200)]
            await ctx.lio_listio(LIO_NOWAIT, cbs[:100])
            assert procs() == 3  # demand for 32: grown to the limit at once
            seen: list[int] = []
            await aio.until(sampler(procs, seen, lambda: ctx.statistics().done == 100), 30)
            await ctx.lio_listio(LIO_NOWAIT, cbs[100:])
            await aio.until(sampler(procs, seen, lambda: ctx.statistics().done == 200), 30)
            assert max(seen) == 3
            assert [await cb for cb in cbs] == [4096] * 200
        assert os.pread(fd, 200 * 4096 + 1, 0) == b"g" * 4096 * 200
    finally:
        os.close(fd)


async def test_idle_workers_above_target_exit_after_aiod_lifetime(aio: Env) -> None:
    sysctl["vfs.aio.target_aio_procs"] = 1
    sysctl["vfs.aio.aiod_lifetime"] = 0.2
    assert await wake_every_idle_worker(aio) == 32  # the burst asks for max_aio_procs
    await aio.until(lambda: procs() <= 1, 30)
    assert procs() == 1  # target_aio_procs stay, idle
    # the one left still serves
    fd = aio.file(b"still here")
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, bytearray(10))
            ctx.aio_read(cb)
            assert await cb == 10
            assert cb.buf == b"still here"
    finally:
        os.close(fd)


async def test_pool_keeps_target_aio_procs_once_used(aio: Env) -> None:
    sysctl["vfs.aio.target_aio_procs"] = 2
    sysctl["vfs.aio.aiod_lifetime"] = 0.05
    await wake_every_idle_worker(aio)
    await aio.until(lambda: procs() <= 2, 30)
    assert procs() == 2
