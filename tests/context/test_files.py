"""Regular files: docs/contract.md on files (rules 1, 3, 5-10, 13, 15, 18, 19).

Data round trips through every kind of buffer, positional I/O that never
moves the fd offset, O_APPEND order, EOF, every completion style, the
reaping rules, lio_listio and the module-level calls.  Ports of FreeBSD's
tests/sys/aio/aio_test.c keep their names (file_poll, file_suspend, ...,
aio_fsync_sync_test, aio_writev_empty_file_poll).
"""

from __future__ import annotations

import array
import asyncio
import errno
import itertools
import mmap
import os
import random
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from helpers import MakeFile, check_errno, rand

import aioposix
from aioposix import (
    LIO_NOP,
    LIO_NOWAIT,
    LIO_READ,
    LIO_READV,
    LIO_SYNC,
    LIO_WAIT,
    LIO_WRITE,
    LIO_WRITEV,
    SIGEV_SIGNAL,
    SIGEV_THREAD,
    Aiocb,
    AioContext,
    SigEvent,
)

if TYPE_CHECKING:
    from conftest import Env

EINPROGRESS = errno.EINPROGRESS


def free(buf: Any) -> None:
    """Resize or close ``buf``: BufferError if anyone still holds an export of it."""
    if isinstance(buf, bytearray):
        buf.extend(b"!")
    elif isinstance(buf, array.array):
        buf.append(0)
    elif isinstance(buf, mmap.mmap):
        buf.close()
    elif isinstance(buf, memoryview):
        buf.release()


def fill(buf: Any, data: bytes) -> None:
    with memoryview(buf) as view, view.cast("B") as raw:
        raw[:] = data


BUFFER_KINDS = ["bytearray", "memoryview-slice", "array", "mmap"]


