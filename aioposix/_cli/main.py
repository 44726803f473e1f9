"""The ``aioposix`` command: its arguments, ``--version``, ``bench`` and ``sysctl``.

``aioposix bench`` takes fio's option names (``--filename``, ``--ioengine``,
``--rw``, ``--bs``, ``--iodepth``, ``--numjobs``, ``--rwmixread``,
``--ramp_time``, ``--fsync``, ``--direct=0|1``, ``--output-format``,
``--percentile_list``), checks them, applies its ``--sysctl`` settings and
hands the workload to the runner in ``_bench``.  ``aioposix sysctl`` is in
``_cli_sysctl``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from aioposix._cli import bench
from aioposix._cli.bench import DEFAULT_RUNTIME, RW_MODES, Outputs, UsageError
from aioposix._cli.engines import ENGINE_NAMES, Workload
from aioposix._cli.report import PERCENTILES
from aioposix._cli.sysctl import set_sysctl, sysctl_parser
from aioposix._kernel.kernel import KERNEL

SIZE_SUFFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``4k``, ``64K``, ``1m``, ``2GiB``, ``4096``: a byte count (binary units)."""
    raw = text.strip().lower().removesuffix("ib").removesuffix("b")
    digits = raw.rstrip("kmgt")
    unit = raw[len(digits):]
    if unit not in SIZE_SUFFIXES or not digits:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 4k, 64k, 1m)")
    try:
        value = float(digits) * SIZE_SUFFIXES[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"size must be a whole number of bytes: {text!r}")
    return int(value)


def parse_percentiles(text: str) -> tuple[float, ...]:
    """fio's ``--percentile_list``: ``99:99.9:99.99`` (or comma-separated)."""
    try:
        values = tuple(float(x) for x in text.replace(",", ":").split(":") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentile list: {text!r}") from None
    if not values or not all(0 < v <= 100 for v in values):
        raise argparse.ArgumentTypeError("percentiles must be above 0 and at most 100")
    return values


def engine_list(values: list[str] | None) -> list[str]:
    names = [n.strip() for v in values or [",".join(ENGINE_NAMES)] for n in v.split(",")]
    for name in names:
        if name not in ENGINE_NAMES:
            raise UsageError(f"--ioengine: unknown engine {name!r} "
                             f"(choose from {', '.join(ENGINE_NAMES)})")
    return list(dict.fromkeys(n for n in names if n))


def check(args: argparse.Namespace) -> None:
    """The numbers of the workload, checked before the runner makes a large file."""
    max_depth = KERNEL.sysctl.get_int("vfs.aio.max_aio_queue")
    if not 1 <= args.iodepth <= max_depth:
        raise UsageError(f"--iodepth must be between 1 and {max_depth} (vfs.aio.max_aio_queue)")
    if not 1 <= args.numjobs <= 64:
        raise UsageError("--numjobs must be between 1 and 64")
    if args.size < args.bs:
        raise UsageError("--size is smaller than one block (--bs)")
    if not args.runtime > 0:
        raise UsageError("--runtime must be positive")
    if not args.ramp_time >= 0:
        raise UsageError("--ramp_time must be 0 or more")
    if not 0 <= args.rwmixread <= 100:
        raise UsageError("--rwmixread must be between 0 and 100")
    if args.fsync < 0:
        raise UsageError("--fsync must be 0 (never) or more")
    if args.direct and args.bs % 512:
        raise UsageError("--direct=1 needs --bs to be a multiple of the block size (512)")


def workload(args: argparse.Namespace) -> Workload:
    """The workload asked for, checked; the runner fills in the path."""
    check(args)
    rw = "rw" if args.rw == "readwrite" else args.rw
    return Workload(rw, args.bs, args.iodepth, args.size // args.bs * args.bs, args.runtime,
                    bool(args.direct), "", args.seed, args.loop, args.numjobs, args.rwmixread,
                    args.ramp_time, args.fsync)


def bench_command(args: argparse.Namespace) -> int:
    engines = engine_list(args.ioengine)
    factory = bench.loop_factory(args.loop)
    for setting in args.sysctl:
        set_sysctl(setting)
    w = workload(args)
    out = Outputs(args.output_format, args.output, args.plot, args.percentile_list)
    return bench.bench(w, engines, factory, args.filename, out, bool(args.overwrite))


BENCH_HELP = f"""\
Run one workload on one file with each engine in turn
({', '.join(ENGINE_NAMES)}): numjobs threads, each with its own event loop
and iodepth tasks (sync: one task), for --ramp_time seconds uncounted and
--runtime seconds counted, and print IOPS, MiB/s, completion latency (mean,
stdev, p50, p99, max, and fio's clat percentiles) and the ratio to the first
engine.  The option names are fio's.  Engines that are not installed, or
cannot run the workload (O_DIRECT), are skipped with a note on stderr.
With no option it runs {DEFAULT_RUNTIME:g} s of 4 KiB random reads at iodepth
64 on a 256 MiB temporary file per engine.

Every byte every engine reads is verified: the file is laid out first with a
pattern in which each block starts with its offset (8 bytes) and goes on with
one of up to 251 random fills, writes write the block of their offset, and
each completed read (ramp included) is compared in full with the block the
file holds, by the same check for every engine, outside the latency figures
and inside the time IOPS are measured over.  The output gives the bytes read,
the bytes verified and the time the checks took (JSON: read_bytes,
verified_bytes, verify_ns).  A read that differs fails its engine with the
offset and the first byte that differs.
Exit status: 0; 1 if an engine failed or read wrong data; 2 for a usage
error."""


def workload_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rw", "--readwrite", choices=RW_MODES, default="randread",
                   help="the workload; rw (= readwrite) and randrw mix reads and writes "
                        "(default: randread)")
    p.add_argument("--bs", type=parse_size, default="4k",
                   help="bytes per op, with k/m/g suffixes (default: 4k)")
    p.add_argument("--iodepth", type=int, default=64,
                   help="ops in flight per job: its tasks (default: 64)")
    p.add_argument("--numjobs", type=int, default=1,
                   help="jobs at once, each a thread with its own event loop; their "
                        "figures are summed (default: 1)")
    p.add_argument("--rwmixread", type=int, default=50,
                   help="percent of reads in rw and randrw (default: 50)")
    p.add_argument("--size", type=parse_size, default="256m", help="file size (default: 256m)")
    p.add_argument("--runtime", type=float, default=DEFAULT_RUNTIME,
                   help=f"measured seconds per engine (default: {DEFAULT_RUNTIME:g})")
    p.add_argument("--ramp_time", type=float, default=0.0,
                   help="seconds run before the measurement starts (default: 0)")
    p.add_argument("--fsync", type=int, default=0, metavar="N",
                   help="an fsync after every N writes of a job (default: 0, never)")
    p.add_argument("--direct", type=int, choices=(0, 1), nargs="?", const=1, default=0,
                   help="1: O_DIRECT with page-aligned buffers; engines that cannot are "
                        "skipped (default: 0)")


