"""The aiofiles-style layer (docs/asyncfile.md): ``open()`` and AsyncFile.

Every method in binary and text modes, positions with every whence, the
buffers (a read after a write sees it; line iteration costs one job per
chunk, not per line), positional and vectored I/O, and one program run
unchanged on aiofiles and on aioposix with identical results.  Expected
values come from the builtin ``open`` on the same bytes where io defines
the behaviour.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import errno
import inspect
import io
import os
import random
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import aiofiles  # type: ignore[import-untyped]
import pytest
from helpers import rand

import aioposix
import aioposix._file.opening as aiofiles_like
import aioposix.threadpool
from aioposix import Aiocb, AioContext
from aioposix._file.opening import CHUNK, AsyncBinaryFile, AsyncFile, AsyncTextFile
from aioposix._file.opening import open as aopen

if TYPE_CHECKING:
    from conftest import Env


class CountingContext(AioContext):
    """A real context that counts the jobs submitted to it (per call)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()

    def aio_read(self, cb: Aiocb) -> None:
        self.calls["aio_read"] += 1
        super().aio_read(cb)

    def aio_write(self, cb: Aiocb) -> None:
        self.calls["aio_write"] += 1
        super().aio_write(cb)

    def aio_readv(self, cb: Aiocb) -> None:
        self.calls["aio_readv"] += 1
        super().aio_readv(cb)

    def aio_writev(self, cb: Aiocb) -> None:
        self.calls["aio_writev"] += 1
        super().aio_writev(cb)

    def aio_fsync(self, op: int, cb: Aiocb) -> None:
        self.calls["aio_fsync"] += 1
        super().aio_fsync(op, cb)


def put(aio: Env, data: bytes, name: str = "f.bin") -> Path:
    path = aio.tmp / name
    path.write_bytes(data)
    return path


# -- open ------------------------------------------------------------------------


async def test_open_awaited_and_as_async_context_manager(aio: Env) -> None:
    path = put(aio, b"abc")
    f = await aopen(path, "rb")
    try:
        assert isinstance(f, AsyncBinaryFile) and isinstance(f, AsyncFile)
        assert (f.name, f.mode, f.closed, f.readable()) == (str(path), "rb", False, True)
        assert os.fstat(f.fileno()).st_ino == path.stat().st_ino
        assert await f.read() == b"abc"
    finally:
        await f.close()
    assert f.closed
    async with aopen(path, "r") as t:
        assert isinstance(t, AsyncTextFile)
        assert await t.read() == "abc"
    assert t.closed


async def test_default_mode_is_text_read_like_builtin_open(aio: Env) -> None:
    path = put(aio, b"line\n")
    with builtins.open(path) as ref:
        expected = (ref.mode, ref.read())
    async with aopen(path) as f:
        assert isinstance(f, AsyncTextFile)
        assert (f.mode, await f.read()) == expected
        assert await f.readable() is True  # a coroutine in text mode, as in aiofiles


async def test_awaiting_the_open_twice_gives_the_same_file(aio: Env) -> None:
    path = put(aio, b"abc")
    opening = aopen(path, "rb")
    f = await opening
    try:
        assert await opening is f
    finally:
        await f.close()


async def test_loop_and_executor_are_accepted_and_unused(aio: Env) -> None:
    path = put(aio, b"abc")
    loop = asyncio.get_running_loop()
    async with aopen(path, "rb", loop=loop, executor=object()) as f:
        assert await f.read() == b"abc"


@pytest.mark.parametrize(("mode", "fd_mode"), [
    ("rb", "rb"), ("r+b", "rb+"), ("wb", "wb"), ("w+b", "rb+"), ("ab", "ab"), ("a+b", "ab+"),
])
async def test_binary_mode_reported_like_io(aio: Env, mode: str, fd_mode: str) -> None:
    path = put(aio, b"")
    with builtins.open(path, mode) as ref:
        assert ref.mode == fd_mode
    async with aopen(path, mode) as f:
        assert f.mode == fd_mode
        assert await f.writable() is ("r" not in mode or "+" in mode)
        assert await f.seekable()
        assert not await f.isatty()


@pytest.mark.parametrize("mode", ["", "rw", "rr", "rbt", "q", "r+b+"])
def test_bad_mode_refused_like_io(mode: str) -> None:
    with pytest.raises(ValueError), builtins.open(os.devnull, mode):
        pass
    with pytest.raises(ValueError):
        aopen(os.devnull, mode)


def test_binary_mode_takes_no_encoding_and_text_is_never_unbuffered() -> None:
    with pytest.raises(ValueError):
        aopen(os.devnull, "rb", encoding="utf-8")
    with pytest.raises(ValueError):
        aopen(os.devnull, "r", buffering=0)
    with pytest.raises(ValueError):
        aopen(os.devnull, "r", newline="x")


async def test_x_mode_on_existing_file_raises_file_exists(aio: Env) -> None:
    path = put(aio, b"keep")
    with pytest.raises(FileExistsError):
        await aopen(path, "xb")
    assert path.read_bytes() == b"keep"
    async with aopen(aio.tmp / "new.bin", "xb") as f:
        assert await f.write(b"fresh") == 5
    assert (aio.tmp / "new.bin").read_bytes() == b"fresh"


async def test_missing_file_and_directory_raise_like_io(aio: Env) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        await aopen(aio.tmp / "missing")
    with pytest.raises(FileNotFoundError) as reference:
        builtins.open(aio.tmp / "missing")  # noqa: SIM115 (it raises)
    assert str(missing.value) == str(reference.value)
    with pytest.raises(IsADirectoryError):
        await aopen(aio.tmp)


