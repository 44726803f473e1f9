"""The public API from AnyIO code on the asyncio backend (docs/contract.md, rule 8 and 27),
and, at the end, the one error every call gives under AnyIO's trio backend.

AnyIO cancels through cancel scopes: ``move_on_after`` and ``CancelScope.cancel()``
end up as a CancelledError thrown into the task at its current await.  Rule 8
says what an ``await cb`` must do then: a job still waiting its turn is
cancelled (ECANCELED, nothing moved); a job already moving data runs to its
end and reaps itself.  Either way nothing stays unreaped.

Keeping a job in flight on purpose: a read on an empty pipe parks on the
readiness bridge until someone writes, so it is still "queued" (parked) for as
long as the test wants.  A write bigger than the pipe's capacity, with no
reader, moves what fits and parks with the rest: a job that has started and
so cannot be cancelled (rule 12: it ends at once, short, with the bytes moved).
"""

from __future__ import annotations

import errno
import fcntl
import importlib.util
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import aioposix
from aioposix import LIO_READ, LIO_WAIT, SIGEV_THREAD, Aiocb, AioContext, SigEvent

if TYPE_CHECKING:
    from pathlib import Path

    from anyio.abc import TaskStatus
    from conftest import Env

ECANCELED = errno.ECANCELED
EINPROGRESS = errno.EINPROGRESS


def idle(ctx: AioContext) -> bool:
    """Nothing queued, running, parked, in the kernel or unreaped."""
    s = ctx.statistics()
    return (s.queued, s.active, s.done, s.parked, s.buffer_jobs) == (0, 0, 0, 0, 0)


def assert_unknown(ctx: AioContext, cb: Aiocb) -> None:
    """The job was reaped: the context no longer knows the cb (rule 6)."""
    with pytest.raises(OSError) as info:
        ctx.aio_error(cb)
    assert info.value.errno == errno.EINVAL


def pipe_readable(fd: int) -> bytes:
    """What is in the pipe now, without blocking."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    chunks = []
    try:
        while True:
            chunks.append(os.read(fd, 1 << 20))
    except BlockingIOError:
        pass
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    return b"".join(chunks)


def watch(ctx: AioContext, cb: Aiocb, seen: list[Any]) -> Aiocb:
    """Give ``cb`` a SIGEV_THREAD sigevent that records its aio_error when it fires."""
    def fired(value: object) -> None:
        assert value is cb
        seen.append(ctx.aio_error(cb))
    cb.sigevent = SigEvent(SIGEV_THREAD, function=fired, value=cb)
    return cb


# -- a parked job, cancelled: ECANCELED, nothing consumed, nothing left --------------


async def test_move_on_after_cancels_parked_pipe_read(aio: Env,
                                                      pipe: tuple[int, int]) -> None:
    r, w = pipe
    async with AioContext() as ctx:
        seen: list[Any] = []
        cb = watch(ctx, Aiocb(r, bytearray(16)), seen)
        ctx.aio_read(cb)
        assert ctx.aio_error(cb) == EINPROGRESS
        with anyio.move_on_after(0.05) as scope:
            await cb
        assert scope.cancelled_caught
        assert (cb.error, cb.status) == (ECANCELED, -1)
        await aio.until(lambda: idle(ctx))
        assert seen == [ECANCELED]  # the notification still fired (rule 12)
        assert_unknown(ctx, cb)
        os.write(w, b"after")
        assert pipe_readable(r) == b"after"  # the cancelled read took nothing
        assert bytes(cb.buf) == bytes(16)


async def test_cancel_scope_cancel_from_another_task(aio: Env,
                                                     pipe: tuple[int, int]) -> None:
    r, w = pipe
    async with AioContext() as ctx:
        cb = Aiocb(r, bytearray(8))
        ctx.aio_read(cb)
        outcome: list[str] = []
        scope = anyio.CancelScope()

        async def reader(*, task_status: TaskStatus[None]) -> None:
            with scope:
                task_status.started()
                await cb  # parked: nothing is in the pipe
                outcome.append("returned")
            outcome.append("cancelled" if scope.cancelled_caught else "not cancelled")

        async with anyio.create_task_group() as tg:
            await tg.start(reader)
            assert ctx.aio_error(cb) == EINPROGRESS
            scope.cancel()
        assert outcome == ["cancelled"]
        assert (cb.error, cb.status) == (ECANCELED, -1)
        await aio.until(lambda: idle(ctx))
        assert_unknown(ctx, cb)
        os.write(w, b"data")
        assert pipe_readable(r) == b"data"


async def test_cancelled_scope_on_default_context(aio: Env, pipe: tuple[int, int]) -> None:
    """The module-level calls use the loop's default context: same rule there."""
    r, w = pipe
    ctx = aioposix.current_context()
    cb = Aiocb(r, bytearray(4))
    aioposix.aio_read(cb)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await cb
    assert scope.cancelled_caught
    assert cb.error == ECANCELED
    await aio.until(lambda: idle(ctx))
    with pytest.raises(OSError) as info:
        aioposix.aio_error(cb)
    assert info.value.errno == errno.EINVAL
    os.write(w, b"abcd")
    assert pipe_readable(r) == b"abcd"


