"""Buffered 4 KiB random writes at queue depth 64 on one event loop.

Engines, on the asyncio default loop and on uvloop, ``--rounds`` rounds
each, the order of the engines reversed every other round:

* ``aioposix natural``: per write a new ``Aiocb(fd, data, 4096, off)``,
  ``aioposix.aio_write(cb)`` (the loop's default context), ``await cb``;
* ``aioposix tuned``: one Aiocb per task, reused, on an explicit
  AioContext, once per distinct backend setting: ``auto``, ``threads`` and
  ``io_uring`` that run file jobs on the same backend here
  (``vfs.aio.backend_active``) are one setting and one row;
* ``caio``: caio's linux_uring asyncio context, ``await ctx.write(...)``;
* ``aiofiles``: one handle per task (``r+b``), ``seek`` + ``write``;
* ``run_in_executor``: ``loop.run_in_executor(None, os.pwrite, ...)``;
* ``os.pwrite loop``: a plain synchronous loop, no event loop: the limit.

All engines write into one fully written (not sparse) file of ``--size``
bytes, following the same random sequence of blocks.  Each run writes its
own generation of the pattern (``_common.Pattern``), so after each run every
block of the file is read back and compared in full: the blocks that run
wrote hold its generation, every other block the generation it held before.
The file is then fsynced, outside the measured window, so that every run
starts with no dirty pages.  A heartbeat task sleeping 1 ms records its
lateness (p99 and worst) while each engine runs.

Run: ``python benchmarks/randwrite.py [--dir DIR] [--size 256M] [--seconds 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
from array import array
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
    backend_settings,
    common_args,
    executor_note,
    filesystem,
    idle_heartbeat,
    installed,
    loops_available,
    machine,
    machine_line,
    parse_size,
    report,
    run_on,
    run_rounds,
    run_window,
    sample,
    select,
    sysctls,
    wrong,
)

import aioposix

BLOCK = 4096
NATURAL, TUNED = "aioposix natural", "aioposix tuned"
LIMIT = "os.pwrite loop"
Job = tuple[int, bytes]  # (offset, payload)


class Disk:
    """The file, the generation each block holds, and the write sequence."""

    def __init__(self, path: str, args: argparse.Namespace) -> None:
        self.path, self.args = path, args
        self.blocks = args.size // BLOCK
        self.pattern = Pattern(self.blocks, BLOCK, 0)
        self.pattern.write_file(path, self.blocks)
        self.gens = array("I", bytes(4 * self.blocks))
        self.last_gen = 0
        rng = random.Random(7)
        self.sequence = [rng.randrange(self.blocks) for _ in range(args.ops)]
        self.fd = os.open(path, os.O_RDWR)

    def close(self) -> None:
        os.close(self.fd)


class Run:
    """One engine run: its generation, each worker's jobs, what each got done."""

    def __init__(self, disk: Disk) -> None:
        disk.last_gen += 1
        self.disk, self.gen = disk, disk.last_gen
        pattern = disk.pattern
        payloads = {b: pattern.data(b, self.gen) for b in set(disk.sequence)}
        self.qd = disk.args.iodepth
        self.jobs = [(b * BLOCK, payloads[b]) for b in disk.sequence]
        self.done = [0] * self.qd

    def share(self, worker: int) -> list[Job]:
        return self.jobs[worker::self.qd]

    def finish(self) -> int:
        """Record what was written, compare the whole file, fsync; the blocks written."""
        disk = self.disk
        seq = disk.sequence
        written: set[int] = set()
        for worker, count in enumerate(self.done):
            mine = seq[worker::self.qd]
            written.update(mine if count >= len(mine) else mine[:count])
        for b in written:
            disk.gens[b] = self.gen
        fd, pattern, gens = disk.fd, disk.pattern, disk.gens
        for b in range(disk.blocks):
            if not pattern.ok(os.pread(fd, BLOCK, b * BLOCK), b, gens[b]):
                raise wrong(f"randwrite generation {self.gen}", b * BLOCK)
        os.fsync(fd)
        return len(written)