@pytest.mark.parametrize("closefd", [False, True])
async def test_descriptor_of_a_directory_raises_like_io(aio: Env, closefd: bool) -> None:
    fd = os.open(aio.tmp, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(IsADirectoryError) as reference:
            builtins.open(fd, "rb", closefd=closefd)  # noqa: SIM115 (it raises)
        with pytest.raises(IsADirectoryError) as got:
            await aopen(fd, "rb", closefd=closefd)
        assert (got.value.errno, str(got.value)) == (errno.EISDIR, str(reference.value))
        assert os.fstat(fd).st_ino == aio.tmp.stat().st_ino  # left open, as io leaves it
    finally:
        os.close(fd)


async def test_w_mode_truncates(aio: Env) -> None:
    path = put(aio, b"old contents")
    async with aopen(path, "wb") as f:
        await f.write(b"new")
    assert path.read_bytes() == b"new"


async def test_opener_gives_the_descriptor(aio: Env) -> None:
    path = put(aio, b"via opener")
    seen: list[int] = []

    def opener(p: Any, flags: int) -> int:
        seen.append(flags)
        return os.open(p, flags)

    async with aopen(path, "rb", opener=opener) as f:
        assert await f.read() == b"via opener"
    assert len(seen) == 1 and seen[0] & os.O_ACCMODE == os.O_RDONLY


async def test_closefd_false_leaves_fd_open_at_the_file_position(aio: Env) -> None:
    fd = aio.file(b"0123456789")
    try:
        async with aopen(fd, "r+b", closefd=False) as f:
            assert f.name == fd
            assert await f.read(4) == b"0123"
        assert os.lseek(fd, 0, os.SEEK_CUR) == 4
        assert os.read(fd, 2) == b"45"
    finally:
        os.close(fd)


async def test_jobs_go_to_the_context_argument(aio: Env) -> None:
    path = put(aio, b"")
    ctx = CountingContext()  # async with gives the AioContext type
    async with ctx:
        async with aopen(path, "w+b", context=ctx) as f:
            assert f.context is ctx
            await f.write(b"data")
            await f.flush()
            await f.seek(0)
            assert await f.read() == b"data"
        assert ctx.calls["aio_write"] == 1
        assert ctx.calls["aio_read"] >= 1


# -- binary reads ------------------------------------------------------------------


async def test_read_sizes_and_eof(aio: Env) -> None:
    path = put(aio, b"hello world")
    async with aopen(path, "rb") as f:
        assert await f.read(0) == b""
        assert await f.read(5) == b"hello"
        assert await f.read(100) == b" world"
        assert await f.read(1) == b""
        assert await f.read() == b""


async def test_read_across_many_chunks(aio: Env) -> None:
    data = rand(3 * CHUNK + 123)
    path = put(aio, data)
    async with aopen(path, "rb") as f:
        assert await f.read(10) == data[:10]
        assert await f.read(2 * CHUNK) == data[10:10 + 2 * CHUNK]
        assert await f.read() == data[10 + 2 * CHUNK:]
        assert await f.tell() == len(data)
    async with aopen(path, "rb") as f:
        assert await f.read() == data


async def test_read1_returns_at_most_one_job(aio: Env) -> None:
    data = rand(CHUNK + 500)
    path = put(aio, data)
    ctx = CountingContext()  # async with gives the AioContext type
    async with ctx, aopen(path, "rb", context=ctx) as f:
        first = await f.read1(10)
        assert first == data[:10]
        reads = ctx.calls["aio_read"]
        assert await f.read1() == data[10:CHUNK]  # the rest of the read-ahead, no job
        assert ctx.calls["aio_read"] == reads
        assert await f.read1() == data[CHUNK:]
        assert await f.read1() == b""


async def test_readinto_small_and_large_buffers(aio: Env) -> None:
    data = rand(2 * CHUNK + 7)
    path = put(aio, data)
    async with aopen(path, "rb") as f:
        small = bytearray(5)
        assert await f.readinto(small) == 5 and small == data[:5]
        big = bytearray(CHUNK + 100)
        assert await f.readinto(memoryview(big)) == len(big)
        assert big == data[5:5 + len(big)]
        rest = bytearray(CHUNK * 2)
        got = await f.readinto(rest)
        assert got == len(data) - 5 - len(big)
        assert rest[:got] == data[5 + len(big):]
        assert await f.readinto(bytearray(3)) == 0


async def test_readline_and_size_limit(aio: Env) -> None:
    path = put(aio, b"one\ntwo two\n\nlast")
    async with aopen(path, "rb") as f:
        assert await f.readline() == b"one\n"
        assert await f.readline(3) == b"two"
        assert await f.readline() == b" two\n"
        assert await f.readline() == b"\n"
        assert await f.readline() == b"last"
        assert await f.readline() == b""


async def test_readline_longer_than_a_chunk(aio: Env) -> None:
    line = b"x" * (CHUNK * 2 + 3) + b"\n"
    path = put(aio, line + b"tail")
    async with aopen(path, "rb") as f:
        assert await f.readline() == line
        assert await f.readline() == b"tail"


async def test_readlines_with_hint_and_writelines(aio: Env) -> None:
    path = aio.tmp / "lines.bin"
    async with aopen(path, "w+b") as f:
        await f.writelines([b"a\n", b"bb\n", b"ccc\n"])
        await f.seek(0)
        assert await f.readlines() == [b"a\n", b"bb\n", b"ccc\n"]
        await f.seek(0)
        assert await f.readlines(4) == [b"a\n", b"bb\n"]  # stop once 4 bytes are read
    assert path.read_bytes() == b"a\nbb\nccc\n"


async def test_read_on_write_only_file_is_unsupported(aio: Env) -> None:
    async with aopen(aio.tmp / "w.bin", "wb") as f:
        for call in (f.read(), f.read1(), f.readline(), f.readinto(bytearray(1)),
                     f.pread(1, 0), f.readv([bytearray(1)])):
            with pytest.raises(io.UnsupportedOperation):
                await call
        assert not f.readable()


async def test_write_on_read_only_file_is_unsupported(aio: Env) -> None:
    path = put(aio, b"ro")
    async with aopen(path, "rb") as f:
        for call in (f.write(b"x"), f.pwrite(b"x", 0), f.writev([b"x"]), f.truncate(0)):
            with pytest.raises(io.UnsupportedOperation):
                await call
    assert path.read_bytes() == b"ro"


async def test_operations_on_closed_file_raise_value_error(aio: Env) -> None:
    path = put(aio, b"data")
    f = await aopen(path, "r+b")
    await f.close()
    await f.close()  # twice is harmless
    for call in (f.read(), f.write(b"x"), f.seek(0), f.tell(), f.flush(), f.fsync(),
                 f.readline(), f.pread(1, 0), f.pwrite(b"x", 0), f.truncate()):
        with pytest.raises(ValueError):
            await call
    with pytest.raises(ValueError):
        f.fileno()
    t = await aopen(path, "r")
    await t.close()
    with pytest.raises(ValueError):
        await t.read()
    with pytest.raises(ValueError):
        await t.tell()


# -- writes, positions ----------------------------------------------------------------


async def test_read_after_write_sees_the_data(aio: Env) -> None:
    path = put(aio, b"0123456789")
    async with aopen(path, "r+b") as f:
        assert await f.read(2) == b"01"
        assert await f.write(b"ab") == 2
        assert await f.read(2) == b"45"  # no flush, no seek
        await f.seek(0)
        assert await f.read() == b"01ab456789"
    assert path.read_bytes() == b"01ab456789"


async def test_flush_makes_writes_visible_to_other_readers(aio: Env) -> None:
    path = put(aio, b"")
    async with aopen(path, "wb") as f:
        await f.write(b"buffered")
        await f.flush()
        assert path.read_bytes() == b"buffered"
        await f.write(b"-more")
        assert await f.tell() == 13
        assert path.read_bytes() == b"buffered-more"


async def test_large_write_goes_out_whole(aio: Env) -> None:
    data = rand(3 * CHUNK + 11)
    path = aio.tmp / "big.bin"
    async with aopen(path, "wb") as f:
        await f.write(b"head")
        assert await f.write(memoryview(data)) == len(data)
        assert await f.tell() == 4 + len(data)
    assert path.read_bytes() == b"head" + data


async def test_unbuffered_binary_writes_at_once(aio: Env) -> None:
    path = put(aio, b"")
    async with aopen(path, "wb", buffering=0) as f:
        await f.write(b"now")
        assert path.read_bytes() == b"now"


async def test_seek_tell_every_whence(aio: Env) -> None:
    path = put(aio, b"0123456789")
    async with aopen(path, "r+b") as f:
        assert await f.seek(3) == 3 and await f.read(2) == b"34"
        assert await f.seek(-4, os.SEEK_CUR) == 1 and await f.read(1) == b"1"
        assert await f.seek(2, os.SEEK_CUR) == 4 and await f.read(1) == b"4"
        assert await f.seek(-3, os.SEEK_END) == 7 and await f.read() == b"789"
        assert await f.seek(0, os.SEEK_END) == 10 and await f.tell() == 10
        assert await f.seek(5, os.SEEK_END) == 15
        await f.write(b"!")
        assert await f.tell() == 16
        with pytest.raises(OSError) as exc:
            await f.seek(-1)
        assert exc.value.errno == errno.EINVAL
        with pytest.raises(ValueError):
            await f.seek(0, 99)
        assert await f.tell() == 16
    assert path.read_bytes() == b"0123456789\0\0\0\0\0!"


async def test_seek_data_and_hole(aio: Env) -> None:
    path = put(aio, b"data")
    async with aopen(path, "rb") as f:
        assert await f.seek(0, os.SEEK_DATA) == 0
        assert await f.seek(0, os.SEEK_HOLE) == 4
        assert await f.read() == b""


async def test_seek_back_inside_read_ahead(aio: Env) -> None:
    data = rand(1000)
    path = put(aio, data)
    async with aopen(path, "rb") as f:
        await f.read(600)
        assert await f.seek(100) == 100
        assert await f.read(50) == data[100:150]
        assert await f.seek(900) == 900
        assert await f.read() == data[900:]


async def test_append_mode_writes_at_the_end(aio: Env) -> None:
    path = put(aio, b"start-")
    async with aopen(path, "ab") as f:
        assert await f.tell() == 6
        await f.write(b"one-")
        assert await f.tell() == 10
        await f.seek(0)
        await f.write(b"two")  # O_APPEND: still at the end
        assert await f.tell() == 13
    assert path.read_bytes() == b"start-one-two"
    async with aopen(path, "a+b") as f:
        await f.seek(0)
        assert await f.read(5) == b"start"
        await f.write(b"!")
        assert await f.tell() == 14
        await f.seek(-2, os.SEEK_END)
        assert await f.read() == b"o!"


async def test_truncate_keeps_the_position(aio: Env) -> None:
    path = put(aio, b"0123456789")
    async with aopen(path, "r+b") as f:
        assert await f.truncate(4) == 4
        assert path.read_bytes() == b"0123"
        assert await f.read(2) == b"01"
        assert await f.truncate() == 2
        assert await f.tell() == 2
        assert await f.read() == b""
        assert await f.truncate(6) == 6
        assert await f.read() == b"\0\0\0\0"
    assert path.read_bytes() == b"01\0\0\0\0"


async def test_fsync_is_an_aio_fsync_job_after_the_data(aio: Env) -> None:
    path = put(aio, b"")
    ctx = CountingContext()  # async with gives the AioContext type
    async with ctx, aopen(path, "wb", context=ctx) as f:
        await f.write(b"durable")
        await f.fsync()
        assert ctx.calls["aio_fsync"] == 1
        assert ctx.calls["aio_write"] == 1  # the buffered write went out first
        assert path.read_bytes() == b"durable"


# -- positional and vectored I/O ------------------------------------------------------


async def test_pread_pwrite_leave_the_position(aio: Env) -> None:
    path = put(aio, b"0123456789")
    async with aopen(path, "r+b") as f:
        assert await f.read(2) == b"01"
        assert await f.pread(3, 5) == b"567"
        assert await f.pread(10, 8) == b"89"
        assert await f.tell() == 2
        assert await f.pwrite(b"XY", 3) == 2
        assert await f.tell() == 2
        assert await f.read(3) == b"2XY"  # the read-ahead did not hide the pwrite
        await f.write(b"w")
        assert await f.pread(6, 0) == b"012XYw"  # pread sees buffered writes


async def test_readv_writev_use_and_advance_the_position(aio: Env) -> None:
    path = put(aio, b"0123456789")
    ctx = CountingContext()  # async with gives the AioContext type
    async with ctx, aopen(path, "r+b", context=ctx) as f:
        assert await f.read(1) == b"0"
        a, b = bytearray(2), bytearray(3)
        assert await f.readv([a, b]) == 5
        assert (bytes(a), bytes(b)) == (b"12", b"345")
        assert await f.tell() == 6
        assert await f.writev([b"ab", memoryview(b"cd")]) == 4
        assert await f.tell() == 10
        assert await f.read() == b""
        tail = bytearray(4)
        assert await f.readv([tail]) == 0
        assert ctx.calls["aio_readv"] == 2 and ctx.calls["aio_writev"] == 1
    assert path.read_bytes() == b"012345abcd"


async def test_writev_in_append_mode_moves_to_the_end(aio: Env) -> None:
    path = put(aio, b"abc")
    async with aopen(path, "a+b") as f:
        await f.seek(0)
        assert await f.writev([b"d", b"e"]) == 2
        assert await f.tell() == 5
    assert path.read_bytes() == b"abcde"


# -- line iteration ---------------------------------------------------------------------


async def test_line_iteration_reads_in_chunks(aio: Env) -> None:
    lines = [f"line {i:05d}\n".encode() for i in range(10_000)]
    data = b"".join(lines)
    path = put(aio, data)
    ctx = CountingContext()  # async with gives the AioContext type
    async with ctx:
        async with aopen(path, "rb", context=ctx) as f:
            got = [line async for line in f]
        assert got == lines
        assert ctx.calls["aio_read"] <= len(data) // CHUNK + 2  # chunks, plus the EOF read
        ctx.calls.clear()
        async with aopen(path, "r", context=ctx) as t:
            count = 0
            async for text_line in t:
                assert text_line == lines[count].decode()
                count += 1
        assert count == 10_000
        assert ctx.calls["aio_read"] <= len(data) // CHUNK + 2


# -- text mode ----------------------------------------------------------------------------

MIXED = "héllo\nwörld\r\nthird\rfourth\n\r\nlast".encode()


@pytest.mark.parametrize("newline", [None, "", "\n", "\r", "\r\n"])
async def test_text_lines_like_io(aio: Env, newline: str | None) -> None:
    path = put(aio, MIXED)
    with builtins.open(path, encoding="utf-8", newline=newline) as ref:
        expected = ref.readlines()
    async with aopen(path, "r", encoding="utf-8", newline=newline) as f:
        assert [line async for line in f] == expected
    async with aopen(path, "r", encoding="utf-8", newline=newline) as f:
        with builtins.open(path, encoding="utf-8", newline=newline) as ref:
            assert await f.read(7) == ref.read(7)
            assert await f.read() == ref.read()


@pytest.mark.parametrize("newline", [None, "", "\n", "\r", "\r\n"])
async def test_text_write_translates_like_io(aio: Env, newline: str | None) -> None:
    text = "a\nb\r\nc\rd\n"
    mine, ref_path = aio.tmp / "mine.txt", aio.tmp / "ref.txt"
    with builtins.open(ref_path, "w", encoding="utf-8", newline=newline) as ref:
        ref.write(text)
    async with aopen(mine, "w", encoding="utf-8", newline=newline) as f:
        assert await f.write(text) == len(text)
    assert mine.read_bytes() == ref_path.read_bytes()


async def test_text_newlines_seen(aio: Env) -> None:
    path = put(aio, b"a\nb\r\nc")
    async with aopen(path, "r", encoding="ascii") as f:
        await f.read()
        assert f.newlines == ("\n", "\r\n")


async def test_text_chunk_boundary_inside_a_character_and_a_crlf(aio: Env) -> None:
    # an "é" split across the first chunk's end, then a \r\n split the same way
    data = b"a" * (CHUNK - 1) + "é".encode() + b"x" * (CHUNK - 2) + b"\r\nend"
    path = put(aio, data)
    with builtins.open(path, encoding="utf-8") as ref:
        expected = ref.readlines()
    async with aopen(path, "r", encoding="utf-8") as f:
        assert [line async for line in f] == expected
    assert len(expected) == 2


async def test_text_tell_and_seek_cookies_match_io(aio: Env) -> None:
    path = put(aio, "ab€\nçd\r\n日本語\nend".encode())
    with builtins.open(path, encoding="utf-8") as ref:
        async with aopen(path, "r", encoding="utf-8") as f:
            cookies = []
            for step in ("readline", "read2", "readline", "read1", "readline"):
                if step == "readline":
                    assert await f.readline() == ref.readline()
                else:
                    n = int(step[-1])
                    assert await f.read(n) == ref.read(n)
                cookie = await f.tell()
                assert cookie == ref.tell()
                cookies.append(cookie)
            for cookie in reversed(cookies):
                ref.seek(cookie)
                assert await f.seek(cookie) == cookie
                assert await f.read() == ref.read()
            assert await f.seek(0, os.SEEK_END) == path.stat().st_size
            assert await f.read() == ""
            with pytest.raises(io.UnsupportedOperation):
                await f.seek(1, os.SEEK_CUR)
            with pytest.raises(io.UnsupportedOperation):
                await f.seek(-1, os.SEEK_END)
            await f.seek(0)
            await f.readline()
            assert await f.seek(0, os.SEEK_CUR) == len("ab€\n".encode())


async def test_text_tell_in_a_multibyte_encoding(aio: Env) -> None:
    path = put(aio, "zéro\nun\ndeux\n".encode("utf-16"))
    with builtins.open(path, encoding="utf-16") as ref:
        async with aopen(path, "r", encoding="utf-16") as f:
            assert await f.readline() == ref.readline()
            cookie = await f.tell()
            assert cookie == ref.tell()
            assert await f.read() == ref.read()
            await f.seek(cookie)
            assert await f.readline() == "un\n"


async def test_text_append_in_utf16_writes_one_bom(aio: Env) -> None:
    path = aio.tmp / "u16.txt"
    async with aopen(path, "w", encoding="utf-16") as f:
        await f.write("one\n")
    async with aopen(path, "a", encoding="utf-16") as f:
        await f.write("two\n")
    assert path.read_text(encoding="utf-16") == "one\ntwo\n"


async def test_text_write_after_read_lands_at_the_read_position(aio: Env) -> None:
    path = put(aio, b"first\nsecond\nthird\n")
    async with aopen(path, "r+", encoding="ascii") as f:
        assert await f.readline() == "first\n"
        await f.write("SECOND")
        assert await f.readline() == "\n"  # a read after the write sees past it
        assert await f.read() == "third\n"
    assert path.read_bytes() == b"first\nSECOND\nthird\n"


async def test_text_errors_and_type_checks(aio: Env) -> None:
    path = put(aio, b"ok\xffok")
    async with aopen(path, "r", encoding="utf-8") as f:
        with pytest.raises(UnicodeDecodeError):
            await f.read()
    async with aopen(path, "r", encoding="utf-8", errors="replace") as f:
        assert await f.read() == "ok\ufffdok"
        assert (f.encoding, f.errors, f.mode) == ("utf-8", "replace", "r")
    async with aopen(aio.tmp / "t.txt", "w") as w:
        with pytest.raises(TypeError):
            await w.write(b"bytes")  # type: ignore[arg-type]
        with pytest.raises(io.UnsupportedOperation):
            await w.read()
    with pytest.raises(LookupError):
        await aopen(path, "r", encoding="no-such-codec")


async def test_text_line_buffering_flushes_each_line(aio: Env) -> None:
    path = aio.tmp / "lb.txt"
    async with aopen(path, "w", buffering=1, encoding="ascii") as f:
        assert f.line_buffering
        await f.write("partial")
        await f.write(" line\n")
        assert path.read_bytes() == b"partial line\n"


async def test_text_truncate_and_raw_positional_calls(aio: Env) -> None:
    path = put(aio, b"alpha\nbeta\n")
    async with aopen(path, "r+", encoding="ascii") as f:
        assert await f.readline() == "alpha\n"
        assert await f.pread(4, 6) == b"beta"
        assert await f.tell() == 6
        assert await f.pwrite(b"B", 6) == 1
        assert await f.readline() == "Beta\n"
        assert await f.truncate(5) == 5
        await f.seek(0)
        assert await f.read() == "alpha"
        await f.seek(0)
        buf = bytearray(3)
        assert await f.readv([buf]) == 3 and buf == b"alp"
        assert await f.writev([b"HA"]) == 2
        assert await f.tell() == 5
        await f.fsync()
    assert path.read_bytes() == b"alpHA"


# -- the same program on aiofiles and on aioposix ---------------------------------------


async def program(lib: ModuleType | Any, path: Path) -> list[object]:
    """A small aiofiles program; only ``lib`` changes between the runs."""
    out: list[object] = []
    async with lib.open(path, "w", encoding="utf-8") as f:
        out.append(await f.write("alpha\nbéta\r\ngamma\n"))
        out.append(await f.tell())
    f = await lib.open(path, "r+", encoding="utf-8")
    try:
        out.append(await f.readline())
        pos = await f.tell()
        out.append(pos)
        out.append(await f.read(3))
        out.append(await f.seek(pos))
        out.append(await f.readline())
        out.append(await f.seek(0, os.SEEK_END))
        out.append(await f.write("delta\n"))
        out.append(await f.seek(0))
        out.append([line async for line in f])
        out.append(await f.tell())
    finally:
        await f.close()
    async with lib.open(path, "rb") as b:
        out.append(await b.read(4))
        out.append(await b.seek(-6, os.SEEK_END))
        out.append(await b.read(3))
        out.append(await b.seek(2, os.SEEK_CUR))
        out.append(await b.read())
        out.append(await b.tell())
    async with lib.open(path, "ab") as a:
        out.append(await a.write(b"tail"))
        out.append(await a.tell())
    out.append((f.closed, b.closed, a.closed))
    out.append(path.read_bytes())
    return out


async def test_unchanged_program_gives_the_same_results(aio: Env) -> None:
    expected = await program(aiofiles, aio.tmp / "aiofiles.txt")
    got = await program(aiofiles_like, aio.tmp / "aioposix.txt")
    assert got == expected


async def test_files_opened_by_concurrent_tasks_are_independent(aio: Env) -> None:
    path = put(aio, b"x" * 100)

    async def reader(start: int) -> bytes:
        async with aopen(path, "rb") as f:
            await f.seek(start)
            return await f.read(10)

    results = await asyncio.gather(*(reader(i * 10) for i in range(10)))
    assert b"".join(results) == b"x" * 100


async def test_pipe_lines_and_no_seeking(aio: Env) -> None:
    r, w = os.pipe()
    async with aopen(r, "rb") as f, aopen(w, "wb") as out:
        assert not await f.seekable()
        with pytest.raises(OSError) as exc:
            await f.seek(0)
        assert exc.value.errno == errno.ESPIPE
        await out.write(b"one\ntwo\n")
        await out.close()
        assert [line async for line in f] == [b"one\n", b"two\n"]


# -- aiofiles' surface: the same methods, plain or awaited as aiofiles has them ----------


def _aiofiles_split(cls: type) -> dict[str, bool]:
    """{method: is a coroutine} for the methods aiofiles' wrapper class offers."""
    return {name: inspect.iscoroutinefunction(getattr(cls, name))
            for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))}


