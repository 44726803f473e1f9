"""What a Kqueue costs per job: completions harvested in batches vs ``await cb``.

Workload: ``--jobs`` cached 4 KiB reads at random block offsets of a 16 MiB
file that is written and read once beforehand, so every read is a page-cache
hit.  ``--depth`` (64) jobs are kept in flight, the same on every path:

* ``await (natural)``: one coroutine keeps a FIFO window of in-flight jobs, a
  new Aiocb per job submitted with ``aioposix.aio_read`` (the loop's default
  context); it awaits the oldest and submits the next;
* ``await (tuned)``: the same with the window's Aiocbs reused on an explicit
  AioContext (the reference);
* ``await + SIGEV_NONE``: the tuned path with a ``SigEvent(SIGEV_NONE)`` on
  every cb (it notifies nothing: what carrying a sigevent costs at submit);
* ``kqueue``: every cb carries ``SigEvent(SIGEV_KEVENT, kqueue=kq,
  kevent_flags=EV_ONESHOT)``; one coroutine harvests with
  ``await kq.control(None, --batch)``, reaps each event's cb with
  ``aio_return`` and resubmits it;
* ``os.pread loop``: the same reads, synchronous, no event loop (the limit).

No peer library has a kqueue-like completion queue, so there is no peer row.
Every block read on every path is compared in full with the file's pattern.
Each path runs ``--rounds`` times on each loop, the order of the paths
reversed every other round; a heartbeat task sleeping 1 ms records its
lateness.  Reported: µs per job (wall clock).

Run: ``python benchmarks/notify.py [--jobs 50000] [--depth 64] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from _common import (
    Engine,
    Pattern,
    Window,
    Workload,
    common_args,
    idle_heartbeat,
    loops_available,
    machine,
    machine_line,
    read_all,
    report,
    run_on,
    run_rounds,
    sample,
    select,
    timed_with_heartbeat,
    wrong,
)

import aioposix
from aioposix import EV_CLEAR, EV_ONESHOT, SIGEV_KEVENT, SIGEV_NONE, Aiocb, AioContext, SigEvent

BLOCK = 4096
FILE_BLOCKS = 4096  # a 16 MiB file
KEVENT_FLAGS = {"oneshot": EV_ONESHOT, "clear": EV_CLEAR, "none": 0}
NATURAL, TUNED, SEV, KQ, LIMIT = ("await (natural)", "await (tuned)", "await + SIGEV_NONE",
                                  "kqueue", "os.pread loop")
Job = tuple[int, bytes, bytes]  # (offset, head, tail)


class Plan:
    def __init__(self, fd: int, args: argparse.Namespace) -> None:
        self.fd, self.args = fd, args
        pattern = Pattern(FILE_BLOCKS, BLOCK)
        rng = random.Random(2)
        self.jobs: list[Job] = []
        for _ in range(args.jobs):
            i = rng.randrange(FILE_BLOCKS)
            self.jobs.append((i * BLOCK, *pattern.expect(i)))


def check(cb: Aiocb, n: int, head: bytes, tail: bytes, name: str) -> None:
    buf = cb.buf
    if n != BLOCK or not (buf.startswith(head) and buf.endswith(tail)):
        raise wrong(name, cb.offset)


async def await_path(plan: Plan, ctx: AioContext | None, sigevent: SigEvent | None,
                     name: str) -> int:
    """Keep ``depth`` in flight; await the oldest, submit the next."""
    fd, depth = plan.fd, plan.args.depth
    read = ctx.aio_read if ctx else aioposix.aio_read
    fresh = ctx is None
    window: deque[tuple[Aiocb, bytes, bytes]] = deque()
    jobs = iter(plan.jobs)
    for off, head, tail in jobs:
        cb = Aiocb(fd, bytearray(BLOCK), BLOCK, off, sigevent=sigevent)
        read(cb)
        window.append((cb, head, tail))
        if len(window) == depth:
            break
    done = 0
    while window:
        cb, head, tail = window.popleft()
        check(cb, await cb, head, tail, name)
        done += 1
        job = next(jobs, None)
        if job is not None:
            off, head, tail = job
            if fresh:
                cb = Aiocb(fd, cb.buf, BLOCK, off)
            else:
                cb.offset = off
            read(cb)
            window.append((cb, head, tail))
    return done


async def kqueue_path(plan: Plan, ctx: AioContext) -> int:
    """Keep ``depth`` in flight; harvest completions from a Kqueue in batches."""
    fd, args = plan.fd, plan.args
    kq = aioposix.Kqueue()
    flags = KEVENT_FLAGS[args.kevent_flags]
    read, reap, control = ctx.aio_read, ctx.aio_return, kq.control
    expect: dict[Aiocb, tuple[bytes, bytes]] = {}
    jobs = iter(plan.jobs)
    for off, head, tail in jobs:
        cb = Aiocb(fd, bytearray(BLOCK), BLOCK, off,
                   sigevent=SigEvent(SIGEV_KEVENT, kqueue=kq, kevent_flags=flags))
        expect[cb] = (head, tail)
        read(cb)
        if len(expect) == args.depth:
            break
    in_flight, done = len(expect), 0
    try:
        while in_flight:
            for ev in await control(None, args.batch):
                cb = ev.ident
                check(cb, reap(cb), *expect[cb], KQ)
                done += 1
                in_flight -= 1
                job = next(jobs, None)
                if job is not None:
                    cb.offset = job[0]
                    expect[cb] = job[1:]
                    read(cb)
                    in_flight += 1
    finally:
        kq.close()
    return done


async def run_path(plan: Plan, path: str) -> dict[str, Any]:
    async def body() -> int:
        if path == NATURAL:
            return await await_path(plan, None, None, path)
        async with AioContext(max_queued=max(plan.args.depth, 1)) as ctx:
            if path == KQ:
                return await kqueue_path(plan, ctx)
            sev = SigEvent(SIGEV_NONE) if path == SEV else None
            return await await_path(plan, ctx, sev, path)

    window, beats = await timed_with_heartbeat(body)
    if window.end_ops != plan.args.jobs:
        raise AssertionError(f"{path}: {window.end_ops} jobs done of {plan.args.jobs}")
    return sample(window, beats, window.elapsed / window.end_ops * 1e6)


def run_limit(plan: Plan) -> dict[str, Any]:
    fd, pread = plan.fd, os.pread
    window = Window(0, 1e9)
    window.tick()
    for off, head, tail in plan.jobs:
        data = pread(fd, BLOCK, off)
        if not (len(data) == BLOCK and data.startswith(head) and data.endswith(tail)):
            raise wrong(LIMIT, off)
    window.ops = len(plan.jobs)
    window.t_stop = 0.0
    window.tick()
    return sample(window, None, window.elapsed / window.ops * 1e6)


def engines(plan: Plan, workload: str, loops: list[str]) -> list[Engine]:
    out = [Engine(workload, LIMIT, "-", lambda: run_limit(plan), "synchronous, no event loop",
                  role="limit")]
    notes = {NATURAL: ("natural", "new Aiocb per job, aioposix.aio_read, await the oldest"),
             TUNED: ("tuned", "reused Aiocbs, explicit AioContext, await the oldest"),
             SEV: ("tuned", "as tuned, every cb with SigEvent(SIGEV_NONE)"),
             KQ: ("tuned", f"SIGEV_KEVENT ({plan.args.kevent_flags}), kq.control(None, "
                           f"{plan.args.batch}), aio_return")}
    for loop in loops:
        for path, (role, note) in notes.items():
            def run(path: str = path, loop: str = loop) -> dict[str, Any]:
                return dict(run_on(loop, run_path(plan, path)))
            out.append(Engine(workload, path, loop, run, note, role=role))
    return out


def make_file(directory: str) -> int:
    path = os.path.join(directory, "notify.bin")
    Pattern(FILE_BLOCKS, BLOCK).write_file(path, FILE_BLOCKS)
    read_all(path)
    return os.open(path, os.O_RDONLY)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--jobs", type=int, default=50_000)
    p.add_argument("--depth", type=int, default=64, help="jobs kept in flight")
    p.add_argument("--batch", type=int, default=256, help="max_events per kq.control")
    p.add_argument("--kevent-flags", choices=list(KEVENT_FLAGS), default="oneshot")
    common_args(p, rounds=5)
    return p.parse_args(argv)


Runner = Callable[[], Coroutine[Any, Any, Any]]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    print(machine_line(info))
    workload = f"cached 4 KiB reads, {args.depth} in flight, one coroutine"
    w = Workload(workload, "µs/job", False, TUNED, LIMIT,
                 f"{args.jobs} jobs per round, 16 MiB cached file; every block read is compared",
                 targets={KQ: [("vs_ref", "<=", 1.3)]})
    loops = loops_available(args.loops)
    with tempfile.TemporaryDirectory() as directory:
        fd = make_file(directory)
        try:
            plan = Plan(fd, args)
            idle = {loop: run_on(loop, idle_heartbeat()) for loop in loops}
            table = select(engines(plan, workload, loops), args.only)
            t0 = time.perf_counter()
            orders = run_rounds(table, args.rounds)
            print(f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        finally:
            os.close(fd)
    report("notify", "Kqueue notification against await", info, args, [w], table, orders, idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
