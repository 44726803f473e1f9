"""What the benchmark scripts share: the machine description, the measured
window and its heartbeat (p99 and worst lateness of a task sleeping 1 ms),
rounds that alternate the order of the engines, a block pattern that lets
every byte read be checked, running on a loop by name, and the JSON every
script writes for ``benchmarks/report.py``.

The scripts run as ``python benchmarks/X.py``, so this folder is on sys.path
and they import it as ``from _common import ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import aioposix

MiB = 1 << 20
HEARTBEAT = 0.001  # seconds between heartbeats
CHECK_EVERY = 16  # ops between clock checks (Window.tick) in a worker
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def parse_size(text: str) -> int:
    """``4096``, ``64K``, ``256M``, ``1G`` (also ``1GiB``, ``1gb``) -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


# -- the machine ------------------------------------------------------------------------


def _run(cmd: Sequence[str], strip: bool = True) -> str | None:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20, cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() if strip else out.stdout


def _cpu_model() -> str:
    for line in (_run(["lscpu"]) or "").splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        return version(module)
    return str(getattr(mod, "__version__", "?"))


def _mem_total_mib() -> int | None:
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return None


def filesystem(path: str) -> str:
    """``ext4 on /dev/vda`` for the mount that holds ``path``."""
    path = os.path.realpath(path)
    best = ("", "?", "?")
    with contextlib.suppress(OSError), open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best[0]):
                best = (mnt, fstype, dev)
    return f"{best[1]} on {best[2]}"


def source_tree() -> dict[str, Any]:
    """The commit of the checkout being measured, its uncommitted library files,
    and a digest of their diff (which identifies the tree that was measured)."""
    commit = _run(["git", "rev-parse", "--short=12", "HEAD"])
    status = _run(["git", "status", "--porcelain", "--", "aioposix"], strip=False) or ""
    dirty = sorted(line[3:] for line in status.splitlines() if len(line) > 3)
    digest = None
    if dirty:
        import hashlib

        diff = _run(["git", "diff", "HEAD", "--", "aioposix"], strip=False) or ""
        untracked = [f for f in dirty if os.path.isfile(os.path.join(ROOT, f))]
        h = hashlib.sha256(diff.encode())
        for name in untracked:
            with contextlib.suppress(OSError), open(os.path.join(ROOT, name), "rb") as f:
                h.update(f.read())
        digest = h.hexdigest()[:12]
    return {"commit": commit, "uncommitted": dirty, "uncommitted_sha256": digest}


def machine() -> dict[str, Any]:
    """CPUs, CPU model, kernel, memory, load, and the versions of Python and the engines."""
    fio = shutil.which("fio")
    info: dict[str, Any] = {
        "nproc": os.cpu_count(), "cpu": _cpu_model(), "kernel": platform.release(),
        "mem_mib": _mem_total_mib(), "python": platform.python_version(),
        "aioposix": aioposix.__version__, "loadavg_start": list(os.getloadavg()),
        "fio": _run([fio, "--version"]) if fio else None,
        "sysctl": {k: aioposix.sysctl[k] for k in (
            "vfs.aio.backend", "vfs.aio.backend_active", "vfs.aio.io_uring", "vfs.aio.inline")},
        **source_tree(),
    }
    for mod in ("uvloop", "caio", "aiofiles"):
        info[mod] = _version(mod)
    return info


def machine_line(info: dict[str, Any] | None = None) -> str:
    """``machine: N CPUs, ...; io_uring: ...``, the start of a script's output."""
    m = info or machine()
    return (f"machine: {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, Python "
            f"{m['python']}, uvloop {m['uvloop']}, caio {m['caio']}, aiofiles {m['aiofiles']}; "
            f"aioposix {m['aioposix']} at {m['commit']}"
            f"{' + uncommitted changes' if m['uncommitted'] else ''}; backend "
            f"{m['sysctl']['vfs.aio.backend_active']}, inline {m['sysctl']['vfs.aio.inline']}")


def executor_note() -> str:
    """What ``run_in_executor(None, ...)`` runs on: the default executor's size."""
    return f"default executor ({min(32, (os.cpu_count() or 1) + 4)} threads)"