@pytest.mark.parametrize(("mode", "buffering", "theirs"), [
    ("rb", -1, aiofiles.threadpool.binary.AsyncBufferedReader),
    ("rb", 0, aiofiles.threadpool.binary.AsyncFileIO),
    ("r", -1, aiofiles.threadpool.text.AsyncTextIOWrapper),
])
async def test_methods_are_plain_or_awaited_as_in_aiofiles(
        aio: Env, mode: str, buffering: int, theirs: type) -> None:
    path = put(aio, b"abc")
    async with aopen(path, mode, buffering=buffering) as f:
        for name, is_coroutine in _aiofiles_split(theirs).items():
            ours = getattr(f, name)
            assert inspect.iscoroutinefunction(ours) is is_coroutine, name


@pytest.mark.parametrize("prop", ["closed", "name", "mode", "raw"])
async def test_binary_properties_of_aiofiles(aio: Env, prop: str) -> None:
    path = put(aio, b"abc")
    with builtins.open(path, "rb") as ref:
        expected = getattr(ref, prop)
    async with aopen(path, "rb") as f:
        got = getattr(f, prop)
        if prop == "raw":
            assert isinstance(got, io.FileIO) and got.fileno() == f.fileno()
            assert (got.name, got.mode) == (expected.name, expected.mode)
        else:
            assert got == expected


