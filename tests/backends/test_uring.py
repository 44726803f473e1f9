"""The kernel-submitted path (docs/contract.md, rule 14, 17, 25): io_uring, vfs_aio.c's physio.

O_DIRECT files and block devices whose offset and nbytes are multiples of
the logical block size go straight to the kernel: no worker thread, limited
by max_buf per context (EAGAIN past it), counted in vfs.aio.num_buf_aio,
never cancelled once submitted.  Misaligned requests go to the daemon pool
and get whatever the kernel says.  A batch reaches the kernel in one
io_uring_enter.  When io_uring is forbidden (seccomp) everything still works
through the pool, with one warning and a note in sysctl.

Every buffer handed to the kernel path is page aligned (``mmap.mmap(-1, n)``):
O_DIRECT needs aligned memory as well as aligned offsets.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import mmap
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import aioposix
from aioposix import (
    AIO_NOTCANCELED,
    LIO_READ,
    LIO_WAIT,
    Aiocb,
    AioContext,
    JobState,
    sysctl,
)
from aioposix._backends.ring import Ring
from aioposix._core import loopdata as _loopdata

if TYPE_CHECKING:
    from conftest import Env

PAGE = mmap.PAGESIZE
BLOCK = 4096
POOL_STATES = (JobState.WAITING, JobState.QUEUED, JobState.RUNNING)


def pattern(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


def aligned(n: int) -> mmap.mmap:
    """n bytes of page-aligned, writable memory."""
    return mmap.mmap(-1, n)


def direct_file(aio: Env, data: bytes, name: str = "direct.bin") -> int:
    """An O_RDWR|O_DIRECT fd on a file holding ``data`` (skip if the fs refuses)."""
    path = aio.tmp / name
    path.write_bytes(data)
    try:
        return os.open(path, os.O_RDWR | os.O_DIRECT)
    except OSError as exc:
        pytest.skip(f"the tmp file system refuses O_DIRECT: {exc}")


def outcome(call: Any) -> tuple[str, int]:
    """("ok", count) or ("err", errno) of a synchronous call."""
    try:
        return "ok", call()
    except OSError as exc:
        return "err", exc.errno or 0


async def aio_outcome(cb: Aiocb) -> tuple[str, int]:
    try:
        return "ok", await cb
    except OSError as exc:
        return "err", exc.errno or 0


# -- aligned O_DIRECT: the kernel path ------------------------------------------


async def test_direct_aligned_read_takes_kernel_path(aio: Env) -> None:
    data = pattern(4 * BLOCK)
    fd = direct_file(aio, data)
    try:
        async with AioContext() as ctx:
            buf = aligned(2 * BLOCK)
            cb = Aiocb(fd, buf, offset=BLOCK)
            ctx.aio_read(cb)
            assert cb.state is JobState.KERNEL
            assert ctx.statistics().buffer_jobs >= 1
            assert sysctl["vfs.aio.num_buf_aio"] >= 1
            assert await cb == 2 * BLOCK
            assert buf[:] == data[BLOCK:3 * BLOCK]
            assert ctx.statistics().buffer_jobs == 0
            assert sysctl["vfs.aio.num_buf_aio"] == 0
    finally:
        os.close(fd)


async def test_direct_aligned_write_takes_kernel_path(aio: Env) -> None:
    fd = direct_file(aio, bytes(4 * BLOCK))
    try:
        async with AioContext() as ctx:
            src = aligned(BLOCK)
            src[:] = pattern(BLOCK, 3)
            cb = Aiocb(fd, src, offset=2 * BLOCK)
            ctx.aio_write(cb)
            assert cb.state is JobState.KERNEL
            assert ctx.statistics().buffer_jobs >= 1
            assert sysctl["vfs.aio.num_buf_aio"] >= 1
            assert await cb == BLOCK
            assert ctx.statistics().buffer_jobs == 0
            assert sysctl["vfs.aio.num_buf_aio"] == 0
        back = aligned(4 * BLOCK)
        assert os.preadv(fd, [back], 0) == 4 * BLOCK
        assert back[:] == bytes(2 * BLOCK) + pattern(BLOCK, 3) + bytes(BLOCK)
    finally:
        os.close(fd)


async def test_direct_read_past_eof_returns_zero(aio: Env) -> None:
    fd = direct_file(aio, pattern(BLOCK))
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, aligned(BLOCK), offset=8 * BLOCK)
            ctx.aio_read(cb)
            assert await cb == 0
    finally:
        os.close(fd)


@pytest.mark.parametrize(("offset", "nbytes"), [(512, BLOCK), (0, 512), (BLOCK, BLOCK + 512)],
                         ids=["offset512", "nbytes512", "nbytes4608"])
async def test_direct_misaligned_read_goes_to_pool(aio: Env, offset: int,
                                                   nbytes: int) -> None:
    data = pattern(4 * BLOCK)
    fd = direct_file(aio, data)
    try:
        expected_buf = aligned(2 * BLOCK)
        expected = outcome(lambda: os.preadv(fd, [memoryview(expected_buf)[:nbytes]], offset))
        async with AioContext(max_buf=1) as ctx:
            bufs = [aligned(2 * BLOCK) for _ in range(3)]
            cbs = [Aiocb(fd, buf, nbytes, offset) for buf in bufs]
            for cb in cbs:  # max_buf=1 does not limit jobs outside the kernel path
                ctx.aio_read(cb)
            assert ctx.statistics().buffer_jobs == 0
            assert sysctl["vfs.aio.num_buf_aio"] == 0
            if aio.slow_path == "pool":  # a ring file backend may take them too
                assert all(cb.state in POOL_STATES or cb.state is JobState.DONE
                           for cb in cbs)
            for cb, buf in zip(cbs, bufs, strict=True):
                assert await aio_outcome(cb) == expected
                if expected[0] == "ok":
                    assert buf[:expected[1]] == data[offset:offset + expected[1]]
    finally:
        os.close(fd)


async def test_direct_misaligned_write_gets_what_the_kernel_says(aio: Env) -> None:
    fd = direct_file(aio, bytes(4 * BLOCK))
    try:
        src = aligned(BLOCK)
        src[:] = pattern(BLOCK, 5)
        expected = outcome(lambda: os.pwritev(fd, [src], 512))
        os.pwritev(fd, [aligned(2 * BLOCK)], 0)  # zeros again
        async with AioContext() as ctx:
            cb = Aiocb(fd, src, offset=512)
            ctx.aio_write(cb)
            assert ctx.statistics().buffer_jobs == 0
            assert await aio_outcome(cb) == expected
        back = aligned(4 * BLOCK)
        os.preadv(fd, [back], 0)
        if expected == ("ok", BLOCK):
            assert back[512:512 + BLOCK] == pattern(BLOCK, 5)
            assert back[:512] == bytes(512)
    finally:
        os.close(fd)


async def test_direct_bytearray_buffer_gets_what_the_kernel_says(aio: Env) -> None:
    """A bytearray is not page aligned: the kernel may refuse it (EINVAL)."""
    data = pattern(2 * BLOCK)
    fd = direct_file(aio, data)
    try:
        buf = bytearray(BLOCK)
        expected = outcome(lambda: os.preadv(fd, [buf], BLOCK))
        buf[:] = bytes(BLOCK)
        async with AioContext() as ctx:
            cb = Aiocb(fd, buf, offset=BLOCK)
            ctx.aio_read(cb)
            assert await aio_outcome(cb) == expected
            assert ctx.statistics().buffer_jobs == 0
        assert buf == (data[BLOCK:] if expected[0] == "ok" else bytes(BLOCK))
    finally:
        os.close(fd)


async def test_direct_past_max_buf_goes_to_the_daemons(aio: Env) -> None:
    """Past max_buf a kernel-submitted job is not refused: the daemons take it."""
    data = pattern(4 * BLOCK)
    fd = direct_file(aio, data)
    try:
        async with AioContext(max_buf=2) as ctx:
            queued_before = sysctl["vfs.aio.num_queue_count"]
            cbs = [Aiocb(fd, aligned(BLOCK), offset=i * BLOCK) for i in range(3)]
            for cb in cbs:
                ctx.aio_read(cb)  # no EAGAIN for the third
            assert ctx.statistics().buffer_jobs <= 2
            assert sysctl["vfs.aio.num_buf_aio"] <= 2
            assert sysctl["vfs.aio.num_queue_count"] == queued_before + 3
            assert [await cb for cb in cbs] == [BLOCK] * 3
            assert [cb.buf[:] for cb in cbs] == [data[i * BLOCK:(i + 1) * BLOCK]
                                                 for i in range(3)]
    finally:
        os.close(fd)


async def test_default_context_64_direct_reads_no_eagain(aio: Env) -> None:
    """The default context (max_buf 16) takes 64 aligned O_DIRECT reads at once."""
    data = pattern(64 * BLOCK, 5)
    fd = direct_file(aio, data)
    try:
        cbs = [Aiocb(fd, aligned(BLOCK), offset=i * BLOCK) for i in range(64)]
        for cb in cbs:
            aioposix.aio_read(cb)
        assert aioposix.current_context().statistics().buffer_jobs <= 16
        assert [await cb for cb in cbs] == [BLOCK] * 64
        assert b"".join(cb.buf[:] for cb in cbs) == data
    finally:
        os.close(fd)


async def test_direct_aio_cancel_kernel_job_notcanceled(aio: Env) -> None:
    data = pattern(2 * BLOCK)
    fd = direct_file(aio, data)
    try:
        async with AioContext() as ctx:
            buf = aligned(2 * BLOCK)
            cb = Aiocb(fd, buf)
            ctx.aio_read(cb)
            assert cb.state is JobState.KERNEL
            assert ctx.aio_cancel(fd, cb) == AIO_NOTCANCELED
            assert ctx.aio_cancel(fd) == AIO_NOTCANCELED
            assert await cb == 2 * BLOCK
            assert cb.error == 0
            assert buf[:] == data
    finally:
        os.close(fd)


async def test_direct_readv_through_ring(aio: Env) -> None:
    data = pattern(4 * BLOCK, 9)
    fd = direct_file(aio, data)
    try:
        async with AioContext() as ctx:
            a, b = aligned(BLOCK), aligned(2 * BLOCK)
            cb = Aiocb(fd, offset=BLOCK, iov=[a, b])
            ctx.aio_readv(cb)
            assert cb.state is JobState.KERNEL
            assert ctx.statistics().buffer_jobs == 1
            assert await cb == 3 * BLOCK
            assert a[:] + b[:] == data[BLOCK:]
    finally:
        os.close(fd)


async def test_direct_writev_through_ring(aio: Env) -> None:
    fd = direct_file(aio, bytes(4 * BLOCK))
    try:
        async with AioContext() as ctx:
            a, b = aligned(2 * BLOCK), aligned(BLOCK)
            a[:] = pattern(2 * BLOCK, 1)
            b[:] = pattern(BLOCK, 2)
            cb = Aiocb(fd, offset=0, iov=[a, b])
            ctx.aio_writev(cb)
            assert cb.state is JobState.KERNEL
            assert ctx.statistics().buffer_jobs == 1
            assert await cb == 3 * BLOCK
        back = aligned(4 * BLOCK)
        assert os.preadv(fd, [back], 0) == 4 * BLOCK
        assert back[:] == pattern(2 * BLOCK, 1) + pattern(BLOCK, 2) + bytes(BLOCK)
    finally:
        os.close(fd)


@pytest.mark.parametrize("op", [os.O_SYNC, os.O_DSYNC], ids=["O_SYNC", "O_DSYNC"])
async def test_direct_aio_fsync_through_ring(aio: Env, op: int) -> None:
    fd = direct_file(aio, bytes(2 * BLOCK))
    try:
        async with AioContext() as ctx:
            src = aligned(BLOCK)
            src[:] = pattern(BLOCK, 4)
            write = Aiocb(fd, src, offset=BLOCK)
            ctx.aio_write(write)
            assert await write == BLOCK
            sync = Aiocb(fd)
            ctx.aio_fsync(op, sync)
            assert sync.state is JobState.KERNEL
            assert await sync == 0
            assert sync.error == 0
        back = aligned(2 * BLOCK)
        os.preadv(fd, [back], 0)
        assert back[BLOCK:] == pattern(BLOCK, 4)
    finally:
        os.close(fd)


async def test_direct_fsync_waits_for_kernel_writes(aio: Env) -> None:
    """The fsync barrier also holds behind in-kernel writes (rule 18)."""
    fd = direct_file(aio, bytes(4 * BLOCK))
    try:
        async with AioContext() as ctx:
            writes = []
            for i in range(4):
                src = aligned(BLOCK)
                src[:] = pattern(BLOCK, i)
                writes.append(Aiocb(fd, src, offset=i * BLOCK))
                ctx.aio_write(writes[-1])
            sync = Aiocb(fd)
            ctx.aio_fsync(os.O_SYNC, sync)
            assert sync.state is JobState.WAITING
            order: list[Aiocb] = []
            async for cb in ctx.aio_waitcomplete(timeout=10):
                order.append(cb)
            assert order[-1] is sync
            assert [cb.status for cb in writes] == [BLOCK] * 4
            assert sync.status == 0
    finally:
        os.close(fd)


async def test_direct_lio_listio_reads_through_ring(aio: Env) -> None:
    data = pattern(32 * BLOCK, 11)
    fd = direct_file(aio, data)
    try:
        async with AioContext(max_buf=32) as ctx:
            cbs = [Aiocb(fd, aligned(BLOCK), offset=i * BLOCK, lio_opcode=LIO_READ)
                   for i in range(32)]
            await ctx.lio_listio(LIO_WAIT, cbs)
            assert [ctx.aio_return(cb) for cb in cbs] == [BLOCK] * 32
            assert b"".join(cb.buf[:] for cb in cbs) == data
            assert ctx.statistics().buffer_jobs == 0
    finally:
        os.close(fd)


async def test_direct_lio_listio_over_max_buf_all_done(aio: Env) -> None:
    data = pattern(4 * BLOCK, 3)
    fd = direct_file(aio, data)
    try:
        async with AioContext(max_buf=2) as ctx:
            cbs = [Aiocb(fd, aligned(BLOCK), offset=i * BLOCK, lio_opcode=LIO_READ)
                   for i in range(4)]
            await ctx.lio_listio(aioposix.LIO_WAIT, cbs)
            assert [ctx.aio_return(cb) for cb in cbs] == [BLOCK] * 4
            assert b"".join(cb.buf[:] for cb in cbs) == data
    finally:
        os.close(fd)


# -- buffers stay alive --------------------------------------------------------


def page_aligned_offset(buf: bytearray) -> int:
    """How far into ``buf`` its first page-aligned byte is."""
    address = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    return -address % PAGE


async def test_ring_keeps_bytearray_alive_after_task_cancelled(aio: Env) -> None:
    data = pattern(2 * BLOCK, 13)
    fd = direct_file(aio, data)
    try:
        async with AioContext() as ctx:
            store = bytearray(2 * BLOCK + PAGE)
            start = page_aligned_offset(store)
            view = memoryview(store)[start:start + 2 * BLOCK]
            cb = Aiocb(fd, view)
            submitted = asyncio.Event()

            async def reader() -> int:
                ctx.aio_read(cb)
                submitted.set()
                return await cb

            task = asyncio.ensure_future(reader())
            await asyncio.wait_for(submitted.wait(), 10)
            view.release()  # only the library holds the bytearray now
            assert cb.state is JobState.KERNEL
            task.cancel()
            with pytest.raises(BufferError):
                store.extend(b"x")  # the kernel may still write into it
            with pytest.raises(asyncio.CancelledError):
                await task
            await aio.until(lambda: ctx.statistics().done == 0
                            and ctx.statistics().buffer_jobs == 0
                            and cb.state is JobState.IDLE)
            assert cb.status == 2 * BLOCK
            assert cb.error == 0
            assert store[start:start + 2 * BLOCK] == data
            assert sysctl["vfs.aio.num_queue_count"] == 0
            store.extend(b"x")  # reaped: the library let go of it
            assert len(store) == 2 * BLOCK + PAGE + 1
    finally:
        os.close(fd)


# -- rundown ---------------------------------------------------------------------


async def test_rundown_waits_for_kernel_jobs(aio: Env) -> None:
    data = pattern(8 * BLOCK, 17)
    fd = direct_file(aio, data)
    try:
        async with AioContext() as ctx:
            cbs = [Aiocb(fd, aligned(BLOCK), offset=i * BLOCK) for i in range(8)]
            for cb in cbs:
                ctx.aio_read(cb)
            assert all(cb.state is JobState.KERNEL for cb in cbs)
        assert ctx.closed
        assert [cb.status for cb in cbs] == [BLOCK] * 8
        assert [cb.error for cb in cbs] == [0] * 8
        assert all(cb.state is JobState.IDLE for cb in cbs)
        assert b"".join(cb.buf[:] for cb in cbs) == data
        assert sysctl["vfs.aio.num_buf_aio"] == 0
        assert sysctl["vfs.aio.num_queue_count"] == 0
    finally:
        os.close(fd)


async def test_rundown_kernel_writes_land(aio: Env) -> None:
    fd = direct_file(aio, bytes(8 * BLOCK))
    try:
        async with AioContext() as ctx:
            for i in range(8):
                src = aligned(BLOCK)
                src[:] = pattern(BLOCK, i)
                ctx.aio_write(Aiocb(fd, src, offset=i * BLOCK))
        back = aligned(8 * BLOCK)
        os.preadv(fd, [back], 0)
        assert back[:] == b"".join(pattern(BLOCK, i) for i in range(8))
    finally:
        os.close(fd)


# -- a real block device ---------------------------------------------------------


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """A loop device over a 16 MiB file of known bytes; detached afterwards."""
    if os.geteuid() != 0:
        pytest.skip("loop devices need root")
    if shutil.which("losetup") is None:
        pytest.skip("losetup is not installed")
    data = pattern(1 << 20, 21) * 16
    backing = tmp_path / "disk.img"
    backing.write_bytes(data)
    made = subprocess.run(["losetup", "--find", "--show", str(backing)],
                          capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"losetup failed: {made.stderr.strip()}")
    device = made.stdout.strip()
    try:
        yield device, data
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True, timeout=30)


@pytest.mark.root
async def test_blockdev_direct_round_trip(aio: Env, loop_device: tuple[str, bytes]) -> None:
    device, data = loop_device
    fd = os.open(device, os.O_RDWR | os.O_DIRECT)
    try:
        async with AioContext() as ctx:
            buf = aligned(4 * BLOCK)
            read = Aiocb(fd, buf, offset=1 << 20)
            ctx.aio_read(read)
            assert read.state is JobState.KERNEL
            assert ctx.statistics().buffer_jobs == 1
            assert sysctl["vfs.aio.num_buf_aio"] >= 1
            assert await read == 4 * BLOCK
            assert buf[:] == data[1 << 20:(1 << 20) + 4 * BLOCK]
            src = aligned(2 * BLOCK)
            src[:] = pattern(2 * BLOCK, 99)
            write = Aiocb(fd, src, offset=512)  # a multiple of the 512-byte sector
            ctx.aio_write(write)
            assert write.state is JobState.KERNEL
            assert await write == 2 * BLOCK
            assert sysctl["vfs.aio.num_buf_aio"] == 0
        back = aligned(3 * BLOCK)
        assert os.preadv(fd, [back], 0) == 3 * BLOCK
        assert back[:512] == data[:512]
        assert back[512:512 + 2 * BLOCK] == pattern(2 * BLOCK, 99)
        assert back[512 + 2 * BLOCK:] == data[512 + 2 * BLOCK:3 * BLOCK]
    finally:
        os.close(fd)


@pytest.mark.root
async def test_blockdev_buffered_round_trip(aio: Env, loop_device: tuple[str, bytes]) -> None:
    device, data = loop_device
    fd = os.open(device, os.O_RDWR)
    try:
        async with AioContext() as ctx:
            src = aligned(BLOCK)
            src[:] = pattern(BLOCK, 77)
            write = Aiocb(fd, src, offset=3 * BLOCK)
            ctx.aio_write(write)
            if not aio.inline:  # an inline variant may finish it in the page cache
                assert write.state is JobState.KERNEL
                assert ctx.statistics().buffer_jobs == 1
            assert await write == BLOCK
            buf = aligned(4 * BLOCK)
            read = Aiocb(fd, buf, offset=2 * BLOCK)
            ctx.aio_read(read)
            assert await read == 4 * BLOCK
            assert buf[:] == (data[2 * BLOCK:3 * BLOCK] + pattern(BLOCK, 77)
                              + data[4 * BLOCK:6 * BLOCK])
            sync = Aiocb(fd)
            ctx.aio_fsync(os.O_SYNC, sync)
            assert await sync == 0
        direct = os.open(device, os.O_RDONLY | os.O_DIRECT)
        try:
            back = aligned(BLOCK)
            os.preadv(direct, [back], 3 * BLOCK)
            assert back[:] == pattern(BLOCK, 77)
        finally:
            os.close(direct)
    finally:
        os.close(fd)


@pytest.mark.root
@pytest.mark.parametrize("flags", [os.O_DIRECT, 0], ids=["direct", "buffered"])
async def test_blockdev_past_max_buf_goes_to_the_daemons(
        aio: Env, loop_device: tuple[str, bytes], flags: int) -> None:
    device, data = loop_device
    fd = os.open(device, os.O_RDWR | flags)
    try:
        async with AioContext(max_buf=2) as ctx:
            cbs = [Aiocb(fd, aligned(BLOCK), offset=i * BLOCK) for i in range(3)]
            for cb in cbs:
                ctx.aio_read(cb)
            assert ctx.statistics().buffer_jobs <= 2
            assert [await cb for cb in cbs] == [BLOCK] * 3
            assert b"".join(cb.buf[:] for cb in cbs) == data[:3 * BLOCK]
    finally:
        os.close(fd)


@pytest.mark.root
async def test_blockdev_aio_cancel_notcanceled_direct(aio: Env,
                                                      loop_device: tuple[str, bytes]) -> None:
    await cancel_on_blockdev_is_notcanceled(loop_device, os.O_DIRECT)


@pytest.mark.root
@pytest.mark.backends("pool", "io_uring")  # inline variants may serve the read from the cache
async def test_blockdev_aio_cancel_notcanceled_buffered(aio: Env,
                                                        loop_device: tuple[str, bytes]) -> None:
    assert not aio.inline
    await cancel_on_blockdev_is_notcanceled(loop_device, 0)


async def cancel_on_blockdev_is_notcanceled(loop_device: tuple[str, bytes], flags: int) -> None:
    """A read of the block device is a kernel job: aio_cancel says AIO_NOTCANCELED
    and the read finishes in full."""
    device, data = loop_device
    fd = os.open(device, os.O_RDWR | flags)
    try:
        async with AioContext() as ctx:
            buf = aligned(8 * BLOCK)
            cb = Aiocb(fd, buf, offset=8 * BLOCK)
            ctx.aio_read(cb)
            assert cb.state is JobState.KERNEL
            assert ctx.aio_cancel(fd, cb) == AIO_NOTCANCELED
            assert await cb == 8 * BLOCK
            assert buf[:] == data[8 * BLOCK:16 * BLOCK]
    finally:
        os.close(fd)


# -- subprocesses: syscall counts and a forbidden io_uring -------------------------


def run_child(code: str, env_extra: dict[str, str], *prefix: str,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("AIOPOSIX_BACKEND", None)
    env.pop("AIOPOSIX_NO_IO_URING", None)
    env.update(env_extra)
    return subprocess.run([*prefix, sys.executable, "-W", "default", "-c", code],
                          capture_output=True, text=True, env=env, timeout=50, cwd=cwd)


LIO_SCRIPT = textwrap.dedent("""
    import asyncio, mmap, os, sys
    import aioposix
    from aioposix import LIO_READ, LIO_WAIT, Aiocb, AioContext

    path = sys.argv[1] if len(sys.argv) > 1 else {path!r}
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)

    async def main():
        async with AioContext(max_buf=64) as ctx:
            cbs = [Aiocb(fd, mmap.mmap(-1, 4096), offset=i * 4096, lio_opcode=LIO_READ)
                   for i in range(32)]
            await ctx.lio_listio(LIO_WAIT, cbs)
            assert [ctx.aio_return(cb) for cb in cbs] == [4096] * 32
            assert b"".join(cb.buf[:] for cb in cbs) == open(path, "rb").read()

    if {loop!r} == "uvloop":
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())
    os.close(fd)
    print("ok")