def rss() -> int:
    """This process's resident set size, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# -- the block pattern ------------------------------------------------------------------


class Pattern:
    """What block ``i`` holds: an 8-byte head (``i + 1`` and the generation) and a
    tail, one of 251 random fills chosen by ``i + generation``.

    ``ok(buf, i)`` compares every byte of a block without copying it (two
    memcmp calls: ``startswith`` the head, ``endswith`` the tail).  A write
    benchmark gives every engine run its own generation, so a block shows
    which run last wrote it.
    """

    FILLS = 251

    def __init__(self, blocks: int, block: int = 4096, generation: int = 0) -> None:
        rng = random.Random(block)
        self.block = block
        self.generation = generation
        self.fills = [rng.randbytes(block - 8) for _ in range(self.FILLS)]
        self.heads = [self.head(i, generation) for i in range(blocks)]

    @staticmethod
    def head(i: int, generation: int) -> bytes:
        return ((i + 1) | (generation << 40)).to_bytes(8, "little")

    def tail(self, i: int, generation: int | None = None) -> bytes:
        gen = self.generation if generation is None else generation
        return self.fills[(i + gen) % self.FILLS]

    def data(self, i: int, generation: int | None = None) -> bytes:
        gen = self.generation if generation is None else generation
        return self.head(i, gen) + self.tail(i, gen)

    def expect(self, i: int) -> tuple[bytes, bytes]:
        """(head, tail) of block ``i`` in this generation."""
        return self.heads[i], self.fills[(i + self.generation) % self.FILLS]

    def ok(self, buf: Any, i: int, generation: int | None = None) -> bool:
        gen = self.generation if generation is None else generation
        head = self.heads[i] if gen == self.generation else self.head(i, gen)
        return (len(buf) == self.block and buf.startswith(head)
                and buf.endswith(self.tail(i, gen)))

    def write_file(self, path: str, blocks: int, flags: int = 0) -> None:
        """Write ``blocks`` blocks of this generation (not sparse), fsync."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | flags, 0o600)
        try:
            step = 256
            for start in range(0, blocks, step):
                chunk = b"".join(self.data(i) for i in range(start, min(start + step, blocks)))
                os.pwrite(fd, chunk, start * self.block)
            os.fsync(fd)
        finally:
            os.close(fd)


class WrongData(AssertionError):
    """An engine read or wrote bytes other than the pattern's: the run is void."""


def wrong(engine: str, offset: int) -> WrongData:
    return WrongData(f"{engine}: wrong data at offset {offset}")


