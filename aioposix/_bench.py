"""``aioposix bench``: a fio-like workload runner, aioposix beside its peers.

One workload (rw, bs, iodepth, size, runtime) runs on one file, filled and
read once into the page cache, with each engine in turn on one event loop,
each engine used the way its own users use it: ``aioposix`` with one
AioContext and, per task, one Aiocb per direction reused op after op
(set ``cb.offset``, ``ctx.aio_read(cb)``, ``await cb``); ``aiofiles`` with
one ``aiofiles.open`` handle per task, ``seek`` then ``read``/``write``;
``caio`` with one ``caio.AsyncioContext``, ``read(n, fd, offset)`` /
``write(data, fd, offset)``; ``sync`` with one task of plain
``os.pread``/``os.pwrite`` and no concurrency, the ceiling an event loop
pays to get near.  iodepth tasks (sync: one) issue ops back to back until
the deadline; each op's latency runs from just before the submit to just
after the await returns (``perf_counter_ns``), and an engine's result is
its IOPS, MiB/s, p50/p99 latency and its ratio to the first engine, with a
final check, for reads, that one block read through the engine equals
``os.pread``'s.  The optional dependencies (aiofiles, caio, rich, uvloop,
matplotlib) are imported by name when needed: an engine that is missing is
skipped with a note, and the output degrades to plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import importlib
import importlib.metadata
import json
import mmap
import os
import platform
import random
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from types import ModuleType
from typing import Any, Protocol

from ._context import AioContext
from ._job import Aiocb
from ._kernel import KERNEL

MiB = 1 << 20
RW_MODES = ("read", "write", "randread", "randwrite", "randrw")
ENGINE_NAMES = ("aioposix", "aiofiles", "caio", "sync")
DEFAULT_RUNTIME = 4.0  # seconds per engine: the four defaults take about 20 s in all
_O_DIRECT = getattr(os, "O_DIRECT", 0)
SYNC_YIELD_EVERY = 1024  # sync ops between yields, so the progress bar can redraw
CDF_POINTS = 500  # latency CDF points kept per engine for the chart


class UsageError(Exception):
    """A bad command line or setting: printed to stderr, exit status 2.
    (Defined here because the runner finds some of them: a missing uvloop, a
    filesystem without O_DIRECT.)"""


def optional(name: str) -> ModuleType | None:
    """An optional dependency, or None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# -- the workload ---------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    rw: str
    bs: int
    iodepth: int
    size: int  # bytes, a whole number of blocks
    runtime: float  # seconds per engine
    direct: bool
    path: str
    seed: int
    loop: str  # the event loop's name: asyncio or uvloop

    @property
    def blocks(self) -> int:
        return self.size // self.bs

    @property
    def reads(self) -> bool:
        return self.rw in ("read", "randread", "randrw")

    @property
    def writes(self) -> bool:
        return self.rw in ("write", "randwrite", "randrw")

    @property
    def flags(self) -> int:
        mode = os.O_RDWR if self.writes else os.O_RDONLY
        return mode | (_O_DIRECT if self.direct else 0)


Picker = Callable[[], tuple[bool, int]]  # the next op: (is a write, offset)


def make_picker(w: Workload, cursor: list[int], seed: int) -> Picker:
    """Where each op goes.  Sequential modes share ``cursor`` between tasks,
    so iodepth tasks walk the file together as fio does; random modes draw
    block numbers; randrw writes half the time (fio's rwmixread=50)."""
    bs, blocks, end = w.bs, w.blocks, w.blocks * w.bs
    if not w.rw.startswith("rand"):
        is_write = w.rw == "write"

        def sequential() -> tuple[bool, int]:
            offset = cursor[0]
            cursor[0] = (offset + bs) % end
            return is_write, offset
        return sequential
    rng = random.Random(seed)
    draw = rng.randrange
    if w.rw == "randrw":
        coin = rng.random
        return lambda: (coin() < 0.5, draw(blocks) * bs)
    is_write = w.rw == "randwrite"
    return lambda: (is_write, draw(blocks) * bs)