def make_buffer(kind: str, n: int) -> Any:
    if kind == "bytearray":
        return bytearray(n)
    if kind == "memoryview-slice":
        return memoryview(bytearray(n + 64))[32:32 + n]
    if kind == "array":
        assert n % 4 == 0
        return array.array("I", [0]) * (n // 4)
    return mmap.mmap(-1, n)


# -- every completion style (FreeBSD's file_* and vectored_file_* tests) -----

STYLES = ["poll", "suspend", "signal", "thread", "waitcomplete", "await"]


async def complete(aio: Env, ctx: AioContext, cb: Aiocb, submit: Callable[[Aiocb], None],
                   style: str) -> int:
    """Submit ``cb`` and wait for it in ``style``; returns its status, reaped."""
    loop = asyncio.get_running_loop()
    if style == "signal":
        seen: list[int] = []
        loop.add_signal_handler(signal.SIGUSR1, lambda: seen.append(ctx.aio_error(cb)))
        try:
            cb.sigevent = SigEvent(SIGEV_SIGNAL, signo=signal.SIGUSR1)
            submit(cb)
            await aio.until(lambda: bool(seen))
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
        assert seen == [0]
        return ctx.aio_return(cb)
    if style == "thread":
        calls: list[tuple[object, int, int]] = []
        cb.sigevent = SigEvent(SIGEV_THREAD, value="token", function=lambda value: calls.append(
            (value, threading.get_ident(), ctx.aio_error(cb))))
        submit(cb)
        await aio.until(lambda: bool(calls))
        assert calls == [("token", threading.get_ident(), 0)]
        return ctx.aio_return(cb)
    submit(cb)
    if style == "poll":
        await aio.until(lambda: ctx.aio_error(cb) != EINPROGRESS)
        assert ctx.aio_error(cb) == 0
        return ctx.aio_return(cb)
    if style == "suspend":
        await ctx.aio_suspend([cb], timeout=10)
        assert ctx.aio_error(cb) == 0
        return ctx.aio_return(cb)
    if style == "waitcomplete":
        got = [done async for done in ctx.aio_waitcomplete(timeout=10)]
        assert len(got) == 1
        assert got[0] is cb
        return cb.status
    return await cb


@pytest.mark.parametrize("vectored", [False, True], ids=["file", "vectored_file"])
@pytest.mark.parametrize("style", STYLES)
async def test_file(aio: Env, new_file: MakeFile, style: str, vectored: bool) -> None:
    """FreeBSD's file_<style>/vectored_file_<style>: write random data, read it back."""
    data = rand(3 * 4096 + 123, seed=1)
    fd = new_file()
    cuts = [0, 100, 4096, 9000, len(data)]
    async with AioContext() as ctx:
        if vectored:
            w = Aiocb(fd, iov=[data[a:b] for a, b in itertools.pairwise(cuts)])
            assert await complete(aio, ctx, w, ctx.aio_writev, style) == len(data)
            bufs = [bytearray(b - a) for a, b in itertools.pairwise(cuts)]
            r = Aiocb(fd, iov=bufs)
            assert await complete(aio, ctx, r, ctx.aio_readv, style) == len(data)
            assert b"".join(bufs) == data
        else:
            w = Aiocb(fd, data)
            assert await complete(aio, ctx, w, ctx.aio_write, style) == len(data)
            r = Aiocb(fd, bytearray(len(data)))
            assert await complete(aio, ctx, r, ctx.aio_read, style) == len(data)
            assert r.buf == data
        assert (w.error, r.error) == (0, 0)
    assert os.pread(fd, 2 * len(data), 0) == data


# -- buffers ------------------------------------------------------------------

@pytest.mark.parametrize("kind", [*BUFFER_KINDS, "bytes"])
async def test_write_from_every_buffer_kind(aio: Env, new_file: MakeFile, kind: str) -> None:
    data = rand(8192, seed=2)
    fd = new_file()
    buf = data if kind == "bytes" else make_buffer(kind, len(data))
    if kind != "bytes":
        fill(buf, data)
    async with AioContext() as ctx:
        cb = Aiocb(fd, buf, offset=5)
        assert cb.nbytes == len(data)
        ctx.aio_write(cb)
        assert await cb == len(data)
    assert os.pread(fd, 3 * len(data), 0) == bytes(5) + data
    free(buf)  # the library holds no export once the job is reaped


@pytest.mark.parametrize("kind", BUFFER_KINDS)
async def test_read_into_every_buffer_kind(aio: Env, new_file: MakeFile, kind: str) -> None:
    data = rand(8192, seed=3)
    fd = new_file(b"x" * 7 + data)
    buf = make_buffer(kind, len(data))
    async with AioContext() as ctx:
        cb = Aiocb(fd, buf, offset=7)
        ctx.aio_read(cb)
        assert await cb == len(data)
    assert bytes(buf) == data
    free(buf)


async def test_writev_gathers_out_of_order_buffers(aio: Env, new_file: MakeFile) -> None:
    src = bytearray(rand(300, seed=4))
    whole = memoryview(src)
    arr = array.array("B", b"0123456789")
    mm = mmap.mmap(-1, 16)
    mm[:] = b"M" * 16
    slices = [whole[200:300], whole[0:100], whole[100:200]]
    iov = [slices[0], b"head", slices[1], arr, mm, slices[2]]
    fd = new_file()
    async with AioContext() as ctx:
        cb = Aiocb(fd, offset=7, iov=iov)
        ctx.aio_writev(cb)
        n = await cb
    expected = src[200:300] + b"head" + src[:100] + b"0123456789" + b"M" * 16 + src[100:200]
    assert n == len(expected)
    assert os.pread(fd, 1000, 7) == expected
    for part in (*slices, whole):
        part.release()  # BufferError if the library still held an export of it
    mm.close()
    arr.append(0)


async def test_readv_scatters_into_out_of_order_buffers(aio: Env, new_file: MakeFile) -> None:
    data = rand(300, seed=5)
    fd = new_file(b"..." + data)
    dst = bytearray(300)
    view = memoryview(dst)
    arr = array.array("H", [0]) * 25  # 50 bytes
    mm = mmap.mmap(-1, 20)
    async with AioContext() as ctx:
        cb = Aiocb(fd, offset=3, iov=[view[150:280], arr, mm, view[0:100]])
        ctx.aio_readv(cb)
        assert await cb == 300
    assert dst[150:280] == data[:130]
    assert arr.tobytes() == data[130:180]
    assert mm[:] == data[180:200]
    assert dst[0:100] == data[200:300]
    assert dst[100:150] == bytes(50) and dst[280:] == bytes(20)
    view.release()
    mm.close()
    arr.append(1)


async def test_readv_straddling_eof_is_short(aio: Env, new_file: MakeFile) -> None:
    data = rand(100, seed=6)
    fd = new_file(data)
    first, second = bytearray(60), bytearray(60)
    async with AioContext() as ctx:
        cb = Aiocb(fd, iov=[first, second])
        ctx.aio_readv(cb)
        assert await cb == 100
    assert first == data[:60]
    assert second[:40] == data[60:] and second[40:] == bytes(20)


async def test_aio_writev_empty_file_poll(aio: Env, new_file: MakeFile) -> None:
    """FreeBSD's aio_writev_empty_file_poll: an empty iov completes with 0."""
    fd = new_file()
    async with AioContext() as ctx:
        cb = Aiocb(fd, iov=[])
        ctx.aio_writev(cb)
        await aio.until(lambda: ctx.aio_error(cb) != EINPROGRESS)
        assert ctx.aio_error(cb) == 0
        assert ctx.aio_return(cb) == 0
    assert os.fstat(fd).st_size == 0


async def test_large_round_trip_at_unaligned_offset(aio: Env, new_file: MakeFile) -> None:
    data = rand((4 << 20) + 1, seed=7)
    fd = new_file()
    async with AioContext() as ctx:
        w = Aiocb(fd, data, offset=3)
        ctx.aio_write(w)
        assert await w == len(data)
        r = Aiocb(fd, bytearray(len(data)), offset=3)
        ctx.aio_read(r)
        assert await r == len(data)
    assert r.buf == data


async def test_many_jobs_in_flight_at_distinct_offsets(aio: Env, new_file: MakeFile) -> None:
    blocks = [rand(4096, seed=100 + i) for i in range(64)]
    order = list(range(64))
    random.Random(8).shuffle(order)
    fd = new_file()
    async with AioContext(max_active=2) as ctx:
        writes = [Aiocb(fd, blocks[i], offset=i * 4096) for i in order]
        for cb in writes:
            ctx.aio_write(cb)
        assert [await cb for cb in writes] == [4096] * 64
        reads = [Aiocb(fd, bytearray(4096), offset=i * 4096) for i in range(64)]
        for cb in reads:
            ctx.aio_read(cb)
        assert [await cb for cb in reads] == [4096] * 64
    assert [bytes(cb.buf) for cb in reads] == blocks


# -- positions, O_APPEND, EOF ------------------------------------------------------

async def test_fd_offset_never_moves(aio: Env, new_file: MakeFile) -> None:
    original = rand(1000, seed=9)
    fd = new_file(original)
    os.lseek(fd, 17, os.SEEK_SET)
    async with AioContext() as ctx:
        jobs = [
            (ctx.aio_write, Aiocb(fd, b"w" * 50, offset=500)),
            (ctx.aio_read, Aiocb(fd, bytearray(100), offset=0)),
            (ctx.aio_writev, Aiocb(fd, offset=800, iov=[b"ab", bytearray(b"cd")])),
            (ctx.aio_readv, Aiocb(fd, offset=900, iov=[bytearray(10), bytearray(10)])),
        ]
        for submit, cb in jobs:
            submit(cb)
        sync = Aiocb(fd)
        ctx.aio_fsync(os.O_SYNC, sync)
        assert [await cb for _, cb in jobs] == [50, 100, 4, 20]
        assert await sync == 0
    assert await aioposix.pwrite(fd, b"xyz", 950) == 3
    assert await aioposix.pread(fd, 3, 950) == b"xyz"
    assert os.lseek(fd, 0, os.SEEK_CUR) == 17
    assert os.read(fd, 3) == original[17:20]


@pytest.mark.parametrize("behind_fsync", [False, True], ids=["plain", "behind_fsync"])
async def test_o_append_writes_land_in_submission_order(aio: Env, new_file: MakeFile,
                                                        behind_fsync: bool) -> None:
    fd = new_file(b"start:", os.O_RDWR | os.O_APPEND)
    payloads = [bytes([65 + i % 26]) * (1 + (i * 37) % 300) for i in range(64)]
    async with AioContext() as ctx:
        sync = Aiocb(fd)
        if behind_fsync:
            ctx.aio_fsync(os.O_SYNC, sync)
        cbs = [Aiocb(fd, p, offset=0) for p in payloads]  # the offset is ignored by O_APPEND
        for cb in cbs:
            ctx.aio_write(cb)
        results = [await cb for cb in cbs]
        if behind_fsync:
            assert await sync == 0
    assert results == [len(p) for p in payloads]
    assert os.pread(fd, 1 << 20, 0) == b"start:" + b"".join(payloads)


async def test_read_past_eof_returns_zero(aio: Env, new_file: MakeFile) -> None:
    fd = new_file(b"x" * 100)
    async with AioContext() as ctx:
        at_eof = Aiocb(fd, bytearray(b"?" * 10), offset=100)
        past = Aiocb(fd, bytearray(b"?" * 10), offset=5000)
        ctx.aio_read(at_eof)
        ctx.aio_read(past)
        assert await at_eof == 0
        assert await past == 0
    assert at_eof.buf == past.buf == b"?" * 10


async def test_read_straddling_eof_is_short(aio: Env, new_file: MakeFile) -> None:
    data = rand(100, seed=10)
    fd = new_file(data)
    async with AioContext() as ctx:
        cb = Aiocb(fd, bytearray(b"?" * 50), offset=80)
        ctx.aio_read(cb)
        assert await cb == 20
    assert cb.buf == data[80:] + b"?" * 30


# -- buf and nbytes ----------------------------------------------------------------

async def test_read_without_buffer_allocates_bytearray(aio: Env, new_file: MakeFile) -> None:
    data = rand(64, seed=11)
    fd = new_file(data)
    async with AioContext() as ctx:
        cb = Aiocb(fd, None, 16, offset=4)
        ctx.aio_read(cb)
        assert await cb == 16
        tail = Aiocb(fd, None, 100, offset=50)
        ctx.aio_read(tail)
        assert await tail == 14
    assert type(cb.buf) is bytearray and cb.buf == data[4:20]
    assert type(tail.buf) is bytearray and len(tail.buf) == 100
    assert tail.buf[:14] == data[50:]


def test_nbytes_defaults_to_len_buf() -> None:
    assert Aiocb(0, b"hello").nbytes == 5
    assert Aiocb(0, bytearray(7)).nbytes == 7
    assert Aiocb(0, array.array("d", [1.0, 2.0])).nbytes == 16
    assert Aiocb(0, memoryview(bytearray(10))[2:7]).nbytes == 5
    assert Aiocb(0, b"hello", 2).nbytes == 2


async def test_nbytes_smaller_than_buf_moves_a_prefix(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    async with AioContext() as ctx:
        w = Aiocb(fd, b"abcdef", 3)
        ctx.aio_write(w)
        assert await w == 3
        r = Aiocb(fd, bytearray(b"......"), 2)
        ctx.aio_read(r)
        assert await r == 2
    assert os.pread(fd, 100, 0) == b"abc"
    assert r.buf == b"ab...."


# -- aio_fsync (FreeBSD's aio_fsync_sync_test / aio_fsync_dsync_test) ----------------

async def aio_fsync_test(fd: int, op: int) -> None:
    blksize = os.fstat(fd).st_blksize
    os.ftruncate(fd, blksize * 16)
    buffers = [rand(blksize, seed=200 + i) for i in range(16)]
    async with AioContext() as ctx:
        writes = [Aiocb(fd, buf, blksize, blksize * i) for i, buf in enumerate(buffers)]
        for cb in writes:
            ctx.aio_write(cb)
        sync = Aiocb(fd)
        ctx.aio_fsync(op, sync)
        done = [cb async for cb in ctx.aio_waitcomplete(timeout=30)]
    assert len(done) == 17
    assert done[-1] is sync, "the fsync completed before a write submitted earlier"
    assert (sync.status, sync.error) == (0, 0)
    assert set(done[:-1]) == set(writes)
    assert [cb.status for cb in writes] == [blksize] * 16
    assert os.pread(fd, blksize * 17, 0) == b"".join(buffers)


async def test_aio_fsync_sync_test(aio: Env, new_file: MakeFile) -> None:
    await aio_fsync_test(new_file(), os.O_SYNC)


async def test_aio_fsync_dsync_test(aio: Env, new_file: MakeFile) -> None:
    await aio_fsync_test(new_file(), os.O_DSYNC)


# -- aio_suspend ----------------------------------------------------------------------

async def test_aio_suspend_timeout_polls_eagain(aio: Env, new_file: MakeFile,
                                                pipe: tuple[int, int]) -> None:
    r, w = pipe
    fd = new_file()
    async with AioContext() as ctx:
        slow = Aiocb(r, bytearray(4))
        ctx.aio_read(slow)
        with pytest.raises(BlockingIOError) as info:
            await ctx.aio_suspend([slow], timeout=0)
        check_errno(info, errno.EAGAIN)
        with pytest.raises(BlockingIOError):
            await ctx.aio_suspend([slow, None], timeout=0.05)
        fast = Aiocb(fd, b"abc")
        ctx.aio_write(fast)
        await ctx.aio_suspend([slow, None, fast], timeout=10)
        assert ctx.aio_error(fast) == 0
        assert ctx.aio_error(slow) == EINPROGRESS
        assert ctx.aio_return(fast) == 3
        os.write(w, b"ping")
        await ctx.aio_suspend([None, slow], timeout=10)
        assert ctx.aio_return(slow) == 4
    assert slow.buf == b"ping"


async def test_aio_suspend_returns_at_once_if_no_cb_is_known(aio: Env, new_file: MakeFile,
                                                             pipe: tuple[int, int]) -> None:
    r, w = pipe
    fd = new_file(b"data")
    async with AioContext() as ctx, AioContext() as other:
        busy = Aiocb(r, bytearray(1))
        ctx.aio_read(busy)  # the context has work in flight, but none of the listed cbs
        foreign = Aiocb(fd, bytearray(4))
        other.aio_read(foreign)
        reaped = Aiocb(fd, bytearray(4))
        ctx.aio_read(reaped)
        assert await reaped == 4
        await ctx.aio_suspend([Aiocb(fd, bytearray(1)), None, foreign, reaped], timeout=0)
        await ctx.aio_suspend([], timeout=0)
        assert ctx.aio_error(busy) == EINPROGRESS
        assert await foreign == 4
        os.write(w, b"!")
        assert await busy == 1


# -- notifications ----------------------------------------------------------------

async def test_notifications_never_run_inside_submit(aio: Env, new_file: MakeFile) -> None:
    fd = new_file(b"abcdef")
    inside = [False]
    seen: list[tuple[object, bool]] = []

    def note(value: object) -> None:
        seen.append((value, inside[0]))

    def sev(value: str) -> SigEvent:
        return SigEvent(SIGEV_THREAD, value=value, function=note)

    async with AioContext() as ctx:
        read = Aiocb(fd, bytearray(3), sigevent=sev("read"))
        listed = Aiocb(fd, bytearray(3), 3, 3, lio_opcode=LIO_READ, sigevent=sev("entry"))
        inside[0] = True
        ctx.aio_read(read)
        await ctx.lio_listio(LIO_NOWAIT, [listed], sev("list"))
        inside[0] = False
        await aio.until(lambda: len(seen) == 3)
        assert ctx.aio_return(read) == 3
        assert ctx.aio_return(listed) == 3
    assert sorted(seen, key=str) == sorted([("read", False), ("entry", False),
                                            ("list", False)], key=str)
    assert (read.buf, listed.buf) == (b"abc", b"def")


# -- aio_waitcomplete ---------------------------------------------------------------

async def test_aio_waitcomplete_yields_in_completion_order(aio: Env, new_file: MakeFile,
                                                           pipe: tuple[int, int]) -> None:
    r, w = pipe
    fd = new_file()
    async with AioContext() as ctx:
        first_submitted = Aiocb(r, bytearray(8))
        ctx.aio_read(first_submitted)
        file_job = Aiocb(fd, b"hello")
        ctx.aio_write(file_job)
        order = []
        async for cb in ctx.aio_waitcomplete(timeout=10):
            order.append(cb)
            with pytest.raises(OSError) as info:
                ctx.aio_error(cb)  # already reaped
            check_errno(info, errno.EINVAL)
            if cb is file_job:
                os.write(w, b"later")
    assert order == [file_job, first_submitted]
    assert (file_job.status, file_job.error) == (5, 0)
    assert (first_submitted.status, first_submitted.error) == (5, 0)
    assert first_submitted.buf[:5] == b"later"


async def test_aio_waitcomplete_ends_when_nothing_is_in_flight(aio: Env,
                                                               new_file: MakeFile) -> None:
    fd = new_file(b"abc")
    async with AioContext() as ctx:
        assert [cb async for cb in ctx.aio_waitcomplete(timeout=0)] == []
        cb = Aiocb(fd, bytearray(3))
        ctx.aio_read(cb)
        assert await cb == 3
        assert [cb async for cb in ctx.aio_waitcomplete(timeout=0)] == []


async def test_aio_waitcomplete_timeout_raises_eagain(aio: Env, pipe: tuple[int, int]) -> None:
    r, w = pipe
    async with AioContext() as ctx:
        cb = Aiocb(r, bytearray(4))
        ctx.aio_read(cb)
        with pytest.raises(BlockingIOError) as info:
            async for _ in ctx.aio_waitcomplete(timeout=0.05):
                pytest.fail("nothing completed")
        check_errno(info, errno.EAGAIN)
        assert ctx.aio_error(cb) == EINPROGRESS
        os.write(w, b"done")
        assert [done async for done in ctx.aio_waitcomplete(timeout=10)] == [cb]
    assert cb.status == 4


async def test_aio_waitcomplete_yields_failed_jobs(aio: Env, new_file: MakeFile) -> None:
    directory = os.open(aio.tmp, os.O_RDONLY)
    fd = new_file(b"ok")
    try:
        async with AioContext() as ctx:
            bad = Aiocb(directory, bytearray(16))
            good = Aiocb(fd, bytearray(2))
            ctx.aio_read(bad)
            ctx.aio_read(good)
            done = [cb async for cb in ctx.aio_waitcomplete(timeout=10)]
    finally:
        os.close(directory)
    assert set(done) == {bad, good} and len(done) == 2
    assert (bad.status, bad.error) == (-1, errno.EISDIR)
    assert (good.status, good.error) == (2, 0)


# -- reaping -------------------------------------------------------------------------

async def test_await_failed_job_raises_its_errno(aio: Env) -> None:
    directory = os.open(aio.tmp, os.O_RDONLY)
    try:
        async with AioContext() as ctx:
            cb = Aiocb(directory, bytearray(16))
            ctx.aio_read(cb)
            with pytest.raises(OSError) as info:
                await cb
            check_errno(info, errno.EISDIR)
            assert (cb.status, cb.error) == (-1, errno.EISDIR)
            assert ctx.statistics().done == 0
    finally:
        os.close(directory)


async def test_aio_return_twice_einval(aio: Env, new_file: MakeFile) -> None:
    fd = new_file(b"abc")
    async with AioContext() as ctx:
        cb = Aiocb(fd, bytearray(3))
        ctx.aio_read(cb)
        await ctx.aio_suspend([cb], timeout=10)
        assert ctx.aio_return(cb) == 3
        with pytest.raises(OSError) as info:
            ctx.aio_return(cb)
        check_errno(info, errno.EINVAL)
        awaited = Aiocb(fd, bytearray(3))
        ctx.aio_read(awaited)
        assert await awaited == 3
        with pytest.raises(OSError) as info:
            ctx.aio_return(awaited)
        check_errno(info, errno.EINVAL)
    assert cb.status == 3


async def test_unknown_cb_einval(aio: Env, new_file: MakeFile, pipe: tuple[int, int]) -> None:
    r, w = pipe
    fd = new_file(b"abc")
    async with AioContext() as ctx:
        never = Aiocb(fd, bytearray(3))
        for call in (ctx.aio_error, ctx.aio_return):
            with pytest.raises(OSError) as info:
                call(never)
            check_errno(info, errno.EINVAL)
        pending = Aiocb(r, bytearray(3))
        ctx.aio_read(pending)
        with pytest.raises(OSError) as info:
            ctx.aio_return(pending)  # not done yet
        check_errno(info, errno.EINVAL)
        assert ctx.aio_error(pending) == EINPROGRESS
        os.write(w, b"xyz")
        assert await pending == 3
        with pytest.raises(OSError) as info:
            ctx.aio_error(pending)  # reaped
        check_errno(info, errno.EINVAL)
    assert pending.buf == b"xyz"


async def test_lookups_with_cb_of_another_context_einval(aio: Env, new_file: MakeFile) -> None:
    fd = new_file(b"abc")
    async with AioContext() as ctx, AioContext() as other:
        cb = Aiocb(fd, bytearray(3))
        other.aio_read(cb)
        await other.aio_suspend([cb], timeout=10)
        for call in (ctx.aio_error, ctx.aio_return):
            with pytest.raises(OSError) as info:
                call(cb)
            check_errno(info, errno.EINVAL)
        assert other.aio_error(cb) == 0
        assert other.aio_return(cb) == 3


async def test_error_and_status_attributes(aio: Env, pipe: tuple[int, int]) -> None:
    r, w = pipe
    cb = Aiocb(r, bytearray(5))
    assert cb.status == -1
    async with AioContext() as ctx:
        ctx.aio_read(cb)
        assert (cb.error, cb.status) == (EINPROGRESS, -1)
        os.write(w, b"hello")
        await ctx.aio_suspend([cb], timeout=10)
        assert (cb.error, cb.status) == (0, 5)
        assert ctx.aio_return(cb) == 5
    assert (cb.error, cb.status) == (0, 5)


async def test_cb_can_be_reused_after_reaping(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    async with AioContext() as ctx:
        cb = Aiocb(fd, b"first", offset=0)
        ctx.aio_write(cb)
        assert await cb == 5
        cb.buf, cb.nbytes, cb.offset = b"second", 6, 10
        ctx.aio_write(cb)
        await ctx.aio_suspend([cb], timeout=10)
        assert ctx.aio_return(cb) == 6
        cb.buf, cb.nbytes, cb.offset = bytearray(16), 16, 0
        ctx.aio_read(cb)
        assert [done async for done in ctx.aio_waitcomplete(timeout=10)] == [cb]
        assert cb.status == 16
    assert cb.buf == b"first" + bytes(5) + b"second"


async def test_resubmitting_a_cb_in_flight_einval(aio: Env, new_file: MakeFile,
                                                  pipe: tuple[int, int]) -> None:
    r, w = pipe
    fd = new_file()
    async with AioContext() as ctx:
        cb = Aiocb(fd, b"original", offset=0)
        ctx.aio_write(cb)
        cb.buf, cb.nbytes, cb.offset = b"REPLACED", 8, 100
        for again in (ctx.aio_write, ctx.aio_read):
            with pytest.raises(OSError) as info:
                again(cb)
            check_errno(info, errno.EINVAL)
        assert ctx.aio_error(cb) in (EINPROGRESS, 0)
        assert await cb == 8
        parked = Aiocb(r, bytearray(4), lio_opcode=LIO_READ)
        ctx.aio_read(parked)
        with pytest.raises(OSError) as info:
            ctx.aio_read(parked)
        check_errno(info, errno.EINVAL)
        with pytest.raises(OSError) as info:
            await ctx.lio_listio(LIO_WAIT, [parked])  # refused entry: EIO, job untouched
        check_errno(info, errno.EIO)
        assert ctx.aio_error(parked) == EINPROGRESS
        os.write(w, b"data")
        assert await parked == 4
    assert os.pread(fd, 1000, 0) == b"original"
    assert parked.buf == b"data"


async def test_statistics_counts(aio: Env, new_file: MakeFile, pipe: tuple[int, int]) -> None:
    r, w = pipe
    fd = new_file(b"abc")
    async with AioContext(max_active=3, max_queued=50, max_buf=4) as ctx:
        stats = ctx.statistics()
        assert (stats.max_active, stats.max_queued, stats.max_buf) == (3, 50, 4)
        assert (stats.queued, stats.active, stats.done, stats.parked) == (0, 0, 0, 0)
        parked = Aiocb(r, bytearray(1))
        ctx.aio_read(parked)
        file_job = Aiocb(fd, bytearray(3))
        ctx.aio_read(file_job)
        await ctx.aio_suspend([file_job], timeout=10)
        stats = ctx.statistics()
        assert (stats.queued, stats.active, stats.done, stats.parked) == (0, 0, 1, 1)
        assert ctx.aio_return(file_job) == 3
        assert ctx.statistics().done == 0
        os.write(w, b"x")
        await ctx.aio_suspend([parked], timeout=10)
        stats = ctx.statistics()
        assert (stats.queued, stats.active, stats.done, stats.parked) == (0, 0, 1, 0)
        assert ctx.aio_return(parked) == 1
        stats = ctx.statistics()
        assert (stats.queued, stats.active, stats.done, stats.parked) == (0, 0, 0, 0)


async def test_buffer_can_be_resized_once_reaped(aio: Env, new_file: MakeFile) -> None:
    fd = new_file(rand(64, seed=12))
    directory = os.open(aio.tmp, os.O_RDONLY)
    bufs = [bytearray(16) for _ in range(4)]
    try:
        async with AioContext() as ctx:
            by_await, by_return, by_waitcomplete = (Aiocb(fd, b) for b in bufs[:3])
            failed = Aiocb(directory, bufs[3])
            for cb in (by_await, by_return, by_waitcomplete, failed):
                ctx.aio_read(cb)
            assert await by_await == 16
            await ctx.aio_suspend([by_return], timeout=10)
            assert ctx.aio_return(by_return) == 16
            rest = [cb async for cb in ctx.aio_waitcomplete(timeout=10)]
            assert set(rest) == {by_waitcomplete, failed}
    finally:
        os.close(directory)
    for buf in bufs:
        buf.extend(b"more")  # BufferError if the library still held an export
        assert len(buf) == 20


# -- lio_listio -------------------------------------------------------------------

async def test_lio_listio_wait_round_trip(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    blocks = [rand(1000, seed=300 + i) for i in range(4)]
    async with AioContext() as ctx:
        writes = [Aiocb(fd, b, offset=i * 1000, lio_opcode=LIO_WRITE)
                  for i, b in enumerate(blocks[:3])]
        writes.append(Aiocb(fd, offset=3000, lio_opcode=LIO_WRITEV,
                            iov=[blocks[3][:400], blocks[3][400:]]))
        await ctx.lio_listio(LIO_WAIT, writes)
        assert [ctx.aio_error(cb) for cb in writes] == [0] * 4
        assert [ctx.aio_return(cb) for cb in writes] == [1000] * 4
        reads = [Aiocb(fd, bytearray(1000), offset=i * 1000, lio_opcode=LIO_READ)
                 for i in range(3)]
        vec = [bytearray(500), bytearray(500)]
        reads.append(Aiocb(fd, offset=3000, lio_opcode=LIO_READV, iov=vec))
        reads.append(Aiocb(fd, lio_opcode=LIO_SYNC))
        await ctx.lio_listio(LIO_WAIT, [None, *reads])
        assert [ctx.aio_return(cb) for cb in reads] == [1000] * 4 + [0]
    assert [bytes(cb.buf) for cb in reads[:3]] == blocks[:3]
    assert b"".join(vec) == blocks[3]


async def test_lio_listio_nowait_notifies_once_when_all_are_done(aio: Env,
                                                                 new_file: MakeFile) -> None:
    fd = new_file(rand(4096, seed=13))
    fired: list[tuple[object, list[int]]] = []
    async with AioContext() as ctx:
        cbs = [Aiocb(fd, bytearray(1024), offset=i * 1024, lio_opcode=LIO_READ)
               for i in range(4)]
        sev = SigEvent(SIGEV_THREAD, value="batch",
                       function=lambda v: fired.append((v, [cb.error for cb in cbs])))
        await ctx.lio_listio(LIO_NOWAIT, cbs, sev)
        await aio.until(lambda: bool(fired))
        assert [ctx.aio_return(cb) for cb in cbs] == [1024] * 4
        # one more batch through the loop: the first must not fire again
        later: list[object] = []
        await ctx.lio_listio(LIO_NOWAIT, [], SigEvent(SIGEV_THREAD, value="later",
                                                       function=later.append))
        await aio.until(lambda: bool(later))
    assert fired == [("batch", [0, 0, 0, 0])]
    assert later == ["later"]


async def test_lio_listio_nowait_sigev_signal(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    loop = asyncio.get_running_loop()
    seen: list[list[int]] = []
    async with AioContext() as ctx:
        cbs = [Aiocb(fd, b"%d" % i, offset=i, lio_opcode=LIO_WRITE) for i in range(8)]
        loop.add_signal_handler(signal.SIGUSR2, lambda: seen.append([cb.error for cb in cbs]))
        try:
            await ctx.lio_listio(LIO_NOWAIT, cbs, SigEvent(SIGEV_SIGNAL, signo=signal.SIGUSR2))
            await aio.until(lambda: bool(seen))
        finally:
            loop.remove_signal_handler(signal.SIGUSR2)
        assert seen[0] == [0] * 8
        assert [ctx.aio_return(cb) for cb in cbs] == [1] * 8
    assert os.pread(fd, 100, 0) == b"01234567"


async def test_lio_listio_empty_list_notifies(aio: Env) -> None:
    fired: list[object] = []
    async with AioContext() as ctx:
        await ctx.lio_listio(LIO_WAIT, [])
        await ctx.lio_listio(LIO_NOWAIT, [], SigEvent(SIGEV_THREAD, value="empty",
                                                       function=fired.append))
        await aio.until(lambda: bool(fired))
        await ctx.lio_listio(LIO_NOWAIT, [None, None], SigEvent(SIGEV_THREAD, value="nones",
                                                                 function=fired.append))
        await aio.until(lambda: len(fired) == 2)
    assert fired == ["empty", "nones"]


async def test_lio_nop_entries_are_skipped(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    async with AioContext() as ctx:
        nop = Aiocb(fd, b"NOP!", offset=0, lio_opcode=LIO_NOP)
        write = Aiocb(fd, b"data", offset=4, lio_opcode=LIO_WRITE)
        await ctx.lio_listio(LIO_WAIT, [nop, write, nop])
        assert ctx.aio_return(write) == 4
        with pytest.raises(OSError) as info:
            ctx.aio_error(nop)  # never queued
        check_errno(info, errno.EINVAL)
        assert ctx.statistics().done == 0
    assert os.pread(fd, 100, 0) == bytes(4) + b"data"


async def test_lio_listio_wait_entry_failure_eio_after_all_done(aio: Env,
                                                                new_file: MakeFile) -> None:
    fd = new_file()
    directory = os.open(aio.tmp, os.O_RDONLY)
    try:
        async with AioContext() as ctx:
            good = [Aiocb(fd, b"x" * 100, offset=i * 100, lio_opcode=LIO_WRITE)
                    for i in range(3)]
            bad = Aiocb(directory, bytearray(10), lio_opcode=LIO_READ)
            with pytest.raises(OSError) as info:
                await ctx.lio_listio(LIO_WAIT, [good[0], bad, *good[1:]])
            check_errno(info, errno.EIO)
            assert [ctx.aio_error(cb) for cb in good] == [0, 0, 0]
            assert ctx.aio_error(bad) == errno.EISDIR
            assert ctx.aio_return(bad) == -1
            assert [ctx.aio_return(cb) for cb in good] == [100] * 3
    finally:
        os.close(directory)
    assert os.pread(fd, 1000, 0) == b"x" * 300


async def test_lio_listio_wait_refused_entry_eio(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    closed = os.dup(fd)
    os.close(closed)
    async with AioContext() as ctx:
        good = Aiocb(fd, b"kept", lio_opcode=LIO_WRITE)
        refused = Aiocb(closed, b"lost", lio_opcode=LIO_WRITE)
        with pytest.raises(OSError) as info:
            await ctx.lio_listio(LIO_WAIT, [refused, good])
        check_errno(info, errno.EIO)
        assert (refused.error, refused.status) == (errno.EBADF, -1)
        assert ctx.aio_error(good) == 0
        assert ctx.aio_return(good) == 4
    assert os.pread(fd, 100, 0) == b"kept"


async def test_aio_read_and_write_ignore_lio_opcode(aio: Env, new_file: MakeFile) -> None:
    fd = new_file(b"abc")
    async with AioContext() as ctx:
        w = Aiocb(fd, b"XY", offset=3, lio_opcode=LIO_READ)
        ctx.aio_write(w)
        assert await w == 2
        r = Aiocb(fd, bytearray(5), lio_opcode=LIO_WRITE)
        ctx.aio_read(r)
        assert await r == 5
    assert r.buf == b"abcXY"


# -- the module-level calls and the conveniences -----------------------------------

async def test_module_level_calls_use_current_context(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    ctx = aioposix.current_context()
    assert ctx is aioposix.current_context()
    w = Aiocb(fd, b"hello", offset=0)
    aioposix.aio_write(w)
    assert ctx.aio_error(w) in (EINPROGRESS, 0)
    await aioposix.aio_suspend([w], timeout=10)
    assert aioposix.aio_error(w) == 0
    assert aioposix.aio_return(w) == 5
    wv = Aiocb(fd, offset=5, iov=[b" ", b"world"])
    aioposix.aio_writev(wv)
    sync = Aiocb(fd)
    aioposix.aio_fsync(os.O_DSYNC, sync)
    assert {cb async for cb in aioposix.aio_waitcomplete(timeout=10)} == {wv, sync}
    assert (wv.status, sync.status) == (6, 0)
    r = Aiocb(fd, bytearray(5))
    rv = Aiocb(fd, offset=5, iov=[bytearray(6)])
    aioposix.aio_read(r)
    aioposix.aio_readv(rv)
    assert (await r, await rv) == (5, 6)
    listed = Aiocb(fd, bytearray(11), lio_opcode=LIO_READ)
    await aioposix.lio_listio(LIO_WAIT, [listed])
    assert ctx.aio_return(listed) == 11
    assert aioposix.aio_cancel(fd) == aioposix.AIO_ALLDONE
    assert (r.buf, rv.iov[0], listed.buf) == (b"hello", b" world", b"hello world")


async def test_pread_pwrite(aio: Env, new_file: MakeFile) -> None:
    fd = new_file(b"0123456789")
    os.lseek(fd, 4, os.SEEK_SET)
    assert await aioposix.pwrite(fd, b"abc", 8) == 3
    assert await aioposix.pwrite(fd, memoryview(b"__XY__")[2:4], 0) == 2
    assert await aioposix.pread(fd, 5, 6) == b"67abc"
    assert await aioposix.pread(fd, 5, 100) == b""
    buf = bytearray(4)
    assert await aioposix.pread(fd, buf, 0) == 4
    assert buf == b"XY23"
    view = memoryview(bytearray(20))
    assert await aioposix.pread(fd, view[5:15], 9) == 2
    assert view[5:7] == b"bc"
    view.release()
    assert os.lseek(fd, 0, os.SEEK_CUR) == 4
    assert os.pread(fd, 100, 0) == b"XY234567abc"


async def test_a_refused_submit_leaves_no_sigevent_behind(aio: Env) -> None:
    """A job refused with EAGAIN after its sigevent was checked, then submitted
    again with no sigevent, notifies nobody."""
    fd = aio.file(rand(4096))
    fired: list[object] = []
    try:
        async with AioContext(max_queued=1) as ctx:
            first = Aiocb(fd, bytearray(16))
            ctx.aio_read(first)  # takes the only place
            cb = Aiocb(fd, bytearray(16), sigevent=SigEvent(SIGEV_THREAD, function=fired.append,
                                                            value="stale"))
            with pytest.raises(BlockingIOError):
                ctx.aio_read(cb)
            assert await first == 16
            cb.sigevent = None
            ctx.aio_read(cb)
            assert await cb == 16
        assert fired == []  # (leaving the block delivers every notification due)
    finally:
        os.close(fd)
