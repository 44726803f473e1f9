"""Plain helpers shared by several test files (fixtures live in conftest.py).

Import them as ``from helpers import ...``: pytest puts this folder on sys.path.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

from aioposix._backends.ring import probe as uring_probe

T = TypeVar("T")

# name: (vfs.aio.backend, vfs.aio.inline), every backend setting the tests know.
# "inline": page-cache hits inline, the rest on the worker daemons; "pool": every file
# job on the daemons; "io_uring": every file job on the ring; "io_uring+inline": the
# default setting (auto, inline on) where io_uring works: hits inline, the rest on the ring.
ALL_BACKENDS = {
    "inline": ("threads", 1),
    "pool": ("threads", 0),
    "io_uring": ("io_uring", 0),
    "io_uring+inline": ("auto", 1),
}
# where a file job that is not a page-cache hit runs, on each backend: the fault
# path of ``aioposix.testing.inject_fault`` that sees it
SLOW_PATH = {"inline": "pool", "pool": "pool", "io_uring": "io_uring",
             "io_uring+inline": "io_uring"}
INLINE = {"inline": True, "pool": False, "io_uring": False, "io_uring+inline": True}
# the backends that apply on this machine: the io_uring ones only where io_uring works
# (elsewhere the io_uring setting would quietly run on the pool)
BACKENDS = {name: setting for name, setting in ALL_BACKENDS.items()
            if SLOW_PATH[name] != "io_uring" or uring_probe() is None}

# what conftest's ``new_file`` fixture gives: make(data=b"", flags=os.O_RDWR) -> fd
MakeFile = Callable[..., int]


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def evict(fd: int) -> None:
    """Take the file behind ``fd`` out of the page cache (its pages must be clean:
    written back, e.g. by fsync)."""
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def cache_only(fd: int, nbytes: int) -> None:
    """Leave exactly the first ``nbytes`` of the (synced) file in the page cache:
    evict it, turn readahead off for this open file, and read that part."""
    evict(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    assert os.pread(fd, nbytes, 0) is not None


def rand(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def check_errno(info: pytest.ExceptionInfo[OSError], code: int) -> None:
    assert info.value.errno == code, info.value


@contextlib.contextmanager
def loop_errors() -> Iterator[list[dict[str, Any]]]:
    """What reaches the running loop's exception handler meanwhile."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield errors
    finally:
        loop.set_exception_handler(old)


def run_on(loop: str, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a fresh loop of the given kind, as an application would."""
    if loop == "asyncio":
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def run_in_a_thread(main: Callable[[], Coroutine[Any, Any, int]], timeout: float = 30) -> int:
    """``asyncio.run(main())`` on a thread of its own, as a forked child must (the
    forking thread still looks like it runs the parent's loop): its result, or 98
    if it raised or did not finish within ``timeout`` seconds."""
    box: list[int] = []
    t = threading.Thread(target=lambda: box.append(asyncio.run(main())))
    t.start()
    t.join(timeout)
    return box[0] if box else 98


async def wait_child(pid: int, timeout: float) -> int:
    """The exit code of the forked child ``pid``; killed (and an AssertionError)
    if it has not exited within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if loop.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the child did not exit within {timeout} s")
        await asyncio.sleep(0.01)


# -- audit events -------------------------------------------------------------------

_AUDIT: list[tuple[Mapping[str, tuple[int, ...]], list[tuple[str, tuple[object, ...]]]]] = []


def _audit_hook(event: str, args: tuple[object, ...]) -> None:
    if _AUDIT and event in _AUDIT[-1][0]:
        wanted, got = _AUDIT[-1]
        dir_fds = wanted[event]
        got.append((event, tuple("fd" if i in dir_fds and a != -1 else a
                                 for i, a in enumerate(args))))


@contextlib.contextmanager
def audit_events(events: Mapping[str, tuple[int, ...]]
                 ) -> Iterator[list[tuple[str, tuple[object, ...]]]]:
    """The audit events named in ``events`` raised meanwhile, as (name, args); the
    arguments at the indices ``events`` gives (a dir_fd) show as "fd" unless -1."""
    if not getattr(sys, "_aioposix_test_hook", False):
        sys.addaudithook(_audit_hook)  # hooks cannot be removed: one, idle unless asked
        sys._aioposix_test_hook = True  # type: ignore[attr-defined]
    got: list[tuple[str, tuple[object, ...]]] = []
    _AUDIT.append((events, got))
    try:
        yield got
    finally:
        _AUDIT.pop()


def o_direct_works(directory: Path) -> bool:
    """Whether the filesystem of ``directory`` takes O_DIRECT."""
    try:
        fd = os.open(directory / "probe", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    os.close(fd)
    return True
