"""The ``aioposix`` command: its arguments, ``sysctl``, and ``bench`` (run by ``_bench``).

``aioposix sysctl`` prints the tunables and counters of ``aioposix.sysctl``
with their meaning, or sets tunables in this process; ``aioposix bench``
checks its options, applies its ``--sysctl`` settings and hands the
workload to the runner in ``_bench``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import _bench, _tunables
from ._bench import DEFAULT_RUNTIME, ENGINE_NAMES, RW_MODES, UsageError, Workload
from ._kernel import KERNEL

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


def engine_list(values: list[str] | None) -> list[str]:
    names = [n.strip() for v in values or [",".join(ENGINE_NAMES)] for n in v.split(",")]
    for name in names:
        if name not in ENGINE_NAMES:
            raise UsageError(f"--engine: unknown engine {name!r} "
                             f"(choose from {', '.join(ENGINE_NAMES)})")
    return list(dict.fromkeys(n for n in names if n))


def workload(args: argparse.Namespace) -> Workload:
    """The workload asked for, its numbers checked; the runner fills in the path."""
    max_depth = KERNEL.sysctl.get_int("vfs.aio.max_aio_queue")
    if not 1 <= args.iodepth <= max_depth:
        raise UsageError(f"--iodepth must be between 1 and {max_depth} (vfs.aio.max_aio_queue)")
    if args.size < args.bs:
        raise UsageError("--size is smaller than one block (--bs)")
    if not args.runtime > 0:
        raise UsageError("--runtime must be positive")
    if args.direct and args.bs % 512:
        raise UsageError("--direct needs --bs to be a multiple of the block size (512)")
    size = args.size // args.bs * args.bs
    return Workload(args.rw, args.bs, args.iodepth, size, args.runtime, args.direct, "",
                    args.seed, args.loop)


def bench_command(args: argparse.Namespace) -> int:
    engines = engine_list(args.engine)
    factory = _bench.loop_factory(args.loop)
    for setting in args.sysctl:
        set_sysctl(setting)
    w = workload(args)  # checked before the runner makes a large file
    return _bench.bench(w, engines, factory, args.file, _bench.Outputs(args.json, args.plot))


def parse_setting(name: str, raw: str) -> _tunables.Value:
    """``raw`` as the tunable's type (counters and unknown names pass as text:
    the assignment then refuses them with the right error)."""
    tunable = next((t for t in _tunables.TUNABLES if t.name == name), None)
    if tunable is None or isinstance(tunable.default, str):
        return raw
    kind = type(tunable.default)
    try:
        return float(raw) if kind is float else int(raw, 0 if raw[1:2].isalpha() else 10)
    except ValueError:
        raise UsageError(f"bad value: {name} takes {kind.__name__}, not {raw!r}") from None


def unknown(name: str) -> UsageError:
    close = difflib.get_close_matches(name, list(KERNEL.sysctl), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return UsageError(f"unknown sysctl name: {name}{hint}")


def set_sysctl(setting: str) -> tuple[str, _tunables.Value]:
    """Apply ``NAME=VALUE``: (the name, the old value)."""
    name, _, raw = setting.partition("=")
    name = name.strip()
    if name not in KERNEL.sysctl:
        raise unknown(name)
    old = KERNEL.sysctl[name]
    try:
        KERNEL.sysctl[name] = parse_setting(name, raw.strip())
    except PermissionError:
        raise UsageError(f"{name} is read-only") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"bad value: {exc}") from None
    return name, old


def show(names: Sequence[str]) -> None:
    width = max(len(f"{n}: {KERNEL.sysctl[n]}") for n in names)
    for n in names:
        print(f"{f'{n}: {KERNEL.sysctl[n]}':<{width}}  # {_tunables.describe(n)}")


def sysctl_command(args: argparse.Namespace) -> int:
    if not args.names:
        show(list(KERNEL.sysctl))
        return 0
    for item in args.names:
        if "=" in item:
            name, old = set_sysctl(item)
            print(f"{name}: {old} -> {KERNEL.sysctl[name]}")
        elif item not in KERNEL.sysctl:
            raise unknown(item)
        else:
            show([item])
    return 0


SYSCTL_HELP = """\
Print every tunable and counter of aioposix.sysctl with its meaning, print
the NAMEs given, or set NAME=VALUE.  A setting lasts for this process only:
the command is for inspection, and for one-shot runs such as
`python -m aioposix sysctl vfs.aio.backend=threads`.  To run a benchmark
with a setting, use `aioposix bench --sysctl NAME=VALUE`."""


BENCH_HELP = f"""\
Run one workload on one file with each engine in turn
({', '.join(ENGINE_NAMES)}), iodepth tasks on one event loop for --runtime
seconds each (sync: one task), and print IOPS, MiB/s, p50/p99 latency
and the ratio to the first engine.  Reads end with a check that one block
read through the engine equals os.pread's.  Engines that are not
installed, or cannot run the workload (O_DIRECT), are skipped with a note.
Exit status: 0; 1 if an engine failed or read wrong data; 2 for a usage
error."""


def bench_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="run a fio-like workload on several engines",
                       description=BENCH_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rw", choices=RW_MODES, default="randread",
                   help="the workload (default: randread)")
    p.add_argument("--bs", type=parse_size, default="4k",
                   help="bytes per op, with k/m/g suffixes (default: 4k)")
    p.add_argument("--iodepth", type=int, default=64,
                   help="concurrent tasks per engine (default: 64)")
    p.add_argument("--size", type=parse_size, default="256m", help="file size (default: 256m)")
    p.add_argument("--runtime", type=float, default=DEFAULT_RUNTIME,
                   help=f"seconds per engine (default: {DEFAULT_RUNTIME:g})")
    p.add_argument("--direct", action="store_true",
                   help="O_DIRECT with page-aligned buffers (engines that cannot are skipped)")
    p.add_argument("--file", metavar="PATH",
                   help="file to use, extended to --size if shorter and kept "
                        "(default: a temporary file, removed afterwards)")
    p.add_argument("--engine", action="append", metavar="NAME",
                   help=f"engine to run, repeatable or comma-separated "
                        f"(default: {','.join(ENGINE_NAMES)})")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                   help="the event loop (default: asyncio)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--plot", metavar="FILE.png",
                   help="IOPS bars and latency CDFs as a PNG (needs matplotlib)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the random offsets and written data (default: 1)")
    p.add_argument("--sysctl", action="append", default=[], metavar="NAME=VALUE",
                   help="set an aioposix.sysctl tunable for the run (repeatable)")
    p.set_defaults(func=bench_command)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aioposix", description="aioposix: POSIX asynchronous I/O for asyncio. Commands: "
        "bench (a fio-like workload runner) and sysctl (print or set the tunables).")
    sub = p.add_subparsers(dest="command", required=True)
    bench_parser(sub)
    s = sub.add_parser("sysctl", help="print or set aioposix.sysctl tunables",
                       description=SYSCTL_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("names", nargs="*", metavar="NAME[=VALUE]")
    s.set_defaults(func=sysctl_command)
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
