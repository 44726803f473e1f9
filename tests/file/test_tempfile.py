"""aioposix.tempfile: aiofiles.tempfile's four, with the files' I/O as AIO jobs."""

from __future__ import annotations

import collections
import os
import sys
from typing import TYPE_CHECKING

import aiofiles.tempfile  # type: ignore[import-untyped]
import pytest

import aioposix
from aioposix import Aiocb, AioContext, AsyncBinaryFile, AsyncTextFile

if TYPE_CHECKING:
    from conftest import Env


class CountingContext(AioContext):
    """A real context that counts its read and write jobs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()

    def aio_read(self, cb: Aiocb) -> None:
        self.calls["aio_read"] += 1
        super().aio_read(cb)

    def aio_write(self, cb: Aiocb) -> None:
        self.calls["aio_write"] += 1
        super().aio_write(cb)


def test_names_cover_aiofiles_tempfile() -> None:
    assert set(aiofiles.tempfile.__all__) <= set(aioposix.tempfile.__all__)
    assert "tempfile" in vars(aioposix)  # `import aioposix` is enough, as with aiofiles


@pytest.mark.parametrize("mode", ["r+", "w+", "rb+", "wb+"])
async def test_temporary_file_lines(aio: Env, mode: str) -> None:
    data: str | bytes = b"Hello World!\n" if "b" in mode else "Hello World!\n"
    async with aioposix.tempfile.TemporaryFile(mode=mode, dir=aio.tmp) as f:
        assert isinstance(f, AsyncBinaryFile if "b" in mode else AsyncTextFile)
        for _ in range(3):
            await f.write(data)
        await f.flush()
        await f.seek(0)
        assert [line async for line in f] == [data] * 3
    assert f.closed
    assert os.listdir(aio.tmp) == []  # unnamed: never in the directory


async def test_temporary_file_io_is_aio_jobs(aio: Env) -> None:
    async with CountingContext() as ctx:
        async with aioposix.tempfile.TemporaryFile(context=ctx) as f:
            await f.write(b"x" * 100)
            await f.seek(0)
            assert await f.read() == b"x" * 100
        assert ctx.calls["aio_write"] >= 1 and ctx.calls["aio_read"] >= 1


@pytest.mark.parametrize("mode", ["w+", "wb+"])
async def test_named_temporary_file_is_deleted_on_close(aio: Env, mode: str) -> None:
    data: str | bytes = b"Hello" if "b" in mode else "Hello"
    async with aioposix.tempfile.NamedTemporaryFile(mode=mode, dir=aio.tmp,
                                                    suffix=".tmp") as f:
        await f.write(data)
        await f.flush()
        assert f.name.endswith(".tmp") and os.path.isfile(f.name)
        with open(f.name, "rb") as plain:
            assert plain.read() == b"Hello"
        if sys.version_info < (3, 12):
            assert f.delete  # type: ignore[union-attr]
        name = f.name
    assert not os.path.exists(name)


async def test_named_temporary_file_kept_without_delete(aio: Env) -> None:
    f = await aioposix.tempfile.NamedTemporaryFile(dir=aio.tmp, delete=False)
    await f.write(b"kept")
    await f.close()
    try:
        with open(f.name, "rb") as plain:
            assert plain.read() == b"kept"
    finally:
        os.unlink(f.name)


@pytest.mark.parametrize("mode", ["w+", "wb+"])
async def test_spooled_file_rolls_over_past_max_size(aio: Env, mode: str) -> None:
    data: str | bytes = b"Hello World!" if "b" in mode else "Hello World!"
    spool = aioposix.tempfile.SpooledTemporaryFile(max_size=len(data) + 1, mode=mode,
                                                   dir=aio.tmp)
    async with spool as f:
        await f.write(data)
        assert not f._file._rolled  # in memory
        await f.write(data)
        assert f._file._rolled  # on disk now
        await f.seek(0)
        assert await f.read() == data + data
        assert isinstance(await f.fileno(), int)
    assert f.closed


async def test_spooled_file_newlines_like_tempfile(aio: Env) -> None:
    async with aioposix.tempfile.SpooledTemporaryFile(mode="w+") as f:
        await f.write("CRLF\r\n")
        await f.seek(0)
        assert f.newlines is None
        assert await f.read() == "CRLF\n"
        assert f.newlines == "\r\n"


async def test_temporary_directory_gives_its_path_and_is_removed(aio: Env) -> None:
    async with aioposix.tempfile.TemporaryDirectory(prefix="p", suffix="s", dir=aio.tmp) as d:
        assert os.path.isdir(d)
        assert os.path.basename(d).startswith("p") and d.endswith("s")
        with open(os.path.join(d, "inside"), "wb") as plain:
            plain.write(b"x")
    assert not os.path.exists(d)
    tmp = await aioposix.tempfile.TemporaryDirectory(dir=aio.tmp)
    assert os.path.isdir(tmp.name)
    await tmp.close()
    assert not os.path.exists(tmp.name)
