"""Before/after: the same benchmark code run against two versions of the library.

``python benchmarks/compare.py --base REV [--head REV-or-directory]
[--bench randread,randwrite,direct,sockets,notify,scale] [--rounds N] [--json OUT]``

The ``aioposix/`` package of ``--base`` (a git revision) is exported into a
temporary directory, and so is ``--head`` when it is a revision; ``--head``
may also be a directory holding an ``aioposix/`` package (a worktree), and by
default it is this checkout, uncommitted changes included.  Every benchmark
named by ``--bench`` then runs from THIS checkout's ``benchmarks/`` (the same
benchmark code for both sides) with ``PYTHONPATH`` set to one side's package,
then the other's, ``--rounds`` times, the side that goes first alternating
every round (base, head; head, base; ...).  Before anything runs, the
interpreter is asked which ``aioposix`` it imports under each ``PYTHONPATH``;
it must be that side's package, or the comparison stops.

Each run is short (one round of the benchmark's own, with short windows) and
measures only the aioposix engines where the benchmark has an engine filter.
The table gives, per row, the median over the runs of each side, head/base
(of the figures as they are: for times a ratio of times, lower is better), a
verdict, each side's heartbeat p99, and head/base of the CPU time per op.
The verdict says ``slower`` or ``faster`` only when the two sides' ranges
(min-max over the runs) do not overlap, and ``same`` otherwise; it needs 3
runs a side (two identical versions still get one in 10% of the rows by
chance with 3, 0.8% with 5) and says ``few runs`` with fewer.  Every run's
whole JSON, both revisions, the machine and the command go to ``--json``
(``benchmarks/results/compare.json`` by default), which
``benchmarks/report.py`` renders into ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from _common import portable, write_json

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PACKAGE = "aioposix"

# Each benchmark's options for one short run: one round of its own (three of
# notify's, which are short), 2-second windows, and (with --only) the aioposix
# engines alone: notify's are named after the call they time, and scale has
# only aioposix rows.  About 80 s per run on a 2-core VM.
BENCHES: dict[str, list[str]] = {
    "randread": ["--seconds", "2", "--rounds", "1", "--only", "aioposix"],
    "randwrite": ["--seconds", "2", "--rounds", "1", "--only", "aioposix"],
    "direct": ["--seconds", "2", "--warmup", "1", "--rounds", "1", "--only", "aioposix"],
    "sockets": ["--seconds", "2", "--rounds", "1", "--only", "aioposix"],
    "notify": ["--rounds", "3", "--only", "await", "kqueue"],
    "scale": ["--rounds", "1"],
    "soak": ["--jobs", "200000", "--rounds", "1"],  # only when --bench names it
}
DEFAULT_BENCHES = ["randread", "randwrite", "direct", "sockets", "notify", "scale"]
RUN_TIMEOUT = 900.0  # seconds for one benchmark run


# -- the two sides ----------------------------------------------------------------------


def git(*args: str, binary: bool = False, cwd: str = ROOT) -> Any:
    """``git args`` in ``cwd``; its stdout (bytes with ``binary``); SystemExit on failure."""
    out = subprocess.run(["git", *args], capture_output=True, cwd=cwd, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {out.stderr.decode().strip()}")
    return out.stdout if binary else out.stdout.decode().rstrip()  # status lines start with " "


@dataclass
class Side:
    """One version of the package: where it is and what it is."""

    label: str  # "base" or "head"
    spec: str  # what the command line said
    path: str  # the directory that holds aioposix/ (goes on PYTHONPATH)
    commit: str | None = None
    subject: str | None = None
    uncommitted: list[str] = field(default_factory=list)
    source: str = "directory"  # or "git archive"
    imported: str | None = None  # aioposix.__file__ under PYTHONPATH, relative to path

    def describe(self) -> str:
        what = (self.commit or "?")[:12]
        if self.uncommitted:
            what += f" + uncommitted changes to {len(self.uncommitted)} files"
        return what

    def facts(self) -> dict[str, Any]:
        return {"spec": self.spec, "commit": self.commit, "subject": self.subject,
                "uncommitted": self.uncommitted, "source": self.source,
                "imported": self.imported}


def is_package_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, PACKAGE, "__init__.py"))


def export(label: str, rev: str, tmp: str) -> Side:
    """``git archive`` of ``rev``'s package into ``tmp/label``."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    dest = os.path.join(tmp, label)
    os.makedirs(dest)
    tar = git("archive", "--format=tar", commit, PACKAGE, binary=True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
            archive.extractall(dest, filter="data")
        else:
            archive.extractall(dest)
    if not is_package_dir(dest):
        raise SystemExit(f"{rev} has no {PACKAGE}/ package")
    return Side(label, rev, dest, commit, git("log", "-1", "--format=%s", commit),
                source="git archive")


def directory(label: str, path: str) -> Side:
    """A checkout used as it is: its commit and its uncommitted library files."""
    path = os.path.abspath(path)
    side = Side(label, path, path)
    with contextlib.suppress(SystemExit):
        side.commit = git("rev-parse", "HEAD", cwd=path)
        side.subject = git("log", "-1", "--format=%s", cwd=path)
        status = git("status", "--porcelain", "--", PACKAGE, cwd=path)
        side.uncommitted = sorted(line[3:] for line in status.splitlines() if len(line) > 3)
    return side


def make_side(label: str, spec: str, tmp: str) -> Side:
    """``spec`` is a directory holding the package (``.``: this checkout) or a revision."""
    where = ROOT if spec == "." else spec
    if os.path.isdir(where):
        if not is_package_dir(where):
            raise SystemExit(f"{spec} holds no {PACKAGE}/ package")
        side = directory(label, where)
        side.spec = spec
        return side
    return export(label, spec, tmp)


def env_for(side: Side) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=side.path)
    env.pop("PYTHONHOME", None)
    return env


