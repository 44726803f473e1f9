"""Cached 4 KiB random reads at queue depth 64 on one event loop.

Engines, side by side in one run, on the asyncio default loop and on uvloop:

* ``aioposix``: QD worker tasks, each reusing one Aiocb (set cb.offset,
  ``ctx.aio_read(cb)``, ``await cb``) on one AioContext;
* ``caio``: caio's linux_uring asyncio context (or what caio picks when
  io_uring is not available), QD tasks doing ``await ctx.read(n, fd, off)``;
* ``run_in_executor``: QD tasks doing ``loop.run_in_executor(None, os.pread,
  ...)``, what aiofiles does per call;
* ``pread``: a plain synchronous os.pread loop, no event loop: the ceiling.

The file is written once and read fully once so every read is a page-cache
hit.  Each engine runs ``--warmup`` seconds, then is measured for
``--seconds``; meanwhile a heartbeat task sleeps 1 ms in a loop and records
its worst lateness (actual - expected wake-up) as the "worst stall".

Run: ``python benchmarks/randread.py [--seconds 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from _common import (
    CHECK_EVERY,
    MiB,
    Window,
    Worker,
    fmt_ratio,
    heartbeat,
    machine,
    run_on,
    run_window,
    write_json,
)

import aioposix

TARGET_RATIO = 1.5  # aioposix / caio ops/s
TARGET_STALL_MS = 5.0
ASYNC_ENGINES = ("aioposix", "caio", "run_in_executor")
ALL_ENGINES = (*ASYNC_ENGINES, "pread")


# -- engines ----------------------------------------------------------------


@dataclass
class Result:
    engine: str
    loop: str
    ops_per_s: float
    worst_stall_ms: float | None
    heartbeats: int | None
    ops: int
    seconds: float
    cpu_us_per_op: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def offsets_for(worker: int, offsets: list[int], workers: int) -> list[int]:
    return offsets[worker::workers]


async def run_engine(name: str, loop_name: str, make_worker: Callable[[Window], Worker],
                     args: argparse.Namespace) -> Result:
    """Run ``args.qd`` workers and the heartbeat through one window; clean up."""
    window, stats = await run_window(make_worker, args.qd, args.warmup, args.seconds, 30, name)
    return Result(name, loop_name, window.ops_per_s, stats["worst_stall_ms"],
                  int(stats["beats"]), window.end_ops - window.start_ops,
                  window.end_t - window.start_t, window.cpu_us_per_op)


async def bench_aioposix(fd: int, offsets: list[int], expect: Callable[[int], bytes],
                         loop_name: str, args: argparse.Namespace) -> Result:
    block, qd = args.block, args.qd
    async with aioposix.AioContext() as ctx:
        # Correctness, once: the bytes read equal os.pread's.
        cb = aioposix.Aiocb(fd, bytearray(block), block, 0)
        for off in offsets[:8]:
            cb.offset = off
            ctx.aio_read(cb)
            n = await cb
            if n != block or bytes(cb.buf) != expect(off):
                raise AssertionError(f"aioposix read wrong data at offset {off}")

        def make(window: Window) -> Worker:
            async def worker(i: int) -> None:
                mine = offsets_for(i, offsets, qd)
                cb = aioposix.Aiocb(fd, bytearray(block), block, 0)
                read = ctx.aio_read
                k = 0
                while True:
                    for off in mine:
                        cb.offset = off
                        read(cb)
                        await cb
                        window.ops += 1
                        k += 1
                        if k == CHECK_EVERY:
                            k = 0
                            if not window.tick():
                                return
            return worker

        result = await run_engine("aioposix", loop_name, make, args)
    inline = "inline RWF_NOWAIT" if aioposix.sysctl["vfs.aio.inline"] else "no inline path"
    try:
        backend = f", backend {aioposix.sysctl['vfs.aio.backend_active']}"
    except KeyError:
        backend = ""
    result.note = f"AioContext, {inline}{backend}"
    return result


def caio_context_class() -> tuple[Any, str]:
    """caio's linux_uring asyncio context, or what caio picks (with a note)."""
    try:
        from caio.linux_uring_asyncio import AsyncioContext
    except ImportError as exc:
        import caio

        name = caio.preferred_asyncio.__name__
        print(f"note: caio.linux_uring_asyncio unavailable ({exc}); using caio's choice {name}",
              file=sys.stderr)
        return caio.AsyncioContext, name.rsplit(".", 1)[-1]
    return AsyncioContext, "linux_uring_asyncio"


