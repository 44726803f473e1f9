"""Soak: a million mixed jobs with random cancels and context churn; does anything grow?

The mix, per job: 35% file reads of known data (checked), 30% file writes
(each 1 KiB slot has its own pattern, checked at the end), 17% reads and
17% writes on ``--pairs`` socketpairs (every byte accounted for), 1%
fsync/fdatasync; 5% of the time an lio_listio batch of 8 file jobs instead.
8% of jobs are cancelled right after submit with aio_cancel(fd, cb), 1%
of the time every job on one socket with aio_cancel(fd), 2% are awaited by
a task that is cancelled at once.  Every ``--round`` jobs the context is
closed and a new one made; one round in five is closed with its jobs still
in flight (the rundown cancels or waits for them).

Printed: RSS, descriptors and threads before (after a warm-up round) and
after, RSS growth (target < 20 MiB), the RSS every 10% of the run, the
wall time and jobs per second.

Run: ``python benchmarks/soak.py [--jobs 1000000] [--loops asyncio uvloop]
[--backend threads|io_uring] [--no-inline]``.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import os
import random
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from _common import (
    Engine,
    Workload,
    common_args,
    loops_available,
    machine,
    machine_line,
    report,
    rss,
    run_on,
    run_rounds,
)

import aioposix
from aioposix import (
    AIO_ALLDONE,
    AIO_CANCELED,
    AIO_NOTCANCELED,
    LIO_NOWAIT,
    LIO_READ,
    LIO_WRITE,
    Aiocb,
    AioContext,
)

SLOT, SLOTS = 1024, 512


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> tuple[int, int]:
    """(threads other than the worker daemons, worker daemons)."""
    names = [t.name for t in threading.enumerate()]
    aiod = sum(1 for name in names if name.startswith("aiod-"))
    return len(names) - aiod, aiod


def slot_data(slot: int) -> bytes:
    return bytes([slot % 251]) * (SLOT - 2) + slot.to_bytes(2, "little")


@dataclass
class Soak:
    rng: random.Random
    src: int
    dst: int
    socks: list[tuple[socket.socket, socket.socket]]
    source: bytes
    sent: list[int] = field(default_factory=list)
    got: list[int] = field(default_factory=list)
    written: set[int] = field(default_factory=set)
    outcomes: dict[str, int] = field(default_factory=dict)


Pending = list[tuple[Aiocb, str, int]]


def make_job(s: Soak) -> tuple[Aiocb, str, int, str]:
    rng = s.rng
    roll = rng.random()
    if roll < 0.35:
        off = rng.randrange(len(s.source) - 64)
        buf = bytearray(rng.choice((64, 512, 4096)))
        return Aiocb(s.src, buf, None, off), "fread", off, "read"
    if roll < 0.65:
        slot = rng.randrange(SLOTS)
        return Aiocb(s.dst, slot_data(slot), None, slot * SLOT), "fwrite", slot, "write"
    pair = rng.randrange(len(s.socks))
    if roll < 0.82:
        buf = bytearray(rng.choice((1, 100, 2000)))
        return Aiocb(s.socks[pair][1].fileno(), buf), "sread", pair, "read"
    if roll < 0.99:
        data = bytes([pair + 1]) * rng.choice((1, 100, 3000))
        return Aiocb(s.socks[pair][0].fileno(), data), "swrite", pair, "write"
    return Aiocb(s.dst), "fsync", 0, "fsync"


def check(s: Soak, cb: Aiocb, what: str, n: int) -> None:
    key = what if cb.error == 0 else f"{what}:{errno.errorcode.get(cb.error, cb.error)}"
    s.outcomes[key] = s.outcomes.get(key, 0) + 1
    if cb.error == errno.ECANCELED:
        return
    if cb.error:
        raise AssertionError(f"{what} failed: {os.strerror(cb.error)}")
    if what == "fread" and bytes(cb.buf[:cb.status]) != s.source[n:n + cb.status]:
        raise AssertionError("a file read returned the wrong bytes")
    if what == "fwrite":
        s.written.add(n)
    elif what == "sread":
        if bytes(cb.buf[:cb.status]) != bytes([n + 1]) * cb.status:
            raise AssertionError("a socket read returned another socket's bytes")
        s.got[n] += cb.status
    elif what == "swrite":
        s.sent[n] += cb.status


def drain(s: Soak, pair: int) -> None:
    try:
        while chunk := s.socks[pair][1].recv(1 << 16, socket.MSG_DONTWAIT):
            s.got[pair] += len(chunk)
    except BlockingIOError:
        pass


def settled(s: Soak, pending: Pending) -> bool:
    """Feed parked socket reads, make room for parked socket writes."""
    waiting = [(what, n) for cb, what, n in pending if cb.error == errno.EINPROGRESS]
    for pair, (writer, _) in enumerate(s.socks):
        reads, writes = waiting.count(("sread", pair)), waiting.count(("swrite", pair))
        if reads and not writes:
            try:
                s.sent[pair] += writer.send(bytes([pair + 1]) * reads, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
        elif writes and not reads:
            drain(s, pair)
    return not waiting


async def _await(cb: Aiocb) -> int:
    return await cb


async def one_round(s: Soak, ctx: AioContext, jobs: int, pending: Pending) -> None:
    rng = s.rng
    tasks: list[asyncio.Task[int]] = []
    loop = asyncio.get_running_loop()
    while jobs > 0:
        if rng.random() < 0.05:
            writes = [Aiocb(s.dst, slot_data(k), None, k * SLOT, lio_opcode=LIO_WRITE)
                      for k in rng.sample(range(SLOTS), 4)]
            reads = [Aiocb(s.src, bytearray(256), None, off, lio_opcode=LIO_READ)
                     for off in rng.sample(range(len(s.source) - 256), 4)]
            await ctx.lio_listio(LIO_NOWAIT, [*writes, None, *reads])
            pending += [(cb, "fwrite", cb.offset // SLOT) for cb in writes]
            pending += [(cb, "fread", cb.offset) for cb in reads]
            jobs -= 8
            continue
        cb, what, n, how = make_job(s)
        if how == "read":
            ctx.aio_read(cb)
        elif how == "write":
            ctx.aio_write(cb)
        else:
            ctx.aio_fsync(rng.choice((os.O_SYNC, os.O_DSYNC)), cb)
        pending.append((cb, what, n))
        jobs -= 1
        roll = rng.random()
        if roll < 0.08:
            assert ctx.aio_cancel(cb.fildes, cb) in (AIO_CANCELED, AIO_NOTCANCELED, AIO_ALLDONE)
        elif roll < 0.09:
            fd = s.socks[rng.randrange(len(s.socks))][1].fileno()
            assert ctx.aio_cancel(fd) in (AIO_CANCELED, AIO_NOTCANCELED, AIO_ALLDONE)
        elif roll < 0.11:
            task = asyncio.ensure_future(_await(cb))
            tasks.append(task)
            loop.call_soon(task.cancel)
    for task in tasks:
        try:
            await task
        except (asyncio.CancelledError, OSError):
            pass
    if rng.random() < 0.2:
        return  # the rundown deals with them
    deadline = loop.time() + 30
    while not settled(s, pending):
        if loop.time() > deadline:
            raise AssertionError("jobs did not finish within 30 s")
        await asyncio.sleep(0.0005)
    for cb, _, _ in pending:
        try:
            ctx.aio_return(cb)
        except OSError as exc:  # reaped by its cancelled awaiting task
            assert exc.errno == errno.EINVAL


async def run_jobs(s: Soak, total: int, per_round: int, report: int = 0) -> None:
    done, next_report = 0, report
    start = time.perf_counter()
    while done < total:
        pending: Pending = []
        async with AioContext(max_queued=2 * per_round) as ctx:
            await one_round(s, ctx, min(per_round, total - done), pending)
        for cb, what, n in pending:
            check(s, cb, what, n)
        done += per_round
        if report and done >= next_report:
            gc.collect()
            print(f"  {done:>10,} jobs  RSS {rss() / 2**20:7.1f} MiB  fds {fds()}  "
                  f"{time.perf_counter() - start:6.1f} s", flush=True)
            next_report += report


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    source = rng.randbytes(1 << 20)
    with tempfile.TemporaryDirectory() as tmp:
        src_path = os.path.join(tmp, "src.bin")
        with open(src_path, "wb") as f:
            f.write(source)
        src = os.open(src_path, os.O_RDONLY)
        dst = os.open(os.path.join(tmp, "dst.bin"), os.O_RDWR | os.O_CREAT)
        socks = [socket.socketpair() for _ in range(args.pairs)]
        s = Soak(rng, src, dst, socks, source, [0] * args.pairs, [0] * args.pairs)
        try:
            await run_jobs(s, 2 * args.round, args.round)
            gc.collect()
            before = (rss(), fds(), threads())
            started = time.perf_counter()
            await run_jobs(s, args.jobs, args.round, max(args.jobs // 10, args.round))
            elapsed = time.perf_counter() - started
            for pair in range(args.pairs):
                drain(s, pair)
            gc.collect()
            after = (rss(), fds(), threads())
            data = os.pread(dst, SLOTS * SLOT, 0)
            bad = [k for k in s.written if data[k * SLOT:(k + 1) * SLOT] != slot_data(k)]
        finally:
            os.close(src)
            os.close(dst)
            for a, b in socks:
                a.close()
                b.close()
    grown = after[0] - before[0]
    loop = "uvloop" if "uvloop" in type(asyncio.get_running_loop()).__module__ else "asyncio"
    print(f"jobs: {args.jobs:,} in {elapsed:.1f} s ({args.jobs / elapsed:,.0f} jobs/s); "
          f"loop {loop}, backend {aioposix.sysctl['vfs.aio.backend_active']}, "
          f"inline {aioposix.sysctl['vfs.aio.inline']}")
    print("outcomes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(s.outcomes.items())))
    print(f"RSS     before {before[0] / 2**20:.1f} MiB, after {after[0] / 2**20:.1f} MiB, "
          f"growth {grown / 2**20:+.2f} MiB (target < 20 MiB)")
    print(f"fds     before {before[1]}, after {after[1]}")
    print(f"threads before {before[2][0]}, after {after[2][0]} "
          f"(plus aiod workers: {before[2][1]} before, {after[2][1]} after)")
    print(f"socket bytes sent {sum(s.sent):,}, read {sum(s.got):,}; "
          f"file slots checked {len(s.written)}, wrong {len(bad)}")
    ok = (grown < 20 << 20 and before[1] == after[1] and before[2][0] == after[2][0]
          and s.sent == s.got and not bad)
    print("PASS" if ok else "FAIL")
    if s.sent != s.got or bad:
        raise AssertionError("soak: bytes lost or wrong")
    return {"value": args.jobs / elapsed, "seconds": elapsed, "ops": args.jobs,
            "rss_growth_mib": grown / 2**20, "fds": [before[1], after[1]],
            "threads": [before[2][0], after[2][0]], "outcomes": s.outcomes, "pass": ok,
            "hb_p99_ms": None, "hb_worst_ms": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--round", type=int, default=400, help="jobs per context")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", choices=("auto", "threads", "io_uring"), default="auto")
    parser.add_argument("--no-inline", action="store_true")
    common_args(parser, rounds=1)
    args = parser.parse_args()
    info = machine()
    print(machine_line(info))
    aioposix.sysctl["vfs.aio.backend"] = args.backend
    aioposix.sysctl["vfs.aio.inline"] = 0 if args.no_inline else 1
    aioposix.sysctl["vfs.aio.max_aio_queue"] = 8 * args.round
    work = f"{args.jobs:,} mixed jobs (soak)"
    table = [Engine(work, "aioposix (explicit contexts)", loop,
                    lambda loop=loop: dict(run_on(loop, main_async(args))),
                    f"backend {args.backend}, inline {0 if args.no_inline else 1}", role="tuned")
             for loop in loops_available(args.loops)]
    orders = run_rounds(table, args.rounds)
    growth = [Engine("RSS growth over the soak", e.name, e.loop, None, e.note, e.status,
                     e.role, [{"value": s["rss_growth_mib"], "hb_p99_ms": None,
                               "hb_worst_ms": None} for s in e.samples]) for e in table]
    workloads = [Workload(work, "jobs/s", True, None, None, "file and socket reads and writes "
                          "checked, fsync, lio_listio, cancels, context churn"),
                 Workload("RSS growth over the soak", "MiB", False, None, None,
                          "RSS after the soak minus RSS after a warm-up round",
                          {"aioposix (explicit contexts)": [("median", "<=", 20.0)]})]
    doc = report("soak", "Soak", info, args, workloads, [*table, *growth], orders)
    ok = all(s["pass"] for e in table for s in e.samples)
    sys.exit(0 if ok and doc else 1)


if __name__ == "__main__":
    main()
