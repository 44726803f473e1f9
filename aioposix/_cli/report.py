"""What ``aioposix bench`` says: results, fio's latency figures, the output.

An engine's result sums its jobs as fio's group reporting does: ops and
IOPS add up, and the latency figures (min, mean, stdev, max and the
completion-latency percentiles, fio's list by default) are over every
counted op of every job.  The output is a table and fio-style percentile
rows (``--output-format=normal``) or one JSON document on stdout
(``--output-format=json``); progress and notes go to stderr.  Both say how
many bytes each engine read and how many of them were verified (all of
them, or the engine failed), and the time the checks took.  rich and
matplotlib are imported by name when needed: without rich the output is
plain text, and ``--plot`` needs matplotlib (the ``bench`` extra).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from aioposix._cli.engines import Meter, Workload, optional
from aioposix._kernel.kernel import KERNEL

MiB = 1 << 20
# fio's default clat percentiles
PERCENTILES = (1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0,
               99.5, 99.9, 99.95, 99.99)
CDF_POINTS = 500  # latency CDF points kept per engine for the chart


@dataclass
class Latency:
    """fio's clat figures, in nanoseconds."""

    min: int
    max: int
    mean: float
    stddev: float
    n: int
    p50: int  # for the table, whatever the percentile list
    p99: int
    percentiles: dict[float, int]  # {percent: ns}, the list asked for

    def to_json(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max, "mean": self.mean, "stddev": self.stddev,
                "N": self.n, "percentile": {f"{q:f}": v for q, v in self.percentiles.items()}}


def nearest_rank(ordered: Sequence[int], q: float) -> int:
    """The q-th percentile (0 < q <= 100) of sorted values, by nearest rank."""
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency(values: list[int], percentiles: Sequence[float]) -> Latency | None:
    if not values:
        return None
    ordered = sorted(values)
    n = len(ordered)
    mean = sum(ordered) / n
    var = sum((x - mean) ** 2 for x in ordered) / (n - 1) if n > 1 else 0.0
    return Latency(ordered[0], ordered[-1], mean, math.sqrt(var), n,
                   nearest_rank(ordered, 50), nearest_rank(ordered, 99),
                   {q: nearest_rank(ordered, q) for q in percentiles})