def make_buffer(w: Workload, fill: bytes | None = None) -> bytearray | mmap.mmap:
    """A block buffer: page-aligned (an anonymous mmap) for O_DIRECT."""
    if not w.direct:
        return bytearray(fill) if fill is not None else bytearray(w.bs)
    buf = mmap.mmap(-1, w.bs)
    if fill is not None:
        buf[:] = fill
    return buf


# -- measuring ------------------------------------------------------------------


@dataclass
class Meter:
    """Shared by an engine's tasks: the deadline and every op's latency."""

    deadline_ns: int
    latencies: list[int] = field(default_factory=list)  # ns, one per op


Worker = Callable[[Picker, Meter], Coroutine[Any, Any, None]]
AsyncOp = Callable[[int], Awaitable[object]]  # offset -> awaitable op
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


async def async_loop(read: AsyncOp, write: AsyncOp, pick: Picker, meter: Meter) -> None:
    """One task of an async engine: ops back to back until the deadline."""
    clock = time.perf_counter_ns
    record = meter.latencies.append
    deadline = meter.deadline_ns
    while True:
        is_write, offset = pick()
        t0 = clock()
        await (write(offset) if is_write else read(offset))
        t1 = clock()
        record(t1 - t0)
        if t1 >= deadline:
            return


async def sync_loop(read: Callable[[int], object], write: Callable[[int], object],
                    pick: Picker, meter: Meter) -> None:
    """The sync engine's only task; it yields now and then only so that the
    progress bar can redraw (one yield per SYNC_YIELD_EVERY ops)."""
    clock = time.perf_counter_ns
    record = meter.latencies.append
    deadline = meter.deadline_ns
    while True:
        for _ in range(SYNC_YIELD_EVERY):
            is_write, offset = pick()
            t0 = clock()
            write(offset) if is_write else read(offset)
            t1 = clock()
            record(t1 - t0)
            if t1 >= deadline:
                return
        await asyncio.sleep(0)


# -- engines --------------------------------------------------------------------


class Skip(Exception):
    """The engine cannot run this workload here (the message says why)."""


class Session(ABC):
    """One engine, opened on the workload's file."""

    tasks: int  # tasks to run at once: the iodepth, or 1

    @abstractmethod
    async def worker(self) -> Worker:
        """Per-task state (handles, control blocks), made before the clock starts."""

    @abstractmethod
    async def read_block(self, offset: int) -> bytes:
        """One block read through the engine, for the final check."""

    @abstractmethod
    async def close(self) -> None: ...


class AioposixSession(Session):
    def __init__(self, w: Workload, payload: bytes) -> None:
        self.w, self.payload, self.tasks = w, payload, w.iodepth
        queued = KERNEL.sysctl.get_int("vfs.aio.max_aio_queue_per_proc")
        bufs = KERNEL.sysctl.get_int("vfs.aio.max_buf_aio")
        # Room for iodepth jobs at once, O_DIRECT ones included.
        self.ctx = AioContext(max_queued=max(queued, w.iodepth), max_buf=max(bufs, w.iodepth))
        self.fd = os.open(w.path, w.flags)

    async def worker(self) -> Worker:
        ctx, w = self.ctx, self.w
        rcb = Aiocb(self.fd, make_buffer(w), w.bs)
        wcb = Aiocb(self.fd, make_buffer(w, self.payload), w.bs)

        def read(offset: int) -> Aiocb:
            rcb.offset = offset
            ctx.aio_read(rcb)
            return rcb

        def write(offset: int) -> Aiocb:
            wcb.offset = offset
            ctx.aio_write(wcb)
            return wcb
        return lambda pick, meter: async_loop(read, write, pick, meter)

    async def read_block(self, offset: int) -> bytes:
        cb = Aiocb(self.fd, make_buffer(self.w), self.w.bs, offset)
        self.ctx.aio_read(cb)
        n = await cb
        return bytes(cb.buf[:n])

    async def close(self) -> None:
        try:
            await self.ctx.aclose()
        finally:
            os.close(self.fd)