def read_all(path: str) -> None:
    """Read a file once, so that it sits in the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        off = 0
        while chunk := os.pread(fd, 4 * MiB, off):
            off += len(chunk)
    finally:
        os.close(fd)


# -- the measured window ----------------------------------------------------------------


class Window:
    """Warm-up, then a measured window, then stop; driven by the workers' clocks.

    The workers (not a timer task) check the clock every few ops, so an engine
    that never yields to the loop still ends on time and is still measured
    right (its heartbeat lateness then shows how long it held the loop).
    """

    WARMUP, MEASURE, STOP = 0, 1, 2

    def __init__(self, warmup: float, seconds: float) -> None:
        now = time.perf_counter()
        self.t_measure = now + warmup
        self.t_stop = self.t_measure + seconds
        self.phase = self.WARMUP
        self.ops = self.start_ops = self.end_ops = 0
        self.start_t = self.end_t = self.start_cpu = self.end_cpu = 0.0
        self.bytes = self.start_bytes = self.end_bytes = 0  # for scripts that count bytes

    def tick(self) -> bool:
        """Note the time; False once the window is over."""
        phase = self.phase
        if phase == self.STOP:
            return False
        now = time.perf_counter()
        if phase == self.WARMUP:
            if now >= self.t_measure:
                self.phase = self.MEASURE
                self.start_ops, self.start_t = self.ops, now
                self.start_cpu = time.process_time()
                self.start_bytes = self.bytes
        elif now >= self.t_stop:
            self.phase = self.STOP
            self.end_ops, self.end_t = self.ops, now
            self.end_cpu = time.process_time()
            self.end_bytes = self.bytes
            return False
        return True

    @property
    def elapsed(self) -> float:
        return self.end_t - self.start_t

    @property
    def ops_per_s(self) -> float:
        return (self.end_ops - self.start_ops) / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def cpu_us_per_op(self) -> float:
        """Process CPU time (every thread of the process) per op."""
        ops = self.end_ops - self.start_ops
        return (self.end_cpu - self.start_cpu) / ops * 1e6 if ops else 0.0


class Beats:
    """The lateness of every heartbeat that overlapped the measured window."""

    def __init__(self) -> None:
        self.lateness: list[float] = []  # seconds

    def stats(self) -> dict[str, float | None]:
        late = sorted(self.lateness)
        if not late:
            return {"hb_p99_ms": None, "hb_worst_ms": None, "beats": 0}
        p99 = late[min(len(late) - 1, int(0.99 * len(late)))]
        return {"hb_p99_ms": p99 * 1e3, "hb_worst_ms": late[-1] * 1e3, "beats": len(late)}


async def heartbeat(window: Window, beats: Beats) -> None:
    """Sleep HEARTBEAT in a loop; note the lateness of each beat that overlaps
    the measured window (a beat held off past its end still counts: an engine
    that never yields shows the whole window as its lateness)."""
    sleep = asyncio.sleep
    clock = time.perf_counter
    while True:
        t0 = clock()
        await sleep(HEARTBEAT)
        t1 = clock()
        if window.phase != Window.WARMUP and t1 >= window.start_t and (
                window.phase == Window.MEASURE or t0 <= window.end_t):
            beats.lateness.append(max(0.0, t1 - t0 - HEARTBEAT))
        if window.phase == Window.STOP:
            return


Worker = Callable[[int], Coroutine[Any, Any, None]]


async def run_window(make_worker: Callable[[Window], Worker], workers: int, warmup: float,
                     seconds: float, slack: float = 60, name: str = "worker"
                     ) -> tuple[Window, Beats]:
    """Run ``workers`` workers and the heartbeat through one window (``slack``
    seconds past its end at the most); clean up.  Returns the window and the
    heartbeat's samples."""
    window = Window(warmup, seconds)
    beats = Beats()
    worker = make_worker(window)
    # The heartbeat goes first and is asleep before any worker runs.
    beat = asyncio.create_task(heartbeat(window, beats), name=f"{name}-heartbeat")
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(worker(i), name=f"{name}-{i}") for i in range(workers)]
    everything = [*tasks, beat]
    try:
        await asyncio.wait_for(asyncio.gather(*everything), warmup + seconds + slack)
    finally:
        for task in everything:
            task.cancel()
        await asyncio.gather(*everything, return_exceptions=True)
    return window, beats


def sample(window: Window, beats: Beats | None, value: float | None = None,
           **extra: Any) -> dict[str, Any]:
    """One round's figures: ``value`` (ops/s unless given), CPU, heartbeat."""
    out: dict[str, Any] = {"value": window.ops_per_s if value is None else value,
                           "ops": window.end_ops - window.start_ops,
                           "seconds": window.elapsed, "cpu_us_per_op": window.cpu_us_per_op}
    out.update(beats.stats() if beats else {"hb_p99_ms": None, "hb_worst_ms": None})
    out.update(extra)
    return out


async def timed_with_heartbeat(body: Callable[[], Coroutine[Any, Any, int]]
                               ) -> tuple[Window, Beats]:
    """Run ``body`` (which returns its op count) with the heartbeat beside it:
    the whole run is the measured window."""
    window = Window(0, 1e9)
    beats = Beats()
    beat = asyncio.create_task(heartbeat(window, beats))
    await asyncio.sleep(0)
    window.tick()
    try:
        window.ops += await body()
        window.t_stop = 0.0
        window.tick()
        await asyncio.wait_for(beat, 5)
    finally:
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)
    return window, beats


def sync_window(warmup: float, seconds: float, step: Callable[[int], None],
                n: int) -> Window:
    """Call ``step(k)`` for k cycling over range(n) through a window, no event loop."""
    window = Window(warmup, seconds)
    k = 0
    while True:
        for i in range(n):
            step(i)
            window.ops += 1
            k += 1
            if k == CHECK_EVERY:
                k = 0
                if not window.tick():
                    return window


