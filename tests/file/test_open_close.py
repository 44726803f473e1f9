"""aioposix.open's open(2) and the file's close(2): what the builtin open gives.

Every mode opens the file with the flags, close-on-exec flag and mode bits the
builtin ``open`` gives it, and fails with the same OSError (type, errno,
strerror, filename) and the same audit event.  On the io_uring variants the
open is IORING_OP_OPENAT and an awaited close IORING_OP_CLOSE: the ring
module's private count of calls handed to the kernel grows by one for each,
and both finish while every pool worker is busy.  Elsewhere each is a pool
job: an open cancelled while it waits for a worker is never made.  An open
cancelled while the kernel or a worker makes it leaves no descriptor behind,
nor does a close that fails; a FIFO opened for reading waits for a writer, as
open(2) does.  Also ``readinto1``, which reads with at most one job.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import errno
import fcntl
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import audit_events, open_fds
from test_file_api import CountingContext
from test_os import described, every_worker_busy, kernel_calls

from aioposix._backends import ring_ops
from aioposix._file import base
from aioposix._file.opening import CHUNK
from aioposix._file.opening import open as aopen

if TYPE_CHECKING:
    from conftest import Env

MODES = ["r", "rb", "r+", "r+b", "w", "wb", "w+", "w+b", "a", "ab", "a+", "a+b", "x", "xb",
         "x+", "x+b", "rt", "wt+"]


def builtin_outcome(path: Any, mode: str) -> tuple[object, ...]:
    """What the builtin ``open`` makes of ``path`` in ``mode``: the open file's status
    flags, close-on-exec flag and mode bits, or its error."""
    try:
        with builtins.open(path, mode) as f:
            return opened(f.fileno())
    except OSError as exc:
        return described(exc)


async def our_outcome(path: Any, mode: str) -> tuple[object, ...]:
    try:
        async with aopen(path, mode) as f:
            return opened(f.fileno())
    except OSError as exc:
        return described(exc)


def opened(fd: int) -> tuple[object, ...]:
    return ("opened", fcntl.fcntl(fd, fcntl.F_GETFL), fcntl.fcntl(fd, fcntl.F_GETFD),
            os.fstat(fd).st_mode)


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


# -- what is opened --------------------------------------------------------------------


async def test_open_and_close_are_kernel_submitted(aio: Env) -> None:
    path = aio.tmp / "f"
    path.write_bytes(b"abc")
    with kernel_calls(aio, 2):
        async with aopen(path, "rb") as f:
            assert await f.read() == b"abc"
    with kernel_calls(aio, 2):
        t = await aopen(path, "r+")
        await t.write("xyz")
        await t.close()
    assert path.read_bytes() == b"xyz"


async def test_every_mode_opens_as_builtin_open(aio: Env) -> None:
    """Flags (O_APPEND, O_RDWR ...), FD_CLOEXEC, the mode bits of a new file under the
    umask, truncation, and the errors, on a new and on an existing file."""
    path = aio.tmp / "f"

    def prepare(existing: bool) -> None:
        path.unlink(missing_ok=True)
        if existing:
            path.write_bytes(b"old")

    def left() -> bytes | None:
        return path.read_bytes() if path.exists() else None

    with umask(0o027):
        for existing in (False, True):
            for mode in MODES:
                prepare(existing)
                want = (builtin_outcome(path, mode), left())
                prepare(existing)
                with kernel_calls(aio, 2 if want[0][0] == "opened" else 1):
                    got = (await our_outcome(path, mode), left())
                assert got == want, (mode, existing)


async def test_errors_are_those_of_builtin_open(aio: Env) -> None:
    top = aio.tmp
    (top / "f").write_bytes(b"x")
    (top / "d").mkdir()
    os.symlink("loop", top / "loop")
    cases: list[tuple[object, str]] = [
        (top / "missing", "r"), (str(top / "missing"), "rb"), (bytes(top / "missing"), "r+b"),
        (top / "none" / "f", "w"), (top / "f" / "below", "r"), (top / "loop", "rb"),
        (top / ("n" * 300), "w"), (top / "f", "x"), (top / "d", "rb"), (top / "d", "r+b"),
        (bytes(top / "d"), "wb"), ("", "r"),
    ]
    if os.geteuid() != 0:  # root opens whatever the mode bits say
        (top / "locked").write_bytes(b"")
        (top / "locked").chmod(0)
        cases.append((top / "locked", "r"))
    for path, mode in cases:
        want = builtin_outcome(path, mode)
        assert want[0] != "opened", (path, mode)
        got = await our_outcome(path, mode)
        assert got == want, (path, mode)


async def test_arguments_the_ring_does_not_take_are_refused_as_before(aio: Env) -> None:
    """os.open's to refuse, as it did when it was called on the loop thread."""
    for path in ("nul\0byte", 1.5, None):
        with pytest.raises((ValueError, TypeError)) as want:
            os.open(path, os.O_RDONLY | os.O_CLOEXEC, 0o666)  # type: ignore[arg-type]
        with kernel_calls(aio, 0), pytest.raises(want.type) as got:
            await aopen(path, "rb")  # type: ignore[arg-type]
        assert str(got.value) == str(want.value)


