"""Cached 4 KiB random reads at queue depth 64 on one event loop.

Engines, on the asyncio default loop and on uvloop, ``--rounds`` rounds
each, the order of the engines reversed every other round:

* ``aioposix natural``: what the README's quick start does, per read a new
  ``Aiocb(fd, buf, 4096, off)``, ``aioposix.aio_read(cb)`` (the loop's
  default context), ``await cb``;
* ``aioposix tuned``: one Aiocb per task, reused (set ``cb.offset``,
  ``ctx.aio_read(cb)``, ``await cb``) on an explicit AioContext;
* ``aioposix.pread``: ``await aioposix.pread(fd, buf, off)``;
* ``caio``: caio's linux_uring asyncio context with its defaults,
  ``await ctx.read(4096, fd, off)``;
* ``aiofiles``: one handle per task, ``await f.seek(off)`` +
  ``await f.read(4096)``;
* ``run_in_executor``: ``loop.run_in_executor(None, os.pread, ...)``;
* ``os.pread loop``: a plain synchronous loop, no event loop: the limit.

The file holds a pattern (``_common.Pattern``) and is read once beforehand,
so every read is a page-cache hit; every block read by every engine is
compared in full with what that block must hold.  A heartbeat task sleeping
1 ms records its lateness (p99 and worst) while each engine runs.

Run: ``python benchmarks/randread.py [--seconds 2] [--rounds 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
from collections.abc import Callable, Coroutine
from typing import Any

from _common import (
    CHECK_EVERY,
    Engine,
    MiB,
    Pattern,
    Window,
    Worker,
    Workload,
    common_args,
    executor_note,
    idle_heartbeat,
    installed,
    loops_available,
    machine,
    machine_line,
    read_all,
    report,
    run_on,
    run_rounds,
    run_window,
    sample,
    select,
    wrong,
)

import aioposix

Job = tuple[int, bytes, bytes]  # (offset, head, tail)
NATURAL, TUNED, PREAD = "aioposix natural", "aioposix tuned", "aioposix.pread"
LIMIT = "os.pread loop"


class Plan:
    """The file, its pattern, and each worker's share of the random offsets."""

    def __init__(self, fd: int, path: str, pattern: Pattern, args: argparse.Namespace) -> None:
        self.fd, self.path, self.args = fd, path, args
        rng = random.Random(args.seed)
        blocks = args.size // args.block
        self.jobs: list[Job] = []
        for _ in range(args.offsets):
            i = rng.randrange(blocks)
            head, tail = pattern.expect(i)
            self.jobs.append((i * args.block, head, tail))

    def share(self, worker: int) -> list[Job]:
        return self.jobs[worker::self.args.qd]


async def measure(plan: Plan, make: Callable[[Window], Worker], name: str) -> dict[str, Any]:
    args = plan.args
    window, beats = await run_window(make, args.qd, args.warmup, args.seconds, 60, name)
    return sample(window, beats)


async def bench_natural(plan: Plan) -> dict[str, Any]:
    fd, block = plan.fd, plan.args.block

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            mine = plan.share(i)
            buf = bytearray(block)
            Aiocb, read = aioposix.Aiocb, aioposix.aio_read
            k = 0
            while True:
                for off, head, tail in mine:
                    cb = Aiocb(fd, buf, block, off)
                    read(cb)
                    if await cb != block or not (buf.startswith(head) and buf.endswith(tail)):
                        raise wrong(NATURAL, off)
                    window.ops += 1
                    k += 1
                    if k == CHECK_EVERY:
                        k = 0
                        if not window.tick():
                            return
        return worker

    return await measure(plan, make, NATURAL)