async def test_cancelled_scope_cb_reusable_after(aio: Env, pipe: tuple[int, int]) -> None:
    """A job cancelled through a scope is reaped, so its cb may be submitted again."""
    r, w = pipe
    async with AioContext() as ctx:
        cb = Aiocb(r, bytearray(3))
        ctx.aio_read(cb)
        with anyio.move_on_after(0.01):
            await cb
        await aio.until(lambda: idle(ctx))
        os.write(w, b"xyz")
        ctx.aio_read(cb)  # rule 3: allowed again once reaped
        with anyio.fail_after(10):
            assert await cb == 3
        assert bytes(cb.buf) == b"xyz"


# -- a job that has started: it completes and reaps itself --------------------------


async def test_cancel_scope_partial_pipe_write_completes_short(
        aio: Env, pipe: tuple[int, int]) -> None:
    r, w = pipe
    capacity = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
    data = bytes(range(256)) * (3 * capacity // 256)
    async with AioContext() as ctx:
        seen: list[Any] = []
        cb = watch(ctx, Aiocb(w, data), seen)
        ctx.aio_write(cb)
        assert ctx.aio_error(cb) == EINPROGRESS  # the pipe filled up: parked with the rest
        with anyio.move_on_after(0.05) as scope:
            await cb
        assert scope.cancelled_caught
        await aio.until(lambda: idle(ctx))
        assert seen == [0]  # it ended as a success, not ECANCELED
        assert cb.error == 0
        assert 0 < cb.status < len(data)
        assert_unknown(ctx, cb)
        moved = pipe_readable(r)
        assert moved == data[:cb.status]


async def test_cancel_scope_job_already_done_is_reaped(aio: Env,
                                                       pipe: tuple[int, int]) -> None:
    """The job finished before the scope's cancel reached the await: no leak."""
    r, w = pipe
    os.write(w, b"ready")
    async with AioContext() as ctx:
        cb = Aiocb(r, bytearray(5))
        ctx.aio_read(cb)
        await aio.until(lambda: cb.error != EINPROGRESS)
        got: list[int] = []
        with anyio.CancelScope() as scope:
            scope.cancel()
            got.append(await cb)  # may return (done: no suspension) or be cancelled
        await aio.until(lambda: idle(ctx))
        assert cb.status == 5 and cb.error == 0
        assert got in ([], [5])
        assert scope.cancelled_caught == (got == [])
        assert_unknown(ctx, cb)
        assert bytes(cb.buf) == b"ready"


async def test_move_on_after_not_reached(aio: Env) -> None:
    fd = aio.file(b"0123456789")
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, bytearray(4), offset=3)
            ctx.aio_read(cb)
            with anyio.move_on_after(30) as scope:
                n = await cb
            assert not scope.cancelled_caught
            assert n == 4 and bytes(cb.buf) == b"3456"
            assert idle(ctx)
    finally:
        os.close(fd)


async def test_task_group_cancelled_during_file_reads(aio: Env) -> None:
    """Cancel a task group with reads in flight on every backend: each job either
    moved its bytes or was cancelled with nothing moved, and nothing is left."""
    block = 4096
    data = os.urandom(64 * block)
    fd = aio.file(data)
    try:
        async with AioContext() as ctx:
            cbs = [Aiocb(fd, bytearray(block), offset=i * block) for i in range(64)]

            submitted: list[Aiocb] = []

            async def one(cb: Aiocb) -> None:
                ctx.aio_read(cb)
                submitted.append(cb)
                await cb

            async with anyio.create_task_group() as tg:
                for cb in cbs:
                    tg.start_soon(one, cb)
                await aio.until(lambda: len(submitted) == len(cbs))
                tg.cancel_scope.cancel()
            await aio.until(lambda: idle(ctx))
            for i, cb in enumerate(cbs):
                assert_unknown(ctx, cb)
                assert (cb.error, cb.status) in ((ECANCELED, -1), (0, block))
                if cb.error == 0:
                    assert bytes(cb.buf) == data[i * block:(i + 1) * block]
    finally:
        os.close(fd)