def check_import(python: str, side: Side, neutral: str) -> None:
    """Stop unless ``python`` imports this side's package under its PYTHONPATH
    (an editable install of another checkout must not win)."""
    code = f"import {PACKAGE}; print({PACKAGE}.__file__)"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True,
                         env=env_for(side), cwd=neutral, timeout=60)
    got = out.stdout.strip()
    want = os.path.realpath(os.path.join(side.path, PACKAGE, "__init__.py"))
    if out.returncode != 0 or os.path.realpath(got) != want:
        raise SystemExit(f"{side.label}: PYTHONPATH={side.path} imports {got or 'nothing'} "
                         f"({out.stderr.strip()[-300:]}), not {want}: the comparison "
                         "would measure the wrong package")
    side.imported = os.path.relpath(got, side.path)


# -- the runs ---------------------------------------------------------------------------


@dataclass
class Run:
    bench: str
    side: str
    round: int
    first: bool
    argv: list[str]
    wall_s: float = 0.0
    rc: int | None = None
    log_tail: str = ""
    doc: dict[str, Any] | None = None

    def facts(self, tmp: str) -> dict[str, Any]:
        argv = ["python", *(a.replace(tmp, "$TMP") for a in self.argv[1:])]
        argv[1] = os.path.relpath(argv[1], ROOT)
        return {"bench": self.bench, "side": self.side, "round": self.round,
                "first": self.first, "argv": argv, "wall_s": self.wall_s,
                "rc": self.rc, "log_tail": self.log_tail.replace(tmp, "$TMP"), "doc": self.doc}


def bench_argv(python: str, bench: str, tmp: str, out: str) -> list[str]:
    argv = [python, os.path.join(HERE, f"{bench}.py"), *BENCHES[bench], "--json", out]
    if bench == "direct":  # one test file, written once, read by every run
        argv += ["--file", os.path.join(tmp, "direct.bin")]
    return argv


