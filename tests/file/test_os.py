"""aioposix.os and aioposix.os.path: aiofiles.os's calls, each a pool job.

Every call gives what the ``os`` call gives on the same files (results and
errors), is made off the loop thread, and a job cancelled while it waits
for a worker is never made.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import aiofiles.os  # type: ignore[import-untyped]
import pytest

import aioposix
import aioposix.os
import aioposix.os.path
from aioposix._backends import offload

if TYPE_CHECKING:
    from conftest import Env


def test_import_forms() -> None:
    from aioposix.os import path

    assert path is aioposix.os.path
    assert aioposix.os.path.exists is path.exists


def test_names_cover_aiofiles_os() -> None:
    assert set(aiofiles.os.__all__) <= set(aioposix.os.__all__)
    assert set(aiofiles.os.path.__all__) <= set(aioposix.os.path.__all__)
    for name in aioposix.os.__all__:
        assert hasattr(aioposix.os, name), name
    for name in aioposix.os.path.__all__:
        assert hasattr(aioposix.os.path, name), name


async def test_stat_and_queries_match_os(aio: Env) -> None:
    path = aio.tmp / "f.bin"
    path.write_bytes(b"12345")
    link = aio.tmp / "link"
    os.symlink(path, link)
    got = await aioposix.os.stat(path)
    assert (got.st_ino, got.st_size) == (os.stat(path).st_ino, 5)
    assert (await aioposix.os.stat(link, follow_symlinks=False)).st_ino == os.lstat(link).st_ino
    p = aioposix.os.path
    assert (await p.exists(path), await p.exists(aio.tmp / "none")) == (True, False)
    assert (await p.isfile(path), await p.isdir(aio.tmp), await p.islink(link)) == (True,) * 3
    assert await p.getsize(path) == 5
    assert await p.getmtime(path) == os.path.getmtime(path)
    assert await p.getatime(path) == os.path.getatime(path)
    assert await p.getctime(path) == os.path.getctime(path)
    assert await p.samefile(path, link)
    assert await p.ismount("/") and not await p.ismount(aio.tmp)
    assert await p.abspath("x") == os.path.abspath("x")
    assert await aioposix.os.readlink(link) == os.readlink(link)
    assert await aioposix.os.access(path, os.R_OK)
    assert await aioposix.os.getcwd() == os.getcwd()
    assert (await aioposix.os.statvfs(aio.tmp)).f_bsize == os.statvfs(aio.tmp).f_bsize
    with open(path, "rb") as a, open(link, "rb") as b:
        assert await p.sameopenfile(a.fileno(), b.fileno())


async def test_directory_calls_change_what_os_sees(aio: Env) -> None:
    top = aio.tmp / "a"
    (aio.tmp / "stop").write_bytes(b"")  # removedirs stops above a
    await aioposix.os.mkdir(top)
    await aioposix.os.makedirs(top / "b" / "c", exist_ok=True)
    assert sorted(await aioposix.os.listdir(top)) == ["b"]
    with await aioposix.os.scandir(top) as entries:
        assert [(e.name, e.is_dir()) for e in entries] == [("b", True)]
    (top / "f").write_bytes(b"x")
    await aioposix.os.rename(top / "f", top / "g")
    await aioposix.os.replace(top / "g", top / "h")
    await aioposix.os.link(top / "h", top / "i")
    assert os.stat(top / "i").st_nlink == 2
    await aioposix.os.renames(top / "i", top / "new" / "i")
    await aioposix.os.symlink(top / "h", top / "s")
    assert os.readlink(top / "s") == str(top / "h")
    await aioposix.os.remove(top / "s")
    await aioposix.os.unlink(top / "h")
    await aioposix.os.unlink(top / "new" / "i")  # renames removed nothing; new/ stays
    await aioposix.os.rmdir(top / "new")
    await aioposix.os.removedirs(top / "b" / "c")  # c, b, then a: all empty
    assert not top.exists() and aio.tmp.exists()


async def test_sendfile_copies_between_descriptors(aio: Env) -> None:
    src, dst = aio.tmp / "src", aio.tmp / "dst"
    src.write_bytes(b"0123456789")
    with open(src, "rb") as a, open(dst, "wb") as b:
        assert await aioposix.os.sendfile(b.fileno(), a.fileno(), 2, 5) == 5
    assert dst.read_bytes() == b"23456"


async def test_errors_are_those_of_os(aio: Env) -> None:
    missing = aio.tmp / "missing"
    with pytest.raises(FileNotFoundError) as got:
        await aioposix.os.stat(missing)
    with pytest.raises(FileNotFoundError) as expected:
        os.stat(missing)
    assert (got.value.errno, str(got.value)) == (errno.ENOENT, str(expected.value))
    with pytest.raises(FileExistsError):
        await aioposix.os.mkdir(aio.tmp)
    with pytest.raises(OSError) as notempty:
        await aioposix.os.rmdir(aio.tmp.parent)
    assert notempty.value.errno == errno.ENOTEMPTY


async def test_calls_run_off_the_loop_thread(aio: Env) -> None:
    where = aioposix.os.wrap(threading.get_ident)
    assert await where() != threading.get_ident()
    loop = asyncio.get_running_loop()
    assert await aioposix.os.getcwd(loop=loop, executor=None) == os.getcwd()  # unused


async def test_a_job_cancelled_while_queued_is_never_made(aio: Env) -> None:
    workers = offload._executor()._max_workers
    release = threading.Event()
    started = threading.Semaphore(0)

    def hold() -> None:
        started.release()
        release.wait(30)

    holders = [asyncio.ensure_future(offload.run_job(hold)) for _ in range(workers)]
    try:
        for _ in range(workers):  # every worker is busy
            assert await asyncio.to_thread(started.acquire, True, 10)
        target = aio.tmp / "never"
        queued = asyncio.ensure_future(aioposix.os.mkdir(target))
        await asyncio.sleep(0)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
    finally:
        release.set()
        await asyncio.gather(*holders)
    await aioposix.os.getcwd()  # a later job runs: the workers are free again
    assert not Path(target).exists()