async def test_open_raises_the_audit_event_of_os_open(aio: Env) -> None:
    """The event os.open raises, as before: (path, None, flags with O_CLOEXEC)."""
    path = aio.tmp / "f"
    for mode, flags in (("w", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), ("rb", os.O_RDONLY),
                        ("a+b", os.O_RDWR | os.O_CREAT | os.O_APPEND)):
        with audit_events({"open": ()}) as got:
            async with aopen(path, mode):
                pass
        with audit_events({"open": ()}) as want:
            os.close(os.open(path, flags | os.O_CLOEXEC, 0o666))
        assert got == want and len(got) == 1, mode
    with audit_events({"open": ()}) as got, pytest.raises(FileNotFoundError):
        await aopen(aio.tmp / "missing", "rb")
    assert got == [("open", (str(aio.tmp / "missing"), None, os.O_RDONLY | os.O_CLOEXEC))]


async def test_an_opener_or_an_fd_is_opened_as_before(aio: Env) -> None:
    """Neither goes to the kernel to be opened; closing an fd that is the file's does."""
    path = aio.tmp / "f"
    path.write_bytes(b"data")
    seen: list[int] = []

    def opener(p: Any, flags: int) -> int:
        seen.append(flags)
        return os.open(p, flags)

    with kernel_calls(aio, 1):  # the close
        async with aopen(path, "rb", opener=opener) as f:
            assert await f.read() == b"data"
    assert seen == [os.O_RDONLY | os.O_CLOEXEC]
    fd = os.open(path, os.O_RDONLY)
    try:
        with kernel_calls(aio, 0):
            async with aopen(fd, "rb", closefd=False) as f:
                assert await f.read() == b"data"
        assert os.fstat(fd).st_size == 4  # still open
    finally:
        os.close(fd)
    with kernel_calls(aio, 1):
        async with aopen(os.open(path, os.O_RDONLY), "rb") as f:
            assert await f.read() == b"data"


# -- closing ----------------------------------------------------------------------------


async def test_close_twice_closes_once(aio: Env) -> None:
    path = aio.tmp / "f"
    with kernel_calls(aio, 2):
        f = await aopen(path, "wb")
        await f.write(b"buffered")
        await f.close()
        await f.close()
    assert f.closed and path.read_bytes() == b"buffered"


async def test_a_close_that_fails_still_closes_the_file(aio: Env) -> None:
    path = aio.tmp / "f"
    path.write_bytes(b"x")
    f = await aopen(path, "rb")
    fd = f.fileno()
    os.close(fd)  # behind the file's back: its close gets EBADF, as os.close would
    with kernel_calls(aio, 1), pytest.raises(OSError) as failed:
        await f.close()
    try:
        os.close(fd)
    except OSError as exc:
        want = described(exc)
    assert described(failed.value) == want
    assert f.closed
    with kernel_calls(aio, 0):
        await f.close()  # closed already: nothing more