class AiofilesSession(Session):
    def __init__(self, w: Workload, payload: bytes, aiofiles: ModuleType) -> None:
        if w.direct:
            raise Skip("aiofiles goes through Python's buffered files, which cannot do O_DIRECT")
        self.w, self.payload, self.tasks = w, payload, w.iodepth
        self.mode = "r+b" if w.writes else "rb"
        self.open = aiofiles.open
        self.files: list[Any] = []

    async def _file(self) -> Any:
        f = await self.open(self.w.path, self.mode)
        self.files.append(f)
        return f

    async def worker(self) -> Worker:
        f, bs, payload = await self._file(), self.w.bs, self.payload

        async def read(offset: int) -> None:
            await f.seek(offset)
            await f.read(bs)

        async def write(offset: int) -> None:
            await f.seek(offset)
            await f.write(payload)
        return lambda pick, meter: async_loop(read, write, pick, meter)

    async def read_block(self, offset: int) -> bytes:
        f = await self._file()
        await f.seek(offset)
        data: bytes = await f.read(self.w.bs)
        return data

    async def close(self) -> None:
        while self.files:
            await self.files.pop().close()


class CaioSession(Session):
    def __init__(self, w: Workload, payload: bytes, caio: ModuleType) -> None:
        self.w, self.payload, self.tasks = w, payload, w.iodepth
        self.ctx = caio.AsyncioContext(max_requests=w.iodepth, loop=asyncio.get_running_loop())
        try:
            self.fd = os.open(w.path, w.flags)
        except BaseException:
            self.ctx.close()
            raise

    async def probe(self) -> None:
        """caio reads into buffers of its own, which O_DIRECT may refuse."""
        try:
            await self.ctx.read(self.w.bs, self.fd, 0)
        except (OSError, SystemError) as exc:
            await self.close()
            raise Skip(f"caio cannot read this file ({exc})") from None

    async def worker(self) -> Worker:
        ctx, fd, bs, payload = self.ctx, self.fd, self.w.bs, self.payload

        def read(offset: int) -> Awaitable[bytes]:
            return ctx.read(bs, fd, offset)  # type: ignore[no-any-return]

        def write(offset: int) -> Awaitable[int]:
            return ctx.write(payload, fd, offset)  # type: ignore[no-any-return]
        return lambda pick, meter: async_loop(read, write, pick, meter)

    async def read_block(self, offset: int) -> bytes:
        data: bytes = await self.ctx.read(self.w.bs, self.fd, offset)
        return data

    async def close(self) -> None:
        try:
            self.ctx.close()
        finally:
            os.close(self.fd)


class SyncSession(Session):
    def __init__(self, w: Workload, payload: bytes) -> None:
        self.w, self.tasks = w, 1
        self.fd = os.open(w.path, w.flags)
        self.rbuf = make_buffer(w)
        self.wbuf = make_buffer(w, payload)

    def _read(self, offset: int) -> bytes:
        if self.w.direct:  # into the aligned buffer
            n = os.preadv(self.fd, [self.rbuf], offset)
            return bytes(self.rbuf[:n])
        return os.pread(self.fd, self.w.bs, offset)

    async def worker(self) -> Worker:
        fd = self.fd
        if self.w.direct:  # into and from the aligned buffers
            read: Callable[[int], object] = functools.partial(os.preadv, fd, [self.rbuf])
            write: Callable[[int], object] = functools.partial(os.pwritev, fd, [self.wbuf])
        else:
            read = functools.partial(os.pread, fd, self.w.bs)
            write = functools.partial(os.pwrite, fd, bytes(self.wbuf))
        return lambda pick, meter: sync_loop(read, write, pick, meter)

    async def read_block(self, offset: int) -> bytes:
        return self._read(offset)

    async def close(self) -> None:
        os.close(self.fd)


async def open_session(name: str, w: Workload, payload: bytes) -> Session:
    """The engine ``name`` opened on the file; Skip if it cannot run here."""
    if name == "aioposix":
        return AioposixSession(w, payload)
    if name == "sync":
        return SyncSession(w, payload)
    module = optional(name)
    if module is None:
        raise Skip(f"{name} is not installed")
    if name == "aiofiles":
        return AiofilesSession(w, payload, module)
    session = CaioSession(w, payload, module)
    await session.probe()
    return session


# -- results --------------------------------------------------------------------