async def bench_tuned(plan: Plan) -> dict[str, Any]:
    fd, block = plan.fd, plan.args.block
    async with aioposix.AioContext() as ctx:
        def make(window: Window) -> Worker:
            async def worker(i: int) -> None:
                mine = plan.share(i)
                buf = bytearray(block)
                cb = aioposix.Aiocb(fd, buf, block, 0)
                read = ctx.aio_read
                k = 0
                while True:
                    for off, head, tail in mine:
                        cb.offset = off
                        read(cb)
                        if await cb != block or not (buf.startswith(head)
                                                     and buf.endswith(tail)):
                            raise wrong(TUNED, off)
                        window.ops += 1
                        k += 1
                        if k == CHECK_EVERY:
                            k = 0
                            if not window.tick():
                                return
            return worker

        return await measure(plan, make, TUNED)


async def bench_pread(plan: Plan) -> dict[str, Any]:
    fd, block = plan.fd, plan.args.block

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            mine = plan.share(i)
            buf = bytearray(block)
            pread = aioposix.pread
            k = 0
            while True:
                for off, head, tail in mine:
                    if await pread(fd, buf, off) != block or not (buf.startswith(head)
                                                                  and buf.endswith(tail)):
                        raise wrong(PREAD, off)
                    window.ops += 1
                    k += 1
                    if k == CHECK_EVERY:
                        k = 0
                        if not window.tick():
                            return
        return worker

    return await measure(plan, make, PREAD)


def caio_context() -> tuple[Any, str]:
    """caio's linux_uring asyncio context, or what caio picks (with its name)."""
    try:
        from caio.linux_uring_asyncio import AsyncioContext
    except ImportError:
        import caio

        return caio.AsyncioContext, caio.preferred_asyncio.__name__.rsplit(".", 1)[-1]
    return AsyncioContext, "linux_uring_asyncio"


async def bench_caio(plan: Plan) -> dict[str, Any]:
    fd, block = plan.fd, plan.args.block
    cls, _ = caio_context()
    ctx = cls(max_requests=max(plan.args.qd, 64), loop=asyncio.get_running_loop())
    try:
        def make(window: Window) -> Worker:
            async def worker(i: int) -> None:
                mine = plan.share(i)
                read = ctx.read
                k = 0
                while True:
                    for off, head, tail in mine:
                        data = await read(block, fd, off)
                        if not (len(data) == block and data.startswith(head)
                                and data.endswith(tail)):
                            raise wrong("caio", off)
                        window.ops += 1
                        k += 1
                        if k == CHECK_EVERY:
                            k = 0
                            if not window.tick():
                                return
            return worker

        return await measure(plan, make, "caio")
    finally:
        ctx.close()


async def bench_aiofiles(plan: Plan) -> dict[str, Any]:
    import aiofiles

    block = plan.args.block

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            mine = plan.share(i)
            async with aiofiles.open(plan.path, "rb") as f:
                k = 0
                while True:
                    for off, head, tail in mine:
                        await f.seek(off)
                        data = await f.read(block)
                        if not (len(data) == block and data.startswith(head)
                                and data.endswith(tail)):
                            raise wrong("aiofiles", off)
                        window.ops += 1
                        k += 1
                        if k == CHECK_EVERY:
                            k = 0
                            if not window.tick():
                                return
        return worker

    return await measure(plan, make, "aiofiles")


async def bench_executor(plan: Plan) -> dict[str, Any]:
    fd, block = plan.fd, plan.args.block
    loop = asyncio.get_running_loop()

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            mine = plan.share(i)
            run, pread = loop.run_in_executor, os.pread
            k = 0
            while True:
                for off, head, tail in mine:
                    data = await run(None, pread, fd, block, off)
                    if not (len(data) == block and data.startswith(head)
                            and data.endswith(tail)):
                        raise wrong("run_in_executor", off)
                    window.ops += 1
                    k += 1
                    if k == CHECK_EVERY:
                        k = 0
                        if not window.tick():
                            return
        return worker

    return await measure(plan, make, "run_in_executor")