async def test_peek_shows_the_read_ahead_without_moving(aio: Env) -> None:
    data = rand(3 * CHUNK)
    path = put(aio, data)
    async with aopen(path, "rb") as f:
        assert (await f.peek(10))[:10] == data[:10]
        assert await f.tell() == 0
        assert await f.read(5) == data[:5]
        assert (await f.peek())[:5] == data[5:10]
        await f.seek(0, os.SEEK_END)
        assert await f.peek() == b""


async def test_readall_reads_to_the_end(aio: Env) -> None:
    data = rand(5 * CHUNK + 3)
    path = put(aio, data)
    async with aopen(path, "rb", buffering=0) as f:
        await f.seek(3)
        assert await f.readall() == data[3:]
        assert await f.readall() == b""


async def test_binary_detach_hands_over_the_descriptor_at_the_position(aio: Env) -> None:
    path = put(aio, b"0123456789")
    f = await aopen(path, "r+b")
    assert await f.read(2) == b"01"
    await f.write(b"ab")  # buffered: detach writes it out
    raw = f.detach()
    try:
        with pytest.raises(ValueError):
            await f.read()
        with pytest.raises(ValueError):
            await f.close()  # as io's close after detach
        assert raw.read() == b"456789"
    finally:
        raw.close()
    assert path.read_bytes() == b"01ab456789"