@dataclass
class Result:
    engine: str
    skipped: str | None = None  # why the engine did not run
    error: str | None = None  # why it failed
    ops: int = 0
    seconds: float = 0.0
    iops: float = 0.0
    mib_s: float = 0.0
    p50_us: float = 0.0
    p99_us: float = 0.0
    ratio: float | None = None  # IOPS / the first engine's IOPS
    verified: bool | None = None  # reads: one block matched os.pread
    cdf: list[tuple[float, float]] = field(default_factory=list)  # (latency us, fraction)

    @property
    def ran(self) -> bool:
        return self.skipped is None and self.error is None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        del doc["cdf"]
        return doc


def percentile(ordered: Sequence[int], q: float) -> float:
    """The q-quantile of sorted ns latencies, in microseconds."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3


def cdf(ordered: Sequence[int]) -> list[tuple[float, float]]:
    n = len(ordered)
    points = min(n, CDF_POINTS)
    picks = sorted({i * (n - 1) // max(points - 1, 1) for i in range(points)})
    return [(ordered[i] / 1e3, (i + 1) / n) for i in picks]


def summarize(name: str, w: Workload, latencies: list[int], seconds: float) -> Result:
    ordered = sorted(latencies)
    iops = len(ordered) / seconds if seconds > 0 else 0.0
    if not ordered:
        return Result(name, error="no op completed")
    return Result(name, ops=len(ordered), seconds=round(seconds, 4), iops=iops,
                  mib_s=iops * w.bs / MiB, p50_us=percentile(ordered, 0.50),
                  p99_us=percentile(ordered, 0.99), cdf=cdf(ordered))


def set_ratios(results: list[Result]) -> None:
    base = next((r.iops for r in results if r.ran), 0.0)
    for r in results:
        if r.ran and base:
            r.ratio = r.iops / base


# -- progress -------------------------------------------------------------------


class Progress(Protocol):
    def start(self, engine: str) -> None: ...
    def update(self, fraction: float, ops: int) -> None: ...
    def stop(self) -> None: ...  # this engine is done
    def close(self) -> None: ...  # every engine is done


class NoProgress:
    def start(self, engine: str) -> None:
        pass

    def update(self, fraction: float, ops: int) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress:
    """One line on stderr, redrawn with a carriage return."""

    WIDTH = 30

    def __init__(self) -> None:
        self.engine = ""

    def start(self, engine: str) -> None:
        self.engine = engine

    def update(self, fraction: float, ops: int) -> None:
        done = int(min(fraction, 1.0) * self.WIDTH)
        bar = "#" * done + "." * (self.WIDTH - done)
        sys.stderr.write(f"\r{self.engine:<10} [{bar}] {min(fraction, 1.0):4.0%} {ops:>12,} ops")
        sys.stderr.flush()

    def stop(self) -> None:
        if self.engine:
            sys.stderr.write("\n")
            sys.stderr.flush()
        self.engine = ""

    def close(self) -> None:
        pass


class RichProgress:
    """rich's progress bars on stderr, one line per engine."""

    def __init__(self) -> None:
        progress, console = (importlib.import_module(f"rich.{m}") for m in ("progress", "console"))
        self.bar = progress.Progress(
            progress.TextColumn("{task.description:<10}"), progress.BarColumn(),
            progress.TaskProgressColumn(), progress.TextColumn("{task.fields[ops]:>12,} ops"),
            progress.TimeRemainingColumn(), console=console.Console(stderr=True))
        self.task: Any = None

    def start(self, engine: str) -> None:
        if self.task is None:
            self.bar.start()
        self.task = self.bar.add_task(engine, total=1.0, ops=0)

    def update(self, fraction: float, ops: int) -> None:
        self.bar.update(self.task, completed=min(fraction, 1.0), ops=ops)

    def stop(self) -> None:
        if self.task is not None:
            self.bar.update(self.task, completed=1.0)

    def close(self) -> None:
        self.bar.stop()


def make_progress(interactive: bool) -> Progress:
    if not interactive:
        return NoProgress()
    return RichProgress() if optional("rich") else LineProgress()


async def tick(progress: Progress, meter: Meter, start_ns: int, span_ns: int) -> None:
    while True:
        elapsed = time.perf_counter_ns() - start_ns
        progress.update(elapsed / span_ns, len(meter.latencies))
        await asyncio.sleep(0.1)


# -- running one engine ---------------------------------------------------------