async def idle_heartbeat(seconds: float = 0.3) -> dict[str, float | None]:
    """The heartbeat's lateness on an idle loop (the timer granularity)."""
    window = Window(0.05, seconds)
    beats = Beats()
    beat = asyncio.create_task(heartbeat(window, beats))
    try:
        while window.tick():
            await asyncio.sleep(0.01)
        await asyncio.wait_for(beat, 5)
    finally:
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)
    return beats.stats()


# -- loops ------------------------------------------------------------------------------


def run_on(loop_name: str, main: Coroutine[Any, Any, Any]) -> Any:
    """Run ``main`` on a fresh loop: uvloop, or else the asyncio default loop."""
    if loop_name == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def loops_available(names: Sequence[str]) -> list[str]:
    """The loops asked for that can run here (uvloop may be missing)."""
    out = []
    for name in names:
        if name == "uvloop" and _version("uvloop") is None:
            print("note: uvloop is not installed; its rows are skipped", file=sys.stderr)
            continue
        out.append(name)
    return out


# -- backends ---------------------------------------------------------------------------


def backend_settings(choices: Sequence[str] = ("auto", "threads", "io_uring")
                     ) -> list[tuple[str, str]]:
    """``(label, backend)`` for each distinct setting among ``choices``: choices
    that run file jobs on the same backend here (``vfs.aio.backend_active``)
    are one setting, measured once, labelled e.g. ``auto = io_uring``."""
    saved = aioposix.sysctl["vfs.aio.backend"]
    groups: dict[str, list[str]] = {}
    try:
        for choice in choices:
            aioposix.sysctl["vfs.aio.backend"] = choice
            groups.setdefault(str(aioposix.sysctl["vfs.aio.backend_active"]), []).append(choice)
    finally:
        aioposix.sysctl["vfs.aio.backend"] = saved
    out = []
    for active, names in groups.items():
        label = " = ".join(names) + ("" if active in names else f" -> {active}")
        out.append((label, names[0]))
    return out


@contextlib.contextmanager
def sysctls(**values: Any) -> Any:
    """Set ``vfs.aio.<name>`` tunables for a block (new contexts copy them)."""
    saved = {k: aioposix.sysctl[f"vfs.aio.{k}"] for k in values}
    try:
        for k, v in values.items():
            aioposix.sysctl[f"vfs.aio.{k}"] = v
        yield
    finally:
        for k, v in saved.items():
            aioposix.sysctl[f"vfs.aio.{k}"] = v


def active_setting() -> str:
    """``backend io_uring, inline on``: what a new context uses now."""
    inline = "on" if aioposix.sysctl["vfs.aio.inline"] else "off"
    return f"backend {aioposix.sysctl['vfs.aio.backend_active']}, inline {inline}"


# -- engines and rounds -----------------------------------------------------------------


class Unsupported(Exception):
    """An engine cannot run this workload here (a peer's limit, not a failure)."""


@dataclass
class Engine:
    """One row: an engine on one loop (``-`` for no event loop) in one workload.

    ``run`` measures one round and returns ``sample(...)``; an engine whose
    package is missing has ``status`` ``not installed`` and no ``run``.
    """

    workload: str
    name: str
    loop: str
    run: Callable[[], dict[str, Any]] | None
    note: str = ""
    status: str = "ok"
    role: str = ""  # "natural", "tuned", "peer", "limit", "ref" ...
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.workload} | {self.name} | {self.loop}"


def installed(module: str) -> bool:
    return _version(module) is not None


def run_rounds(engines: list[Engine], rounds: int, verbose: bool = True) -> list[list[str]]:
    """Measure every runnable engine ``rounds`` times; odd rounds run the engines
    in reverse order, so drift on the machine hits early and late engines alike.
    Returns the order of each round."""
    orders: list[list[str]] = []
    live = [e for e in engines if e.run is not None and e.status == "ok"]
    for r in range(rounds):
        order = live if r % 2 == 0 else live[::-1]
        orders.append([e.key for e in order])
        for engine in order:
            if engine.status != "ok" or engine.run is None:
                continue
            try:
                got = engine.run()
            except Unsupported as exc:
                engine.status = f"cannot run: {exc}"
                continue
            engine.samples.append(got)
            if verbose:
                print(f"  round {r + 1}/{rounds}  {engine.loop:8} {engine.workload:28.28} "
                      f"{engine.name:28.28} {got['value']:>12,.2f}", file=sys.stderr, flush=True)
    return orders


