"""Data integrity at scale: many writers, every byte checked afterwards.

``test_random_non_overlapping_writes_from_four_contexts_on_two_threads``
writes 100,000 512-byte slots (AIOPOSIX_INTEGRITY_JOBS overrides the number)
of one sparse 50 MiB file in random order, from 4 contexts on 2 threads (each
thread runs its own event loop with 2 contexts), then reads the whole file
back and compares every byte.  It takes about 2-8 s per backend here.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from typing import TYPE_CHECKING

from helpers import run_on

from aioposix import LIO_NOWAIT, LIO_WRITE, Aiocb, AioContext, sysctl

if TYPE_CHECKING:
    from conftest import Env

SLOT = 512
JOBS = int(os.environ.get("AIOPOSIX_INTEGRITY_JOBS", "100000"))
WINDOW = 128  # jobs in flight per context


def slot_data(slot: int) -> bytes:
    """512 bytes that say which slot they belong to (a misplaced slot shows)."""
    return (slot.to_bytes(4, "little") * (SLOT // 4 - 1)) + (slot ^ 0x5A5A5A5A).to_bytes(
        4, "little")


async def _write_slots(ctx: AioContext, fd: int, slots: list[int]) -> int:
    """Keep WINDOW writes in flight until every slot is written; returns bytes written."""
    written = 0
    inflight: list[Aiocb] = []
    for slot in slots:
        cb = Aiocb(fd, slot_data(slot), None, slot * SLOT)
        ctx.aio_write(cb)
        inflight.append(cb)
        if len(inflight) >= WINDOW:
            written += sum([await cb for cb in inflight])
            inflight = []
    return written + sum([await cb for cb in inflight])


async def _thread_main(fd: int, parts: list[list[int]]) -> list[int]:
    async with AioContext() as a, AioContext() as b:
        return list(await asyncio.gather(_write_slots(a, fd, parts[0]),
                                         _write_slots(b, fd, parts[1])))


def _run(loop: str, fd: int, parts: list[list[int]], results: dict[int, object],
         n: int) -> None:
    try:
        results[n] = run_on(loop, _thread_main(fd, parts))
    except BaseException as exc:
        results[n] = exc


async def test_random_non_overlapping_writes_from_four_contexts_on_two_threads(
        aio: Env) -> None:
    slots = list(range(JOBS))
    random.Random(20240601).shuffle(slots)
    parts = [slots[i::4] for i in range(4)]
    baseline = sysctl["vfs.aio.num_queue_count"]
    fd = aio.file(b"", name="sparse.bin")
    try:
        os.ftruncate(fd, JOBS * SLOT)  # sparse: every slot reads as zeros until written
        results: dict[int, object] = {}
        threads = [threading.Thread(target=_run, args=(aio.loop, fd, parts[2 * n:2 * n + 2],
                                                       results, n)) for n in range(2)]
        for t in threads:
            t.start()
        await aio.until(lambda: not any(t.is_alive() for t in threads), 55)
        for n in range(2):
            if isinstance(results[n], BaseException):
                raise results[n]  # type: ignore[misc]
        assert results == {n: [len(parts[2 * n]) * SLOT, len(parts[2 * n + 1]) * SLOT]
                           for n in range(2)}
        assert os.fstat(fd).st_size == JOBS * SLOT
        chunk = 4096  # slots per comparison
        for first in range(0, JOBS, chunk):
            last = min(first + chunk, JOBS)
            got = os.pread(fd, (last - first) * SLOT, first * SLOT)
            want = b"".join(slot_data(s) for s in range(first, last))
            if got != want:
                bad = next(s for s in range(first, last)
                           if got[(s - first) * SLOT:(s - first + 1) * SLOT] != slot_data(s))
                raise AssertionError(f"slot {bad} holds the wrong bytes")
        assert sysctl["vfs.aio.num_queue_count"] == baseline
    finally:
        os.close(fd)


async def test_1000_o_append_writes_land_in_submission_order(aio: Env) -> None:
    """Appends of assorted sizes, all in flight at once through single submits,
    lio batches and gathers, awaited in reverse: the file is their
    concatenation in submission order."""
    count = 1000
    payloads = [f"<{i:04d}:".encode() + bytes([97 + i % 26]) * ((i * 131) % 900) + b">"
                for i in range(count)]
    fd = aio.file(b"head|", flags=os.O_RDWR | os.O_APPEND)
    try:
        async with AioContext(max_queued=count) as ctx:
            sysctl["vfs.aio.max_aio_queue"] = 4 * count
            cbs: list[Aiocb] = []
            i = 0
            while i < count:
                kind = i % 3
                if kind == 0:  # a batch of up to 10
                    batch = [Aiocb(fd, p, lio_opcode=LIO_WRITE) for p in payloads[i:i + 10]]
                    await ctx.lio_listio(LIO_NOWAIT, batch)
                    cbs.extend(batch)
                    i += len(batch)
                elif kind == 1:  # a gather of two halves
                    half = len(payloads[i]) // 2
                    cb = Aiocb(fd, iov=[payloads[i][:half], bytearray(payloads[i][half:])])
                    ctx.aio_writev(cb)
                    cbs.append(cb)
                    i += 1
                else:
                    cb = Aiocb(fd, payloads[i], None, 12345)  # the offset is ignored
                    ctx.aio_write(cb)
                    cbs.append(cb)
                    i += 1
            assert len(cbs) == count
            statuses = [await cb for cb in reversed(cbs)][::-1]
        assert statuses == [len(p) for p in payloads]
        assert os.pread(fd, 1 << 21, 0) == b"head|" + b"".join(payloads)
    finally:
        os.close(fd)