def run_one(python: str, bench: str, side: Side, rnd: int, first: bool, tmp: str) -> Run:
    out = os.path.join(tmp, f"{bench}-{side.label}-{rnd}.json")
    run = Run(bench, side.label, rnd, first, bench_argv(python, bench, tmp, out))
    log = os.path.join(tmp, f"{bench}-{side.label}-{rnd}.log")
    t0 = time.monotonic()
    with open(log, "w") as f:
        try:
            proc = subprocess.run(run.argv, stdout=f, stderr=subprocess.STDOUT,
                                  env=env_for(side), cwd=ROOT, timeout=RUN_TIMEOUT)
            run.rc = proc.returncode
        except subprocess.TimeoutExpired:
            run.rc = -1
    run.wall_s = time.monotonic() - t0
    with open(log) as f:
        run.log_tail = "".join(f.readlines()[-15:])
    if run.rc == 0 and os.path.exists(out):
        with open(out) as f:
            run.doc = json.load(f)
    return run


def run_all(python: str, benches: Sequence[str], sides: tuple[Side, Side], rounds: int,
            tmp: str) -> list[Run]:
    """Per benchmark, ``rounds`` pairs of runs; the first side alternates."""
    runs: list[Run] = []
    for bench in benches:
        for rnd in range(rounds):
            order = sides if rnd % 2 == 0 else sides[::-1]
            for k, side in enumerate(order):
                run = run_one(python, bench, side, rnd, k == 0, tmp)
                runs.append(run)
                state = "ok" if run.doc else f"FAILED (exit {run.rc})"
                print(f"  {bench:9} round {rnd + 1}/{rounds} {side.label}: {state}, "
                      f"{run.wall_s:.1f} s", file=sys.stderr, flush=True)
                if not run.doc:
                    print(run.log_tail, file=sys.stderr)
    return runs


# -- the comparison ---------------------------------------------------------------------


def side_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min, max over the runs of one side's row, and its heartbeat p99."""
    values = [r["median"] for r in rows if "median" in r]
    p99 = [r["hb_p99_ms"] for r in rows if r.get("hb_p99_ms") is not None]
    cpu = [r["cpu_us_per_op"] for r in rows if r.get("cpu_us_per_op")]
    out: dict[str, Any] = {"values": values, "runs": len(rows),
                           "status": sorted({r["status"] for r in rows})}
    if values:
        out.update(median=statistics.median(values), min=min(values), max=max(values))
    out["hb_p99_ms"] = statistics.median(p99) if p99 else None
    out["cpu_us_per_op"] = statistics.median(cpu) if cpu else None
    return out


MIN_RUNS = 3  # runs per side for a verdict: fewer put ranges apart too often by chance


def verdict(base: dict[str, Any], head: dict[str, Any], higher: bool) -> str:
    """``slower``/``faster`` when the ranges do not overlap, else ``same``;
    ``few runs`` under MIN_RUNS a side."""
    if "median" not in base or "median" not in head:
        return "no figure"
    if min(len(base["values"]), len(head["values"])) < MIN_RUNS:
        return "few runs"
    if head["max"] < base["min"]:
        return "faster" if not higher else "slower"
    if head["min"] > base["max"]:
        return "faster" if higher else "slower"
    return "same"


