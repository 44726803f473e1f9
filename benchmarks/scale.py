"""Lookups at scale: aio_error and aio_cancel(fd, cb) with 50,000 parked jobs vs 10.

Lookups by cb should cost O(1) whatever the number of jobs in flight.  The
jobs are 1-byte reads parked on socketpairs (``--pairs`` of them, 500 by
default, so 100 jobs wait on each socket when 50,000 are parked): nothing is
ever written to the sockets, so every job stays parked and no thread is
involved.  For each population (``--small``, 10, and ``--jobs``, 50,000):

* aio_error: ``--calls`` calls on cbs picked at random among the parked
  ones, timed as one loop, ns per call;
* aio_cancel(fd, cb): ``--cancels`` times, one parked job picked at random
  is cancelled (timed, one call), then reaped and a new job parked in its
  place (untimed), so the population stays the same; ns per call;
* ``cb.error``: a slot of the cb read in the same loop, no library call: the
  floor that cache misses on 50,000 objects put under any per-cb operation.

Engines, on the asyncio default loop and on uvloop, ``--rounds`` rounds
each, the order reversed every other round: ``natural`` parks the jobs on
the loop's default context and calls ``aioposix.aio_error`` /
``aioposix.aio_cancel``; ``tuned`` parks them on an explicit AioContext and
calls its methods.  Reported: ns per call at 50,000 and at 10; the ns an
aio_error call gains from the 49,990 more (what the population costs, apart
from the call's own fixed cost); the growth from 10 to 50,000 (target <= 2x;
a ratio, so a call whose fixed cost falls shows more growth for the same
added ns); and the memory per parked job (RSS growth while the jobs are
submitted, buffers and control blocks allocated before; target <= 1 KiB).
No peer has these calls, so there is no peer row.

Run: ``python benchmarks/scale.py [--jobs 50000] [--pairs 500] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import socket
import sys
import time
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
    select,
    sysctls,
)

import aioposix
from aioposix import Aiocb, AioContext

ERR_N, ERR_T, CAN_N, CAN_T, FLOOR = ("aioposix.aio_error (natural)", "ctx.aio_error (tuned)",
                                     "aioposix.aio_cancel (natural)", "ctx.aio_cancel (tuned)",
                                     "cb.error slot read")
Pairs = list[tuple[socket.socket, socket.socket]]


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            sys.exit(f"need {need} descriptors, the hard limit is {hard}: lower --pairs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


class Population:
    """``n`` reads parked on the readers of ``pairs``, spread evenly, on ``ctx``
    (or on the loop's default context through the module-level calls)."""

    def __init__(self, ctx: AioContext | None, pairs: Pairs, n: int) -> None:
        self.read = ctx.aio_read if ctx else aioposix.aio_read
        self.error = ctx.aio_error if ctx else aioposix.aio_error
        self.cancel = ctx.aio_cancel if ctx else aioposix.aio_cancel
        self.reap = ctx.aio_return if ctx else aioposix.aio_return
        fds = [r.fileno() for r, _ in pairs]
        self.cbs = [Aiocb(fds[i % len(fds)], bytearray(1)) for i in range(n)]
        gc.collect()
        before = rss()
        for cb in self.cbs:
            self.read(cb)
        gc.collect()
        self.bytes_per_job = (rss() - before) / n
        stats = (ctx or aioposix.current_context()).statistics()
        assert stats.parked >= n, stats

    def time_error(self, calls: int, rng: random.Random) -> float:
        picks = [rng.choice(self.cbs) for _ in range(calls)]
        aio_error = self.error
        start = time.perf_counter_ns()
        for cb in picks:
            aio_error(cb)
        return (time.perf_counter_ns() - start) / calls

    def time_floor(self, calls: int, rng: random.Random) -> float:
        picks = [rng.choice(self.cbs) for _ in range(calls)]
        start = time.perf_counter_ns()
        for cb in picks:
            cb.error  # noqa: B018
        return (time.perf_counter_ns() - start) / calls

    def time_cancel(self, cancels: int, rng: random.Random) -> float:
        cbs, cancel, clock = self.cbs, self.cancel, time.perf_counter_ns
        total = 0
        for _ in range(cancels):
            i = rng.randrange(len(cbs))
            cb = cbs[i]
            fd = cb.fildes
            start = clock()
            result = cancel(fd, cb)
            total += clock() - start
            assert result == aioposix.AIO_CANCELED, result
            assert self.reap(cb) == -1
            fresh = Aiocb(fd, cb.buf)
            self.read(fresh)
            cbs[i] = fresh
        return total / cancels


async def measure(what: str, n: int, pairs: Pairs, args: argparse.Namespace
                  ) -> tuple[float, float]:
    """(ns per call, bytes per parked job) of ``what`` with ``n`` parked."""
    rng = random.Random(n)
    natural = what in (ERR_N, CAN_N)
    ctx = None if natural else AioContext(max_queued=n + 16)
    try:
        pop = Population(ctx, pairs, n)
        if what in (ERR_N, ERR_T):
            ns = pop.time_error(args.calls, rng)
        elif what == FLOOR:
            ns = pop.time_floor(args.calls, rng)
        else:
            ns = pop.time_cancel(args.cancels, rng)
        return ns, pop.bytes_per_job
    finally:
        if ctx is not None:
            await ctx.aclose()


def one_round(what: str, loop: str, pairs: Pairs, args: argparse.Namespace) -> dict[str, Any]:
    limits = {"max_aio_queue": args.jobs + args.small + 64,
              "max_aio_queue_per_proc": args.jobs + 16}
    with sysctls(**limits):
        small, _ = run_on(loop, measure(what, args.small, pairs[:args.small], args))
        large, per_job = run_on(loop, measure(what, args.jobs, pairs, args))
    return {"value": large, "small_ns": small, "growth": large / small, "added_ns": large - small,
            "bytes_per_job": per_job, "hb_p99_ms": None, "hb_worst_ms": None}


def derived(engines: list[Engine], workload: str, key: str) -> list[Engine]:
    """Rows whose rounds are another figure of the same rounds (growth, memory)."""
    out = []
    for e in engines:
        if e.workload.startswith("aio_cancel") and key in ("bytes_per_job", "added_ns"):
            # The same populations as aio_error's: one memory row per engine.  A cancel
            # costs less with 50,000 parked than with 10 (the added ns are negative,
            # whose ratios read backwards), so its growth row stands alone.
            continue
        if e.name == FLOOR and key == "bytes_per_job":
            continue
        rows = [{"value": s[key], "hb_p99_ms": None, "hb_worst_ms": None} for s in e.samples]
        name = e.name.replace(" (natural)", "").replace(" (tuned)", "")
        if key == "bytes_per_job":
            name = "natural (default context)" if "natural" in e.name else "tuned (AioContext)"
        out.append(Engine(workload, name if key == "bytes_per_job" else e.name, e.loop, None,
                          e.note, e.status, e.role, rows))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=50_000)
    p.add_argument("--small", type=int, default=10)
    p.add_argument("--pairs", type=int, default=500)
    p.add_argument("--calls", type=int, default=100_000)
    p.add_argument("--cancels", type=int, default=3_000)
    common_args(p)
    args = p.parse_args()
    info = machine()
    print(machine_line(info))
    raise_nofile(4 * args.pairs + 256)
    loops = loops_available(args.loops)
    big = f"{args.jobs:,} parked"
    err_w, can_w = f"aio_error, {big}", f"aio_cancel(fd, cb), {big}"
    growth_w, mem_w = f"growth from {args.small} to {big}", "memory per parked job"
    small_w, added_w = f"the same call, {args.small} parked", f"ns added from {args.small} to {big}"
    pairs = [socket.socketpair() for _ in range(args.pairs)]
    table: list[Engine] = []
    try:
        for loop in loops:
            for workload, what, role in ((err_w, ERR_N, "natural"), (err_w, ERR_T, "tuned"),
                                         (err_w, FLOOR, "limit"), (can_w, CAN_N, "natural"),
                                         (can_w, CAN_T, "tuned")):
                def run(what: str = what, loop: str = loop) -> dict[str, Any]:
                    return one_round(what, loop, pairs, args)

                table.append(Engine(workload, what, loop, run, role=role))
        table = select(table, args.only)
        orders = run_rounds(table, args.rounds)
    finally:
        for a, b in pairs:
            a.close()
            b.close()
    rows = [*table, *derived(table, small_w, "small_ns"), *derived(table, added_w, "added_ns"),
            *derived(table, growth_w, "growth"), *derived(table, mem_w, "bytes_per_job")]
    goals_growth = {n: [("median", "<=", 2.0)] for n in (ERR_N, ERR_T, CAN_N, CAN_T)}
    goals_mem = {n: [("median", "<=", 1024.0)]
                 for n in ("natural (default context)", "tuned (AioContext)")}
    workloads = [Workload(err_w, "ns/call", False, None, FLOOR, "a random parked cb per call"),
                 Workload(can_w, "ns/call", False, None, None,
                          "a random parked job cancelled per call, then replaced"),
                 Workload(small_w, "ns/call", False, None, None,
                          "each call above with 10 jobs parked instead of 50,000"),
                 Workload(added_w, "ns/call", False, None, None,
                          "ns per call with 50,000 parked minus ns with 10: what the "
                          "population costs"),
                 Workload(growth_w, "x", False, None, None,
                          "ns per call with 50,000 parked over ns with 10", goals_growth),
                 Workload(mem_w, "B/job", False, None, None,
                          "RSS growth while the jobs are submitted", goals_mem)]
    report("scale", "Lookups and memory at scale", info, args, workloads, rows, orders)


if __name__ == "__main__":
    main()
