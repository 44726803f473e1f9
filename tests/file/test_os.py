"""aioposix.os and aioposix.os.path: aiofiles.os's calls, with what os gives.

Every call gives what the ``os`` call gives on the same files: results,
errors (errno, strerror, filename, filename2), symlinks followed or not,
missing files, dir_fd, and audit events.  Nothing runs on the loop thread.
On the io_uring variants, stat (and the os.path queries on it), rename,
replace, remove, unlink, rmdir, mkdir, symlink, link and fsync are
kernel-submitted: they finish while every pool worker is busy, the ring
module's private count of calls handed to the kernel grows by one per call,
and a task cancelled while it waits does not stop the call.  Elsewhere, and
for every other call, each is a pool job, and a job cancelled while it
waits for a worker is never made.  The loop's ring is given back when the
loop ends: no descriptor outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiofiles.os  # type: ignore[import-untyped]
import pytest
import uvloop
from helpers import audit_events, open_fds, run_on

import aioposix
import aioposix.os
import aioposix.os.path
from aioposix._backends import offload, ring_ops

if TYPE_CHECKING:
    from conftest import Env

# -- what a call gave: its value, or its exception as os describes it ------------------


def described(exc: BaseException) -> tuple[object, ...]:
    if isinstance(exc, OSError):
        return (type(exc), exc.errno, exc.strerror, exc.filename, exc.filename2, str(exc))
    return (type(exc), str(exc))


def outcome(call: Callable[..., object], *args: Any, **kwargs: Any) -> tuple[object, ...]:
    """What ``call(*args, **kwargs)`` gave."""
    try:
        return ("returned", call(*args, **kwargs))
    except (OSError, ValueError, TypeError, OverflowError) as exc:
        return described(exc)


async def async_outcome(call: Callable[..., Awaitable[object]], *args: Any,
                        **kwargs: Any) -> tuple[object, ...]:
    """What ``await call(*args, **kwargs)`` gave (the call itself may raise too)."""
    try:
        return ("returned", await call(*args, **kwargs))
    except (OSError, ValueError, TypeError, OverflowError) as exc:
        return described(exc)


def fields(st: os.stat_result) -> dict[str, object]:
    """Every field of a stat result: the tuple and each st_* attribute."""
    return {"tuple": tuple(st), **{n: getattr(st, n) for n in dir(st) if n.startswith("st_")}}


@contextlib.contextmanager
def kernel_calls(aio: Env, expected: int) -> Iterator[None]:
    """Exactly ``expected`` calls were handed to the kernel meanwhile on the io_uring
    variants, none on the others."""
    before = ring_ops._submitted
    yield
    assert ring_ops._submitted - before == (expected if aio.slow_path == "io_uring" else 0)


# -- names -------------------------------------------------------------------------------


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


# -- stat and the os.path queries ---------------------------------------------------------


@pytest.fixture
def tree(aio: Env) -> Path:
    """A file, a directory, symlinks to both, a broken one and a loop."""
    top = aio.tmp / "tree"
    top.mkdir()
    (top / "f").write_bytes(b"12345")
    (top / "d").mkdir()
    os.symlink("f", top / "to_f")
    os.symlink("d", top / "to_d")
    os.symlink("none", top / "broken")
    os.symlink("loop", top / "loop")
    return top


NAMES = ["f", "d", "to_f", "to_d", "broken", "loop", "none", "f/below"]


async def test_stat_gives_every_field_os_gives(aio: Env, tree: Path) -> None:
    paths: list[object] = [*(tree / n for n in NAMES), str(tree / "f"), bytes(tree / "f"),
                           "/dev/null", "/", ""]
    fd = os.open(tree / "f", os.O_RDONLY)
    try:
        with kernel_calls(aio, 2 * len(paths) + 1):
            for path in paths:
                for follow in (True, False):
                    got = await async_outcome(aioposix.os.stat, path, follow_symlinks=follow)
                    want = outcome(os.stat, path, follow_symlinks=follow)
                    if got[0] == "returned":
                        assert fields(got[1]) == fields(want[1]), (path, follow)  # type: ignore[arg-type]
                    else:
                        assert got == want, (path, follow)
            assert fields(await aioposix.os.stat(fd)) == fields(os.stat(fd))
    finally:
        os.close(fd)


async def test_stat_with_dir_fd(aio: Env, tree: Path) -> None:
    dir_fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    file_fd = os.open(tree / "f", os.O_RDONLY)
    try:
        with kernel_calls(aio, 2 * len(NAMES) + 2):
            for name in NAMES:
                for follow in (True, False):
                    got = await async_outcome(aioposix.os.stat, name, dir_fd=dir_fd,
                                              follow_symlinks=follow)
                    want = outcome(os.stat, name, dir_fd=dir_fd, follow_symlinks=follow)
                    same = (fields(got[1]) == fields(want[1])  # type: ignore[arg-type]
                            if got[0] == "returned" else got == want)
                    assert same, (name, follow, got, want)
            # an absolute path ignores dir_fd; a dir_fd that is no directory: ENOTDIR
            assert fields(await aioposix.os.stat(tree / "f", dir_fd=file_fd)) == fields(
                os.stat(tree / "f", dir_fd=file_fd))
            assert await async_outcome(aioposix.os.stat, "f", dir_fd=file_fd) == outcome(
                os.stat, "f", dir_fd=file_fd)
    finally:
        os.close(dir_fd)
        os.close(file_fd)


async def test_arguments_os_refuses_are_refused_the_same(aio: Env, tree: Path) -> None:
    """What the kernel path does not take is os's to refuse: the same error."""
    fd = os.open(tree / "f", os.O_RDONLY)
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("stat", ("nul\0byte",), {}), ("stat", (None,), {}), ("stat", (b"f",), {"dir_fd": "x"}),
        ("stat", (fd,), {"follow_symlinks": False}), ("stat", (fd,), {"dir_fd": fd}),
        ("stat", (-1,), {}), ("mkdir", (tree / "m", "mode"), {}),
        ("rename", (tree / "f", 3), {}), ("unlink", (b"a\0",), {}),
        ("symlink", (tree / "f", tree / "s"), {"dir_fd": 2**40}),
        ("link", (tree / "f", tree / "h"), {"src_dir_fd": 1.5}),
    ]
    try:
        with kernel_calls(aio, 0):
            for name, args, kwargs in calls:
                got = await async_outcome(getattr(aioposix.os, name), *args, **kwargs)
                assert got == outcome(getattr(os, name), *args, **kwargs), name
    finally:
        os.close(fd)
    assert sorted(p.name for p in tree.iterdir()) == sorted(NAMES[:6])  # nothing was made