async def measure(run: Run, make: Callable[[Window], Worker], name: str) -> dict[str, Any]:
    args = run.disk.args
    window, beats = await run_window(make, args.iodepth, args.warmup, args.seconds, 60, name)
    return sample(window, beats)


def looped(run: Run, window: Window, i: int, count: int) -> bool:
    """The clock check every CHECK_EVERY writes: False (and the count noted) when over."""
    if window.tick():
        return True
    run.done[i] = count
    return False


async def bench_natural(run: Run) -> dict[str, Any]:
    fd = run.disk.fd

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            mine = run.share(i)
            Aiocb, write = aioposix.Aiocb, aioposix.aio_write
            count = k = 0
            while True:
                for off, data in mine:
                    cb = Aiocb(fd, data, BLOCK, off)
                    write(cb)
                    if await cb != BLOCK:
                        raise wrong(NATURAL, off)
                    count += 1
                    window.ops += 1
                    k += 1
                    if k == CHECK_EVERY:
                        k = 0
                        if not looped(run, window, i, count):
                            return
        return worker

    return await measure(run, make, NATURAL)


async def bench_tuned(run: Run, backend: str) -> dict[str, Any]:
    fd, qd = run.disk.fd, run.disk.args.iodepth
    with sysctls(backend=backend):
        ctx = aioposix.AioContext(max_active=qd, max_queued=max(256, qd))
    async with ctx:
        def make(window: Window) -> Worker:
            async def worker(i: int) -> None:
                mine = run.share(i)
                cb = aioposix.Aiocb(fd, b"")
                write = ctx.aio_write
                count = k = 0
                while True:
                    for off, data in mine:
                        cb.buf, cb.nbytes, cb.offset = data, BLOCK, off
                        write(cb)
                        if await cb != BLOCK:
                            raise wrong(TUNED, off)
                        count += 1
                        window.ops += 1
                        k += 1
                        if k == CHECK_EVERY:
                            k = 0
                            if not looped(run, window, i, count):
                                return
            return worker

        return await measure(run, make, TUNED)


async def bench_caio(run: Run) -> dict[str, Any]:
    from caio.linux_uring_asyncio import AsyncioContext

    fd, qd = run.disk.fd, run.disk.args.iodepth
    ctx = AsyncioContext(max_requests=max(64, qd), loop=asyncio.get_running_loop())
    try:
        def make(window: Window) -> Worker:
            async def worker(i: int) -> None:
                mine = run.share(i)
                write = ctx.write
                count = k = 0
                while True:
                    for off, data in mine:
                        if await write(data, fd, off) != BLOCK:
                            raise wrong("caio", off)
                        count += 1
                        window.ops += 1
                        k += 1
                        if k == CHECK_EVERY:
                            k = 0
                            if not looped(run, window, i, count):
                                return
            return worker

        return await measure(run, make, "caio")
    finally:
        ctx.close()


async def bench_aiofiles(run: Run) -> dict[str, Any]:
    import aiofiles

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            mine = run.share(i)
            async with aiofiles.open(run.disk.path, "r+b") as f:
                count = k = 0
                while True:
                    for off, data in mine:
                        await f.seek(off)
                        if await f.write(data) != BLOCK:
                            raise wrong("aiofiles", off)
                        count += 1
                        window.ops += 1
                        k += 1
                        if k == CHECK_EVERY:
                            k = 0
                            if not looped(run, window, i, count):
                                return
        return worker

    return await measure(run, make, "aiofiles")


async def bench_executor(run: Run) -> dict[str, Any]:
    fd = run.disk.fd
    loop = asyncio.get_running_loop()

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            mine = run.share(i)
            go, pwrite = loop.run_in_executor, os.pwrite
            count = k = 0
            while True:
                for off, data in mine:
                    if await go(None, pwrite, fd, data, off) != BLOCK:
                        raise wrong("run_in_executor", off)
                    count += 1
                    window.ops += 1
                    k += 1
                    if k == CHECK_EVERY:
                        k = 0
                        if not looped(run, window, i, count):
                            return
        return worker

    return await measure(run, make, "run_in_executor")