def summarize(engine: Engine) -> dict[str, Any]:
    """The row: median with min and max of the rounds, heartbeat p99 (median of
    the rounds') and worst (of all rounds), CPU per op (median)."""
    row: dict[str, Any] = {"workload": engine.workload, "engine": engine.name,
                           "loop": engine.loop, "role": engine.role, "note": engine.note,
                           "status": engine.status, "rounds": engine.samples}
    values = [s["value"] for s in engine.samples]
    if not values:
        if engine.status == "ok":
            row["status"] = "no rounds"
        return row
    row.update(median=statistics.median(values), min=min(values), max=max(values))
    p99 = [s["hb_p99_ms"] for s in engine.samples if s.get("hb_p99_ms") is not None]
    worst = [s["hb_worst_ms"] for s in engine.samples if s.get("hb_worst_ms") is not None]
    cpu = [s["cpu_us_per_op"] for s in engine.samples if s.get("cpu_us_per_op")]
    row["hb_p99_ms"] = statistics.median(p99) if p99 else None
    row["hb_worst_ms"] = max(worst) if worst else None
    row["cpu_us_per_op"] = statistics.median(cpu) if cpu else None
    return row


Target = tuple[str, str, float]  # (field of the row, ">=" or "<=", threshold)


@dataclass
class Workload:
    """A workload's rows are compared with its reference (``ref``: the peer to
    beat) and with its limit (``limit``: the synchronous floor), by median.
    ``targets`` maps an engine to the goals its row is checked against."""

    name: str
    unit: str
    higher_is_better: bool
    ref: str | None
    limit: str | None
    description: str = ""
    targets: dict[str, list[Target]] = field(default_factory=dict)

    def ratio(self, row: dict[str, Any], other: dict[str, Any] | None) -> float | None:
        if other is None or "median" not in row or not other.get("median"):
            return None
        return float(row["median"] / other["median"])

    def target_text(self, goals: list[Target]) -> str:
        parts = []
        for key, op, value in goals:
            if key == "vs_ref":
                parts.append(f"{op} {value:g}x {self.ref}")
            elif key == "vs_limit":
                parts.append(f"{op} {value:g}x {self.limit}")
            elif key == "hb_p99_ms":
                parts.append(f"heartbeat p99 {op} {value:g} ms")
            elif key == "median":
                unit = "x" if self.unit == "x" else f" {self.unit}"
                parts.append(f"{op} {value:g}{unit}")
            else:
                parts.append(f"{key} {op} {value:g}")
        return ", ".join(parts)


def met(row: dict[str, Any], goals: list[Target]) -> bool | None:
    """Whether ``row`` meets every goal (None when a figure is missing)."""
    for key, op, threshold in goals:
        value = row.get(key)
        if value is None:
            return None
        if (op == ">=" and value < threshold) or (op == "<=" and value > threshold):
            return False
    return True


def add_ratios(workload: Workload, rows: list[dict[str, Any]]) -> None:
    """Each row of ``workload`` gets ``vs_ref`` and ``vs_limit`` (same loop, or
    the limit's ``-`` loop), and its target and whether it is met."""
    mine = [r for r in rows if r["workload"] == workload.name]

    def find(engine: str | None, loop: str) -> dict[str, Any] | None:
        for r in mine:
            if r["engine"] == engine and r["loop"] in (loop, "-"):
                return r
        return None

    for row in mine:
        row["vs_ref"] = workload.ratio(row, find(workload.ref, row["loop"]))
        row["vs_limit"] = workload.ratio(row, find(workload.limit, row["loop"]))
        goals = workload.targets.get(row["engine"])
        if goals:
            row["target"] = workload.target_text(goals)
            row["met"] = met(row, goals)


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit in ("ops/s", "writes/s", "IOPS", "jobs/s"):
        return f"{v:,.0f}"
    return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"


def fmt_ratio(a: float | None, b: float | None = None) -> str:
    """``a / b`` (or ``a`` alone) as ``1.23x``, or ``-``."""
    if a is None or (b is not None and not b):
        return "-"
    return f"{a / b if b is not None else a:.2f}x"