# -- many jobs from task groups -------------------------------------------------------


async def test_task_group_many_reads(aio: Env) -> None:
    block = 512
    data = os.urandom(200 * block)
    fd = aio.file(data)
    try:
        async with AioContext() as ctx:
            got: dict[int, bytes] = {}

            async def read_block(i: int) -> None:
                cb = Aiocb(fd, bytearray(block), offset=i * block)
                ctx.aio_read(cb)
                assert await cb == block
                got[i] = bytes(cb.buf)

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for i in range(200):
                        tg.start_soon(read_block, i)
            assert b"".join(got[i] for i in range(200)) == data
            assert idle(ctx)
    finally:
        os.close(fd)


async def test_task_group_many_writes_then_fsync(aio: Env) -> None:
    block = 1024
    blocks = [bytes([i]) * block for i in range(100)]
    fd = aio.file()
    try:
        async with AioContext() as ctx:
            async def write_block(i: int) -> None:
                cb = Aiocb(fd, blocks[i], offset=i * block)
                ctx.aio_write(cb)
                assert await cb == block

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for i in range(100):
                        tg.start_soon(write_block, i)
                sync = Aiocb(fd)
                ctx.aio_fsync(os.O_SYNC, sync)
                assert await sync == 0
            assert os.pread(fd, 100 * block, 0) == b"".join(blocks)
    finally:
        os.close(fd)


async def test_task_group_pipe_writer_and_reader(aio: Env, pipe: tuple[int, int]) -> None:
    """Two tasks, one writing and one reading the same pipe through AIO jobs."""
    r, w = pipe
    payload = os.urandom(300_000)  # several times a pipe's capacity
    received = bytearray()
    async with AioContext() as ctx:
        async def writer() -> None:
            cb = Aiocb(w, payload)
            ctx.aio_write(cb)
            assert await cb == len(payload)

        async def reader() -> None:
            while len(received) < len(payload):
                cb = Aiocb(r, bytearray(65536))
                ctx.aio_read(cb)
                n = await cb
                assert n > 0
                received.extend(cb.buf[:n])

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                tg.start_soon(writer)
        assert bytes(received) == payload
        assert idle(ctx)


async def test_lio_listio_wait_from_task_group(aio: Env) -> None:
    block = 2048
    data = os.urandom(8 * 16 * block)
    fd = aio.file(data)
    try:
        async with AioContext() as ctx:
            out: dict[int, bytes] = {}

            async def batch(k: int) -> None:
                cbs = [Aiocb(fd, bytearray(block), offset=(k * 16 + i) * block,
                             lio_opcode=LIO_READ) for i in range(16)]
                await ctx.lio_listio(LIO_WAIT, cbs)
                for i, cb in enumerate(cbs):
                    assert ctx.aio_return(cb) == block
                    out[k * 16 + i] = bytes(cb.buf)

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for k in range(8):
                        tg.start_soon(batch, k)
            assert b"".join(out[i] for i in range(8 * 16)) == data
            assert idle(ctx)
    finally:
        os.close(fd)


# -- the aiofiles-style layer and the conveniences inside AnyIO code ------------------


async def test_open_in_anyio_code(aio: Env) -> None:
    path = aio.tmp / "text.txt"
    async with await anyio.open_file(path, "w") as f:  # AnyIO's own file, to compare with
        await f.write("one\ntwo\nthree\n")
    lines = []
    with anyio.fail_after(30):
        async with aioposix.open(path, "r") as af:
            async for line in af:
                lines.append(line)
    assert lines == ["one\n", "two\n", "three\n"]


async def test_open_write_read_binary_in_task_group(aio: Env) -> None:
    paths = [aio.tmp / f"f{i}.bin" for i in range(10)]
    contents = [os.urandom(1000 * (i + 1)) for i in range(10)]

    async def roundtrip(i: int) -> None:
        async with aioposix.open(paths[i], "wb") as f:
            assert await f.write(contents[i]) == len(contents[i])
        f2 = await aioposix.open(paths[i], "rb")  # an explicit binary mode
        try:
            assert await f2.read() == contents[i]
        finally:
            await f2.close()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(roundtrip, i)
    for path, content in zip(paths, contents, strict=True):
        assert path.read_bytes() == content