async def test_text_detach_gives_the_buffer_at_the_text_position(aio: Env) -> None:
    path = put(aio, b"first\nsecond\n")
    t = await aopen(path, "r", encoding="utf-8")
    assert await t.readline() == "first\n"
    buffer = t.detach()
    try:
        with pytest.raises(ValueError):
            await t.read()
        assert await buffer.read() == b"second\n"
    finally:
        await buffer.close()


async def test_file_alias_is_the_plain_file_and_closes_with_it(aio: Env) -> None:
    path = put(aio, b"abc")
    async with aopen(path, "rb") as f:
        assert not f._file.closed and f._file.fileno() == f.fileno()
    assert f.closed and f._file.closed
    async with aopen(path, "r") as t:
        assert not t._file.closed
    assert t._file.closed


async def test_async_with_gives_the_file_to_aiofiles_obj(aio: Env) -> None:
    path = put(aio, b"abc")
    opening = aopen(path, "rb")
    async with opening as f:
        assert opening._obj is f


# -- wrap: an open io object taken over ------------------------------------------------


@pytest.mark.parametrize("mode", ["rb", "r+b", "r", "r+"])
async def test_wrap_takes_over_at_the_io_position(aio: Env, mode: str) -> None:
    path = put(aio, b"alpha\nbeta\n")
    plain = builtins.open(path, mode)  # noqa: SIM115 (the wrapper closes it)
    plain.readline()
    f = aioposix.threadpool.wrap(plain)
    text = "b" not in mode
    assert isinstance(f, AsyncTextFile if text else AsyncBinaryFile)
    assert f.name == str(path)
    assert await f.read() == ("beta\n" if text else b"beta\n")
    await f.close()
    assert plain.closed