""")


def ring_enters(trace: str) -> list[tuple[int, int]]:
    """(to_submit, result) of each io_uring_enter on aioposix's ring.

    Its ring is the one with an eventfd registered (uvloop's libuv has a ring
    of its own, for epoll_ctl batching, which registers none).
    """
    rings = {int(fd) for fd in re.findall(r"io_uring_register\((\d+), IORING_REGISTER_EVENTFD",
                                          trace)}
    assert len(rings) == 1, trace
    return [(int(n), int(res)) for fd, n, res in
            re.findall(r"io_uring_enter\((\d+), (\d+), .*\) += (-?\d+)", trace)
            if int(fd) in rings]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_lio_listio_batch_is_one_io_uring_enter(tmp_path: Path, loop: str) -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (apt-get install -y strace)")
    path = tmp_path / "batch.bin"
    path.write_bytes(pattern(32 * BLOCK, 23))
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_DIRECT))
    except OSError as exc:
        pytest.skip(f"the tmp file system refuses O_DIRECT: {exc}")
    trace = tmp_path / "strace.txt"
    child = run_child(LIO_SCRIPT.format(path=str(path), loop=loop),
                      {"AIOPOSIX_BACKEND": "io_uring"},
                      "strace", "-f", "-o", str(trace),
                      "-e", "trace=io_uring_enter,io_uring_register")
    if child.returncode != 0 and "PTRACE" in child.stderr.upper():
        pytest.skip(f"strace cannot trace here: {child.stderr.strip()}")
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "ok"
    # 32 reads, one system call that submits all 32
    assert ring_enters(trace.read_text()) == [(32, 32)]


SECCOMP_PRELUDE = textwrap.dedent("""
    import ctypes, errno, struct

    # struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}
    LD_ABS_W, JEQ_K, RET_K = 0x20, 0x15, 0x06
    RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
    AUDIT_ARCH_X86_64 = 0xC000003E
    program = [
        (LD_ABS_W, 0, 0, 4),                    # A = seccomp_data.arch
        (JEQ_K, 1, 0, AUDIT_ARCH_X86_64),       # x86-64? go on : allow
        (RET_K, 0, 0, RET_ALLOW),
        (LD_ABS_W, 0, 0, 0),                    # A = seccomp_data.nr
        (JEQ_K, 0, 1, 425),                     # io_uring_setup? EPERM : allow
        (RET_K, 0, 0, RET_ERRNO | errno.EPERM),
        (RET_K, 0, 0, RET_ALLOW),
    ]
    raw = b"".join(struct.pack("=HBBI", *insn) for insn in program)
    filters = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(program), ctypes.addressof(filters))
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")
    # the filter works: io_uring_setup is now EPERM
    libc.syscall.restype = ctypes.c_long
    params = ctypes.create_string_buffer(120)
    assert libc.syscall(425, 4, params) == -1 and ctypes.get_errno() == errno.EPERM
