"""Buffered 4 KiB random writes at queue depth 64 on one event loop.

Engines, side by side in one run, on the asyncio default loop and on uvloop:

* ``aioposix``: QD tasks on one AioContext, each reusing one Aiocb, with
  the default backend (``auto``), and again with vfs.aio.backend forced to
  ``threads`` and to ``io_uring``;
* ``caio``: caio's linux_uring asyncio context
  (``caio.linux_uring_asyncio.AsyncioContext``), QD tasks doing
  ``await ctx.write(data, fd, offset)``;
* ``run_in_executor``: QD tasks doing ``loop.run_in_executor(None,
  os.pwrite, ...)``, what aiofiles does per call.

Each engine writes into its own freshly written (not sparse) file of
``--size`` bytes: the same sequence of random block numbers, block ``b``
always getting the same known bytes.  Afterwards every block the engine
wrote is read back with os.pread and compared, and a sample of the blocks it
did not write must still be zeros.  A heartbeat task sleeping 1 ms records
the loop's worst stall.

Run: ``python benchmarks/randwrite.py [--dir DIR] [--size 256M] [--seconds 5]``.
Targets: aioposix (auto) >= 1.0x caio's writes/s, worst stall <= 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from _common import (
    CHECK_EVERY,
    MiB,
    Window,
    Worker,
    executor_note,
    fmt_ratio,
    machine_line,
    parse_size,
    run_on,
    run_workers,
    write_json,
)

import aioposix

BLOCK = 4096
TARGET_RATIO = 1.0  # aioposix (auto) / caio writes/s
TARGET_STALL_MS = 10.0


def payload(block: int) -> bytes:
    """The bytes every engine writes to block ``block``: never all zeros."""
    head = (block + 1).to_bytes(8, "little") * 8
    return (head + bytes((block * 31 + i) & 0xFF | 1 for i in range(256)) * 16)[:BLOCK]


@dataclass
class Result:
    engine: str
    loop: str
    writes_per_s: float
    worst_stall_ms: float
    cpu_us_per_op: float
    verified: int
    note: str = ""


class Plan:
    """The random blocks, their payloads, and what each worker got through."""

    def __init__(self, args: argparse.Namespace) -> None:
        rng = random.Random(7)
        blocks = args.size // BLOCK
        self.sequence = [rng.randrange(blocks) for _ in range(args.ops)]
        self.payloads = {b: payload(b) for b in set(self.sequence)}
        self.qd = args.iodepth
        self.done = [0] * self.qd  # ops completed by each worker

    def work(self, worker: int) -> list[tuple[int, bytes]]:
        return [(b * BLOCK, self.payloads[b]) for b in self.sequence[worker::self.qd]]

    def written(self) -> set[int]:
        blocks: set[int] = set()
        for worker, count in enumerate(self.done):
            mine = self.sequence[worker::self.qd]
            blocks.update(mine if count >= len(mine) else mine[:count])
        return blocks


def verify(fd: int, plan: Plan, size: int) -> int:
    written = plan.written()
    for block in written:
        if os.pread(fd, BLOCK, block * BLOCK) != plan.payloads[block]:
            raise AssertionError(f"block {block}: wrong data after the run")
    untouched = [b for b in range(0, size // BLOCK, 97) if b not in written][:2000]
    for block in untouched:
        if os.pread(fd, BLOCK, block * BLOCK) != bytes(BLOCK):
            raise AssertionError(f"block {block} was never written but is not zeros")
    return len(written)


async def bench_aioposix(fd: int, plan: Plan, args: argparse.Namespace,
                         backend: str) -> tuple[Window, float, str]:
    aioposix.sysctl["vfs.aio.backend"] = backend
    try:
        active = str(aioposix.sysctl["vfs.aio.backend_active"])
        async with aioposix.AioContext(max_active=args.iodepth,
                                       max_queued=max(256, args.iodepth)) as ctx:
            def make(window: Window) -> Worker:
                async def worker(i: int) -> None:
                    mine = plan.work(i)
                    cb = aioposix.Aiocb(fd, b"")
                    write = ctx.aio_write
                    count = k = 0
                    while True:
                        for off, data in mine:
                            cb.buf, cb.nbytes, cb.offset = data, BLOCK, off
                            write(cb)
                            if await cb != BLOCK:
                                raise AssertionError("short write")
                            count += 1
                            window.ops += 1
                            k += 1
                            if k == CHECK_EVERY:
                                k = 0
                                if not window.tick():
                                    plan.done[i] = count
                                    return
                return worker

            window, stall = await run_workers(make, args)
    finally:
        aioposix.sysctl["vfs.aio.backend"] = "auto"
    inline = "inline RWF_NOWAIT on" if aioposix.sysctl["vfs.aio.inline"] else "no inline"
    return window, stall, f"backend {backend} -> {active}, {inline}"


async def bench_caio(fd: int, plan: Plan, args: argparse.Namespace) -> tuple[Window, float, str]:
    from caio.linux_uring_asyncio import AsyncioContext

    ctx = AsyncioContext(max_requests=max(64, args.iodepth), loop=asyncio.get_running_loop())
    try:
        sqpoll = getattr(ctx.context, "sqpoll", None)

        def make(window: Window) -> Worker:
            async def worker(i: int) -> None:
                mine = plan.work(i)
                write = ctx.write
                count = k = 0
                while True:
                    for off, data in mine:
                        if await write(data, fd, off) != BLOCK:
                            raise AssertionError("short write")
                        count += 1
                        window.ops += 1
                        k += 1
                        if k == CHECK_EVERY:
                            k = 0
                            if not window.tick():
                                plan.done[i] = count
                                return
            return worker

        window, stall = await run_workers(make, args)
    finally:
        ctx.close()
    return window, stall, f"linux_uring_asyncio, sqpoll={'on' if sqpoll else 'off'}"


async def bench_executor(fd: int, plan: Plan,
                         args: argparse.Namespace) -> tuple[Window, float, str]:
    loop = asyncio.get_running_loop()

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            mine = plan.work(i)
            run, pwrite = loop.run_in_executor, os.pwrite
            count = k = 0
            while True:
                for off, data in mine:
                    if await run(None, pwrite, fd, data, off) != BLOCK:
                        raise AssertionError("short write")
                    count += 1
                    window.ops += 1
                    k += 1
                    if k == CHECK_EVERY:
                        k = 0
                        if not window.tick():
                            plan.done[i] = count
                            return
        return worker

    window, stall = await run_workers(make, args)
    return window, stall, executor_note()


ENGINES: dict[str, Callable[..., Any]] = {
    "aioposix": lambda fd, plan, args: bench_aioposix(fd, plan, args, "auto"),
    "aioposix-threads": lambda fd, plan, args: bench_aioposix(fd, plan, args, "threads"),
    "aioposix-io_uring": lambda fd, plan, args: bench_aioposix(fd, plan, args, "io_uring"),
    "caio": bench_caio,
    "run_in_executor": bench_executor,
}


def fresh_file(directory: str, size: int) -> str:
    """A file of ``size`` zero bytes, really written (not sparse)."""
    fd, path = tempfile.mkstemp(prefix="randwrite-", suffix=".bin", dir=directory)
    zeros = bytes(4 * MiB)
    try:
        for off in range(0, size, len(zeros)):
            os.pwrite(fd, zeros[:min(len(zeros), size - off)], off)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where the test files go")
    p.add_argument("--size", type=parse_size, default=256 * MiB, help="file size (256M)")
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per engine")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per engine")
    p.add_argument("--iodepth", type=int, default=64)
    p.add_argument("--ops", type=int, default=1 << 16, help="length of the random sequence")
    p.add_argument("--loops", default="asyncio,uvloop")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()

    print(f"{machine_line()}; "
          f"{args.size // MiB} MiB files in {args.dir}, QD {args.iodepth}, 4 KiB buffered "
          f"random writes, {args.seconds:g} s per engine")
    results: list[Result] = []
    for loop in args.loops.split(","):
        for name in args.engines.split(","):
            plan = Plan(args)
            path = fresh_file(args.dir, args.size)
            fd = os.open(path, os.O_RDWR)
            try:
                window, stall, note = run_on(loop, ENGINES[name](fd, plan, args))
                checked = verify(fd, plan, args.size)
            finally:
                os.close(fd)
                os.unlink(path)
            results.append(Result(name, loop, window.ops_per_s, stall, window.cpu_us_per_op,
                                  checked, note))
            print(f"  {loop:<8} {name:<18} {window.ops_per_s:>10,.0f} writes/s, "
                  f"stall {stall:.2f} ms, {checked} blocks verified", file=sys.stderr)

    print(f"\n{'engine':<18} {'loop':<8} {'writes/s':>10} {'vs caio':>8} {'stall ms':>9} "
          f"{'CPU us/op':>9} {'verified':>8}  note")
    for r in results:
        caio = next((c.writes_per_s for c in results
                     if c.engine == "caio" and c.loop == r.loop), None)
        ratio = fmt_ratio(r.writes_per_s, caio)
        print(f"{r.engine:<18} {r.loop:<8} {r.writes_per_s:>10,.0f} {ratio:>8} "
              f"{r.worst_stall_ms:>9.2f} {r.cpu_us_per_op:>9.1f} {r.verified:>8}  {r.note}")
    for r in results:
        if r.engine != "aioposix":
            continue
        caio = next((c.writes_per_s for c in results
                     if c.engine == "caio" and c.loop == r.loop), None)
        if not caio:
            continue
        ratio = r.writes_per_s / caio
        ok_ratio = "meets" if ratio >= TARGET_RATIO else "MISSES"
        ok_stall = "meets" if r.worst_stall_ms <= TARGET_STALL_MS else "MISSES"
        print(f"[{r.loop}] aioposix/caio = {ratio:.2f}x ({ok_ratio} {TARGET_RATIO}x); worst "
              f"stall {r.worst_stall_ms:.2f} ms ({ok_stall} {TARGET_STALL_MS:g} ms)")
    if args.json:
        write_json(args.json, [asdict(r) for r in results])
    return 0


if __name__ == "__main__":
    sys.exit(main())