async def bench_caio(fd: int, offsets: list[int], expect: Callable[[int], bytes],
                     loop_name: str, args: argparse.Namespace) -> Result:
    block, qd = args.block, args.qd
    cls, impl = caio_context_class()
    kwargs: dict[str, Any] = {}
    if impl == "linux_uring_asyncio" and args.caio_sqpoll != "auto":
        kwargs["sqpoll"] = args.caio_sqpoll == "on"
    ctx = cls(max_requests=max(qd, 64), loop=asyncio.get_running_loop(), **kwargs)
    try:
        sqpoll = getattr(ctx.context, "sqpoll", None)
        for off in offsets[:8]:
            data = await ctx.read(block, fd, off)
            if data != expect(off):
                raise AssertionError(f"caio read wrong data at offset {off}")

        def make(window: Window) -> Worker:
            async def worker(i: int) -> None:
                mine = offsets_for(i, offsets, qd)
                read = ctx.read
                k = 0
                while True:
                    for off in mine:
                        await read(block, fd, off)
                        window.ops += 1
                        k += 1
                        if k == CHECK_EVERY:
                            k = 0
                            if not window.tick():
                                return
            return worker

        result = await run_engine("caio", loop_name, make, args)
    finally:
        ctx.close()
    result.note = impl + ("" if sqpoll is None else f", sqpoll={'on' if sqpoll else 'off'}")
    result.extra = {"impl": impl, "sqpoll": sqpoll}
    return result


async def bench_executor(fd: int, offsets: list[int], expect: Callable[[int], bytes],
                         loop_name: str, args: argparse.Namespace) -> Result:
    block, qd = args.block, args.qd
    loop = asyncio.get_running_loop()
    for off in offsets[:8]:
        data = await loop.run_in_executor(None, os.pread, fd, block, off)
        if data != expect(off):
            raise AssertionError(f"run_in_executor read wrong data at offset {off}")

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            mine = offsets_for(i, offsets, qd)
            run = loop.run_in_executor
            pread = os.pread
            k = 0
            while True:
                for off in mine:
                    await run(None, pread, fd, block, off)
                    window.ops += 1
                    k += 1
                    if k == CHECK_EVERY:
                        k = 0
                        if not window.tick():
                            return
        return worker

    result = await run_engine("run_in_executor", loop_name, make, args)
    result.note = f"default executor ({min(32, (os.cpu_count() or 1) + 4)} threads)"
    return result


def bench_pread(fd: int, offsets: list[int], expect: Callable[[int], bytes],
                args: argparse.Namespace) -> Result:
    block = args.block  # os.pread is the reference the other engines are checked against
    window = Window(args.warmup, args.seconds)
    pread = os.pread
    k = 0
    running = True
    while running:
        for off in offsets:
            pread(fd, block, off)
            window.ops += 1
            k += 1
            if k == CHECK_EVERY:
                k = 0
                if not window.tick():
                    running = False
                    break
    return Result("pread", "-", window.ops_per_s, None, None, window.end_ops - window.start_ops,
                  window.end_t - window.start_t, window.cpu_us_per_op,
                  "synchronous os.pread, no event loop")


Bench = Callable[[int, list[int], Callable[[int], bytes], str, argparse.Namespace],
                 Awaitable[Result]]
BENCHES: dict[str, Bench] = {
    "aioposix": bench_aioposix,
    "caio": bench_caio,
    "run_in_executor": bench_executor,
}


async def idle_baseline(seconds: float) -> float:
    """The heartbeat's worst lateness on an idle loop (timer granularity)."""
    window = Window(0.05, seconds)
    stats: dict[str, float] = {"worst_stall_ms": 0.0, "beats": 0}
    beat = asyncio.create_task(heartbeat(window, stats))
    try:
        while window.tick():
            await asyncio.sleep(0.01)
        await asyncio.wait_for(beat, 5)
    finally:
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)
    return stats["worst_stall_ms"]


async def run_loop(loop_name: str, fd: int, offsets: list[int],
                   expect: Callable[[int], bytes],
                   args: argparse.Namespace) -> tuple[list[Result], float]:
    idle = await idle_baseline(0.3)
    results = []
    for name in args.engines:
        if name in BENCHES:
            results.append(await BENCHES[name](fd, offsets, expect, loop_name, args))
    return results, idle


# -- the file -----------------------------------------------------------------