""")

JOBS_SCRIPT = textwrap.dedent("""
    import asyncio, json, mmap, os, sys
    import aioposix
    from aioposix import Aiocb, AioContext, JobState

    tmp = sys.argv[1] if len(sys.argv) > 1 else {tmp!r}
    report = {{}}

    async def main():
        data = bytes(range(256)) * 64
        path = os.path.join(tmp, "jobs.bin")
        with open(path, "wb") as f:
            f.write(data)
        fd = os.open(path, os.O_RDWR)
        dfd = os.open(path, os.O_RDWR | os.O_DIRECT)
        try:
            async with AioContext(max_buf={max_buf}) as ctx:
                results = []
                w = Aiocb(fd, b"hello", offset=100)
                ctx.aio_write(w)
                results.append(await w)
                r = Aiocb(fd, bytearray(5), offset=100)
                ctx.aio_read(r)
                results.append(await r)
                results.append(bytes(r.buf).decode())
                bufs = [mmap.mmap(-1, 4096) for _ in range(3)]
                cbs = [Aiocb(dfd, b, offset=4096 * i) for i, b in enumerate(bufs)]
                for cb in cbs:  # max_buf=1: the kernel path would refuse the second
                    ctx.aio_read(cb)
                report["direct_states"] = [cb.state.name for cb in cbs]
                report["buffer_jobs"] = ctx.statistics().buffer_jobs
                results.append([await cb for cb in cbs])
                expected = bytearray(data)
                expected[100:105] = b"hello"
                results.append(b"".join(b[:] for b in bufs) == bytes(expected[:3 * 4096]))
                s = Aiocb(fd)
                ctx.aio_fsync(os.O_SYNC, s)
                results.append(await s)
                report["results"] = results
        finally:
            os.close(fd)
            os.close(dfd)

    asyncio.run(main())
    report["io_uring"] = aioposix.sysctl["vfs.aio.io_uring"]
    report["backend_active"] = aioposix.sysctl["vfs.aio.backend_active"]
    print(json.dumps(report))