async def test_a_raw_file_is_closed_by_its_file_io(aio: Env) -> None:
    path = aio.tmp / "f"
    path.write_bytes(b"abc")
    with kernel_calls(aio, 1):  # the open: io.FileIO closes the fd it owns
        async with aopen(path, "rb") as f:
            raw = f.raw
    assert raw.closed and f.closed


# -- where they run, and cancelling ----------------------------------------------------


@pytest.mark.backends("io_uring", "io_uring+inline")
async def test_open_and_close_need_no_worker(aio: Env) -> None:
    path = aio.tmp / "f"
    async with every_worker_busy():
        with kernel_calls(aio, 4):
            async with aopen(path, "w") as f:
                await f.write("text")
            async with aopen(path, "rb") as b:
                assert await asyncio.wait_for(b.read(), 10) == b"text"


@pytest.mark.backends("inline", "pool")
async def test_an_open_cancelled_while_queued_is_never_made(aio: Env) -> None:
    target = aio.tmp / "never"
    async with every_worker_busy():
        queued = asyncio.ensure_future(aopen(target, "xb"))
        await asyncio.sleep(0)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
    assert not target.exists()


@contextlib.contextmanager
def closed_for_nobody(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The descriptors an open gave after its task was cancelled, each checked closed
    right after aioposix closed it (on the ring's callback, or the pool job's)."""
    found: list[int] = []

    def check(fd: int) -> None:
        with pytest.raises(OSError):
            os.fstat(fd)
        found.append(fd)

    def opened(future: asyncio.Future[int], result: int, err: int) -> None:
        cancelled = future.cancelled()
        original_opened(future, result, err)
        if cancelled and result >= 0:
            check(result)

    def unclaimed(job: Any) -> None:
        original_unclaimed(job)
        if not job.cancelled() and job.exception() is None:
            check(job.result())

    original_opened, original_unclaimed = ring_ops._opened, base._close_unclaimed
    monkeypatch.setattr(ring_ops, "_opened", opened)
    monkeypatch.setattr(base, "_close_unclaimed", unclaimed)
    yield found


async def test_an_open_cancelled_while_it_is_made_leaves_no_descriptor(
        aio: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a FIFO for writing waits for a reader, in the kernel or in a worker:
    the task is cancelled meanwhile, then a reader comes and the open finishes; the
    descriptor it gave is closed."""
    fifo = aio.tmp / "fifo"
    os.mkfifo(fifo)
    started = threading.Event()  # a worker is in os.open: the job can no longer be taken back
    real_open = os.open

    def watched_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        if path == fifo:
            started.set()
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", watched_open)
    with closed_for_nobody(monkeypatch) as found:
        before = ring_ops._submitted
        task = asyncio.ensure_future(aopen(fifo, "wb"))
        if aio.slow_path == "pool":
            await aio.until(started.is_set)
        else:
            await aio.until(lambda: ring_ops._submitted == before + 1)
            await asyncio.sleep(0.01)  # the SQE entered: the kernel waits for a reader
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        reader = real_open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the open can finish now
        try:
            await aio.until(lambda: len(found) == 1)
        finally:
            os.close(reader)


@pytest.mark.backends("io_uring", "io_uring+inline")
async def test_an_open_cancelled_after_its_cqe_came_leaves_no_descriptor(
        aio: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CQE gave the task its descriptor, and the task is cancelled before it ran:
    the descriptor is closed on the way out."""
    path = aio.tmp / "f"
    path.write_bytes(b"")
    tasks: list[asyncio.Future[Any]] = []
    original = ring_ops._opened

    def opened_then_cancelled(future: asyncio.Future[int], result: int, err: int) -> None:
        original(future, result, err)
        assert future.done() and not future.cancelled() and result >= 0
        tasks[0].cancel()

    async with aopen(path, "rb"):  # the loop's ring made: its descriptors counted below
        pass
    monkeypatch.setattr(ring_ops, "_opened", opened_then_cancelled)
    before = open_fds()
    tasks.append(asyncio.ensure_future(aopen(path, "rb")))
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    assert open_fds() == before


async def test_a_fifo_opened_for_reading_waits_for_a_writer(aio: Env) -> None:
    fifo = aio.tmp / "fifo"
    os.mkfifo(fifo)
    writers: list[int] = []

    def writer_opened() -> bool:
        try:  # ENXIO until the open waits as a reader of the FIFO
            writers.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as exc:
            assert exc.errno == errno.ENXIO
            return False
        return True

    with kernel_calls(aio, 2):
        task = asyncio.ensure_future(aopen(fifo, "rb"))
        await asyncio.sleep(0.05)
        assert not task.done()  # as open(2) waits
        await aio.until(writer_opened)
        os.write(writers[0], b"through the fifo")
        os.close(writers[0])
        async with await asyncio.wait_for(task, 10) as f:
            assert await f.read() == b"through the fifo"


NO_RING_CHILD = """
import asyncio, os, sys
import aioposix
from aioposix._backends import ring_ops

async def main():
    path = os.path.join(sys.argv[1], "f")
    async with aioposix.open(path, "w") as f:
        await f.write("made")
    async with aioposix.open(path) as f:
        assert await f.read() == "made"
    print(aioposix.sysctl["vfs.aio.backend_active"], ring_ops._submitted)

asyncio.run(main())
"""


def test_without_io_uring_open_and_close_are_pool_jobs(tmp_path: Path) -> None:
    env = {**os.environ, "AIOPOSIX_NO_IO_URING": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", NO_RING_CHILD, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["threads", "0"]
    assert (tmp_path / "f").read_text() == "made"


# -- readinto1 ---------------------------------------------------------------------------


async def test_readinto1_reads_with_at_most_one_job(aio: Env) -> None:
    data = os.urandom(2 * CHUNK + 100)
    path = aio.tmp / "f"
    path.write_bytes(data)
    ctx = CountingContext()

    def reads() -> int:
        return ctx.calls["aio_read"]

    async with ctx, aopen(path, "rb", context=ctx) as f:
        small = bytearray(10)
        start = reads()
        assert await f.readinto1(small) == 10 and small == data[:10]
        assert reads() == start + 1  # one job: a chunk read ahead
        rest = bytearray(CHUNK)
        assert await f.readinto1(memoryview(rest)) == CHUNK - 10  # what is buffered, no job
        assert rest[:CHUNK - 10] == data[10:CHUNK] and reads() == start + 1
        big = bytearray(CHUNK + 50)
        assert await f.readinto1(big) == CHUNK + 50 and big == data[CHUNK:2 * CHUNK + 50]
        assert reads() == start + 2
        assert await f.readinto1(bytearray()) == 0 and reads() == start + 2
        tail = bytearray(500)
        assert await f.readinto1(tail) == 50 and tail[:50] == data[-50:]
        assert await f.readinto1(tail) == 0
    with builtins.open(path, "rb") as ref:
        assert ref.readinto1(bytearray(10)) == 10  # io.BufferedReader has it too


async def test_readinto1_after_a_write_sees_it(aio: Env) -> None:
    async with aopen(aio.tmp / "f", "w+b") as f:
        await f.write(b"written")
        await f.seek(0)
        buf = bytearray(4)
        assert await f.readinto1(buf) == 4 and buf == b"writ"
    async with aopen(aio.tmp / "f", "wb") as w:
        with pytest.raises(OSError):  # io.UnsupportedOperation: not readable
            await w.readinto1(bytearray(1))