@pytest.mark.parametrize("thing", [int, [1, 2, 3], lambda x: x, io.FileIO])
def test_wrap_refuses_what_is_not_an_open_io_object(thing: object) -> None:
    with pytest.raises(TypeError):
        aioposix.threadpool.wrap(thing)


def test_threadpool_names_are_the_aioposix_ones() -> None:
    assert aioposix.threadpool.open is aioposix.open
    assert aioposix.threadpool.stdout is aioposix.stdout
    assert set(aiofiles.threadpool.__all__) <= set(aioposix.threadpool.__all__)


# -- reads after seeks, read-ahead only when sequential -----------------------------


class SizingContext(CountingContext):
    """A real context that also notes the size of every aio_read job."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def aio_read(self, cb: Aiocb) -> None:
        self.sizes.append(cb.nbytes if cb.nbytes is not None else -1)
        super().aio_read(cb)


def offsets(size: int, count: int, seed: int = 1) -> list[tuple[int, int]]:
    """(offset, length) pairs inside and across the end of a file of ``size``."""
    rng = random.Random(seed)
    return [(rng.randrange(size + 100), rng.choice((1, 17, 4096, 5000, CHUNK, CHUNK + 3)))
            for _ in range(count)]


async def test_seek_then_read_gives_the_bytes_at_random_offsets(aio: Env) -> None:
    data = rand(CHUNK * 5 + 321)
    path = put(aio, data)
    async with aioposix.open(path, "rb") as f:
        for off, n in offsets(len(data), 300):
            assert await f.seek(off) == off
            assert await f.read(n) == data[off:off + n], (off, n)
            assert await f.tell() == min(off + n, max(off, len(data)))
            assert await f.pread(n, off) == data[off:off + n], (off, n)


async def test_read_after_a_seek_asks_for_exactly_that(aio: Env) -> None:
    data = rand(CHUNK * 4)
    path = put(aio, data)
    ctx = SizingContext()  # async with gives the AioContext type
    async with ctx, aioposix.open(path, "rb", context=ctx) as f:
        await f.seek(3 * CHUNK + 5)
        assert await f.read(4096) == data[3 * CHUNK + 5:3 * CHUNK + 4101]
        assert ctx.sizes == [4096]  # one job of the size asked, no read-ahead
        assert await f.pread(100, 7) == data[7:107]
        assert ctx.sizes == [4096, 100]


async def test_sequential_reads_after_a_seek_read_ahead(aio: Env) -> None:
    data = rand(CHUNK * 4)
    path = put(aio, data)
    ctx = SizingContext()  # async with gives the AioContext type
    async with ctx, aioposix.open(path, "rb", context=ctx) as f:
        await f.seek(1000)
        got = [await f.read(100) for _ in range(600)]  # 60,000 bytes from 1000 on
        assert b"".join(got) == data[1000:61_000]
        assert ctx.sizes[0] == 100  # after the seek: exactly what was asked
        assert ctx.sizes[1:] == [CHUNK]  # then sequential: one chunk of read-ahead serves the rest
        assert await f.tell() == 61_000


async def test_read_from_the_start_of_a_new_file_reads_ahead(aio: Env) -> None:
    data = rand(10_000)
    path = put(aio, data)
    ctx = SizingContext()  # async with gives the AioContext type
    async with ctx, aioposix.open(path, "rb", context=ctx) as f:
        assert [await f.read(10) for _ in range(3)] == [data[:10], data[10:20], data[20:30]]
        assert ctx.sizes == [CHUNK]


async def test_seek_back_to_where_the_last_read_ended_stays_sequential(aio: Env) -> None:
    data = rand(CHUNK * 3)
    path = put(aio, data)
    ctx = SizingContext()  # async with gives the AioContext type
    async with ctx, aioposix.open(path, "rb", context=ctx) as f:
        await f.seek(CHUNK * 2)
        assert await f.read(50) == data[CHUNK * 2:CHUNK * 2 + 50]
        await f.seek(10)
        await f.seek(CHUNK * 2 + 50)  # where the last read ended
        assert await f.read(50) == data[CHUNK * 2 + 50:CHUNK * 2 + 100]
        assert ctx.sizes == [50, CHUNK]


async def test_writes_are_flushed_before_a_read_elsewhere(aio: Env) -> None:
    data = rand(CHUNK * 3)
    path = put(aio, data)
    async with aioposix.open(path, "r+b") as f:
        assert await f.read(10) == data[:10]  # read-ahead filled
        assert await f.write(b"XYZ") == 3  # buffered, at 10
        assert path.read_bytes()[10:13] == data[10:13]  # not out yet
        assert await f.pread(5, 8) == data[8:10] + b"XYZ"  # out before the read
        await f.seek(CHUNK * 2)
        assert await f.write(b"tail") == 4
        await f.seek(5)  # the seek writes it out
        assert path.read_bytes()[CHUNK * 2:CHUNK * 2 + 4] == b"tail"
        assert await f.read(10) == data[5:10] + b"XYZ" + data[13:15]
        await f.write(b"123")  # at 15
        assert await f.tell() == 18
        assert await f.read(4) == data[18:22]
        await f.seek(CHUNK * 2 - 2)
        assert await f.read(8) == data[CHUNK * 2 - 2:CHUNK * 2] + b"tail" + data[CHUNK * 2 + 4:
                                                                               CHUNK * 2 + 6]
    expect = bytearray(data)
    expect[10:13], expect[15:18], expect[CHUNK * 2:CHUNK * 2 + 4] = b"XYZ", b"123", b"tail"
    assert path.read_bytes() == expect


async def test_write_after_random_reads_lands_at_the_position(aio: Env) -> None:
    data = rand(CHUNK * 2)
    path = put(aio, data)
    async with aioposix.open(path, "r+b") as f:
        await f.seek(5000)
        assert await f.read(100) == data[5000:5100]
        await f.write(b"abc")
        await f.seek(0)
        assert (await f.read())[5000:5110] == data[5000:5100] + b"abc" + data[5103:5110]


async def test_readinto_a_big_buffer(aio: Env) -> None:
    size = 5 * CHUNK * 8 + 999  # about 2.5 MiB
    data = rand(size)
    path = put(aio, data)
    async with aioposix.open(path, "rb") as f:
        big = bytearray(1 << 20)
        assert await f.readinto(big) == len(big) and big == data[:len(big)]
        await f.seek(12_345)
        assert await f.readinto(big) == len(big) and big == data[12_345:12_345 + len(big)]
        view = memoryview(bytearray(1 << 21))
        await f.seek(size - 1000)
        assert await f.readinto(view) == 1000  # short at EOF
        assert view[:1000] == data[-1000:]
        assert await f.readinto(big) == 0
        await f.seek(7)
        whole = bytearray(size + 4096)
        assert await f.readinto(whole) == size - 7 and whole[:size - 7] == data[7:]


async def test_big_reads_give_bytes_and_stop_at_eof(aio: Env) -> None:
    size = 3 * (1 << 20) + 17
    data = rand(size)
    path = put(aio, data)
    async with aioposix.open(path, "rb") as f:
        first = await f.read(1 << 20)
        assert type(first) is bytes and first == data[:1 << 20]
        await f.seek(size - 100)
        assert await f.read(1 << 20) == data[-100:]  # short at EOF
        assert await f.read(1 << 20) == b""
        await f.seek(10)
        assert await f.read(1 << 40) == data[10:]  # as much as there is, not a buffer of 1 TiB
        assert await f.tell() == size
        whole = await f.pread(1 << 40, 0)
        assert type(whole) is bytes and whole == data


async def test_reads_at_and_past_eof(aio: Env) -> None:
    data = rand(5000)
    path = put(aio, data)
    async with aioposix.open(path, "rb") as f:
        assert await f.seek(10_000) == 10_000
        assert await f.read(4096) == b""
        assert await f.tell() == 10_000
        assert await f.pread(4096, 5000) == b""
        assert await f.pread(4096, 4000) == data[4000:]
        await f.seek(4990)
        assert await f.read(4096) == data[4990:]  # across the end: the rest
        assert await f.read(4096) == b""
        assert await f.read() == b""
        await f.seek(-10, os.SEEK_END)
        assert await f.read() == data[-10:]


async def test_seek_takes_an_index_not_a_float(aio: Env) -> None:
    path = put(aio, b"0123456789")
    async with aioposix.open(path, "rb") as f:
        with pytest.raises(TypeError):
            await f.seek(1.5)  # type: ignore[arg-type]
        assert await f.seek(True) == 1  # an index, as io takes it
        assert await f.read(2) == b"12"


async def test_a_long_run_of_big_cached_reads_lets_other_tasks_run(aio: Env) -> None:
    data = rand(8 << 20)
    path = put(aio, data)
    turns = 0
    stop = asyncio.Event()

    async def other() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    async with aioposix.open(path, "rb") as f:
        await f.read()  # in the page cache from here on
        task = asyncio.create_task(other())
        await asyncio.sleep(0)
        turns = 0
        try:
            for _ in range(25):  # 200 reads of 1 MiB: far more than a millisecond
                await f.seek(0)
                while block := await f.read(1 << 20):
                    assert len(block) == 1 << 20
            assert turns > 0  # the loop had turns between the reads
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