async def drive(session: Session, w: Workload, progress: Progress) -> tuple[Meter, float]:
    """Run the session's tasks until the deadline: (the meter, seconds taken)."""
    workers = [await session.worker() for _ in range(session.tasks)]
    span = int(w.runtime * 1e9)
    start = time.perf_counter_ns()
    meter = Meter(start + span)
    cursor = [0]
    tasks = [asyncio.create_task(worker(make_picker(w, cursor, w.seed + i), meter))
             for i, worker in enumerate(workers)]
    ticker = asyncio.create_task(tick(progress, meter, start, span))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in [*tasks, ticker]:
            task.cancel()
        await asyncio.gather(*tasks, ticker, return_exceptions=True)
    return meter, (time.perf_counter_ns() - start) / 1e9


async def verify(session: Session, w: Workload, check_fd: int) -> bool:
    """One random block through the engine equals os.pread's."""
    offset = random.Random(w.seed).randrange(w.blocks) * w.bs
    return await session.read_block(offset) == os.pread(check_fd, w.bs, offset)


async def run_engine(name: str, w: Workload, payload: bytes, progress: Progress,
                     check_fd: int) -> Result:
    try:
        session = await open_session(name, w, payload)
    except Skip as why:
        return Result(name, skipped=str(why))
    try:
        progress.start(name)
        meter, seconds = await drive(session, w, progress)
        progress.stop()
        result = summarize(name, w, meter.latencies, seconds)
        if w.reads and result.ran:
            result.verified = await verify(session, w, check_fd)
        return result
    except OSError as exc:
        progress.stop()
        return Result(name, error=f"{type(exc).__name__}: {exc}")
    finally:
        await session.close()


async def run_all(w: Workload, engines: Sequence[str], progress: Progress) -> list[Result]:
    payload = random.Random(w.seed).randbytes(w.bs)
    check_fd = os.open(w.path, os.O_RDONLY)
    try:
        return [await run_engine(name, w, payload, progress, check_fd) for name in engines]
    finally:
        os.close(check_fd)


def loop_factory(name: str) -> LoopFactory:
    if name == "asyncio":
        return asyncio.new_event_loop
    uvloop = optional("uvloop")
    if uvloop is None:
        raise UsageError("--loop uvloop: uvloop is not installed")
    factory: LoopFactory = uvloop.new_event_loop
    return factory


# -- the file -------------------------------------------------------------------


def fill(path: str, start: int, size: int) -> None:
    """Random bytes from ``start`` to ``size``, on disk (not only dirty pages)."""
    rng = random.Random(0)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for offset in range(start, size, 4 * MiB):
            os.pwrite(fd, rng.randbytes(min(4 * MiB, size - offset)), offset)
        os.fdatasync(fd)
    finally:
        os.close(fd)


