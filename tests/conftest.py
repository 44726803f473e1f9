"""One fixture runs every test on every loop and every backend.

``anyio_backend`` gives the loops (asyncio, and asyncio with uvloop through
AnyIO's runner); ``aio`` adds the backend (``inline``: page-cache hits are
served inline with RWF_NOWAIT, the rest by the worker daemons; ``pool``:
every file job goes through the worker daemons; ``io_uring``: every file
job goes through io_uring) and checks that the test leaves no descriptor
behind.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import BACKENDS, MakeFile, open_fds

import aioposix
from aioposix._kernel import KERNEL
from aioposix._uring import probe as uring_probe

LOOPS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        func = getattr(item, "function", None)
        if func is not None and inspect.iscoroutinefunction(func):
            item.add_marker(pytest.mark.anyio)


@pytest.fixture(scope="session", autouse=True)
def _uvloop_globals() -> None:
    """uvloop opens a few process-wide descriptors with its first loop: open
    them before any test counts descriptors."""
    import uvloop

    uvloop.new_event_loop().close()


@pytest.fixture(params=LOOPS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    return request.param  # type: ignore[no-any-return]


@dataclass
class Env:
    """What a test knows about where it runs, and small helpers."""

    loop: str
    backend: str
    tmp: Path

    def file(self, data: bytes = b"", name: str = "data.bin", flags: int = os.O_RDWR) -> int:
        path = self.tmp / name
        path.write_bytes(data)
        return os.open(path, flags)

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait, deadline-bounded, until ``predicate()`` holds (fails on the deadline)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.001)


@pytest.fixture(params=list(BACKENDS))
def aio(request: pytest.FixtureRequest, anyio_backend: tuple[str, dict[str, bool]],
        tmp_path: Path) -> Iterator[Env]:
    if request.param == "io_uring" and (reason := uring_probe()) is not None:
        pytest.skip(f"io_uring is not usable here: {reason}")
    aioposix.sysctl.reset()  # type: ignore[attr-defined]
    backend, inline = BACKENDS[request.param]
    aioposix.sysctl["vfs.aio.backend"] = backend
    aioposix.sysctl["vfs.aio.inline"] = inline
    loop = "uvloop" if anyio_backend[1].get("use_uvloop") else "asyncio"
    before = open_fds()
    yield Env(loop=loop, backend=request.param, tmp=tmp_path)
    aioposix.sysctl.reset()  # type: ignore[attr-defined]
    leaked = open_fds() - before
    # the test's own files are closed by the test; anything else is ours
    assert not leaked, f"descriptors left open: {sorted(leaked)}"


@pytest.fixture
def new_file(aio: Env) -> Iterator[MakeFile]:
    """A factory of fds (O_RDWR by default) on fresh files in the test's tmp dir,
    closed at teardown."""
    fds: list[int] = []

    def make(data: bytes = b"", flags: int = os.O_RDWR) -> int:
        fd = aio.file(data, f"file{len(fds)}.bin", flags)
        fds.append(fd)
        return fd

    yield make
    for fd in fds:
        os.close(fd)


@pytest.fixture
def pipe(aio: Env) -> Iterator[tuple[int, int]]:
    """A pipe ``(r, w)``, closed at teardown: a read on it stays in flight until
    the test writes (a "not done" job)."""
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


@pytest.fixture
def thread_baseline() -> Iterator[Callable[[], int]]:
    """Threads other than the process-wide worker daemons."""
    def others() -> int:
        return sum(1 for t in threading.enumerate() if not t.name.startswith("aiod-"))
    yield others


def pool_threads() -> int:
    return KERNEL.pool.num_procs
