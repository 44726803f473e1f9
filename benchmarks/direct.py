"""O_DIRECT 4 KiB random reads at queue depth 64: aioposix's kernel path against fio.

Engines, ``--rounds`` rounds each, the order of the engines reversed every
other round, the async ones on the asyncio default loop and on uvloop:

* ``fio``: ``--ioengine=io_uring --direct=1 --rw=randread --bs=4k
  --iodepth=64 --numjobs=1``, one submitting thread (skipped with a note
  when fio is not installed), checking every block it reads
  (``--verify=pattern --verify_pattern=%o``);
* ``aioposix natural``: per read a new ``Aiocb(fd, buf, 4096, off)`` on the
  task's page-aligned buffer, ``aioposix.aio_read(cb)`` (the loop's default
  context, made with ``vfs.aio.max_buf_aio`` = qd), ``await cb``;
* ``aioposix tuned``: one reused Aiocb per task on an explicit
  ``AioContext(max_buf=qd)``;
* ``caio``: caio's linux_uring context (it allocates its own buffers, so
  O_DIRECT may refuse them: the row then says so);
* ``run_in_executor``: ``loop.run_in_executor(None, os.preadv, fd, [buf], off)``;
* ``os.preadv loop``: a synchronous loop, one read at a time (qd 1).

The file (``--size``, written in full, not sparse) holds fio's ``%o``
pattern: every 8 bytes of a block are the block's offset, little-endian.
Every block read by every engine is compared in full with it.  O_DIRECT
bypasses the page cache, so every read reaches the device.  A heartbeat task
sleeping 1 ms records its lateness (p99 and worst) while each engine runs.

Run: ``python benchmarks/direct.py [--file PATH] [--size 1G] [--seconds 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mmap
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine
from typing import Any

from _common import (
    CHECK_EVERY,
    Engine,
    MiB,
    Unsupported,
    Window,
    Worker,
    Workload,
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
NATURAL, TUNED, LIMIT = "aioposix natural", "aioposix tuned", "os.preadv loop"


def block_data(index: int) -> bytes:
    """Block ``index``: its offset as 8 little-endian bytes, 512 times (fio's ``%o``)."""
    return (index * BLOCK).to_bytes(8, "little") * (BLOCK // 8)


def prepare_file(path: str, size: int) -> None:
    """Write the whole file (not sparse), unless it already holds the pattern."""
    blocks = size // BLOCK
    if os.path.exists(path) and os.path.getsize(path) >= size:
        with open(path, "rb") as f:
            f.seek((blocks - 1) * BLOCK)
            if f.read(BLOCK) == block_data(blocks - 1):
                return
    print(f"writing {size // MiB} MiB to {path} ...", file=sys.stderr)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for start in range(0, blocks, 256):
            chunk = b"".join(block_data(i) for i in range(start, min(start + 256, blocks)))
            os.pwrite(fd, chunk, start * BLOCK)
        os.fsync(fd)
    finally:
        os.close(fd)


class Plan:
    def __init__(self, fd: int, args: argparse.Namespace) -> None:
        self.fd, self.args = fd, args
        rng = random.Random(args.seed)
        blocks = args.size // BLOCK
        # Block 0 is all zeros, as an untouched buffer is: leave it out.
        self.offsets = [rng.randrange(1, blocks) * BLOCK for _ in range(1 << 16)]

    def share(self, worker: int) -> list[int]:
        return self.offsets[worker::self.args.iodepth]


def intact(buf: Any, off: int) -> bool:
    return bool(buf[:BLOCK] == off.to_bytes(8, "little") * (BLOCK // 8))


async def measure(plan: Plan, make: Callable[[Window], Worker], name: str) -> dict[str, Any]:
    args = plan.args
    window, beats = await run_window(make, args.iodepth, args.warmup, args.seconds, 60, name)
    return sample(window, beats)


def probe(submit: Callable[[aioposix.Aiocb], None], fd: int) -> aioposix.Aiocb:
    """One read submitted: it must take the kernel-submitted path."""
    cb = aioposix.Aiocb(fd, mmap.mmap(-1, BLOCK), BLOCK, BLOCK)
    submit(cb)
    if cb.state is not aioposix.JobState.KERNEL:
        raise AssertionError(f"an O_DIRECT read is {cb.state}, not KERNEL")
    return cb


async def bench_natural(plan: Plan) -> dict[str, Any]:
    fd = plan.fd
    cb = probe(aioposix.aio_read, fd)
    if await cb != BLOCK or not intact(cb.buf, BLOCK):
        raise wrong(NATURAL, BLOCK)

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            mine = plan.share(i)
            buf = mmap.mmap(-1, BLOCK)
            Aiocb, read = aioposix.Aiocb, aioposix.aio_read
            k = 0
            while True:
                for off in mine:
                    cb = Aiocb(fd, buf, BLOCK, off)
                    read(cb)
                    if await cb != BLOCK or not intact(buf, off):
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
    fd, qd = plan.fd, plan.args.iodepth
    async with aioposix.AioContext(max_buf=qd, max_queued=max(256, qd), max_active=qd) as ctx:
        cb = probe(ctx.aio_read, fd)
        if await cb != BLOCK or not intact(cb.buf, BLOCK):
            raise wrong(TUNED, BLOCK)

        def make(window: Window) -> Worker:
            async def worker(i: int) -> None:
                mine = plan.share(i)
                buf = mmap.mmap(-1, BLOCK)
                cb = aioposix.Aiocb(fd, buf, BLOCK, 0)
                read = ctx.aio_read
                k = 0
                while True:
                    for off in mine:
                        cb.offset = off
                        read(cb)
                        if await cb != BLOCK or not intact(buf, off):
                            raise wrong(TUNED, off)
                        window.ops += 1
                        k += 1
                        if k == CHECK_EVERY:
                            k = 0
                            if not window.tick():
                                return
            return worker

        return await measure(plan, make, TUNED)


async def bench_caio(plan: Plan) -> dict[str, Any]:
    from caio.linux_uring_asyncio import AsyncioContext

    fd, qd = plan.fd, plan.args.iodepth
    ctx = AsyncioContext(max_requests=max(64, qd), loop=asyncio.get_running_loop())
    try:
        try:
            data = await ctx.read(BLOCK, fd, BLOCK)
        except (OSError, SystemError) as exc:  # caio reports EINVAL as SystemError
            raise Unsupported(f"its O_DIRECT read fails: {type(exc).__name__}: {exc}"
                              ) from exc
        if not intact(data, BLOCK):
            raise wrong("caio", BLOCK)

        def make(window: Window) -> Worker:
            async def worker(i: int) -> None:
                mine = plan.share(i)
                read = ctx.read
                k = 0
                while True:
                    for off in mine:
                        if not intact(await read(BLOCK, fd, off), off):
                            raise wrong("caio", off)
                        window.ops += 1
                        k += 1
                        if k == CHECK_EVERY:
                            k = 0
                            if not window.tick():
                                return
            return worker

        try:
            return await measure(plan, make, "caio")
        except (OSError, SystemError) as exc:  # its buffers are not always aligned
            raise Unsupported(f"its O_DIRECT read fails: {type(exc).__name__}: {exc}"
                              ) from exc
    finally:
        ctx.close()


async def bench_executor(plan: Plan) -> dict[str, Any]:
    fd = plan.fd
    loop = asyncio.get_running_loop()

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            mine = plan.share(i)
            buf = mmap.mmap(-1, BLOCK)
            run, preadv = loop.run_in_executor, os.preadv
            k = 0
            while True:
                for off in mine:
                    if await run(None, preadv, fd, [buf], off) != BLOCK or not intact(buf, off):
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
    fd, args = plan.fd, plan.args
    window = Window(args.warmup, args.seconds)
    buf = mmap.mmap(-1, BLOCK)
    preadv = os.preadv
    k = 0
    while True:
        for off in plan.offsets:
            if preadv(fd, [buf], off) != BLOCK or not intact(buf, off):
                raise wrong(LIMIT, off)
            window.ops += 1
            k += 1
            if k == CHECK_EVERY:
                k = 0
                if not window.tick():
                    return sample(window, None)


def bench_fio(fio: str, path: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [fio, "--name=randread", f"--filename={path}", "--ioengine=io_uring", "--direct=1",
           "--rw=randread", "--bs=4k", f"--iodepth={args.iodepth}", "--numjobs=1",
           f"--size={args.size}", "--time_based", f"--runtime={round(args.seconds)}",
           f"--ramp_time={round(args.warmup)}", "--norandommap", "--randrepeat=0",
           "--verify=pattern", "--verify_pattern=%o", "--output-format=json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"fio failed (a wrong block?): {out.stderr.strip()[:400]}")
    job = json.loads(out.stdout[out.stdout.index("{"):])["jobs"][0]
    iops = float(job["read"]["iops"])
    cpu = (job.get("usr_cpu", 0.0) + job.get("sys_cpu", 0.0)) / 100  # CPUs busy
    return {"value": iops, "ops": int(job["read"]["total_ios"]),
            "seconds": job["read"]["runtime"] / 1e3,
            "cpu_us_per_op": cpu / iops * 1e6 if iops else None,
            "hb_p99_ms": None, "hb_worst_ms": None, "command": " ".join(cmd[:1] + cmd[2:])}


Bench = Callable[[Plan], Coroutine[Any, Any, dict[str, Any]]]


def engines(plan: Plan, path: str, workload: str, loops: list[str]) -> list[Engine]:
    fio = shutil.which("fio")
    out = [Engine(workload, "fio", "-", (lambda: bench_fio(fio, path, plan.args)) if fio
                  else None, "io_uring, one job, --verify=pattern",
                  "ok" if fio else "not installed", "ref"),
           Engine(workload, LIMIT, "-", lambda: bench_limit(plan),
                  "synchronous os.preadv, one read at a time", role="limit")]
    qd = plan.args.iodepth
    benches: list[tuple[str, Bench, str, str, str | None]] = [
        (NATURAL, bench_natural, "natural",
         f"new Aiocb per read, aioposix.aio_read, vfs.aio.max_buf_aio={qd}", None),
        (TUNED, bench_tuned, "tuned", f"one reused Aiocb per task, AioContext(max_buf={qd})",
         None),
        ("caio", bench_caio, "peer", "linux_uring_asyncio, caio's own buffers", "caio"),
        ("run_in_executor", bench_executor, "peer", executor_note() + ", os.preadv", None)]
    for loop in loops:
        for name, bench, role, note, package in benches:
            if package and not installed(package):
                out.append(Engine(workload, name, loop, None, note, "not installed", role))
                continue

            def run(bench: Bench = bench, loop: str = loop) -> dict[str, Any]:
                with sysctls(max_buf_aio=qd):
                    return dict(run_on(loop, bench(plan)))

            out.append(Engine(workload, name, loop, run, note, role=role))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--file", help="the test file, kept (default: a temporary file in --dir)")
    p.add_argument("--dir", default=tempfile.gettempdir())
    p.add_argument("--size", type=parse_size, default=1 << 30, help="file size (1G)")
    p.add_argument("--seconds", type=float, default=2.0, help="measured seconds per round")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per round")
    p.add_argument("--iodepth", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    common_args(p)
    args = p.parse_args(argv)
    args.seconds = max(1, round(args.seconds))  # fio takes whole seconds
    args.warmup = max(0, round(args.warmup))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = args.file or tempfile.mkstemp(prefix="direct-", suffix=".bin", dir=args.dir)[1]
    info = machine()
    info["filesystem"] = filesystem(path)
    print(machine_line(info))
    try:
        prepare_file(path, args.size)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        except OSError as exc:
            print(f"the file system refuses O_DIRECT: {exc}", file=sys.stderr)
            return 2
        workload = f"O_DIRECT 4 KiB randread, qd {args.iodepth}"
        w = Workload(workload, "IOPS", True, "fio", LIMIT,
                     f"{args.size // MiB} MiB file ({info['filesystem']}), {args.seconds:g} s "
                     f"per round after {args.warmup:g} s warm-up; every block read is compared",
                     targets={NATURAL: [("vs_ref", ">=", 0.9)], TUNED: [("vs_ref", ">=", 0.9)]})
        loops = loops_available(args.loops)
        try:
            plan = Plan(fd, args)
            idle = {loop: run_on(loop, idle_heartbeat()) for loop in loops}
            table = select(engines(plan, path, workload, loops), args.only)
            orders = run_rounds(table, args.rounds)
        finally:
            os.close(fd)
    finally:
        if not args.file:
            os.unlink(path)
    report("direct", "O_DIRECT 4 KiB random reads", info, args, [w], table, orders, idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
