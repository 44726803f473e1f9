"""Lifetime (docs/contract.md, rule 25-27): rundown, loop shutdown, many loops, fork.

The rundown is vfs_aio.c's aio_proc_rundown: queued and parked jobs end
ECANCELED with their notifications fired, finished jobs are freed, and every
descriptor the context held is given back.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import open_fds, run_in_a_thread, run_on, wait_child

import aioposix
from aioposix import SIGEV_THREAD, Aiocb, AioContext, SigEvent, sysctl

if TYPE_CHECKING:
    from conftest import Env

BLOCK = 1 << 16


class Fired:
    """SIGEV_THREAD target: records each cb whose notification ran, with its error then."""

    def __init__(self) -> None:
        self.seen: list[tuple[Aiocb, int]] = []

    def __call__(self, cb: object) -> None:
        assert isinstance(cb, Aiocb)
        self.seen.append((cb, cb.error))

    def watch(self, cb: Aiocb) -> Aiocb:
        cb.sigevent = SigEvent(SIGEV_THREAD, function=self, value=cb)
        return cb


def submit_jobs(ctx: AioContext | None, fired: Fired, r: int, fd: int,
                appending: int) -> tuple[list[Aiocb], list[Aiocb]]:
    """Park two reads on the pipe ``r`` and queue O_APPEND writes on ``fd``.

    Only the first append can be handed to a worker: the others wait behind it
    (appends land in submission order), so a rundown now finds them queued.
    """
    read = ctx.aio_read if ctx is not None else aioposix.aio_read
    write = ctx.aio_write if ctx is not None else aioposix.aio_write
    parked = [fired.watch(Aiocb(r, bytearray(4))) for _ in range(2)]
    for cb in parked:
        read(cb)
    writes = [fired.watch(Aiocb(fd, bytes([65 + i]) * BLOCK)) for i in range(appending)]
    for cb in writes:
        write(cb)
    return parked, writes


def check_rundown(fired: Fired, parked: list[Aiocb], writes: list[Aiocb], path: Path) -> int:
    """Parked reads were cancelled; the appends that ran are a prefix, in the file in
    order, the rest cancelled; every notification fired once, with the final errno.
    Returns how many appends were cancelled."""
    for cb in parked:
        assert (cb.error, cb.status) == (errno.ECANCELED, -1)
    ran = sum(1 for cb in writes if cb.error == 0)
    outcome = [(cb.error, cb.status) for cb in writes]
    assert outcome == [(0, BLOCK)] * ran + [(errno.ECANCELED, -1)] * (len(writes) - ran)
    assert path.read_bytes() == b"".join(bytes(cb.buf) for cb in writes[:ran])
    assert sorted(id(cb) for cb, _ in fired.seen) == sorted(map(id, parked + writes))
    assert all(err == cb.error for cb, err in fired.seen)
    return len(writes) - ran


# -- AioContext rundown -----------------------------------------------------------------------


async def test_async_with_exit_runs_the_context_down(aio: Env) -> None:
    r, w = os.pipe()
    path = aio.tmp / "log.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    data = aio.file(b"done-data")
    baseline_fds = open_fds()
    baseline_count = sysctl["vfs.aio.num_queue_count"]
    fired = Fired()
    try:
        async with AioContext() as ctx:
            done = Aiocb(data, bytearray(9))
            ctx.aio_read(done)
            await ctx.aio_suspend([done], 10)  # finished, never reaped
            parked, writes = submit_jobs(ctx, fired, r, fd, 16)
            assert sysctl["vfs.aio.num_queue_count"] == baseline_count + 19
            assert len(open_fds()) > len(baseline_fds)  # the jobs hold their own fds
        assert ctx.closed
        assert (done.error, done.status, bytes(done.buf)) == (0, 9, b"done-data")
        # nothing ran between the submits and the rundown: only the first append
        # could have reached a worker
        assert check_rundown(fired, parked, writes, path) >= len(writes) - 1
        stats = ctx.statistics()
        assert (stats.queued, stats.active, stats.done, stats.parked) == (0, 0, 0, 0)
        assert sysctl["vfs.aio.num_queue_count"] == baseline_count
        assert open_fds() == baseline_fds
        with pytest.raises(RuntimeError):
            ctx.aio_read(Aiocb(data, bytearray(1)))
        with pytest.raises(RuntimeError):
            await ctx.lio_listio(aioposix.LIO_WAIT, [])
    finally:
        for d in (r, w, fd, data):
            os.close(d)


async def test_aclose_runs_down_and_a_second_aclose_does_nothing(aio: Env) -> None:
    r, w = os.pipe()
    data = aio.file(b"0123456789")
    baseline_fds = open_fds()
    fired = Fired()
    try:
        ctx = AioContext()
        done = Aiocb(data, bytearray(4), None, 6)
        ctx.aio_read(done)
        parked = fired.watch(Aiocb(r, bytearray(4)))
        ctx.aio_read(parked)
        await ctx.aio_suspend([done], 10)
        assert not ctx.closed
        await ctx.aclose()
        assert ctx.closed
        assert (parked.error, parked.status) == (errno.ECANCELED, -1)
        assert fired.seen == [(parked, errno.ECANCELED)]
        assert (done.error, done.status, bytes(done.buf)) == (0, 4, b"6789")
        assert open_fds() == baseline_fds
        await ctx.aclose()
        assert ctx.closed
        assert fired.seen == [(parked, errno.ECANCELED)]
        # a reaped cb belongs to nobody: another context may take it
        async with AioContext() as other:
            other.aio_read(done)
            assert await done == 4
        os.write(w, b"late")  # nobody is listening any more
        assert os.read(r, 4) == b"late"
    finally:
        for d in (r, w, data):
            os.close(d)


async def test_rundown_of_one_context_leaves_another_alone(aio: Env) -> None:
    r, w = os.pipe()
    try:
        async with AioContext() as survivor:
            kept = Aiocb(r, bytearray(4))
            survivor.aio_read(kept)
            async with AioContext() as doomed:
                lost = Aiocb(r, bytearray(4))
                doomed.aio_read(lost)
            assert lost.error == errno.ECANCELED
            assert survivor.aio_error(kept) == errno.EINPROGRESS
            os.write(w, b"kept")
            assert await asyncio.wait_for(kept, 10) == 4
            assert kept.buf == b"kept"
    finally:
        os.close(r)
        os.close(w)


# -- the default context dies with its loop ----------------------------------------------------


def test_default_context_is_run_down_when_its_loop_ends(aio: Env) -> None:
    """A plain test: the loop is the application's own, of the variant's kind."""
    tmp_path = aio.tmp
    baseline_count = sysctl["vfs.aio.num_queue_count"]
    r, w = os.pipe()
    path = tmp_path / "log.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    data_path = tmp_path / "data.bin"
    data_path.write_bytes(b"abcdefgh")
    data = os.open(data_path, os.O_RDONLY)
    fired = Fired()

    async def main() -> tuple[AioContext, Aiocb, list[Aiocb], list[Aiocb]]:
        ctx = aioposix.current_context()
        assert aioposix.current_context() is ctx
        done = Aiocb(data, bytearray(8))
        aioposix.aio_read(done)
        await aioposix.aio_suspend([done], 10)
        parked, writes = submit_jobs(None, fired, r, fd, 8)
        assert sysctl["vfs.aio.num_queue_count"] == baseline_count + 11
        return ctx, done, parked, writes  # nothing reaped

    try:
        ctx, done, parked, writes = run_on(aio.loop, main())
        assert ctx.closed
        assert sysctl["vfs.aio.num_queue_count"] == baseline_count
        assert (done.error, done.status, bytes(done.buf)) == (0, 8, b"abcdefgh")
        check_rundown(fired, parked, writes, path)
    finally:
        for d in (r, w, fd, data):
            os.close(d)


# -- many loops in many threads -----------------------------------------------------------------


def _pattern(thread: int, block: int) -> bytes:
    return f"t{thread}b{block:04d}".encode().ljust(512, bytes([thread + 48]))


async def _read_write_jobs(path: Path, thread: int, count: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        for start in range(0, count, 100):
            cbs = [Aiocb(fd, _pattern(thread, i), None, i * 512)
                   for i in range(start, min(start + 100, count))]
            for cb in cbs:
                aioposix.aio_write(cb)
            assert [await cb for cb in cbs] == [512] * len(cbs)
        good = 0
        for start in range(0, count, 100):
            cbs = [Aiocb(fd, bytearray(512), None, i * 512)
                   for i in range(start, min(start + 100, count))]
            for cb in cbs:
                aioposix.aio_read(cb)
            for i, cb in enumerate(cbs, start):
                assert await cb == 512
                good += bytes(cb.buf) == _pattern(thread, i)
        return good
    finally:
        os.close(fd)


def test_many_loops_in_many_threads(aio: Env) -> None:
    tmp_path, loop = aio.tmp, aio.loop
    threads, count = 4, 500
    baseline_count = sysctl["vfs.aio.num_queue_count"]
    start = threading.Barrier(threads)
    results: dict[int, int | BaseException] = {}

    def body(n: int) -> None:
        try:
            start.wait(10)
            results[n] = run_on(loop, _read_write_jobs(tmp_path / f"t{n}.bin", n, count))
        except BaseException as exc:
            results[n] = exc

    workers = [threading.Thread(target=body, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(50)
    assert not any(t.is_alive() for t in workers)
    for n in range(threads):
        if isinstance(results[n], BaseException):
            raise results[n]  # type: ignore[misc]
    assert results == {n: count for n in range(threads)}
    for n in range(threads):
        assert (tmp_path / f"t{n}.bin").read_bytes() == b"".join(
            _pattern(n, i) for i in range(count))
    assert sysctl["vfs.aio.num_queue_count"] == baseline_count


# -- fork ------------------------------------------------------------------------------------


async def _child_jobs(path: Path, pool: bool) -> int:
    """In the child: a fresh kernel that works.  The exit code says what failed."""
    if sysctl["vfs.aio.num_aio_procs"] != 0:
        return 10
    if sysctl["vfs.aio.num_queue_count"] != 0:
        return 11
    if any(t.name.startswith("aiod-") for t in threading.enumerate()):
        return 12
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        cbs = [Aiocb(fd, bytes([97 + i]) * BLOCK, None, i * BLOCK) for i in range(16)]
        for cb in cbs:
            aioposix.aio_write(cb)
        if [await cb for cb in cbs] != [BLOCK] * 16:
            return 13
        back = Aiocb(fd, bytearray(16 * BLOCK))
        aioposix.aio_read(back)
        if await back != 16 * BLOCK or bytes(back.buf) != b"".join(bytes(cb.buf) for cb in cbs):
            return 14
    finally:
        os.close(fd)
    if pool and sysctl["vfs.aio.num_aio_procs"] < 1:  # the child's own pool ran them
        return 15
    return 0 if sysctl["vfs.aio.num_queue_count"] == 0 else 16


def _in_child(path: Path, parent_ctx: AioContext, pool: bool) -> None:
    """Never returns.  The forking thread still looks like it runs the parent's
    loop, so the child's loop runs in a thread of its own."""
    code = 99
    try:
        code = 20 if not parent_ctx.closed else run_in_a_thread(lambda: _child_jobs(path, pool))
    finally:
        os._exit(code)


