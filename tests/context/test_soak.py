"""Soak: 50,000 mixed jobs with random cancels and context churn, then no growth.

The mix: file reads (checked against known data) and writes (each slot gets
its own pattern), reads and writes on socketpairs (every byte accounted for),
fsyncs, lio_listio batches; random aio_cancel of single jobs and of whole
fds, tasks cancelled while awaiting, and a new context every round, some run
down with jobs still in flight.  Afterwards RSS has grown by less than
20 MiB, and descriptors and non-daemon threads are back to their baseline.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import random
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from helpers import open_fds

from aioposix import (
    AIO_ALLDONE,
    AIO_CANCELED,
    AIO_NOTCANCELED,
    LIO_NOWAIT,
    LIO_READ,
    LIO_WRITE,
    Aiocb,
    AioContext,
    sysctl,
)

if TYPE_CHECKING:
    from conftest import Env

JOBS = 50_000
ROUND = 400  # jobs per context
SLOT, SLOTS = 1024, 512
SOCKETS = 4
RSS_LIMIT = 20 << 20
Until = Callable[[Callable[[], bool], float], Awaitable[None]]


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def other_threads() -> int:
    return sum(1 for t in threading.enumerate() if not t.name.startswith("aiod-"))


def slot_data(slot: int) -> bytes:
    return bytes([slot % 251]) * (SLOT - 2) + slot.to_bytes(2, "little")


@dataclass
class Soak:
    rng: random.Random
    src: int  # read-only file of known content
    dst: int  # the file that writes go to
    socks: list[tuple[socket.socket, socket.socket]]
    source: bytes
    submitted: int = 0
    sent: list[int] = field(default_factory=lambda: [0] * SOCKETS)  # bytes written per pair
    got: list[int] = field(default_factory=lambda: [0] * SOCKETS)  # bytes read per pair
    written_slots: set[int] = field(default_factory=set)


def check_done(s: Soak, cb: Aiocb, kind: tuple[str, int]) -> None:
    """A finished job's outcome must match what it was."""
    what, n = kind
    if cb.error == errno.ECANCELED:
        assert cb.status == -1
        return
    assert cb.error == 0, (what, cb.error)
    if what == "fread":
        assert bytes(cb.buf[:cb.status]) == s.source[n:n + cb.status]
    elif what == "fwrite":
        assert cb.status == SLOT
        s.written_slots.add(n)
    elif what == "sread":
        assert cb.status >= 1
        assert bytes(cb.buf[:cb.status]) == bytes([n + 1]) * cb.status
        s.got[n] += cb.status
    elif what == "swrite":
        s.sent[n] += cb.status
    else:
        assert cb.status == 0


def make_job(s: Soak) -> tuple[Aiocb, tuple[str, int], str]:
    """A random job: (cb, what it is, how to submit it)."""
    rng = s.rng
    roll = rng.random()
    if roll < 0.35:
        off = rng.randrange(len(s.source) - 64)
        buf = bytearray(rng.choice((64, 512, 4096)))
        return Aiocb(s.src, buf, None, off), ("fread", off), "read"
    if roll < 0.65:
        slot = rng.randrange(SLOTS)
        return Aiocb(s.dst, slot_data(slot), None, slot * SLOT), ("fwrite", slot), "write"
    pair = rng.randrange(SOCKETS)
    if roll < 0.82:
        return Aiocb(s.socks[pair][1].fileno(), bytearray(rng.choice((1, 100, 2000)))), (
            "sread", pair), "read"
    if roll < 0.995:  # fsyncs: 0.5%, they wait for the disk
        data = bytes([pair + 1]) * rng.choice((1, 100, 3000))
        return Aiocb(s.socks[pair][0].fileno(), data), ("swrite", pair), "write"
    return Aiocb(s.dst), ("fsync", 0), "fsync"


Pending = list[tuple[Aiocb, tuple[str, int]]]


