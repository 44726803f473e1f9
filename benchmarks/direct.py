"""O_DIRECT 4 KiB random reads at queue depth 64: aioposix's kernel path against fio.

Engines, side by side in one run, on the same file:

* ``fio``: Debian's fio, ``--ioengine=io_uring --direct=1 --rw=randread
  --bs=4k --iodepth=64 --numjobs=1`` (installed with apt-get if missing):
  the ceiling for one submitting thread on this disk;
* ``aioposix``: QD tasks on one AioContext (max_buf = QD), each reusing one
  Aiocb with a page-aligned buffer; aligned O_DIRECT reads take the
  kernel-submitted path (io_uring, no worker thread);
* ``run_in_executor``: QD tasks doing ``loop.run_in_executor(None,
  os.preadv, fd, [aligned buffer], offset)`` on the same O_DIRECT fd.

The async engines run on the asyncio default loop and on uvloop; a heartbeat
task sleeping 1 ms records the loop's worst stall.  The file is written in
full first (not sparse), so every read reaches the disk; O_DIRECT bypasses
the page cache, so dropping caches is not needed.

Run: ``python benchmarks/direct.py /path/to/file [--size 1G] [--seconds 5]``.
Target: aioposix >= 0.9x fio's IOPS.
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
TARGET_RATIO = 0.9  # aioposix / fio IOPS


# -- the file ----------------------------------------------------------------------


def block_pattern(index: int) -> bytes:
    """What block ``index`` of the test file holds: its number, then filler."""
    head = index.to_bytes(8, "little") * 8
    return (head + bytes((index + i) & 0xFF for i in range(256)) * 16)[:BLOCK]


def prepare_file(path: str, size: int) -> None:
    """Write the whole file (not sparse), unless it already holds our pattern."""
    if os.path.exists(path) and os.path.getsize(path) == size:
        with open(path, "rb") as f:
            last = size // BLOCK - 1
            f.seek(last * BLOCK)
            if f.read(BLOCK) == block_pattern(last):
                return
    print(f"writing {size // MiB} MiB to {path} ...", file=sys.stderr)
    chunk = 256  # blocks per write
    with open(path, "wb") as f:
        for start in range(0, size // BLOCK, chunk):
            f.write(b"".join(block_pattern(i) for i in range(start, min(start + chunk,
                                                                          size // BLOCK))))
        f.flush()
        os.fsync(f.fileno())


# -- measurement ------------------------------------------------------------------


@dataclass
class Result:
    engine: str
    loop: str
    iops: float
    worst_stall_ms: float | None
    cpu_us_per_op: float | None
    note: str = ""


def offsets(args: argparse.Namespace, seed: int) -> list[int]:
    rng = random.Random(seed)
    blocks = args.size // BLOCK
    return [rng.randrange(blocks) * BLOCK for _ in range(1 << 16)]


def check(buf: Any, offset: int, engine: str) -> None:
    if bytes(buf[:BLOCK]) != block_pattern(offset // BLOCK):
        raise AssertionError(f"{engine} read wrong data at offset {offset}")


async def bench_aioposix(fd: int, args: argparse.Namespace) -> tuple[Window, float]:
    qd = args.iodepth
    offs = offsets(args, 1)
    async with aioposix.AioContext(max_buf=qd, max_queued=max(256, qd),
                                   max_active=qd) as ctx:
        cb = aioposix.Aiocb(fd, mmap.mmap(-1, BLOCK))
        for off in offs[:16]:
            cb.offset = off
            ctx.aio_read(cb)
            if cb.state is not aioposix.JobState.KERNEL:
                raise AssertionError(f"aioposix: O_DIRECT read is {cb.state}, not KERNEL")
            assert await cb == BLOCK
            check(cb.buf, off, "aioposix")

        def make(window: Window) -> Worker:
            async def worker(i: int) -> None:
                mine = offs[i::qd]
                cb = aioposix.Aiocb(fd, mmap.mmap(-1, BLOCK))
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
                                check(cb.buf, off, "aioposix")
                                return
            return worker

        return await run_workers(make, args)


async def bench_executor(fd: int, args: argparse.Namespace) -> tuple[Window, float]:
    qd = args.iodepth
    offs = offsets(args, 2)
    loop = asyncio.get_running_loop()

    def make(window: Window) -> Worker:
        async def worker(i: int) -> None:
            mine = offs[i::qd]
            buf = mmap.mmap(-1, BLOCK)
            run, preadv = loop.run_in_executor, os.preadv
            k = 0
            while True:
                for off in mine:
                    await run(None, preadv, fd, [buf], off)
                    window.ops += 1
                    k += 1
                    if k == CHECK_EVERY:
                        k = 0
                        if not window.tick():
                            check(buf, off, "run_in_executor")
                            return
        return worker

    return await run_workers(make, args)


ASYNC_BENCHES = {"aioposix": bench_aioposix, "run_in_executor": bench_executor}


# -- fio ------------------------------------------------------------------------------


def ensure_fio() -> str | None:
    fio = shutil.which("fio")
    if fio is not None:
        return fio
    print("fio is missing: apt-get install -y fio ...", file=sys.stderr)
    install = ["apt-get", "install", "-y", "-q", "fio"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(install, env=env, capture_output=True)
    return shutil.which("fio")


def bench_fio(fio: str, path: str, args: argparse.Namespace) -> Result:
    cmd = [fio, "--name=randread", f"--filename={path}", "--ioengine=io_uring", "--direct=1",
           "--rw=randread", "--bs=4k", f"--iodepth={args.iodepth}", "--numjobs=1",
           f"--size={args.size}", "--time_based", f"--runtime={args.seconds}",
           f"--ramp_time={args.warmup}", "--norandommap", "--randrepeat=0",
           "--output-format=json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    job = json.loads(out.stdout[out.stdout.index("{"):])["jobs"][0]
    cpu = job.get("usr_cpu", 0.0) + job.get("sys_cpu", 0.0)  # percent of one CPU
    iops = float(job["read"]["iops"])
    version = subprocess.run([fio, "--version"], capture_output=True, text=True).stdout.strip()
    return Result("fio", "-", iops, None, cpu / 100 / iops * 1e6 if iops else None,
                  f"{version}, io_uring, one job")


# -- main -------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("path", help="the test file (made or rewritten to --size, not sparse)")
    p.add_argument("--size", type=parse_size, default=1 << 30, help="file size (1G)")
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per engine")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per engine")
    p.add_argument("--iodepth", type=int, default=64)
    p.add_argument("--loops", default="asyncio,uvloop")
    p.add_argument("--engines", default="fio,aioposix,run_in_executor")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    args.seconds = max(1, round(args.seconds))
    args.warmup = max(0, round(args.warmup))
    engines = args.engines.split(",")

    prepare_file(args.path, args.size)
    try:
        fd = os.open(args.path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        print(f"the file system refuses O_DIRECT: {exc}", file=sys.stderr)
        return 2
    print(f"{machine_line()}; "
          f"file {args.path} ({args.size // MiB} MiB), QD {args.iodepth}, 4 KiB, "
          f"{args.seconds:g} s per engine")
    results: list[Result] = []
    try:
        if "fio" in engines:
            fio = ensure_fio()
            if fio is None:
                print("fio could not be installed: no fio figure", file=sys.stderr)
            else:
                results.append(bench_fio(fio, args.path, args))
        for loop in args.loops.split(","):
            for name, bench in ASYNC_BENCHES.items():
                if name not in engines:
                    continue
                window, stall = run_on(loop, bench(fd, args))
                note = ("AioContext, O_DIRECT kernel path" if name == "aioposix" else
                        executor_note())
                results.append(Result(name, loop, window.ops_per_s, stall,
                                      window.cpu_us_per_op, note))
    finally:
        os.close(fd)

    fio_iops = next((r.iops for r in results if r.engine == "fio"), None)
    print(f"\n{'engine':<16} {'loop':<8} {'IOPS':>10} {'vs fio':>7} {'stall ms':>9} "
          f"{'CPU us/op':>9}  note")
    for r in results:
        ratio = fmt_ratio(r.iops, fio_iops)
        stall = "-" if r.worst_stall_ms is None else f"{r.worst_stall_ms:.2f}"
        cpu = "-" if r.cpu_us_per_op is None else f"{r.cpu_us_per_op:.1f}"
        print(f"{r.engine:<16} {r.loop:<8} {r.iops:>10,.0f} {ratio:>7} {stall:>9} {cpu:>9}  "
              f"{r.note}")
    verdicts = []
    if fio_iops:
        for r in results:
            if r.engine == "aioposix":
                ratio = r.iops / fio_iops
                ok = "meets" if ratio >= TARGET_RATIO else "MISSES"
                verdicts.append(f"[{r.loop}] aioposix/fio = {ratio:.2f}x: {ok} the "
                                f"{TARGET_RATIO}x target")
    for line in verdicts:
        print(line)
    if args.json:
        write_json(args.json, [asdict(r) for r in results])
    return 0


if __name__ == "__main__":
    sys.exit(main())
