"""A loop that goes away under jobs (docs/contract.md, rules 17 and 25).

Whatever happens to the loop, the kernel never writes into freed memory (a
ring with requests in flight stays open, with its buffers, until the kernel
has completed every one) and no process-wide slot, fd or ring stays held:
a context whose loop closes or is dropped is run down as aclose() would.
Three ways for a loop to go: ``asyncio.run`` returning (its shutdown runs
the rundown on the loop), a bare ``loop.close()`` (the process-wide reaper
notices), and ``aclose()`` whose wait for running jobs (aiod_timeout 0)
runs out before the kernel is done.
"""

from __future__ import annotations

import asyncio
import gc
import mmap
import os
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from helpers import open_fds

import aioposix
from aioposix import Aiocb, AioContext, sysctl
from aioposix._backends.ring import probe as uring_probe

BLOCK = 4096
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
ENDINGS = ["asyncio.run", "loop.close", "aclose-timeout-0"]


def count(name: str) -> int:
    value = sysctl[name]
    assert isinstance(value, int)
    return value


def ring_fds() -> int:
    """io_uring instances this process holds open."""
    n = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[io_uring]"
        except OSError:
            pass
    return n


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def run_and_end(loop_kind: str, ending: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``main()`` on a fresh loop, then let the loop go the given way."""
    if ending == "aclose-timeout-0":
        sysctl["vfs.aio.aiod_timeout"] = 0.0
    if ending == "loop.close":
        loop = LOOPS[loop_kind]()
        try:
            return loop.run_until_complete(main())
        finally:
            loop.close()
    with asyncio.Runner(loop_factory=LOOPS[loop_kind]) as runner:
        return runner.run(main())


@pytest.fixture
def tunables() -> Iterator[None]:
    sysctl.reset()  # type: ignore[attr-defined]
    yield
    sysctl.reset()  # type: ignore[attr-defined]


def direct_file(tmp_path: Path, blocks: int) -> tuple[int, bytes]:
    data = b"".join(bytes([0xA0 + i % 16]) * BLOCK for i in range(blocks))
    path = tmp_path / "direct.bin"
    path.write_bytes(data)
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECT), data
    except OSError as exc:
        pytest.skip(f"O_DIRECT is not supported here: {exc}")


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("loop_kind", list(LOOPS))
def test_kernel_reads_in_flight_when_the_loop_goes_land_in_live_buffers(
        tunables: None, tmp_path: Path, loop_kind: str, ending: str) -> None:
    """Reads the kernel still runs when the loop goes complete into the buffers
    they were given (kept alive), and then the ring, its fds and every slot go."""
    if (reason := uring_probe()) is not None:
        pytest.skip(f"io_uring is not usable here: {reason}")
    gc.collect()
    fd, data = direct_file(tmp_path, 64)
    rings, queued = ring_fds(), count("vfs.aio.num_queue_count")
    before = open_fds()
    bufs = [mmap.mmap(-1, BLOCK) for _ in range(64)]  # page-aligned, as O_DIRECT wants

    async def main() -> None:
        ctx = AioContext(max_queued=64, max_buf=64)
        for i, buf in enumerate(bufs):
            ctx.aio_read(Aiocb(fd, buf, BLOCK, i * BLOCK))
        assert ctx.statistics().buffer_jobs > 0  # in the kernel as the loop goes
        if ending == "aclose-timeout-0":
            await ctx.aclose()

    try:
        run_and_end(loop_kind, ending, main)
        gc.collect()
        assert wait_for(lambda: all(bytes(b) == data[i * BLOCK:(i + 1) * BLOCK]
                                    for i, b in enumerate(bufs))), "reads never landed"
        assert wait_for(lambda: count("vfs.aio.num_buf_aio") == 0)
        assert wait_for(lambda: count("vfs.aio.num_queue_count") <= queued), (
            f"num_queue_count stays at {count('vfs.aio.num_queue_count')}, was {queued}")
        assert wait_for(lambda: ring_fds() <= rings), f"{ring_fds() - rings} rings left open"
        assert wait_for(lambda: not open_fds() - before), sorted(open_fds() - before)
    finally:
        os.close(fd)


@pytest.mark.parametrize("loop_kind", list(LOOPS))
def test_fresh_buffers_never_change_after_the_loop_went(
        tunables: None, tmp_path: Path, loop_kind: str) -> None:
    """The use-after-free, seen from the user's side: buffers allocated after the
    loop went stay zero (no late kernel write lands in memory freed and reused)."""
    if (reason := uring_probe()) is not None:
        pytest.skip(f"io_uring is not usable here: {reason}")
    fd, _ = direct_file(tmp_path, 64)
    sysctl["vfs.aio.aiod_timeout"] = 0.0

    async def main() -> None:
        ctx = AioContext(max_queued=64, max_buf=64)
        for i in range(64):
            ctx.aio_read(Aiocb(fd, mmap.mmap(-1, BLOCK), BLOCK, i * BLOCK))
        await ctx.aclose()

    try:
        for _ in range(3):
            run_and_end(loop_kind, "aclose-timeout-0", main)
            gc.collect()
            fresh = [bytearray(BLOCK) for _ in range(256)]
            assert wait_for(lambda: count("vfs.aio.num_buf_aio") == 0)
            assert not any(any(b) for b in fresh)
    finally:
        os.close(fd)


@pytest.mark.parametrize("default", [True, False], ids=["default-context", "own-context"])
@pytest.mark.parametrize("loop_kind", list(LOOPS))
def test_loop_close_under_pool_jobs_and_parked_reads_gives_everything_back(
        tunables: None, tmp_path: Path, loop_kind: str, default: bool) -> None:
    """loop.close() with unreaped pool jobs and parked pipe reads: slots and fds
    come back, and nothing of the library keeps the context alive."""
    sysctl["vfs.aio.backend"], sysctl["vfs.aio.inline"] = "threads", 0
    gc.collect()
    queued = count("vfs.aio.num_queue_count")
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(64 * BLOCK))
    fd = os.open(path, os.O_RDWR)
    pipes = [os.pipe() for _ in range(8)]
    before = open_fds()
    refs: list[weakref.ref[AioContext]] = []
    cbs: list[Aiocb] = []

    async def main() -> None:
        ctx = aioposix.current_context() if default else AioContext()
        refs.append(weakref.ref(ctx))
        for i in range(64):
            cbs.append(Aiocb(fd, bytes([i]) * BLOCK, None, i * BLOCK))
            ctx.aio_write(cbs[-1])
        for r, _ in pipes:
            cbs.append(Aiocb(r, bytearray(8)))
            ctx.aio_read(cbs[-1])
        assert ctx.statistics().parked == len(pipes)

    loop = LOOPS[loop_kind]()
    try:
        loop.run_until_complete(main())
        loop.close()
        assert wait_for(lambda: count("vfs.aio.num_queue_count") <= queued), (
            f"num_queue_count stays at {count('vfs.aio.num_queue_count')}, was {queued}")
        assert wait_for(lambda: not open_fds() - before), sorted(open_fds() - before)
        del loop
        cbs.clear()
        gc.collect()
        assert refs[0]() is None, gc.get_referrers(refs[0]())
        with open(path, "rb") as f:  # the writes that ran are whole blocks
            blocks = [f.read(BLOCK) for _ in range(64)]
        assert all(b in (bytes(BLOCK), bytes([i]) * BLOCK) for i, b in enumerate(blocks))
    finally:
        os.close(fd)
        for r, w in pipes:
            os.close(r)
            os.close(w)
