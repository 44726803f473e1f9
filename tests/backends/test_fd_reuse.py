"""Every job on a closed and reused fd number finishes on its own file, in full
(docs/contract.md, rule 4): the job holds its own reference to the file it was submitted on."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from helpers import evict, rand

from aioposix import Aiocb, AioContext

if TYPE_CHECKING:
    from conftest import Env

SIZE, COUNT = 1 << 16, 16


async def test_writes_finish_in_full_on_the_file_they_were_submitted_on(aio: Env) -> None:
    blocks = [rand(SIZE, seed=i) for i in range(COUNT)]
    old, new = aio.tmp / "old.bin", aio.tmp / "new.bin"
    fd = os.open(old, os.O_RDWR | os.O_CREAT)
    async with AioContext(max_active=1) as ctx:
        cbs = [Aiocb(fd, block, None, i * SIZE) for i, block in enumerate(blocks)]
        for cb in cbs:
            ctx.aio_write(cb)
        os.close(fd)
        # while the number is closed: jobs still queued must run on their own dup
        assert await cbs[0] == SIZE
        reused = os.open(new, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        try:
            assert reused == fd
            later = Aiocb(reused, b"new", None, 0)  # a job on the new file, same number
            ctx.aio_write(later)
            assert [await cb for cb in cbs[1:]] == [SIZE] * (COUNT - 1)
            assert await later == 3
        finally:
            os.close(reused)
    assert old.read_bytes() == b"".join(blocks)
    assert new.read_bytes() == b"new"


async def test_reads_finish_in_full_on_the_file_they_were_submitted_on(aio: Env) -> None:
    data = rand(SIZE * COUNT, seed=5)
    old, new = aio.tmp / "old.bin", aio.tmp / "new.bin"
    old.write_bytes(data)
    new.write_bytes(b"\xff" * len(data))
    fd = os.open(old, os.O_RDONLY)
    os.fsync(fd)
    evict(fd)  # not in the page cache: the reads stay in flight
    async with AioContext(max_active=1) as ctx:
        cbs = [Aiocb(fd, bytearray(SIZE), None, i * SIZE) for i in range(COUNT)]
        for cb in cbs:
            ctx.aio_read(cb)
        os.close(fd)
        assert await cbs[0] == SIZE  # while the number is closed (see above)
        reused = os.open(new, os.O_RDONLY)
        try:
            assert reused == fd
            assert [await cb for cb in cbs[1:]] == [SIZE] * (COUNT - 1)
        finally:
            os.close(reused)
    assert b"".join(bytes(cb.buf) for cb in cbs) == data
