"""Socket I/O through the readiness bridge, against the loop's own socket calls.

Two workloads over an AF_UNIX stream socketpair, both ends on one loop:

* ``stream``: one task sends 64 KiB chunks for ``--seconds``, then shuts the
  write side; another task reads 64 KiB at a time until EOF.  Reported in
  GiB/s (bytes received / time until the reader saw EOF).
* ``pingpong``: a client task sends 64 bytes and waits for them to come
  back; an echo task reads 64 bytes and sends them back.  Reported in µs
  per round trip.

Engines, side by side in one run, on the asyncio default loop and on uvloop:

* ``aioposix``: one AioContext, each side reusing its Aiocbs
  (``ctx.aio_read(cb)`` / ``ctx.aio_write(cb)``, then ``await cb``; with
  ``--fresh-cbs`` a new Aiocb per operation), on blocking sockets, as a
  POSIX AIO user has them;
* ``loop``: the same loop's ``loop.sock_recv_into`` / ``loop.sock_sendall``
  on non-blocking sockets.

Each (loop, workload, engine) is measured ``--rounds`` times, engines
alternating, and the best round is kept.  Targets: aioposix throughput at
least 0.8x, round trip at most 1.25x, of the loop's own calls.
``--profile`` adds a cProfile of aioposix's ping-pong on each loop.

Run: ``python benchmarks/sockets.py [--seconds 1.5] [--rounds 2] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import io
import platform
import pstats
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any

from _common import run_on, write_json

import aioposix

KiB = 1 << 10
GiB = 1 << 30
CHUNK = 64 * KiB
MESSAGE = 64
TARGET_THROUGHPUT = 0.8  # aioposix / loop, at least
TARGET_RTT = 1.25  # aioposix / loop, at most
ENGINES = ("aioposix", "loop")


@dataclass
class Result:
    loop: str
    workload: str
    engine: str
    value: float  # GiB/s for stream, µs per round trip for pingpong
    unit: str
    rounds: list[float]


# -- stream -------------------------------------------------------------------------


async def stream_aioposix(a: socket.socket, b: socket.socket, seconds: float,
                          fresh: bool = False) -> float:
    """GiB/s of 64 KiB aio_write -> aio_read."""
    async with aioposix.AioContext() as ctx:
        wcb = aioposix.Aiocb(b.fileno(), bytes(CHUNK))
        rcb = aioposix.Aiocb(a.fileno(), bytearray(CHUNK))

        async def send() -> None:
            cb = wcb
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                if fresh:
                    cb = aioposix.Aiocb(b.fileno(), wcb.buf)
                ctx.aio_write(cb)
                await cb
            b.shutdown(socket.SHUT_WR)

        async def receive() -> int:
            cb = rcb
            total = 0
            while True:
                if fresh:
                    cb = aioposix.Aiocb(a.fileno(), rcb.buf)
                ctx.aio_read(cb)
                got = await cb
                if got == 0:
                    return total
                total += got

        return await _timed_stream(send(), receive())


async def stream_loop(a: socket.socket, b: socket.socket, seconds: float) -> float:
    """GiB/s of 64 KiB loop.sock_sendall -> loop.sock_recv_into."""
    loop = asyncio.get_running_loop()
    a.setblocking(False)
    b.setblocking(False)
    chunk = bytes(CHUNK)
    buf = bytearray(CHUNK)

    async def send() -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            await loop.sock_sendall(b, chunk)
        b.shutdown(socket.SHUT_WR)

    async def receive() -> int:
        total = 0
        while True:
            got = await loop.sock_recv_into(a, buf)
            if got == 0:
                return total
            total += got

    return await _timed_stream(send(), receive())


async def _timed_stream(send: Coroutine[Any, Any, None],
                        receive: Coroutine[Any, Any, int]) -> float:
    start = time.perf_counter()
    receiver = asyncio.ensure_future(receive)
    await send
    total = await receiver
    return total / (time.perf_counter() - start) / GiB


# -- ping-pong ----------------------------------------------------------------------


async def pingpong_aioposix(a: socket.socket, b: socket.socket, seconds: float,
                            fresh: bool = False) -> float:
    """µs per 64-byte round trip, both sides with aio_read/aio_write + await."""
    async with aioposix.AioContext() as ctx:

        def job(cb: aioposix.Aiocb) -> aioposix.Aiocb:
            return aioposix.Aiocb(cb.fildes, cb.buf) if fresh else cb

        async def recv_exact(cb: aioposix.Aiocb, buf: bytearray) -> None:
            got = 0
            while got < MESSAGE:
                cb = job(cb)
                cb.buf = memoryview(buf)[got:] if got else buf
                cb.nbytes = MESSAGE - got
                ctx.aio_read(cb)
                n = await cb
                if n == 0:
                    raise EOFError
                got += n

        async def send(cb: aioposix.Aiocb) -> None:
            cb = job(cb)
            ctx.aio_write(cb)
            await cb

        async def echo() -> None:
            buf = bytearray(MESSAGE)
            rcb = aioposix.Aiocb(a.fileno(), buf)
            wcb = aioposix.Aiocb(a.fileno(), buf)
            try:
                while True:
                    await recv_exact(rcb, buf)
                    await send(wcb)
            except EOFError:
                return

        buf = bytearray(MESSAGE)
        rcb = aioposix.Aiocb(b.fileno(), buf)
        wcb = aioposix.Aiocb(b.fileno(), b"x" * MESSAGE)
        server = asyncio.ensure_future(echo())
        count, elapsed = await _round_trips(seconds, lambda: send(wcb),
                                            lambda: recv_exact(rcb, buf))
        b.shutdown(socket.SHUT_WR)
        await server
        return elapsed / count * 1e6


async def pingpong_loop(a: socket.socket, b: socket.socket, seconds: float) -> float:
    """µs per 64-byte round trip, both sides with loop.sock_sendall/sock_recv_into."""
    loop = asyncio.get_running_loop()
    a.setblocking(False)
    b.setblocking(False)

    async def recv_exact(sock: socket.socket, view: memoryview) -> None:
        got = 0
        while got < MESSAGE:
            n = await loop.sock_recv_into(sock, view[got:])
            if n == 0:
                raise EOFError
            got += n

    async def echo() -> None:
        buf = bytearray(MESSAGE)
        view = memoryview(buf)
        try:
            while True:
                await recv_exact(a, view)
                await loop.sock_sendall(a, buf)
        except EOFError:
            return

    message = b"x" * MESSAGE
    view = memoryview(bytearray(MESSAGE))
    server = asyncio.ensure_future(echo())
    count, elapsed = await _round_trips(seconds, lambda: loop.sock_sendall(b, message),
                                        lambda: recv_exact(b, view))
    b.shutdown(socket.SHUT_WR)
    await server
    return elapsed / count * 1e6


async def _round_trips(seconds: float, send: Callable[[], Awaitable[None]],
                       receive: Callable[[], Awaitable[None]]) -> tuple[int, float]:
    count = 0
    start = time.perf_counter()
    end = start + seconds
    now = start
    while now < end:
        for _ in range(64):  # check the clock every 64 round trips
            await send()
            await receive()
        count += 64
        now = time.perf_counter()
    return count, now - start


# -- driver -------------------------------------------------------------------------

Bench = Callable[[socket.socket, socket.socket, float], Coroutine[Any, Any, float]]
BENCHES: dict[tuple[str, str], Bench] = {
    ("stream", "aioposix"): stream_aioposix,
    ("stream", "loop"): stream_loop,
    ("pingpong", "aioposix"): pingpong_aioposix,
    ("pingpong", "loop"): pingpong_loop,
}
UNITS = {"stream": "GiB/s", "pingpong": "µs/RTT"}


async def measure(bench: Bench, seconds: float, warmup: float) -> float:
    """One fresh socketpair per run: a short warm-up, then the measured run."""
    for duration, keep in ((warmup, False), (seconds, True)):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with a, b:
            value = await bench(a, b, duration)
        if keep:
            return value
    raise AssertionError("unreachable")


def bench_loop(loop_name: str, args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    for workload in args.workloads:
        rounds: dict[str, list[float]] = {engine: [] for engine in ENGINES}
        for _ in range(args.rounds):
            for engine in ENGINES:  # alternate, so drift hits both alike
                bench = BENCHES[(workload, engine)]
                if engine == "aioposix" and args.fresh_cbs:
                    bench = functools.partial(bench, fresh=True)
                value = run_on(loop_name, measure(bench, args.seconds, args.warmup))
                rounds[engine].append(value)
        for engine in ENGINES:
            values = rounds[engine]
            best = max(values) if workload == "stream" else min(values)
            results.append(Result(loop_name, workload, engine, best, UNITS[workload], values))
    return results


def profile_pingpong(loop_name: str, args: argparse.Namespace) -> str:
    bench = functools.partial(pingpong_aioposix, fresh=args.fresh_cbs)
    profiler = cProfile.Profile()
    profiler.enable()
    run_on(loop_name, measure(bench, args.seconds, 0.05))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(args.profile_top)
    return out.getvalue()


def ratio_rows(results: list[Result]) -> list[dict[str, Any]]:
    by_key = {(r.loop, r.workload, r.engine): r.value for r in results}
    rows = []
    for loop_name, workload in sorted({(r.loop, r.workload) for r in results}):
        ours, theirs = by_key[(loop_name, workload, "aioposix")], by_key[(loop_name, workload,
                                                                           "loop")]
        ratio = ours / theirs
        ok = ratio >= TARGET_THROUGHPUT if workload == "stream" else ratio <= TARGET_RTT
        target = (f">= {TARGET_THROUGHPUT}x" if workload == "stream" else f"<= {TARGET_RTT}x")
        rows.append({"loop": loop_name, "workload": workload, "aioposix": ours, "loop_calls":
                     theirs, "unit": UNITS[workload], "ratio": ratio, "target": target,
                     "met": ok})
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'loop':8} {'workload':9} {'aioposix':>10} {'loop calls':>11} {'unit':7} "
    print(head + f"{'ratio':>6}  target    met")
    for row in rows:
        print(f"{row['loop']:8} {row['workload']:9} {row['aioposix']:10.3f} "
              f"{row['loop_calls']:11.3f} {row['unit']:7} {row['ratio']:6.2f}  "
              f"{row['target']:8}  {'yes' if row['met'] else 'NO'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.5, help="measured run (s)")
    parser.add_argument("--warmup", type=float, default=0.2, help="warm-up run (s)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per engine; best kept")
    parser.add_argument("--loops", nargs="+", default=["asyncio", "uvloop"],
                        choices=["asyncio", "uvloop"])
    parser.add_argument("--workloads", nargs="+", default=["stream", "pingpong"],
                        choices=["stream", "pingpong"])
    parser.add_argument("--fresh-cbs", action="store_true",
                        help="aioposix: a new Aiocb per operation instead of reusing one")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile aioposix's ping-pong on each loop")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"python {platform.python_version()} on {platform.platform()}, "
          f"{args.rounds} x {args.seconds} s per engine, AF_UNIX stream socketpair")
    results: list[Result] = []
    for loop_name in args.loops:
        results += bench_loop(loop_name, args)
    rows = ratio_rows(results)
    print_table(rows)
    if args.profile:
        for loop_name in args.loops:
            print(f"\n== cProfile, aioposix ping-pong on {loop_name} ==")
            print(profile_pingpong(loop_name, args))
    if args.json:
        write_json(args.json, {"results": [asdict(r) for r in results], "ratios": rows})
    return 0 if all(row["met"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