def bench_limit(plan: Plan) -> dict[str, Any]:
    fd, block, args = plan.fd, plan.args.block, plan.args
    window = Window(args.warmup, args.seconds)
    pread = os.pread
    k = 0
    while True:
        for off, head, tail in plan.jobs:
            data = pread(fd, block, off)
            if not (len(data) == block and data.startswith(head) and data.endswith(tail)):
                raise wrong(LIMIT, off)
            window.ops += 1
            k += 1
            if k == CHECK_EVERY:
                k = 0
                if not window.tick():
                    return sample(window, None)


Bench = Callable[[Plan], Coroutine[Any, Any, dict[str, Any]]]
ASYNC: list[tuple[str, Bench, str, str, str | None]] = [
    # (engine, bench, role, note, package it needs)
    (NATURAL, bench_natural, "natural", "new Aiocb per read, aioposix.aio_read", None),
    (TUNED, bench_tuned, "tuned", "one reused Aiocb per task, explicit AioContext", None),
    (PREAD, bench_pread, "natural", "await aioposix.pread(fd, buf, off)", None),
    ("caio", bench_caio, "peer", "linux_uring_asyncio, caio's defaults", "caio"),
    ("aiofiles", bench_aiofiles, "peer", "a handle per task, seek + read", "aiofiles"),
    ("run_in_executor", bench_executor, "peer", executor_note() + ", os.pread", None),
]


def engines(plan: Plan, workload: str, loops: list[str]) -> list[Engine]:
    out = [Engine(workload, LIMIT, "-", lambda: bench_limit(plan),
                  "synchronous os.pread, no event loop", role="limit")]
    for loop in loops:
        for name, bench, role, note, package in ASYNC:
            if package and not installed(package):
                out.append(Engine(workload, name, loop, None, note, "not installed", role))
                continue

            def run(bench: Bench = bench, loop: str = loop) -> dict[str, Any]:
                return dict(run_on(loop, bench(plan)))

            out.append(Engine(workload, name, loop, run, note, role=role))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--size", type=int, default=256, help="file size in MiB")
    p.add_argument("--block", type=int, default=4096, help="bytes per read (and alignment)")
    p.add_argument("--qd", type=int, default=64, help="queue depth: worker tasks per engine")
    p.add_argument("--seconds", type=float, default=2.0, help="measured seconds per round")
    p.add_argument("--warmup", type=float, default=0.3, help="warm-up seconds per round")
    p.add_argument("--offsets", type=int, default=1 << 16, help="random offsets precomputed")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dir", default=None, help="where the temp file goes (default: $TMPDIR)")
    common_args(p)
    args = p.parse_args(argv)
    if args.size < 1 or args.block < 16 or args.qd < 1 or args.seconds <= 0:
        p.error("--size, --block, --qd and --seconds must be positive")
    args.size *= MiB
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    print(machine_line(info))
    workload = f"cached {args.block // 1024} KiB randread, qd {args.qd}"
    w = Workload(workload, "ops/s", True, "caio", LIMIT,
                 f"{args.size // MiB} MiB file in the page cache, {args.seconds:g} s per "
                 f"round after {args.warmup:g} s warm-up; every block read is compared",
                 targets={NATURAL: [("vs_ref", ">=", 2.0), ("vs_limit", ">=", 0.5),
                                    ("hb_p99_ms", "<=", 2.0)],
                          TUNED: [("vs_limit", ">=", 0.6)]})
    loops = loops_available(args.loops)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="randread-") as tmp:
        path = os.path.join(tmp, "data")
        blocks = args.size // args.block
        pattern = Pattern(blocks, args.block)
        pattern.write_file(path, blocks)
        read_all(path)
        fd = os.open(path, os.O_RDONLY)
        try:
            plan = Plan(fd, path, pattern, args)
            idle = {loop: run_on(loop, idle_heartbeat()) for loop in loops}
            table = select(engines(plan, workload, loops), args.only)
            orders = run_rounds(table, args.rounds)
        finally:
            os.close(fd)
    report("randread", "Cached 4 KiB random reads", info, args, [w], table, orders, idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