def cdf(values: list[int]) -> list[tuple[float, float]]:
    ordered = sorted(values)
    n = len(ordered)
    points = min(n, CDF_POINTS)
    picks = sorted({i * (n - 1) // max(points - 1, 1) for i in range(points)})
    return [(ordered[i] / 1e3, (i + 1) / n) for i in picks]


@dataclass
class Result:
    engine: str
    skipped: str | None = None  # why the engine did not run
    error: str | None = None  # why it failed
    jobs: int = 0
    ops: int = 0
    read_ops: int = 0
    write_ops: int = 0
    seconds: float = 0.0  # the longest job's measured time
    iops: float = 0.0  # the sum of the jobs' IOPS
    mib_s: float = 0.0
    clat: Latency | None = None
    fsyncs: int = 0
    sync: Latency | None = None  # the fsyncs' latency
    ratio: float | None = None  # IOPS / the first engine's IOPS
    verified: bool | None = None  # reads: every byte read was compared and equal
    read_bytes: int = 0  # every read's (ramp included): reads x bs
    verified_bytes: int = 0  # compared with what the file holds and found equal
    verify_ns: int = 0  # the time the checks took, summed over the jobs
    cdf: list[tuple[float, float]] = field(default_factory=list)  # (latency us, fraction)

    @property
    def ran(self) -> bool:
        return self.skipped is None and self.error is None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        del doc["cdf"]
        doc["clat_ns"] = self.clat.to_json() if self.clat else None
        doc["sync_ns"] = self.sync.to_json() if self.sync else None
        del doc["clat"], doc["sync"]
        return doc


def summarize(name: str, w: Workload, jobs: list[tuple[Meter, float]],
              percentiles: Sequence[float]) -> Result:
    """The jobs of one engine, summed."""
    every = [x for meter, _ in jobs for x in meter.latencies]
    if not every:
        return Result(name, error="no op completed after the ramp")
    iops = sum(len(m.latencies) / s for m, s in jobs if s > 0)
    return Result(name, jobs=len(jobs), ops=len(every), read_ops=sum(m.reads for m, _ in jobs),
                  write_ops=sum(m.writes_counted for m, _ in jobs),
                  seconds=round(max(s for _, s in jobs), 4), iops=iops,
                  mib_s=iops * w.bs / MiB, clat=latency(every, percentiles),
                  fsyncs=sum(len(m.syncs) for m, _ in jobs),
                  read_bytes=sum(m.reads_all for m, _ in jobs) * w.bs,
                  verify_ns=sum(m.verify_ns for m, _ in jobs),
                  sync=latency([x for m, _ in jobs for x in m.syncs], percentiles),
                  cdf=cdf(every))


def set_ratios(results: list[Result]) -> None:
    base = next((r.iops for r in results if r.ran), 0.0)
    for r in results:
        if r.ran and base:
            r.ratio = r.iops / base


# -- progress (stderr) ------------------------------------------------------------


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


class LineProgress(NoProgress):
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


# -- normal output ------------------------------------------------------------------


HEAD = ("engine", "IOPS", "MiB/s", "mean us", "stdev us", "p50 us", "p99 us", "max us")


def us(ns: float) -> str:
    return f"{ns / 1e3:,.1f}"


def row(r: Result) -> list[str]:
    if not r.ran or r.clat is None:
        why = f"skipped: {r.skipped}" if r.skipped else f"failed: {r.error}"
        return [r.engine, *["-"] * 8, why]
    c = r.clat
    note = {True: "verified", False: "VERIFY FAILED", None: ""}[r.verified]
    ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
    return [r.engine, f"{r.iops:,.0f}", f"{r.mib_s:,.1f}", us(c.mean), us(c.stddev),
            us(c.p50), us(c.p99), us(c.max), ratio, note]


def plain_table(head: Sequence[str], rows: list[list[str]]) -> str:
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    left = (0, len(head) - 1)

    def line(cells: Sequence[str]) -> str:
        parts = [c.ljust(wd) if i in left else c.rjust(wd)
                 for i, (c, wd) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()
    return "\n".join([line(head), line(["-" * wd for wd in widths]), *map(line, rows)])


def percentile_rows(label: str, lat: Latency) -> list[str]:
    """fio's ``clat percentiles (usec)`` block, four to a row."""
    cells = [f"{q:5.2f}th=[{round(v / 1e3):>6}]" for q, v in lat.percentiles.items()]
    out = [f"{label} (usec): min={lat.min / 1e3:.1f}, max={lat.max / 1e3:.1f}, "
           f"avg={lat.mean / 1e3:.2f}, stdev={lat.stddev / 1e3:.2f}, N={lat.n}"]
    if cells:
        out.append(f"{label} percentiles (usec):")
        out += [f"     | {', '.join(cells[i:i + 4])}," for i in range(0, len(cells), 4)]
        out[-1] = out[-1].rstrip(",")
    return out


def normal_text(w: Workload, results: list[Result]) -> str:
    first = next((r.engine for r in results if r.ran), "first")
    head = [*HEAD, f"vs {first}", "note"]
    lines = [describe_workload(w), plain_table(head, [row(r) for r in results])]
    for r in results:
        if r.ran and r.clat is not None:
            ops = f"read={r.read_ops:,} write={r.write_ops:,} ops, {r.jobs} job(s)"
            lines += ["", f"{r.engine}: IOPS={r.iops:,.0f}, BW={r.mib_s:,.1f}MiB/s ({ops})",
                      *percentile_rows("  clat", r.clat)]
            if r.sync is not None:
                lines += [f"  fsyncs={r.fsyncs:,}", *percentile_rows("  sync", r.sync)]
            if r.read_bytes:
                lines.append(verify_line(w, r))
    return "\n".join(lines) + "\n"


def verify_line(w: Workload, r: Result) -> str:
    """How many bytes were read and verified, and what the checks cost."""
    reads = r.read_bytes // w.bs
    loop_ns = r.jobs * (w.ramp_time + r.seconds) * 1e9
    share = f", {r.verify_ns / loop_ns:.1%} of the run" if loop_ns else ""
    return (f"  verify: {r.verified_bytes:,} of {r.read_bytes:,} bytes read verified "
            f"(every read, ramp included); checks took {r.verify_ns / 1e6:,.1f} ms, "
            f"{r.verify_ns / max(reads, 1):,.0f} ns a read{share}")


def describe_workload(w: Workload) -> str:
    mix = f" rwmixread={w.rwmixread}" if w.mixed else ""
    extra = f" fsync={w.fsync}" if w.fsync else ""
    return (f"{w.rw} bs={w.bs} iodepth={w.iodepth} numjobs={w.numjobs}{mix}{extra} "
            f"size={w.size // MiB} MiB runtime={w.runtime:g} s ramp_time={w.ramp_time:g} s "
            f"loop={w.loop} direct={int(w.direct)}")


# -- JSON -------------------------------------------------------------------------


def version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    versions = {n: version(n) for n in ("aiofiles", "caio", "uvloop", "rich", "matplotlib")}
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "aioposix": importlib.import_module("aioposix").__version__,
            "backend": KERNEL.sysctl["vfs.aio.backend_active"], **versions}


VERIFICATION = ("every byte of every read, ramp included, is compared with the block the "
                "file holds at its offset (its offset stamp and fill); a difference fails "
                "the engine")


def json_text(w: Workload, results: list[Result]) -> str:
    doc = {"params": asdict(w), "machine": machine(), "verification": VERIFICATION,
           "results": [r.to_json() for r in results]}
    return json.dumps(doc, indent=2) + "\n"


# -- the chart --------------------------------------------------------------------


def plot(path: str, title: str, results: list[Result]) -> str | None:
    """IOPS bars and latency CDFs as a PNG; the reason when it cannot."""
    if optional("matplotlib") is None:
        return "--plot needs matplotlib (pip install 'aioposix[bench]'): no chart written"
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