async def test_path_queries_match_os_path(aio: Env, tree: Path) -> None:
    queries = ["exists", "isfile", "isdir", "islink", "getsize", "getmtime", "getatime",
               "getctime"]
    paths: list[object] = [*(tree / n for n in NAMES), bytes(tree / "to_f"), str(tree / "d"),
                           "", "nul\0byte"]
    with kernel_calls(aio, len(queries) * (len(paths) - 1)):  # a NUL is os's to refuse
        for query in queries:
            for path in paths:
                got = await async_outcome(getattr(aioposix.os.path, query), path)
                want = outcome(getattr(os.path, query), path)
                assert got == want, (query, path)
    p = aioposix.os.path  # the queries that stay pool jobs
    assert await p.samefile(tree / "f", tree / "to_f")
    assert await p.ismount("/") and not await p.ismount(aio.tmp)
    assert await p.abspath("x") == os.path.abspath("x")
    with open(tree / "f", "rb") as a, open(tree / "to_f", "rb") as b:
        assert await p.sameopenfile(a.fileno(), b.fileno())


async def test_pool_calls_match_os(aio: Env, tree: Path) -> None:
    assert await aioposix.os.readlink(tree / "to_f") == os.readlink(tree / "to_f")
    assert await aioposix.os.access(tree / "f", os.R_OK)
    assert await aioposix.os.getcwd() == os.getcwd()
    assert (await aioposix.os.statvfs(tree)).f_bsize == os.statvfs(tree).f_bsize
    assert sorted(await aioposix.os.listdir(tree)) == sorted(os.listdir(tree))
    with await aioposix.os.scandir(tree) as got, os.scandir(tree) as want:
        assert sorted((e.name, e.is_dir(follow_symlinks=False)) for e in got) == sorted(
            (e.name, e.is_dir(follow_symlinks=False)) for e in want)