def compare_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per (benchmark, workload, loop, engine) seen in any run."""
    keyed: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for run in runs:
        if not run.doc:
            continue
        units = {w["name"]: w for w in run.doc["workloads"]}
        for row in run.doc["rows"]:
            key = (run.bench, row["workload"], row["loop"], row["engine"])
            w = units.get(row["workload"], {})
            entry = keyed.setdefault(key, {
                "bench": run.bench, "workload": row["workload"], "loop": row["loop"],
                "engine": row["engine"], "role": row.get("role", ""),
                "unit": w.get("unit", ""), "higher_is_better": w.get("higher_is_better", True),
                "base_rows": [], "head_rows": []})
            entry[f"{run.side}_rows"].append(row)
    out = []
    for entry in keyed.values():
        base, head = side_stats(entry.pop("base_rows")), side_stats(entry.pop("head_rows"))
        entry.update(base=base, head=head)
        entry["ratio"] = (head["median"] / base["median"]
                          if base.get("median") and "median" in head else None)
        entry["cpu_ratio"] = (head["cpu_us_per_op"] / base["cpu_us_per_op"]
                              if base["cpu_us_per_op"] and head["cpu_us_per_op"] else None)
        entry["verdict"] = verdict(base, head, entry["higher_is_better"])
        out.append(entry)
    return out


def chance_apart(n: int) -> float:
    """How often the ranges of n runs and n runs of the same thing are apart by
    chance: 2 (n!)^2 / (2n)! (e.g. 1/3 for 2 runs, 10% for 3, 0.8% for 5)."""
    return 2 / math.comb(2 * n, n)


def spread(rows: list[dict[str, Any]], rounds: int, loads: list[float]) -> dict[str, Any]:
    """How far head/base strays from 1 (min, max, median |ratio - 1|), the
    verdicts, the chance of a verdict by noise alone, the busiest load seen."""
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    out: dict[str, Any] = {"rows": len(ratios), "chance_apart": chance_apart(rounds),
                           "max_load": max(loads, default=None), "nproc": os.cpu_count()}
    if ratios:
        out.update(min=min(ratios), max=max(ratios),
                   median_abs_dev=statistics.median(abs(x - 1) for x in ratios),
                   slower=sum(r["verdict"] == "slower" for r in rows),
                   faster=sum(r["verdict"] == "faster" for r in rows))
    return out


def loads(runs: list[Run]) -> list[float]:
    """The 1-minute load average at the start and end of every run."""
    return [m[k][0] for m in (r.doc["machine"] for r in runs if r.doc)
            for k in ("loadavg_start", "loadavg_end") if m.get(k)]


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def verdicts_text(s: dict[str, Any]) -> str:
    if s["chance_apart"] > chance_apart(MIN_RUNS):
        return f"no verdicts: they need {MIN_RUNS} runs a side"
    return (f"{s['slower']} slower, {s['faster']} faster (ranges apart: "
            f"{s['chance_apart']:.1%} of rows by chance alone), the rest the same")


def print_table(rows: list[dict[str, Any]], sides: tuple[Side, Side],
                s: dict[str, Any]) -> None:
    print(f"\nbase {sides[0].describe()} ({sides[0].spec}), head {sides[1].describe()} "
          f"({sides[1].spec})")
    print(f"{'bench':9} {'workload':30} {'loop':7} {'engine':30} {'unit':9} {'base':>9} "
          f"{'head':>9} {'head/base':>9} {'better':6} {'verdict':9} {'hb p99 ms':>11} "
          f"{'CPU h/b':>7}")
    for r in rows:
        b, h = r["base"], r["head"]
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
        cpu = "-" if r["cpu_ratio"] is None else f"{r['cpu_ratio']:.3f}"
        hb = f"{fmt(b['hb_p99_ms'])}/{fmt(h['hb_p99_ms'])}"
        print(f"{r['bench']:9} {r['workload'][:30]:30} {r['loop']:7} {r['engine'][:30]:30} "
              f"{r['unit'][:9]:9} {fmt(b.get('median')):>9} {fmt(h.get('median')):>9} "
              f"{ratio:>9} {'higher' if r['higher_is_better'] else 'lower':6} "
              f"{r['verdict']:9} {hb:>11} {cpu:>7}")
    if s["rows"]:
        print(f"\nhead/base over {s['rows']} rows: {s['min']:.3f} to {s['max']:.3f}, median "
              f"|ratio - 1| {s['median_abs_dev']:.3f}; " + verdicts_text(s))
    if s["max_load"] is not None and s["max_load"] > 0.5 * (s["nproc"] or 1):
        print(f"note: load average up to {s['max_load']:.2f} on {s['nproc']} CPUs during the "
              "runs: other work shared the machine, expect noise")


# -- the document -----------------------------------------------------------------------


def machine(runs: list[Run], load_start: list[float]) -> dict[str, Any]:
    """The machine, and the engine versions as the first run saw them."""
    info: dict[str, Any] = {"nproc": os.cpu_count(), "kernel": platform.release(),
                            "python": platform.python_version(), "cpu": "?",
                            "loadavg_start": load_start, "loadavg_end": list(os.getloadavg())}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        info["mem_mib"] = int(f.readline().split()[1]) // 1024
    seen: dict[str, Any] = next((r.doc["machine"] for r in runs if r.doc), {})
    for key in ("uvloop", "caio", "aiofiles", "fio", "sysctl"):
        info[key] = seen.get(key)
    return info


def bench_code() -> dict[str, Any]:
    """The checkout whose benchmarks/ ran for both sides."""
    status = git("status", "--porcelain", "--", "benchmarks")
    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted": sorted(line[3:] for line in status.splitlines() if len(line) > 3)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="git revision of the library before")
    p.add_argument("--head", default=".",
                   help="git revision, or a directory holding aioposix/ (default: this "
                        "checkout as it is)")
    p.add_argument("--bench", default=",".join(DEFAULT_BENCHES),
                   help=f"comma-separated, of {', '.join(BENCHES)}")
    p.add_argument("--rounds", type=int, default=3, help="runs per side; first side alternates")
    p.add_argument("--json", default=os.path.join(HERE, "results", "compare.json"))
    p.add_argument("--python", default=sys.executable, help="interpreter for the runs")
    args = p.parse_args(argv)
    args.benches = [b.strip() for b in args.bench.split(",") if b.strip()]
    unknown = [b for b in args.benches if b not in BENCHES]
    if unknown or not args.benches or args.rounds < 1:
        p.error(f"unknown benchmark(s) {unknown}; choose among {', '.join(BENCHES)}"
                if unknown else "nothing to run")
    return args


def document(args: argparse.Namespace, argv: list[str] | None, sides: tuple[Side, Side],
             runs: list[Run], rows: list[dict[str, Any]], tmp: str,
             started: tuple[str, float, list[float]]) -> dict[str, Any]:
    """The JSON: the command, both sides, the machine, the rows and every run."""
    date, t0, load_start = started
    command = ["python", os.path.relpath(os.path.abspath(sys.argv[0]), ROOT),
               *(sys.argv[1:] if argv is None else argv)]
    return {"benchmark": "compare", "date": date, "command": shlex.join(command),
            "wall_s": time.monotonic() - t0, "rounds": args.rounds, "benches": args.benches,
            "bench_options": {b: BENCHES[b] for b in args.benches},
            "bench_code": bench_code(), "base": sides[0].facts(), "head": sides[1].facts(),
            "machine": machine(runs, load_start),
            "spread": spread(rows, args.rounds, loads(runs)), "rows": rows,
            "runs": [r.facts(tmp) for r in runs]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), time.monotonic(),
               list(os.getloadavg()))
    with tempfile.TemporaryDirectory(prefix="aioposix-compare-") as tmp:
        sides = (make_side("base", args.base, tmp), make_side("head", args.head, tmp))
        for side in sides:
            check_import(args.python, side, tmp)
            print(f"{side.label}: {side.describe()}, imports {side.imported} from "
                  f"{side.path}", file=sys.stderr)
        runs = run_all(args.python, args.benches, sides, args.rounds, tmp)
    rows = compare_rows(runs)
    doc = document(args, argv, sides, runs, rows, tmp, started)
    print_table(rows, sides, doc["spread"])
    write_json(args.json, portable(doc, tmp, "$TMP"))  # (the run's own temp dir as $TMP)
    print(f"\n{len(runs)} runs in {doc['wall_s'] / 60:.1f} min; wrote {args.json}")
    failed = [f"{r.bench} {r.side} round {r.round + 1}" for r in runs if not r.doc]
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
