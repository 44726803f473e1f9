"""One fixture runs every test on every loop and every backend that applies here.

``anyio_backend`` gives the loops (asyncio, and asyncio with uvloop through
AnyIO's runner); ``aio`` adds the backend, one of ``helpers.BACKENDS``:
``inline`` (page-cache hits served inline with RWF_NOWAIT, the rest by the
worker daemons), ``pool`` (every file job on the worker daemons),
``io_uring`` (every file job on the ring) and ``io_uring+inline`` (the
default setting: hits inline, the rest on the ring).  The io_uring variants
exist only where io_uring works; ``@pytest.mark.backends("pool", ...)``
limits a test (or a module, through ``pytestmark``) to the variants named.

Before each test the fixture clears AIOPOSIX_BACKEND, sets the backend, and
checks that it is the one in use: ``vfs.aio.backend_active`` names it, and
a probe job proves it, on a fresh loop of the test's kind: an uncached read
(evicted with posix_fadvise) runs where the fault hook of that backend's
slow path sees it, and a cached read is served inline exactly when the
variant says so.  After the test it checks that no descriptor is left behind.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ALL_BACKENDS, BACKENDS, INLINE, SLOW_PATH, MakeFile, open_fds, rand, run_on

import aioposix
from aioposix import Aiocb, AioContext
from aioposix._kernel.kernel import KERNEL
from aioposix.testing import inject_fault

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
    backend: str  # the variant: a key of helpers.BACKENDS
    tmp: Path

    @property
    def inline(self) -> bool:
        """Page-cache hits are served inline, inside the submit call."""
        return INLINE[self.backend]

    @property
    def slow_path(self) -> str:
        """Where file jobs that are not page-cache hits run: "pool" or "io_uring"."""
        return SLOW_PATH[self.backend]

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backends(*names): run the test only on these variants of the aio fixture")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The ``aio`` variants of a test: the backends that apply here, limited by the
    ``backends`` marker.  A variant that cannot apply is not generated."""
    if "aio" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    names = marker.args if marker is not None else tuple(ALL_BACKENDS)
    unknown = [name for name in names if name not in ALL_BACKENDS]
    if unknown:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown backends {unknown}")
    usable = [name for name in names if name in BACKENDS]
    metafunc.parametrize("aio", usable, indirect=True, ids=usable)


@dataclass(frozen=True)
class Probe:
    """What one probe job showed about the backend in use."""

    active: object  # vfs.aio.backend_active
    slow_path: str  # where an uncached read ran: "pool", "io_uring", or what else happened
    inline: bool  # a cached read finished inside its submit call


PROBE_SIZE = 1 << 16
# distinct errnos for the probe's injected faults: the job's errno says where it ran
PROBE_FAULTS = {"pool": errno.ENOTRECOVERABLE, "io_uring": errno.EOWNERDEAD}
INLINE_FAULT = errno.ENOTUNIQ


@pytest.fixture(scope="session")
def probe_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file on the tests' filesystem, written and synced once: its pages are clean,
    so posix_fadvise(DONTNEED) takes it out of the page cache."""
    path = tmp_path_factory.mktemp("probe") / "probe.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, rand(PROBE_SIZE))
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


async def _uncached_read(ctx: AioContext, fd: int) -> int:
    """An aio_read of the whole file, just evicted from the page cache, with a
    distinct fault armed on each slow path: the errno says where it ran (0: it
    was served from the page cache after all)."""
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    cb = Aiocb(fd, bytearray(PROBE_SIZE))
    with inject_fault(PROBE_FAULTS["pool"], path="pool"), \
            inject_fault(PROBE_FAULTS["io_uring"], path="io_uring"):
        ctx.aio_read(cb)
        await ctx.aio_suspend([cb], 10)
    err = ctx.aio_error(cb)
    ctx.aio_return(cb)
    return err


async def _probe_jobs(path: Path) -> Probe:
    fd = os.open(path, os.O_RDONLY)
    try:
        async with AioContext() as ctx:
            # A failed RWF_NOWAIT read starts readahead, and pages being read cannot
            # be evicted: a read that found the file cached again is tried anew.
            for _ in range(50):
                err = await _uncached_read(ctx, fd)
                if err:
                    break
                await asyncio.sleep(0.002)
            where = {code: name for name, code in PROBE_FAULTS.items()}
            slow = where.get(err, f"none of them (errno {err})")
            os.pread(fd, PROBE_SIZE, 0)  # now in the page cache
            # aio_readv takes the general submit path, which the inline fault sees
            cached = Aiocb(fd, iov=[bytearray(PROBE_SIZE)])
            with inject_fault(INLINE_FAULT, path="inline"):
                ctx.aio_readv(cached)
                inline = cached.error == INLINE_FAULT
                await ctx.aio_suspend([cached], 10)
            ctx.aio_return(cached)
        return Probe(aioposix.sysctl["vfs.aio.backend_active"], slow, inline)
    finally:
        os.close(fd)


def probe_backend(loop: str, path: Path) -> Probe:
    """Run the probe jobs on a fresh loop of the kind ``loop`` on a thread of its own
    (the test's loop is not running yet, and must not be disturbed)."""
    box: list[Probe | BaseException] = []

    def main() -> None:
        try:
            box.append(run_on(loop, _probe_jobs(path)))
        except BaseException as exc:
            box.append(exc)

    t = threading.Thread(target=main, name="backend-probe")
    t.start()
    t.join(30)
    assert box, "the backend probe did not finish within 30 s"
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def check_backend(name: str, probe: Probe) -> None:
    """The variant ``name`` is what runs: fail loudly otherwise."""
    want_active = "io_uring" if SLOW_PATH[name] == "io_uring" else "threads"
    assert probe.active == want_active, (
        f"the {name} variant runs with vfs.aio.backend_active={probe.active!r}")
    assert probe.slow_path == SLOW_PATH[name], (
        f"the {name} variant ran an uncached read on {probe.slow_path}, "
        f"not on {SLOW_PATH[name]}")
    assert probe.inline == INLINE[name], (
        f"the {name} variant {'did not serve' if INLINE[name] else 'served'} "
        f"a page-cache hit inline")


@pytest.fixture
def aio(request: pytest.FixtureRequest, anyio_backend: tuple[str, dict[str, bool]],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, probe_file: Path) -> Iterator[Env]:
    name: str = request.param
    monkeypatch.delenv("AIOPOSIX_BACKEND", raising=False)
    aioposix.sysctl.reset()  # type: ignore[attr-defined]
    backend, inline = BACKENDS[name]
    aioposix.sysctl["vfs.aio.backend"] = backend
    aioposix.sysctl["vfs.aio.inline"] = inline
    loop = "uvloop" if anyio_backend[1].get("use_uvloop") else "asyncio"
    check_backend(name, probe_backend(loop, probe_file))
    before = open_fds()
    yield Env(loop=loop, backend=name, tmp=tmp_path)
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