# -- the directory calls, step by step beside os ------------------------------------------

# (call, positional arguments, keyword arguments): "@x" is the path x in the tree (as
# Path, str or bytes by its prefix: @, @s:, @b:), "@fd" the tree's directory fd
Step = tuple[str, tuple[object, ...], dict[str, object]]
STEPS: list[Step] = [
    ("mkdir", ("@a",), {}), ("mkdir", ("@a",), {}), ("mkdir", ("@s:a/b", 0o750), {}),
    ("mkdir", ("@none/x",), {}), ("mkdir", ("c",), {"dir_fd": "@fd"}),
    ("mkdir", ("@b:f/x",), {}),
    ("rename", ("@f", "@g"), {}), ("rename", ("@f", "@g"), {}), ("rename", ("@g", "@a"), {}),
    ("rename", ("@b:c", "@b:a"), {}), ("rename", ("a/b", "e"), {"src_dir_fd": "@fd",
                                                                    "dst_dir_fd": "@fd"}),
    ("replace", ("@g", "@h"), {}), ("replace", ("@h", "@k"), {}), ("replace", ("@e", "@c"), {}),
    ("link", ("@k", "@l"), {}), ("link", ("@k", "@l"), {}), ("link", ("@none", "@m"), {}),
    ("symlink", ("k", "@s"), {}), ("symlink", ("k", "@s"), {}), ("symlink", ("a", "@sd"), {}),
    ("symlink", ("k", "t"), {"dir_fd": "@fd"}), ("symlink", ("@s:none", "@b:none/x"), {}),
    ("link", ("@s", "@hs"), {}), ("link", ("@s", "@hs2"), {"follow_symlinks": False}),
    ("link", ("s", "@hs3"), {"src_dir_fd": "@fd"}),
    ("link", ("@t", "hs4"), {"dst_dir_fd": "@fd", "follow_symlinks": False}),
    ("unlink", ("@s",), {}), ("unlink", ("@s",), {}), ("unlink", ("@a",), {}),
    ("remove", ("@hs",), {}), ("remove", ("hs2",), {"dir_fd": "@fd"}),
    ("rmdir", ("@a",), {}), ("rmdir", ("@k",), {}), ("rmdir", ("@none",), {}),
    ("rmdir", ("@sd",), {}), ("rmdir", ("@c",), {}), ("rmdir", ("a",), {"dir_fd": "@fd"}),
    ("unlink", ("@b:a",), {}),
]


def resolve(value: object, top: Path, fd: int) -> object:
    if not isinstance(value, str) or not value.startswith("@"):
        return value
    if value == "@fd":
        return fd
    if value.startswith("@s:"):
        return str(top / value[3:])
    if value.startswith("@b:"):
        return bytes(top / value[3:])
    return top / value[1:]


def snapshot(top: Path) -> list[tuple[object, ...]]:
    """What is in the tree: each entry's type, mode, link count, size and link target."""
    found = []
    for root, dirs, files in os.walk(top):
        for name in sorted(dirs + files):
            path = Path(root) / name
            st = os.lstat(path)
            target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            found.append((str(path.relative_to(top)), st.st_mode, st.st_nlink,
                          st.st_size if not stat.S_ISDIR(st.st_mode) else 0, target))
    return sorted(found)


async def run_steps(top: Path, module: Any) -> list[tuple[object, ...]]:
    """Make the steps on a fresh tree at ``top``, with ``module``'s calls."""
    top.mkdir()
    (top / "f").write_bytes(b"data")
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    results = []
    try:
        for name, args, kwargs in STEPS:
            call = getattr(module, name)
            real = [resolve(a, top, fd) for a in args]
            named = {k: resolve(v, top, fd) for k, v in kwargs.items()}
            if module is os:
                results.append(outcome(call, *real, **named))
            else:
                results.append(await async_outcome(call, *real, **named))
    finally:
        os.close(fd)
    return results


async def test_directory_calls_do_what_os_does(aio: Env) -> None:
    """The same steps on the same path, once with aioposix.os and once with os: each
    step's result or error and the tree left behind are the same."""
    top = aio.tmp / "t"
    with kernel_calls(aio, len(STEPS)):
        got = await run_steps(top, aioposix.os)
    got_tree = snapshot(top)
    top.rename(aio.tmp / "t_aioposix")
    want = await run_steps(top, os)
    for step, a, b in zip(STEPS, got, want, strict=True):
        assert a == b, step
    assert got_tree == snapshot(top)
    assert got.count(("returned", None)) >= len(STEPS) // 2  # half the steps did something