def print_rows(workloads: list[Workload], rows: list[dict[str, Any]],
               idle: dict[str, Any] | None = None) -> None:
    """The console table: per workload, median (min-max), ratios, heartbeat."""
    for w in workloads:
        print(f"\n{w.name} ({w.unit}, {'higher' if w.higher_is_better else 'lower'} is "
              f"better); ref {w.ref or '-'}, limit {w.limit or '-'}")
        head = (f"  {'loop':8} {'engine':40} {'median':>11} {'min-max':>23} {'vs ref':>7} "
                f"{'vs lim':>7} {'hb p99':>7} {'worst':>7} {'CPU us':>7}")
        print(head)
        for r in (r for r in rows if r["workload"] == w.name):
            if "median" not in r:
                print(f"  {r['loop']:8} {r['engine']:40} {r['status']}")
                continue
            mm = f"{fmt_value(r['min'], w.unit)}-{fmt_value(r['max'], w.unit)}"
            hb = [("-" if r[k] is None else f"{r[k]:.2f}") for k in ("hb_p99_ms", "hb_worst_ms")]
            cpu = "-" if r.get("cpu_us_per_op") is None else f"{r['cpu_us_per_op']:.2f}"
            print(f"  {r['loop']:8} {r['engine']:40} {fmt_value(r['median'], w.unit):>11} "
                  f"{mm:>23} {fmt_ratio(r.get('vs_ref')):>7} {fmt_ratio(r.get('vs_limit')):>7} "
                  f"{hb[0]:>7} {hb[1]:>7} {cpu:>7}")
    if idle:
        print("\nidle-loop heartbeat (ms): " + ", ".join(
            f"{k} p99 {v['hb_p99_ms']:.2f} worst {v['hb_worst_ms']:.2f}"
            for k, v in idle.items() if v.get("hb_p99_ms") is not None))


def report(benchmark: str, title: str, info: dict[str, Any], args: Any,
           workloads: list[Workload], engines: list[Engine], orders: list[list[str]],
           idle: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    """Summarize the engines, print the table, and build the JSON document."""
    rows = [summarize(e) for e in engines]
    for w in workloads:
        add_ratios(w, rows)
    print_rows(workloads, rows, idle)
    params = {k: v for k, v in vars(args).items() if k != "json"}
    info = dict(info, loadavg_end=list(os.getloadavg()))
    doc: dict[str, Any] = {
        "benchmark": benchmark, "title": title,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        "machine": info, "params": params, "rounds": getattr(args, "rounds", 1),
        "order": orders, "idle_heartbeat": idle or {},
        "workloads": [vars(w) for w in workloads], "rows": rows, **(extra or {})}
    if getattr(args, "json", None):
        write_json(args.json, doc)
        print(f"\nwrote {args.json}")
    return doc


def common_args(p: Any, rounds: int = 3) -> None:
    """``--rounds``, ``--loops``, ``--json`` for every script."""
    p.add_argument("--rounds", type=int, default=rounds,
                   help="rounds per engine; the order of engines alternates")
    p.add_argument("--loops", nargs="+", choices=("asyncio", "uvloop"),
                   default=["asyncio", "uvloop"])
    p.add_argument("--only", nargs="+", metavar="TEXT",
                   help="run only the engines whose name contains one of these")
    p.add_argument("--json", metavar="FILE", help="write the figures to FILE")


def select(engines: list[Engine], only: Sequence[str] | None) -> list[Engine]:
    """The engines named by ``--only`` (all without it)."""
    if not only:
        return engines
    return [e for e in engines if any(text in e.name for text in only)]


def portable(obj: Any, path: str = "", name: str = "$TMPDIR") -> Any:
    """``obj`` with ``path`` (this machine's temporary directory by default)
    written as ``name``, so that a committed figure names no path of one machine."""
    path = path or tempfile.gettempdir()
    if isinstance(obj, str):
        return obj.replace(path, name)
    if isinstance(obj, dict):
        return {key: portable(value, path, name) for key, value in obj.items()}
    if isinstance(obj, list):
        return [portable(value, path, name) for value in obj]
    return obj


def write_json(path: str, doc: Any, newline: bool = True) -> None:
    """``doc`` as indented JSON in ``path`` (with a final newline), portable."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(portable(doc), f, indent=1, sort_keys=False)
        if newline:
            f.write("\n")
