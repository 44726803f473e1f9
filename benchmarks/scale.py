"""Lookups at scale: aio_error and aio_cancel(fd, cb) with 50,000 parked jobs vs 10.

SPEC rule 11: lookups by cb cost O(1) whatever the number of jobs in flight.
The jobs are 1-byte reads parked on socketpairs (``--pairs`` of them, 500 by
default, so 100 jobs wait on each socket when 50,000 are parked): nothing is
ever written to the sockets, so every job stays parked and no thread is
involved.  For each population (``--small``, 10, and ``--jobs``, 50,000):

* aio_error: ``--calls`` calls on cbs picked at random among the parked
  ones, timed as one loop, ns per call;
* aio_cancel(fd, cb): ``--cancels`` times, one parked job picked at random
  is cancelled (timed, one call), then reaped and a new job parked in its
  place (untimed), so the population stays the same; ns per call.

A third row reads ``cb.error`` (a slot of the cb, no library call) in the
same loop: the floor that cache misses on 50,000 objects put under any
per-cb operation.  Then the ratio large / small (target <= 2x) and the memory per parked job:
the buffers and control blocks are allocated first, RSS is read, the jobs
are submitted, RSS is read again; (growth) / jobs (target <= 1 KiB).  The
control block is the caller's ``struct aiocb``, so like the buffers it is
not counted; ``--count-aiocb`` allocates them after the first reading.

Run: ``python benchmarks/scale.py [--jobs 50000] [--pairs 500] [--loop uvloop]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import resource
import socket
import sys
import time

from _common import rss

import aioposix
from aioposix import Aiocb, AioContext


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            sys.exit(f"need {need} descriptors, the hard limit is {hard}: lower --pairs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


class Population:
    """``n`` reads parked on the readers of ``pairs``, spread evenly."""

    def __init__(self, ctx: AioContext, pairs: list[tuple[socket.socket, socket.socket]],
                 n: int, count_aiocb: bool) -> None:
        self.ctx = ctx
        self.fds = [r.fileno() for r, _ in pairs]
        bufs = [bytearray(1) for _ in range(n)]

        def make(i: int) -> Aiocb:
            return Aiocb(self.fds[i % len(self.fds)], bufs[i])

        self.cbs: list[Aiocb] = [] if count_aiocb else [make(i) for i in range(n)]
        gc.collect()
        before = rss()
        if count_aiocb:
            self.cbs = [make(i) for i in range(n)]
        for cb in self.cbs:
            ctx.aio_read(cb)
        gc.collect()
        self.bytes_per_job = (rss() - before) / n
        assert ctx.statistics().parked == n

    def time_aio_error(self, calls: int, rng: random.Random) -> float:
        picks = [rng.choice(self.cbs) for _ in range(calls)]
        aio_error = self.ctx.aio_error
        start = time.perf_counter_ns()
        for cb in picks:
            aio_error(cb)
        return (time.perf_counter_ns() - start) / calls

    def time_attribute(self, calls: int, rng: random.Random) -> float:
        """The floor: the same loop reading a slot of each cb (memory, not lookups)."""
        picks = [rng.choice(self.cbs) for _ in range(calls)]
        start = time.perf_counter_ns()
        for cb in picks:
            cb.error  # noqa: B018
        return (time.perf_counter_ns() - start) / calls

    def time_aio_cancel(self, cancels: int, rng: random.Random) -> float:
        ctx, cbs = self.ctx, self.cbs
        total = 0
        clock = time.perf_counter_ns
        for _ in range(cancels):
            i = rng.randrange(len(cbs))
            cb = cbs[i]
            fd = cb.fildes
            start = clock()
            result = ctx.aio_cancel(fd, cb)
            total += clock() - start
            assert result == aioposix.AIO_CANCELED, result
            assert ctx.aio_return(cb) == -1
            fresh = Aiocb(fd, cb.buf)
            ctx.aio_read(fresh)
            cbs[i] = fresh
        return total / cancels


async def measure(n: int, pairs: list[tuple[socket.socket, socket.socket]],
                  args: argparse.Namespace) -> tuple[float, float, float, float]:
    rng = random.Random(n)
    async with AioContext(max_queued=n + 16) as ctx:
        pop = Population(ctx, pairs, n, args.count_aiocb)
        errors = min(pop.time_aio_error(args.calls, rng) for _ in range(args.repeat))
        cancels = min(pop.time_aio_cancel(args.cancels, rng) for _ in range(args.repeat))
        floor = min(pop.time_attribute(args.calls, rng) for _ in range(args.repeat))
        await asyncio.sleep(0)  # let the cancelled jobs' notifications run
        return errors, cancels, pop.bytes_per_job, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--cancels", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--count-aiocb", action="store_true",
                        help="count the Aiocb objects in the memory per job")
    args = parser.parse_args()
    raise_nofile(4 * args.pairs + 256)
    aioposix.sysctl["vfs.aio.max_aio_queue"] = args.jobs + args.small + 64
    pairs = [socket.socketpair() for _ in range(args.pairs)]
    try:
        if args.loop == "uvloop":
            import uvloop
            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        else:
            runner = asyncio.Runner()
        with runner:
            small = runner.run(measure(args.small, pairs[:args.small], args))
            large = runner.run(measure(args.jobs, pairs, args))
    finally:
        for a, b in pairs:
            a.close()
            b.close()
    print(f"loop: {args.loop}; parked reads on {args.pairs} socketpairs; "
          f"best of {args.repeat}")
    print(f"{'':22}{args.small:>12,} jobs{args.jobs:>12,} jobs{'ratio':>10}")
    for name, a, b in (("aio_error  ns/call", small[0], large[0]),
                       ("aio_cancel ns/call", small[1], large[1])):
        print(f"{name:22}{a:>17.0f}{b:>17.0f}{b / a:>9.2f}x  (target <= 2x)")
    print(f"{'cb.error   ns/read':22}{small[3]:>17.0f}{large[3]:>17.0f}{large[3] / small[3]:>9.2f}x"
          "  (floor: the same loop, a plain slot read; cache misses, not lookups)")
    what = "incl. Aiocb" if args.count_aiocb else "excl. buffers and Aiocb"
    print(f"memory per parked job ({what}): {large[2]:.0f} bytes  (target <= 1024)")


if __name__ == "__main__":
    main()