async def test_pool_directory_calls(aio: Env) -> None:
    top = aio.tmp / "a"
    (aio.tmp / "stop").write_bytes(b"")  # removedirs stops above a
    await aioposix.os.makedirs(top / "b" / "c", exist_ok=True)
    (top / "f").write_bytes(b"x")
    await aioposix.os.renames(top / "f", top / "new" / "i")
    assert (top / "new" / "i").read_bytes() == b"x"
    await aioposix.os.unlink(top / "new" / "i")
    await aioposix.os.rmdir(top / "new")
    await aioposix.os.removedirs(top / "b" / "c")  # c, b, then a: all empty
    assert not top.exists() and aio.tmp.exists()


async def test_calls_raise_the_audit_events_of_os(aio: Env) -> None:
    top = aio.tmp / "t"
    with audit_events(_DIR_FDS) as got:
        await run_steps(top, aioposix.os)
    top.rename(aio.tmp / "t_aioposix")
    with audit_events(_DIR_FDS) as want:
        await run_steps(top, os)
    assert got == want and len(got) == 1 + len(STEPS)  # the tree's own mkdir, then the steps


_DIR_FDS = {"os.mkdir": (2,), "os.rename": (2, 3), "os.link": (2, 3), "os.symlink": (2,),
            "os.remove": (1,), "os.rmdir": (1,)}


async def test_sendfile_copies_between_descriptors(aio: Env) -> None:
    src, dst = aio.tmp / "src", aio.tmp / "dst"
    src.write_bytes(b"0123456789")
    with open(src, "rb") as a, open(dst, "wb") as b:
        assert await aioposix.os.sendfile(b.fileno(), a.fileno(), 2, 5) == 5
    assert dst.read_bytes() == b"23456"


# -- fsync -------------------------------------------------------------------------------


async def test_fsync_does_what_os_does(aio: Env) -> None:
    path = aio.tmp / "f"
    r, w = os.pipe()
    try:
        with open(path, "wb") as f:
            f.write(b"data")
            f.flush()
            d = os.open(aio.tmp, os.O_RDONLY | os.O_DIRECTORY)
            try:
                with kernel_calls(aio, 2):
                    assert await async_outcome(aioposix.os.fsync, f.fileno()) == ("returned", None)
                    assert await async_outcome(aioposix.os.fsync, d) == ("returned", None)  # a dir
            finally:
                os.close(d)
            with kernel_calls(aio, 2):
                for fd in (r, 1 << 20):  # a pipe: EINVAL; no such fd: EBADF
                    got = await async_outcome(aioposix.os.fsync, fd)
                    assert got == outcome(os.fsync, fd)
            with kernel_calls(aio, 0):  # an object with fileno(): os's to take
                assert await async_outcome(aioposix.os.fsync, f) == ("returned", None)
                got = await async_outcome(aioposix.os.fsync, -1)
                assert got == outcome(os.fsync, -1)
        assert path.read_bytes() == b"data"
    finally:
        os.close(r)
        os.close(w)


# -- where the calls run -------------------------------------------------------------------


async def test_calls_run_off_the_loop_thread(aio: Env) -> None:
    where = aioposix.os.wrap(threading.get_ident)
    assert await where() != threading.get_ident()
    loop = asyncio.get_running_loop()
    assert await aioposix.os.getcwd(loop=loop, executor=None) == os.getcwd()  # unused
    assert (await aioposix.os.stat(aio.tmp, loop=loop, executor=None)).st_ino == \
        os.stat(aio.tmp).st_ino


@contextlib.asynccontextmanager
async def every_worker_busy() -> Any:
    """Every worker of the job pool held until the block ends."""
    workers = offload._executor()._max_workers
    release = threading.Event()
    started = threading.Semaphore(0)

    def hold() -> None:
        started.release()
        release.wait(30)

    holders = [asyncio.ensure_future(offload.run_job(hold)) for _ in range(workers)]
    try:
        for _ in range(workers):
            assert await asyncio.to_thread(started.acquire, True, 10)
        yield
    finally:
        release.set()
        await asyncio.gather(*holders)