async def test_pread_pwrite_in_anyio_code(aio: Env) -> None:
    fd = aio.file(b"\0" * 64)
    try:
        os.lseek(fd, 5, os.SEEK_SET)

        async def put(i: int) -> None:
            assert await aioposix.pwrite(fd, bytes([65 + i]) * 8, i * 8) == 8

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(put, i)
            assert await aioposix.pread(fd, 16, 8) == b"B" * 8 + b"C" * 8
            buf = bytearray(8)
            assert await aioposix.pread(fd, buf, 56) == 8
            assert bytes(buf) == b"H" * 8
            assert await aioposix.pread(fd, 100, 60) == b"HHHH"  # short at EOF
        assert os.lseek(fd, 0, os.SEEK_CUR) == 5  # positional: the offset did not move
        assert idle(aioposix.current_context())
    finally:
        os.close(fd)


async def test_pread_under_move_on_after_on_pipe(aio: Env, pipe: tuple[int, int]) -> None:
    """pread on a pipe with nothing to read, cancelled by a scope: nothing consumed."""
    r, w = pipe
    with anyio.move_on_after(0.05) as scope:
        await aioposix.pread(r, 10, 0)
    assert scope.cancelled_caught
    await aio.until(lambda: idle(aioposix.current_context()))
    os.write(w, b"later")
    assert await aioposix.pread(r, 10, 0) == b"later"


async def test_file_read_cancelled_by_scope_leaves_file_usable(aio: Env) -> None:
    """A cancelled AsyncFile read inside a scope: the file still works afterwards."""
    path = aio.tmp / "big.bin"
    data = os.urandom(1 << 20)
    path.write_bytes(data)
    async with aioposix.open(path, "rb") as f:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await f.pread(len(data), 0)
        assert await f.pread(10, 100) == data[100:110]
    await aio.until(lambda: idle(aioposix.current_context()))


# -- AnyIO's trio backend: not supported, and every entry point says so -----------------

TRIO_MESSAGE = "aioposix needs an asyncio event loop; AnyIO's trio backend is not supported"


async def _submit_on_new_context(path: Path) -> object:
    fd = os.open(path, os.O_RDONLY)
    try:
        AioContext().aio_read(Aiocb(fd, bytearray(1)))
    finally:
        os.close(fd)
    return None


async def _submit_on_default_context(path: Path) -> object:
    fd = os.open(path, os.O_RDONLY)
    try:
        aioposix.aio_read(Aiocb(fd, bytearray(1)))
    finally:
        os.close(fd)
    return None


async def _pread(path: Path) -> object:
    fd = os.open(path, os.O_RDONLY)
    try:
        return await aioposix.pread(fd, 1, 0)
    finally:
        os.close(fd)


async def _open(path: Path) -> object:
    return await aioposix.open(path, "rb")


async def _current_context(path: Path) -> object:
    return aioposix.current_context()


async def _os_stat(path: Path) -> object:
    return await aioposix.os.stat(path)


async def _tempfile(path: Path) -> object:
    return await aioposix.tempfile.TemporaryFile()


TRIO_CALLS: dict[str, Callable[[Path], Awaitable[object]]] = {
    "AioContext.aio_read": _submit_on_new_context,
    "aio_read": _submit_on_default_context,
    "pread": _pread,
    "open": _open,
    "current_context": _current_context,
    "os.stat": _os_stat,
    "tempfile.TemporaryFile": _tempfile,
}


@pytest.mark.skipif(importlib.util.find_spec("trio") is None, reason="trio is not installed")
@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.parametrize("call", list(TRIO_CALLS))
async def test_trio_backend_names_the_cause(anyio_backend: str, call: str,
                                            tmp_path: Path) -> None:
    import trio

    trio.lowlevel.current_trio_token()  # raises unless trio runs this test
    path = tmp_path / "data.bin"
    path.write_bytes(b"x")
    with pytest.raises(RuntimeError) as info:
        await TRIO_CALLS[call](path)
    assert str(info.value) == TRIO_MESSAGE
    assert path.read_bytes() == b"x"