def make_file(path: str, size: int) -> None:
    """Write ``size`` random bytes, fsync, then read it all once (page cache)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        chunk = 4 * MiB
        done = 0
        while done < size:
            n = min(chunk, size - done)
            os.pwrite(fd, random.randbytes(n), done)
            done += n
        os.fsync(fd)
    finally:
        os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    try:
        off = 0
        while off < size:
            off += len(os.pread(fd, 4 * MiB, off))
    finally:
        os.close(fd)


# -- report -------------------------------------------------------------------


def table(loop_name: str, results: list[Result], ceiling: Result | None, idle: float) -> str:
    by = {r.engine: r for r in results}
    caio = by["caio"].ops_per_s if "caio" in by else None
    exe = by["run_in_executor"].ops_per_s if "run_in_executor" in by else None
    rows = [*results, *([ceiling] if ceiling else [])]
    head = (f"{'engine':<16} {'ops/s':>10} {'vs caio':>8} {'vs executor':>12} "
            f"{'worst stall':>12} {'CPU us/op':>10}  note")
    lines = [f"loop: {loop_name}  (idle-loop heartbeat lateness {idle:.2f} ms)", head,
             "-" * len(head)]
    for r in rows:
        stall = "-" if r.worst_stall_ms is None else f"{r.worst_stall_ms:.2f} ms"
        lines.append(f"{r.engine:<16} {r.ops_per_s:>10,.0f} {fmt_ratio(r.ops_per_s, caio):>8} "
                     f"{fmt_ratio(r.ops_per_s, exe):>12} {stall:>12} "
                     f"{r.cpu_us_per_op:>10.2f}  {r.note}")
    return "\n".join(lines)


def headline(loop_name: str, results: list[Result]) -> dict[str, Any] | None:
    by = {r.engine: r for r in results}
    if "aioposix" not in by or "caio" not in by or not by["caio"].ops_per_s:
        return None
    mine = by["aioposix"]
    ratio = mine.ops_per_s / by["caio"].ops_per_s
    stall = mine.worst_stall_ms or 0.0
    ok = ratio >= TARGET_RATIO and stall <= TARGET_STALL_MS
    return {"loop": loop_name, "ratio": ratio, "stall_ms": stall, "pass": ok}


# -- main ---------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--size", type=int, default=256, help="file size in MiB")
    p.add_argument("--block", type=int, default=4096, help="bytes per read (and alignment)")
    p.add_argument("--qd", type=int, default=64, help="queue depth: worker tasks per engine")
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per engine")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per engine")
    p.add_argument("--loops", nargs="+", choices=("asyncio", "uvloop"),
                   default=["asyncio", "uvloop"])
    p.add_argument("--engines", nargs="+", choices=ALL_ENGINES, default=list(ALL_ENGINES))
    p.add_argument("--caio-sqpoll", choices=("auto", "on", "off"), default="auto",
                   help="caio linux_uring SQPOLL: auto is caio's own default")
    p.add_argument("--offsets", type=int, default=1 << 16, help="random offsets precomputed")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dir", default=None, help="where the temp file goes (default: $TMPDIR)")
    p.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    args = p.parse_args(argv)
    if args.size < 1 or args.block < 1 or args.qd < 1 or args.seconds <= 0 or args.warmup < 0:
        p.error("--size, --block, --qd and --seconds must be positive")
    if args.size * MiB < args.block:
        p.error("--size is smaller than one block")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = args.size * MiB
    rng = random.Random(args.seed)
    pages = size // args.block
    offsets = [rng.randrange(pages) * args.block for _ in range(args.offsets)]
    info = machine()
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}, Linux {info['kernel']}, "
          f"Python {info['python']}, uvloop {info['uvloop']}, caio {info['caio']}")
    print(f"workload: {args.block}-byte random reads, qd {args.qd}, {args.size} MiB cached file, "
          f"{args.warmup:g} s warm-up + {args.seconds:g} s per engine")

    all_results: list[Result] = []
    idles: dict[str, float] = {}
    ceiling: Result | None = None
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="randread-") as tmp:
        path = os.path.join(tmp, "data")
        t0 = time.perf_counter()
        make_file(path, size)
        print(f"file: {path} written and read once in {time.perf_counter() - t0:.1f} s")
        fd = os.open(path, os.O_RDONLY)
        try:
            def expect(off: int) -> bytes:
                return os.pread(fd, args.block, off)

            if "pread" in args.engines:
                ceiling = bench_pread(fd, offsets, expect, args)
                all_results.append(ceiling)
            for loop_name in args.loops:
                results, idle = run_on(loop_name, run_loop(loop_name, fd, offsets, expect, args))
                all_results.extend(results)
                idles[loop_name] = idle
        finally:
            os.close(fd)

    heads = []
    for loop_name in args.loops:
        results = [r for r in all_results if r.loop == loop_name]
        print()
        print(table(loop_name, results, ceiling, idles[loop_name]))
        head = headline(loop_name, results)
        if head is not None:
            heads.append(head)
    if heads:
        print()
        for h in heads:
            verdict = "PASS" if h["pass"] else "MISS"
            print(f"headline [{h['loop']}]: aioposix/caio = {h['ratio']:.2f}x, worst stall "
                  f"{h['stall_ms']:.2f} ms (target >= {TARGET_RATIO}x and <= "
                  f"{TARGET_STALL_MS:g} ms): {verdict}")

    if args.json:
        doc = {"machine": info, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
               "params": {k: v for k, v in vars(args).items() if k != "json"},
               "idle_heartbeat_ms": idles, "results": [asdict(r) for r in all_results],
               "headline": heads}
        write_json(args.json, doc, newline=True)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