async def test_a_pool_job_cancelled_while_queued_is_never_made(aio: Env) -> None:
    # mkdir is a pool job where io_uring is not used; makedirs is one everywhere
    make = aioposix.os.mkdir if aio.slow_path == "pool" else aioposix.os.makedirs
    target = aio.tmp / "never"
    async with every_worker_busy():
        queued = asyncio.ensure_future(make(target))
        await asyncio.sleep(0)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
    await aioposix.os.getcwd()  # a later job runs: the workers are free again
    assert not target.exists()


@pytest.mark.backends("io_uring", "io_uring+inline")
async def test_kernel_submitted_calls_need_no_worker(aio: Env, tree: Path) -> None:
    """With every pool worker held, the kernel-submitted calls still finish."""
    async def calls() -> None:
        assert (await aioposix.os.stat(tree / "f")).st_size == 5
        assert await aioposix.os.path.islink(tree / "to_f")
        await aioposix.os.mkdir(tree / "m")
        await aioposix.os.rename(tree / "m", tree / "n")
        await aioposix.os.symlink("n", tree / "sn")
        await aioposix.os.link(tree / "f", tree / "hf")
        await aioposix.os.unlink(tree / "sn")
        await aioposix.os.rmdir(tree / "n")
        fd = os.open(tree / "hf", os.O_RDONLY)
        try:
            await aioposix.os.fsync(fd)
        finally:
            os.close(fd)

    async with every_worker_busy():
        with kernel_calls(aio, 9):
            await asyncio.wait_for(calls(), 10)
    assert os.stat(tree / "hf").st_nlink == 2 and not (tree / "n").exists()


@pytest.mark.backends("io_uring", "io_uring+inline")
async def test_a_cancelled_kernel_submitted_call_is_still_made(aio: Env) -> None:
    """The kernel cannot be asked to give a call back: the task is cancelled, the
    directory is made all the same."""
    target = aio.tmp / "made"
    before = ring_ops._submitted
    task = asyncio.ensure_future(aioposix.os.mkdir(target))
    await asyncio.sleep(0)  # the task writes its SQE; the ring enters it after this step
    assert ring_ops._submitted == before + 1 and not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await aio.until(target.is_dir)
    assert (await aioposix.os.stat(target)).st_ino == os.stat(target).st_ino


# -- the ring's lifetime ------------------------------------------------------------------


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()


async def some_calls(top: Path) -> int:
    await aioposix.os.mkdir(top / "x")
    await aioposix.os.rmdir(top / "x")
    return (await aioposix.os.stat(top)).st_ino


async def test_a_loop_gives_its_ring_back_when_it_ends(aio: Env) -> None:
    before = open_fds()
    ino = await asyncio.to_thread(run_on, aio.loop, some_calls(aio.tmp))
    assert ino == os.stat(aio.tmp).st_ino
    assert open_fds() == before  # asyncio.run's shutdown gave the ring back


async def test_a_loop_closed_without_shutdown_leaves_no_descriptor(aio: Env) -> None:
    before = open_fds()

    def run() -> None:
        loop = new_loop(aio.loop)
        try:
            loop.run_until_complete(some_calls(aio.tmp))
        finally:
            loop.close()  # no shutdown_asyncgens: the reaper closes the ring

    await asyncio.to_thread(run)
    await aio.until(lambda: open_fds() == before)


NO_RING_CHILD = """
import asyncio, os, sys
import aioposix, aioposix.os
from aioposix._backends import ring_ops

async def main():
    path = sys.argv[1]
    await aioposix.os.mkdir(os.path.join(path, "d"))
    assert (await aioposix.os.stat(path)).st_ino == os.stat(path).st_ino
    await aioposix.os.rmdir(os.path.join(path, "d"))
    print(aioposix.sysctl["vfs.aio.backend_active"], ring_ops._submitted)

asyncio.run(main())
"""


def test_without_io_uring_every_call_is_a_pool_job(tmp_path: Path) -> None:
    env = {**os.environ, "AIOPOSIX_NO_IO_URING": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", NO_RING_CHILD, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["threads", "0"]
    assert list(tmp_path.iterdir()) == []