def bench_limit(run: Run) -> dict[str, Any]:
    fd, args = run.disk.fd, run.disk.args
    window = Window(args.warmup, args.seconds)
    pwrite = os.pwrite
    count = k = 0
    run.qd = 1  # one writer: the whole sequence in order
    run.done = [0]
    while True:
        for off, data in run.jobs:
            if pwrite(fd, data, off) != BLOCK:
                raise wrong(LIMIT, off)
            count += 1
            window.ops += 1
            k += 1
            if k == CHECK_EVERY:
                k = 0
                if not looped(run, window, 0, count):
                    return sample(window, None)


Bench = Callable[[Run], Coroutine[Any, Any, dict[str, Any]]]


def engines(disk: Disk, workload: str, loops: list[str]) -> list[Engine]:
    def runner(bench: Callable[[Run], Any], loop: str | None) -> Callable[[], dict[str, Any]]:
        def go() -> dict[str, Any]:
            run = Run(disk)
            got = bench(run) if loop is None else run_on(loop, bench(run))
            return dict(got, verified_blocks=run.finish(), generation=run.gen)
        return go

    out = [Engine(workload, LIMIT, "-", runner(bench_limit, None),
                  "synchronous os.pwrite, no event loop", role="limit")]
    settings = backend_settings()
    for loop in loops:
        out.append(Engine(workload, NATURAL, loop, runner(bench_natural, loop),
                          "new Aiocb per write, aioposix.aio_write, default context "
                          f"(backend {aioposix.sysctl['vfs.aio.backend']})", role="natural"))
        for label, backend in settings:
            def tuned(run: Run, backend: str = backend) -> Coroutine[Any, Any, dict[str, Any]]:
                return bench_tuned(run, backend)
            out.append(Engine(workload, f"{TUNED}, backend {label}", loop,
                              runner(tuned, loop), "one reused Aiocb per task, explicit "
                              "AioContext(max_active=qd)", role="tuned"))
        peers: list[tuple[str, Bench, str, str | None]] = [
            ("caio", bench_caio, "linux_uring_asyncio, caio's defaults", "caio"),
            ("aiofiles", bench_aiofiles, "a handle per task, seek + write", "aiofiles"),
            ("run_in_executor", bench_executor, executor_note() + ", os.pwrite", None)]
        for name, bench, note, package in peers:
            if package and not installed(package):
                out.append(Engine(workload, name, loop, None, note, "not installed", "peer"))
            else:
                out.append(Engine(workload, name, loop, runner(bench, loop), note,
                                  role="peer"))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where the test file goes")
    p.add_argument("--size", type=parse_size, default=256 * MiB, help="file size (256M)")
    p.add_argument("--seconds", type=float, default=2.0, help="measured seconds per round")
    p.add_argument("--warmup", type=float, default=0.3, help="warm-up seconds per round")
    p.add_argument("--iodepth", type=int, default=64)
    p.add_argument("--ops", type=int, default=1 << 16, help="length of the random sequence")
    common_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    info["filesystem"] = filesystem(args.dir)
    print(machine_line(info))
    workload = f"buffered 4 KiB randwrite, qd {args.iodepth}"
    w = Workload(workload, "writes/s", True, "caio", LIMIT,
                 f"{args.size // MiB} MiB fully written file ({info['filesystem']}), "
                 f"{args.seconds:g} s per round after {args.warmup:g} s warm-up; "
                 "the whole file compared after every run",
                 targets={NATURAL: [("vs_ref", ">=", 1.5), ("vs_limit", ">=", 0.5),
                                    ("hb_p99_ms", "<=", 2.0)]})
    loops = loops_available(args.loops)
    fd, path = tempfile.mkstemp(prefix="randwrite-", suffix=".bin", dir=args.dir)
    os.close(fd)
    try:
        disk = Disk(path, args)
        try:
            idle = {loop: run_on(loop, idle_heartbeat()) for loop in loops}
            table = select(engines(disk, workload, loops), args.only)
            orders = run_rounds(table, args.rounds)
        finally:
            disk.close()
    finally:
        os.unlink(path)
    report("randwrite", "Buffered 4 KiB random writes", info, args, [w], table, orders, idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
