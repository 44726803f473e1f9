"""What a Kqueue costs per job: completions harvested in batches vs ``await cb``.

Workload: ``--jobs`` (20,000) cached 4 KiB reads at random block offsets of a
file that is written and read once beforehand, so every read is a page-cache
hit.  ``--depth`` (64) jobs are kept in flight, the same on both paths:

* ``await``: one coroutine keeps a FIFO window of in-flight control blocks;
  it awaits the oldest (``await cb`` waits, reaps and returns the count) and
  resubmits that cb at the next offset;
* ``kqueue``: every cb carries ``SigEvent(SIGEV_KEVENT, kqueue=kq,
  kevent_flags=...)``; one coroutine harvests with
  ``await kq.control(None, --batch)``, calls ``aio_return`` on each event's
  ident and resubmits that cb.

Both run on the default asyncio loop and on uvloop, ``--repeat`` times each;
the best run is reported as µs per job (wall clock), with the ratio
kqueue / await (target: <= 1.3).  A diagnostic third column runs the await
path with a ``SigEvent(SIGEV_NONE)`` on every cb: it notifies nothing, so
it shows what merely having a sigevent costs at submit.  ``--profile`` prints a cProfile of one
kqueue run per loop, for diagnosis.

The kqueue path uses EV_ONESHOT by default: a harvester that reaps every
event has no use for FreeBSD's level-triggered AIO knote, which stays
reported until the job is reaped.  ``--kevent-flags none`` runs with level
knotes instead.

Run: ``python benchmarks/notify.py [--jobs 20000] [--depth 64] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from _common import run_on

import aioposix
from aioposix import (
    EV_CLEAR,
    EV_ONESHOT,
    SIGEV_KEVENT,
    SIGEV_NONE,
    Aiocb,
    AioContext,
    Kqueue,
    SigEvent,
)

BLOCK = 4096
FILE_BLOCKS = 4096  # a 16 MiB file
TARGET_RATIO = 1.3
KEVENT_FLAGS = {"oneshot": EV_ONESHOT, "clear": EV_CLEAR, "none": 0}

Path = Callable[[AioContext, int, list[int], argparse.Namespace], Coroutine[Any, Any, int]]


def make_file(directory: str) -> tuple[int, bytes]:
    """A file of FILE_BLOCKS random blocks, written and read back (cached)."""
    data = random.Random(1).randbytes(FILE_BLOCKS * BLOCK)
    path = os.path.join(directory, "notify.bin")
    with open(path, "wb") as f:
        f.write(data)
    fd = os.open(path, os.O_RDONLY)
    done = 0
    while done < len(data):
        done += len(os.pread(fd, 1 << 20, done))
    return fd, data


async def await_path(ctx: AioContext, fd: int, offsets: list[int],
                     args: argparse.Namespace, sigevent: SigEvent | None = None) -> int:
    """Keep ``depth`` in flight; await the oldest, resubmit it."""
    read = ctx.aio_read
    window: deque[Aiocb] = deque()
    it = iter(offsets)
    for off in it:
        cb = Aiocb(fd, bytearray(BLOCK), BLOCK, off, sigevent=sigevent)
        read(cb)
        window.append(cb)
        if len(window) == args.depth:
            break
    done = 0
    while window:
        cb = window.popleft()
        done += await cb
        off = next(it, -1)
        if off >= 0:
            cb.offset = off
            read(cb)
            window.append(cb)
    return done


async def await_sev_path(ctx: AioContext, fd: int, offsets: list[int],
                         args: argparse.Namespace) -> int:
    """Diagnostic: the await path with a SIGEV_NONE sigevent set on each cb,
    which notifies nothing but takes the submit path a sigevent takes."""
    return await await_path(ctx, fd, offsets, args, SigEvent(SIGEV_NONE))


async def kqueue_path(ctx: AioContext, fd: int, offsets: list[int],
                      args: argparse.Namespace) -> int:
    """Keep ``depth`` in flight; harvest completions from a Kqueue in batches."""
    kq = Kqueue()
    flags = KEVENT_FLAGS[args.kevent_flags]
    read, reap, control = ctx.aio_read, ctx.aio_return, kq.control
    it = iter(offsets)
    in_flight = 0
    for off in it:
        cb = Aiocb(fd, bytearray(BLOCK), BLOCK, off)
        cb.sigevent = SigEvent(SIGEV_KEVENT, kqueue=kq, kevent_flags=flags)
        read(cb)
        in_flight += 1
        if in_flight == args.depth:
            break
    done = 0
    try:
        while in_flight:
            for ev in await control(None, args.batch):
                cb = ev.ident
                done += reap(cb)
                in_flight -= 1
                off = next(it, -1)
                if off >= 0:
                    cb.offset = off
                    read(cb)
                    in_flight += 1
    finally:
        kq.close()
    return done


async def check(ctx: AioContext, fd: int, data: bytes, path: Path,
                args: argparse.Namespace) -> None:
    """Once per path: the right byte count, and the right bytes in a sample."""
    offsets = [BLOCK * i for i in range(0, FILE_BLOCKS, FILE_BLOCKS // 64)]
    total = await path(ctx, fd, offsets, args)
    if total != BLOCK * len(offsets):
        raise AssertionError(f"{path.__name__}: read {total} bytes, expected "
                             f"{BLOCK * len(offsets)}")
    cb = Aiocb(fd, bytearray(BLOCK), BLOCK, 7 * BLOCK)
    ctx.aio_read(cb)
    if await cb != BLOCK or bytes(cb.buf) != data[7 * BLOCK:8 * BLOCK]:
        raise AssertionError("aio_read returned the wrong bytes")


async def measure(fd: int, data: bytes, args: argparse.Namespace,
                  profile: bool) -> dict[str, float]:
    """Best µs per job of each path on the running loop."""
    rng = random.Random(2)
    offsets = [BLOCK * rng.randrange(FILE_BLOCKS) for _ in range(args.jobs)]
    paths: dict[str, Path] = {"await": await_path, "kqueue": kqueue_path,
                              "await_sev": await_sev_path}
    best: dict[str, float] = {}
    async with AioContext(max_queued=max(args.depth, 1)) as ctx:
        for path in paths.values():
            await check(ctx, fd, data, path, args)
        runs: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.repeat):
            for name, path in paths.items():  # interleaved, so drift hits both
                t0 = time.perf_counter()
                total = await path(ctx, fd, offsets, args)
                elapsed = time.perf_counter() - t0
                if total != BLOCK * args.jobs:
                    raise AssertionError(f"{name}: read {total} bytes")
                runs[name].append(elapsed / args.jobs * 1e6)
        for name, values in runs.items():
            best[name] = min(values)
            best[name + "_median"] = statistics.median(values)
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await kqueue_path(ctx, fd, offsets, args)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)
            print(out.getvalue())
    return best


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--depth", type=int, default=64, help="jobs kept in flight")
    p.add_argument("--batch", type=int, default=256, help="max_events per kq.control")
    p.add_argument("--repeat", type=int, default=5, help="runs per path; the best is shown")
    p.add_argument("--kevent-flags", choices=list(KEVENT_FLAGS), default="oneshot")
    p.add_argument("--loops", default="asyncio,uvloop")
    p.add_argument("--profile", action="store_true", help="cProfile one kqueue run per loop")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"aioposix {aioposix.__version__}, Python {sys.version.split()[0]}, "
          f"vfs.aio.inline={aioposix.sysctl['vfs.aio.inline']}, "
          f"backend={aioposix.sysctl['vfs.aio.backend']}")
    print(f"{args.jobs} cached {BLOCK // 1024} KiB reads, {args.depth} in flight, "
          f"kq.control(None, {args.batch}), kevent_flags={args.kevent_flags}, "
          f"best of {args.repeat}")
    ok = True
    with tempfile.TemporaryDirectory() as directory:
        fd, data = make_file(directory)
        try:
            print(f"{'loop':8} {'await µs/job':>13} {'kqueue µs/job':>14} {'ratio':>6}  "
                  f"{'await+SIGEV_NONE':>16}  (medians: await / kqueue)")
            for loop_name in args.loops.split(","):
                best = run_on(loop_name, measure(fd, data, args, args.profile))
                ratio = best["kqueue"] / best["await"]
                ok = ok and ratio <= TARGET_RATIO
                print(f"{loop_name:8} {best['await']:13.2f} {best['kqueue']:14.2f} "
                      f"{ratio:6.2f}  {best['await_sev']:16.2f}  ({best['await_median']:.2f} / "
                      f"{best['kqueue_median']:.2f})")
        finally:
            os.close(fd)
    print(f"target: kqueue <= {TARGET_RATIO}x await: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