def cache(path: str, size: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in range(0, size, 4 * MiB):
            os.pread(fd, 4 * MiB, offset)
    finally:
        os.close(fd)


@contextlib.contextmanager
def bench_file(path: str | None, size: int) -> Iterator[str]:
    """The file to run on, filled to ``size`` and read once into the page
    cache; a temporary one (removed afterwards) when no path is given."""
    if path is None:
        fd, tmp = tempfile.mkstemp(prefix="aioposix-bench-")
        os.close(fd)
        try:
            fill(tmp, 0, size)
            cache(tmp, size)
            yield tmp
        finally:
            os.unlink(tmp)
        return
    have = os.path.getsize(path) if os.path.exists(path) else 0
    if have < size:
        fill(path, have, size)
    cache(path, size)
    yield path


def check_direct(path: str) -> None:
    if not _O_DIRECT:
        raise UsageError("--direct: O_DIRECT does not exist on this platform")
    try:
        os.close(os.open(path, os.O_RDONLY | _O_DIRECT))
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        raise UsageError(f"--direct: the filesystem of {path} does not support O_DIRECT") from None


# -- output ---------------------------------------------------------------------


COLUMNS = ("engine", "IOPS", "MiB/s", "p50 us", "p99 us", "vs first", "note")


def row(r: Result) -> list[str]:
    if not r.ran:
        why = f"skipped: {r.skipped}" if r.skipped else f"failed: {r.error}"
        return [r.engine, "-", "-", "-", "-", "-", why]
    note = {True: "verified", False: "VERIFY FAILED", None: ""}[r.verified]
    ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
    return [r.engine, f"{r.iops:,.0f}", f"{r.mib_s:,.1f}", f"{r.p50_us:,.1f}",
            f"{r.p99_us:,.1f}", ratio, note]


def plain_table(head: Sequence[str], rows: list[list[str]]) -> str:
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        parts = [c.ljust(wd) if i in (0, 6) else c.rjust(wd)
                 for i, (c, wd) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()
    return "\n".join([line(head), line(["-" * wd for wd in widths]), *map(line, rows)])


def print_table(results: list[Result], title: str, fancy: bool) -> None:
    first = next((r.engine for r in results if r.ran), "first")
    head = [*COLUMNS[:5], f"vs {first}", COLUMNS[6]]
    rows = [row(r) for r in results]
    if not fancy or optional("rich") is None:
        print(title)
        print(plain_table(head, rows))
        return
    table_mod, console_mod = (importlib.import_module(f"rich.{m}") for m in ("table", "console"))
    table = table_mod.Table(title=title)
    for i, name in enumerate(head):
        table.add_column(name, justify="left" if i in (0, 6) else "right")
    for cells in rows:
        table.add_row(*cells)
    console_mod.Console().print(table)


def describe_workload(w: Workload) -> str:
    return (f"{w.rw} bs={w.bs} iodepth={w.iodepth} size={w.size // MiB} MiB "
            f"runtime={w.runtime:g} s loop={w.loop} direct={'yes' if w.direct else 'no'}")


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in ("aiofiles", "caio", "uvloop", "rich", "matplotlib"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "aioposix": importlib.import_module("aioposix").__version__,
            "backend": KERNEL.sysctl["vfs.aio.backend_active"], **versions}


def write_json(path: str, w: Workload, results: list[Result]) -> None:
    doc = {"params": asdict(w), "machine": machine(),
           "results": [r.to_json() for r in results]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def plot(path: str, title: str, results: list[Result]) -> str | None:
    """IOPS bars and latency CDFs as a PNG; the reason when it cannot."""
    if optional("matplotlib") is None:
        return "matplotlib is not installed: no chart written"
    importlib.import_module("matplotlib").use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")
    ran = [r for r in results if r.ran]
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(12, 4.5))
    bars.bar([r.engine for r in ran], [r.iops for r in ran])
    bars.set_ylabel("IOPS")
    for r in ran:
        curves.plot([x for x, _ in r.cdf], [y for _, y in r.cdf], label=r.engine)
    curves.set_xscale("log")
    curves.set_xlabel("latency (µs)")
    curves.set_ylabel("fraction of ops")
    curves.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


@dataclass(frozen=True)
class Outputs:
    """Where the results go besides the table on stdout."""

    json: str | None  # the JSON document's path
    plot: str | None  # the PNG chart's path


def report(w: Workload, results: list[Result], out: Outputs) -> int:
    """Print and write the results: the exit status (1 if an engine failed)."""
    set_ratios(results)
    title = describe_workload(w)
    print_table(results, title, sys.stdout.isatty())
    for r in results:
        if r.skipped:
            note(f"{r.engine} skipped: {r.skipped}")
    if out.json:
        write_json(out.json, w, results)
    if out.plot:
        why = plot(out.plot, title, results)
        if why:
            note(why)
    failed = [r for r in results if r.error or r.verified is False]
    for r in failed:
        print(f"error: {r.engine}: {r.error or 'a block read back differs from os.pread'}",
              file=sys.stderr)
    return 1 if failed else 0


# -- the run --------------------------------------------------------------------


def bench(w: Workload, engines: Sequence[str], factory: LoopFactory, file: str | None,
          out: Outputs) -> int:
    """Run ``w`` with each engine on ``file`` (None: a temporary file) and
    report: the exit status.  ``w.path`` is filled in once the file exists."""
    with bench_file(file, w.size) as path:
        w = replace(w, path=path)
        if w.direct:
            check_direct(path)
        progress = make_progress(sys.stdout.isatty() and sys.stderr.isatty())
        try:
            with asyncio.Runner(loop_factory=factory) as runner:
                results = runner.run(run_all(w, engines, progress))
        finally:
            progress.close()
    return report(w, results, out)