""")

EXPECTED_RESULTS = [5, 5, "hello", [4096, 4096, 4096], True, 0]


def child_report(child: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert child.returncode == 0, child.stderr
    report: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return report


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "RuntimeWarning" in line]


def test_seccomp_denied_io_uring_falls_back_to_pool(tmp_path: Path) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("the seccomp filter is written for x86-64 syscall numbers")
    code = SECCOMP_PRELUDE + JOBS_SCRIPT.format(tmp=str(tmp_path), max_buf=1)
    child = run_child(code, {"AIOPOSIX_BACKEND": "io_uring"})
    if child.returncode != 0 and "PR_SET_SECCOMP" in child.stderr:
        pytest.skip(f"seccomp filters cannot be installed here: {child.stderr.strip()}")
    report = child_report(child)
    assert report["results"] == EXPECTED_RESULTS
    # the O_DIRECT reads went to the pool: no kernel job, max_buf=1 never refused
    assert report["buffer_jobs"] == 0
    assert not {"KERNEL"} & set(report["direct_states"])
    warned = warning_lines(child.stderr)
    assert len(warned) == 1, child.stderr
    assert "io_uring" in warned[0]
    assert report["io_uring"].startswith("unavailable")
    assert "EPERM" in report["io_uring"]
    assert report["backend_active"] == "threads"


def test_bogus_backend_env_warns_once_and_works(tmp_path: Path) -> None:
    child = run_child(JOBS_SCRIPT.format(tmp=str(tmp_path), max_buf=8),
                      {"AIOPOSIX_BACKEND": "bogus"})
    report = child_report(child)
    assert report["results"] == EXPECTED_RESULTS
    warned = warning_lines(child.stderr)
    assert len(warned) == 1, child.stderr
    assert "AIOPOSIX_BACKEND" in warned[0]
    assert "bogus" in warned[0]
    assert report["backend_active"] in ("threads", "io_uring")
    if report["io_uring"] == "available":
        assert report["backend_active"] == "io_uring"  # "auto" is what remains
        assert report["buffer_jobs"] == 3  # the aligned O_DIRECT reads are kernel jobs
        assert report["direct_states"] == ["KERNEL"] * 3


def test_no_io_uring_env_falls_back_to_pool(tmp_path: Path) -> None:
    child = run_child(JOBS_SCRIPT.format(tmp=str(tmp_path), max_buf=1),
                      {"AIOPOSIX_NO_IO_URING": "1", "AIOPOSIX_BACKEND": "io_uring"})
    report = child_report(child)
    assert report["results"] == EXPECTED_RESULTS
    assert report["buffer_jobs"] == 0
    assert report["io_uring"].startswith("unavailable")
    assert report["backend_active"] == "threads"
    assert len(warning_lines(child.stderr)) == 1, child.stderr


# -- a CQ that overflows ---------------------------------------------------------


@pytest.mark.backends("io_uring")  # every file job on the ring, none inline
@pytest.mark.parametrize("count", [64, 200])
async def test_cq_overflow_is_flushed_and_every_job_completes(aio: Env, count: int) -> None:
    """More completions than the CQ holds before one reap: the kernel keeps the
    rest in its overflow list, and every later CQE too, until asked to move
    them in.  Every job must still complete, with the right bytes."""
    assert aio.slow_path == "io_uring" and not aio.inline
    data = pattern(count * BLOCK, 9)
    path = aio.tmp / "overflow.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    loop = asyncio.get_running_loop()
    # a ring whose CQ holds 16 while 4x that may be in flight: it must overflow
    ring = Ring(loop, entries=16, cq_entries=16, max_inflight=64)
    _loopdata.put(loop, "ring", ring)
    try:
        async with AioContext(max_queued=count, max_active=count) as ctx:
            cbs = [Aiocb(fd, bytearray(BLOCK), BLOCK, i * BLOCK) for i in range(count)]
            for cb in cbs:
                ctx.aio_read(cb)
            results = await asyncio.wait_for(asyncio.gather(*(_wait(cb) for cb in cbs)), 20)
            assert results == [BLOCK] * count
            assert b"".join(cb.buf for cb in cbs) == data
            assert ring.overflows > 0  # the overflow really happened, and was flushed
    finally:
        if _loopdata.get(loop, "ring") is ring:
            _loopdata.drop(loop, "ring")
        ring.close()
        os.close(fd)


async def _wait(cb: Aiocb) -> int:
    return await cb