def run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--filename", "--file", metavar="PATH",
                   help="file to use, extended to --size if shorter and kept; its first "
                        "--size bytes must hold the check pattern every read is compared "
                        "with (a file made by an earlier run does), else see --overwrite "
                        "(default: a temporary file, removed afterwards)")
    p.add_argument("--overwrite", type=int, choices=(0, 1), nargs="?", const=1, default=0,
                   help="1: a --filename holding other data is written over with the "
                        "check pattern; 0: the run stops and says so (default: 0)")
    p.add_argument("--ioengine", "--engine", action="append", metavar="NAME",
                   help=f"engine to run, repeatable or comma-separated "
                        f"(default: {','.join(ENGINE_NAMES)})")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                   help="the event loop (default: asyncio)")
    p.add_argument("--output-format", choices=("normal", "json"), default="normal",
                   help="normal: a table and percentile rows; json: one JSON document "
                        "(default: normal)")
    p.add_argument("--output", metavar="FILE", help="write the results to FILE, not stdout")
    p.add_argument("--percentile_list", type=parse_percentiles, default=PERCENTILES,
                   metavar="P:P:...", help="the clat percentiles to report (default: fio's)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="IOPS bars and latency CDFs as a PNG (needs matplotlib: "
                        "pip install 'aioposix[bench]')")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the random offsets and of the read/write choices; the "
                        "data, the check pattern, depends on --bs only (default: 1)")
    p.add_argument("--sysctl", action="append", default=[], metavar="NAME=VALUE",
                   help="set an aioposix.sysctl tunable for the run (repeatable)")


def bench_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="run a fio-shaped workload on several engines",
                       description=BENCH_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    workload_options(p)
    run_options(p)
    p.set_defaults(func=bench_command)


def version() -> str:
    return str(importlib.import_module("aioposix").__version__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aioposix", description="aioposix: POSIX asynchronous I/O for asyncio. Commands: "
        "bench (a fio-shaped workload runner) and sysctl (print, set or write down the "
        "tunables).")
    p.add_argument("--version", action="version", version=f"aioposix {version()}")
    sub = p.add_subparsers(dest="command", required=True)
    bench_parser(sub)
    sysctl_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except UsageError as exc:
        print(f"aioposix {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `aioposix sysctl | head`: the reader left, that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status