async def one_round(s: Soak, ctx: AioContext, jobs: int, pending: Pending,
                    until: Until) -> None:
    rng = s.rng
    tasks: list[asyncio.Task[int]] = []
    while jobs > 0:
        if rng.random() < 0.05:  # an lio batch of file jobs
            batch = [Aiocb(s.dst, slot_data(slot), None, slot * SLOT, lio_opcode=LIO_WRITE)
                     for slot in rng.sample(range(SLOTS), 4)]
            reads = [Aiocb(s.src, bytearray(256), None, off, lio_opcode=LIO_READ)
                     for off in rng.sample(range(len(s.source) - 256), 4)]
            await ctx.lio_listio(LIO_NOWAIT, [*batch, None, *reads])
            pending += [(cb, ("fwrite", cb.offset // SLOT)) for cb in batch]
            pending += [(cb, ("fread", cb.offset)) for cb in reads]
            jobs -= 8
            continue
        cb, kind, how = make_job(s)
        if how == "read":
            ctx.aio_read(cb)
        elif how == "write":
            ctx.aio_write(cb)
        else:
            ctx.aio_fsync(rng.choice((os.O_SYNC, os.O_DSYNC)), cb)
        pending.append((cb, kind))
        jobs -= 1
        roll = rng.random()
        if roll < 0.08:  # cancel this one (it may be done, running or queued)
            assert ctx.aio_cancel(cb.fildes, cb) in (AIO_CANCELED, AIO_NOTCANCELED, AIO_ALLDONE)
        elif roll < 0.09:  # cancel everything of ours on one socket
            fd = s.socks[rng.randrange(SOCKETS)][1].fileno()
            assert ctx.aio_cancel(fd) in (AIO_CANCELED, AIO_NOTCANCELED, AIO_ALLDONE)
        elif roll < 0.11:  # a task cancelled while awaiting the job
            task = asyncio.ensure_future(_await(cb))
            tasks.append(task)
            asyncio.get_running_loop().call_soon(task.cancel)
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            pass
        except OSError as exc:
            assert exc.errno == errno.ECANCELED
    if rng.random() < 0.2:
        return  # leave them all to the rundown: context churn with jobs in flight
    await until(lambda: settled(s, pending), 20)
    for cb, _ in pending:
        try:
            ctx.aio_return(cb)
        except OSError as exc:  # already reaped by its cancelled awaiting task
            assert exc.errno == errno.EINVAL


def settled(s: Soak, pending: Pending) -> bool:
    """Feed parked socket reads and make room for parked socket writes; True
    once every job of the round has finished."""
    waiting = [kind for cb, kind in pending if cb.error == errno.EINPROGRESS]
    for pair, (writer, _) in enumerate(s.socks):
        reads = waiting.count(("sread", pair))
        writes = waiting.count(("swrite", pair))
        if reads and not writes:
            try:
                s.sent[pair] += writer.send(bytes([pair + 1]) * reads, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
        elif writes and not reads:
            drain_one(s, pair)
    return not waiting


async def _await(cb: Aiocb) -> int:
    return await cb


def drain_one(s: Soak, pair: int) -> None:
    """Bytes written to a socket and not read by a job."""
    reader = s.socks[pair][1]
    try:
        while chunk := reader.recv(1 << 16, socket.MSG_DONTWAIT):
            assert chunk == bytes([pair + 1]) * len(chunk)
            s.got[pair] += len(chunk)
    except BlockingIOError:
        pass


async def run_jobs(s: Soak, total: int, until: Until) -> None:
    while total > 0:
        jobs = min(ROUND, total)
        pending: Pending = []
        async with AioContext(max_queued=2 * ROUND) as ctx:
            await one_round(s, ctx, jobs, pending, until)
        for cb, kind in pending:  # outcomes stay readable after reaping and rundown
            check_done(s, cb, kind)
        total -= jobs


async def test_soak_50000_mixed_jobs_with_cancels_and_context_churn(aio: Env) -> None:
    sysctl["vfs.aio.max_aio_queue"] = 8 * ROUND
    rng = random.Random(50_000)
    source = rng.randbytes(1 << 20)
    src = aio.file(source, name="src.bin", flags=os.O_RDONLY)
    dst = aio.file(b"", name="dst.bin")
    socks = [socket.socketpair() for _ in range(SOCKETS)]
    try:
        s = Soak(rng, src, dst, socks, source)
        await run_jobs(s, 2 * ROUND, aio.until)  # warm up: pool, ring, allocator arenas
        gc.collect()
        base_rss, base_fds, base_threads = rss(), open_fds(), other_threads()
        base_count = sysctl["vfs.aio.num_queue_count"]
        await run_jobs(s, JOBS, aio.until)
        for pair in range(SOCKETS):
            drain_one(s, pair)
        await aio.until(lambda: sysctl["vfs.aio.num_queue_count"] == base_count)
        gc.collect()
        grown = rss() - base_rss
        assert grown < RSS_LIMIT, f"RSS grew by {grown / 2**20:.1f} MiB"
        assert open_fds() == base_fds
        await aio.until(lambda: other_threads() == base_threads)
        # every byte sent over a pair was read, by a job or by the drain
        assert s.got == s.sent
        data = os.pread(dst, SLOTS * SLOT, 0)
        for slot in range(SLOTS):
            got = data[slot * SLOT:(slot + 1) * SLOT]
            assert got in (slot_data(slot), bytes(SLOT), b""), slot
        assert s.written_slots, "no write was checked"
        assert all(data[n * SLOT:(n + 1) * SLOT] == slot_data(n) for n in s.written_slots)
    finally:
        os.close(src)
        os.close(dst)
        for a, b in socks:
            a.close()
            b.close()