# the parent's jobs must be in flight (on workers or in the ring) at the fork: not on
# the inline variant, whose page-cache writes may all finish inside their submit calls
@pytest.mark.backends("pool", "io_uring", "io_uring+inline")
def test_fork_child_gets_a_fresh_kernel_and_parent_jobs_are_unaffected(aio: Env) -> None:
    tmp_path, loop = aio.tmp, aio.loop
    path = tmp_path / "parent.bin"
    blocks = [bytes([65 + i % 26]) * BLOCK for i in range(64)]

    async def parent() -> tuple[list[int], int]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        try:
            ctx = aioposix.current_context()
            cbs = [Aiocb(fd, block, None, i * BLOCK) for i, block in enumerate(blocks)]
            for cb in cbs:
                ctx.aio_write(cb)
            pid = os.fork()
            if pid == 0:
                _in_child(tmp_path / "child.bin", ctx, aio.slow_path == "pool")
            statuses = [await cb for cb in cbs]
            return statuses, await wait_child(pid, 40)
        finally:
            os.close(fd)

    statuses, child_code = run_on(loop, parent())
    assert child_code == 0
    assert statuses == [BLOCK] * len(blocks)
    assert path.read_bytes() == b"".join(blocks)
    assert (tmp_path / "child.bin").read_bytes() == b"".join(
        bytes([97 + i]) * BLOCK for i in range(16))


def test_closed_loop_context_refuses_new_work() -> None:
    async def main() -> AioContext:
        return aioposix.current_context()

    ctx = asyncio.run(main())
    assert ctx.closed
    with pytest.raises(RuntimeError):
        ctx.aio_read(Aiocb(0, bytearray(1)))

