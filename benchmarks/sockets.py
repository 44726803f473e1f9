"""Socket I/O through the readiness bridge, against the loop's own socket calls.

Two workloads over an AF_UNIX stream socketpair, both ends on one loop:

* ``stream``: one task sends 64 KiB chunks, another reads 64 KiB at a time
  until EOF; GiB/s received in the measured window.  The bytes follow a
  pattern of period 251, so every chunk received is compared in full, and
  the count received must equal the count sent.
* ``pingpong``: a client sends a 64-byte message (one of 251 distinct ones)
  and waits for it to come back from an echo task; µs per round trip.
  Every reply is compared with the message sent.

Engines, on the asyncio default loop and on uvloop, ``--rounds`` rounds
each, the order of the engines reversed every other round:

* ``aioposix natural``: a new Aiocb per operation, ``aioposix.aio_read`` /
  ``aioposix.aio_write`` (the loop's default context), ``await cb``, on
  blocking sockets, as a POSIX AIO user has them;
* ``aioposix tuned``: each side reuses its Aiocbs on an explicit AioContext;
* ``loop sock calls``: the same loop's ``sock_recv_into`` / ``sock_sendall``
  on non-blocking sockets (the reference);
* ``blocking send/recv``: both ends driven in turn by one thread with
  blocking calls, no event loop: the limit.

A heartbeat task sleeping 1 ms records its lateness (p99 and worst).

Run: ``python benchmarks/sockets.py [--seconds 1] [--rounds 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from _common import (
    CHECK_EVERY,
    Engine,
    Window,
    Worker,
    Workload,
    common_args,
    idle_heartbeat,
    loops_available,
    machine,
    machine_line,
    report,
    run_on,
    run_rounds,
    run_window,
    sample,
    select,
)

import aioposix

KiB, GiB = 1 << 10, 1 << 30
CHUNK, MESSAGE, PERIOD = 64 * KiB, 64, 251
STREAM = bytes(range(PERIOD)) * (CHUNK // PERIOD + 2)  # any CHUNK bytes from any phase
VIEW = memoryview(STREAM)
MESSAGES = [bytes((j + i) % 256 for i in range(MESSAGE)) for j in range(PERIOD)]
NATURAL, TUNED, LOOP, LIMIT = ("aioposix natural", "aioposix tuned", "loop sock calls",
                               "blocking send/recv")
STREAM_W, PING_W = "64 KiB socketpair stream", "64-byte socketpair ping-pong"


class Broken(AssertionError):
    """Bytes received that are not the bytes sent."""


class Stream:
    """What the stream sent and received, and the check of each chunk received."""

    def __init__(self) -> None:
        self.sent = self.got = 0

    def next_chunk(self) -> memoryview:
        start = self.sent % PERIOD
        return VIEW[start:start + CHUNK]

    def received(self, buf: bytearray, n: int, window: Window) -> None:
        start = self.got % PERIOD
        if not buf.startswith(VIEW[start:start + n]):
            raise Broken(f"stream: wrong bytes at {self.got}")
        self.got += n
        window.bytes += n

    def done(self) -> None:
        if self.got != self.sent:
            raise Broken(f"stream: sent {self.sent} bytes, received {self.got}")


def stream_value(window: Window) -> float:
    return (window.end_bytes - window.start_bytes) / window.elapsed / GiB


async def run_pair(make: Callable[[Window, socket.socket, socket.socket], Worker],
                   args: argparse.Namespace, blocking: bool) -> tuple[Window, Any]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        a.setblocking(blocking)
        b.setblocking(blocking)
        return await run_window(lambda w: make(w, a, b), 2, args.warmup, args.seconds, 30)


# -- stream -------------------------------------------------------------------------


def aio_stream(fresh: bool, ctx: aioposix.AioContext | None
               ) -> Callable[[Window, socket.socket, socket.socket], Worker]:
    """The stream on aioposix: natural (new cbs, module calls) or tuned (reused, ctx)."""
    read = ctx.aio_read if ctx else aioposix.aio_read
    write = ctx.aio_write if ctx else aioposix.aio_write
    state = Stream()

    def make(window: Window, a: socket.socket, b: socket.socket) -> Worker:
        async def sender() -> None:
            cb = aioposix.Aiocb(b.fileno(), b"")
            while window.tick():
                chunk = state.next_chunk()
                if fresh:
                    cb = aioposix.Aiocb(b.fileno(), chunk)
                else:
                    cb.buf, cb.nbytes = chunk, CHUNK
                write(cb)
                state.sent += await cb
                window.ops += 1
            b.shutdown(socket.SHUT_WR)

        async def receiver() -> None:
            buf = bytearray(CHUNK)
            cb = aioposix.Aiocb(a.fileno(), buf)
            while True:
                if fresh:
                    cb = aioposix.Aiocb(a.fileno(), buf)
                read(cb)
                n = await cb
                if n == 0:
                    return state.done()
                state.received(buf, n, window)

        async def worker(i: int) -> None:
            await (sender() if i == 0 else receiver())
        return worker

    return make


async def stream_aioposix(args: argparse.Namespace, fresh: bool) -> dict[str, Any]:
    if fresh:
        window, beats = await run_pair(aio_stream(True, None), args, True)
    else:
        async with aioposix.AioContext() as ctx:
            window, beats = await run_pair(aio_stream(False, ctx), args, True)
    return sample(window, beats, stream_value(window))


async def stream_loop(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    state = Stream()

    def make(window: Window, a: socket.socket, b: socket.socket) -> Worker:
        async def sender() -> None:
            while window.tick():
                chunk = state.next_chunk()
                await loop.sock_sendall(b, chunk)
                state.sent += CHUNK
                window.ops += 1
            b.shutdown(socket.SHUT_WR)

        async def receiver() -> None:
            buf = bytearray(CHUNK)
            while n := await loop.sock_recv_into(a, buf):
                state.received(buf, n, window)
            state.done()

        async def worker(i: int) -> None:
            await (sender() if i == 0 else receiver())
        return worker

    window, beats = await run_pair(make, args, False)
    return sample(window, beats, stream_value(window))


def stream_limit(args: argparse.Namespace) -> dict[str, Any]:
    state = Stream()
    window = Window(args.warmup, args.seconds)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    buf = bytearray(CHUNK)
    with a, b:
        while window.tick():
            state.sent += b.send(state.next_chunk())
            window.ops += 1
            while state.got < state.sent:
                state.received(buf, a.recv_into(buf, state.sent - state.got), window)
    state.done()
    return sample(window, None, stream_value(window))


# -- ping-pong ----------------------------------------------------------------------


def aio_pingpong(fresh: bool, ctx: aioposix.AioContext | None
                 ) -> Callable[[Window, socket.socket, socket.socket], Worker]:
    read = ctx.aio_read if ctx else aioposix.aio_read
    write = ctx.aio_write if ctx else aioposix.aio_write
    Aiocb = aioposix.Aiocb

    async def recv_exact(cb: aioposix.Aiocb, fd: int, buf: bytearray) -> bool:
        got = 0
        while got < MESSAGE:
            if fresh:
                cb = Aiocb(fd, memoryview(buf)[got:] if got else buf, MESSAGE - got)
            else:
                cb.buf = memoryview(buf)[got:] if got else buf
                cb.nbytes = MESSAGE - got
            read(cb)
            n = await cb
            if n == 0:
                return False
            got += n
        return True

    async def send(cb: aioposix.Aiocb, fd: int, data: Any) -> None:
        if fresh:
            cb = Aiocb(fd, data, MESSAGE)
        else:
            cb.buf, cb.nbytes = data, MESSAGE
        write(cb)
        if await cb != MESSAGE:
            raise Broken("ping-pong: short write")

    def make(window: Window, a: socket.socket, b: socket.socket) -> Worker:
        async def client() -> None:
            fd, buf = b.fileno(), bytearray(MESSAGE)
            rcb, wcb = Aiocb(fd, buf), Aiocb(fd, b"")
            j = k = 0
            while True:
                message = MESSAGES[j]
                await send(wcb, fd, message)
                if not await recv_exact(rcb, fd, buf) or buf != message:
                    raise Broken("ping-pong: the reply is not the message")
                j = j + 1 if j < PERIOD - 1 else 0
                window.ops += 1
                k += 1
                if k == CHECK_EVERY:
                    k = 0
                    if not window.tick():
                        return b.shutdown(socket.SHUT_WR)

        async def echo() -> None:
            fd, buf = a.fileno(), bytearray(MESSAGE)
            rcb, wcb = Aiocb(fd, buf), Aiocb(fd, b"")
            while await recv_exact(rcb, fd, buf):
                await send(wcb, fd, buf)

        async def worker(i: int) -> None:
            await (client() if i == 0 else echo())
        return worker

    return make


async def pingpong_aioposix(args: argparse.Namespace, fresh: bool) -> dict[str, Any]:
    if fresh:
        window, beats = await run_pair(aio_pingpong(True, None), args, True)
    else:
        async with aioposix.AioContext() as ctx:
            window, beats = await run_pair(aio_pingpong(False, ctx), args, True)
    return sample(window, beats, window.elapsed / max(1, window.end_ops - window.start_ops)
                  * 1e6)


async def pingpong_loop(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()

    async def recv_exact(sock: socket.socket, view: memoryview) -> bool:
        got = 0
        while got < MESSAGE:
            n = await loop.sock_recv_into(sock, view[got:])
            if n == 0:
                return False
            got += n
        return True

    def make(window: Window, a: socket.socket, b: socket.socket) -> Worker:
        async def client() -> None:
            buf = bytearray(MESSAGE)
            view = memoryview(buf)
            j = k = 0
            while True:
                message = MESSAGES[j]
                await loop.sock_sendall(b, message)
                if not await recv_exact(b, view) or buf != message:
                    raise Broken("ping-pong: the reply is not the message")
                j = j + 1 if j < PERIOD - 1 else 0
                window.ops += 1
                k += 1
                if k == CHECK_EVERY:
                    k = 0
                    if not window.tick():
                        return b.shutdown(socket.SHUT_WR)

        async def echo() -> None:
            buf = bytearray(MESSAGE)
            view = memoryview(buf)
            while await recv_exact(a, view):
                await loop.sock_sendall(a, buf)

        async def worker(i: int) -> None:
            await (client() if i == 0 else echo())
        return worker

    window, beats = await run_pair(make, args, False)
    return sample(window, beats, window.elapsed / max(1, window.end_ops - window.start_ops)
                  * 1e6)


def recv_exact_sync(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < MESSAGE:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise Broken("ping-pong: EOF")
        got += n


def pingpong_limit(args: argparse.Namespace) -> dict[str, Any]:
    window = Window(args.warmup, args.seconds)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ebuf, cbuf = bytearray(MESSAGE), bytearray(MESSAGE)
    eview, cview = memoryview(ebuf), memoryview(cbuf)
    j = 0
    with a, b:
        while window.tick():
            for _ in range(CHECK_EVERY):
                message = MESSAGES[j]
                b.sendall(message)
                recv_exact_sync(a, eview)
                a.sendall(ebuf)
                recv_exact_sync(b, cview)
                if cbuf != message:
                    raise Broken("ping-pong: the reply is not the message")
                j = j + 1 if j < PERIOD - 1 else 0
                window.ops += 1
    return sample(window, None, window.elapsed / max(1, window.end_ops - window.start_ops)
                  * 1e6)


# -- driver -------------------------------------------------------------------------

Bench = Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]


def engines(args: argparse.Namespace, loops: list[str]) -> list[Engine]:
    out = [Engine(STREAM_W, LIMIT, "-", lambda: stream_limit(args),
                  "one thread, blocking send then recv_into", role="limit"),
           Engine(PING_W, LIMIT, "-", lambda: pingpong_limit(args),
                  "one thread, blocking sendall and recv_into in turn", role="limit")]
    benches: list[tuple[str, str, Bench, str, str]] = [
        (STREAM_W, NATURAL, lambda a: stream_aioposix(a, True), "natural",
         "new Aiocb per op, aioposix.aio_read/aio_write, blocking sockets"),
        (STREAM_W, TUNED, lambda a: stream_aioposix(a, False), "tuned",
         "reused Aiocbs, explicit AioContext, blocking sockets"),
        (STREAM_W, LOOP, stream_loop, "ref", "loop.sock_recv_into / loop.sock_sendall"),
        (PING_W, NATURAL, lambda a: pingpong_aioposix(a, True), "natural",
         "new Aiocb per op, aioposix.aio_read/aio_write, blocking sockets"),
        (PING_W, TUNED, lambda a: pingpong_aioposix(a, False), "tuned",
         "reused Aiocbs, explicit AioContext, blocking sockets"),
        (PING_W, LOOP, pingpong_loop, "ref", "loop.sock_recv_into / loop.sock_sendall")]
    for loop in loops:
        for workload, name, bench, role, note in benches:
            if workload.split()[-1] not in args.workloads:
                continue

            def run(bench: Bench = bench, loop: str = loop) -> dict[str, Any]:
                return dict(run_on(loop, bench(args)))

            out.append(Engine(workload, name, loop, run, note, role=role))
    return [e for e in out if e.workload.split()[-1] in args.workloads]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=1.0, help="measured seconds per round")
    p.add_argument("--warmup", type=float, default=0.2, help="warm-up seconds per round")
    p.add_argument("--workloads", nargs="+", default=["stream", "ping-pong"],
                   choices=["stream", "ping-pong"])
    common_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    print(machine_line(info))
    workloads = [
        Workload(STREAM_W, "GiB/s", True, LOOP, LIMIT,
                 f"AF_UNIX socketpair, {args.seconds:g} s per round after {args.warmup:g} s "
                 "warm-up; every chunk received is compared",
                 targets={NATURAL: [("vs_ref", ">=", 0.9)], TUNED: [("vs_ref", ">=", 0.9)]}),
        Workload(PING_W, "µs/RTT", False, LOOP, LIMIT,
                 f"AF_UNIX socketpair, {args.seconds:g} s per round after {args.warmup:g} s "
                 "warm-up; every reply is compared",
                 targets={NATURAL: [("vs_ref", "<=", 1.15)], TUNED: [("vs_ref", "<=", 1.15)]})]
    workloads = [w for w in workloads if w.name.split()[-1] in args.workloads]
    loops = loops_available(args.loops)
    idle = {loop: run_on(loop, idle_heartbeat()) for loop in loops}
    table = select(engines(args, loops), args.only)
    orders = run_rounds(table, args.rounds)
    report("sockets", "Sockets through the readiness bridge", info, args, workloads, table,
           orders, idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
