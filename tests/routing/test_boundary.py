"""A read across the cached/uncached boundary (docs/contract.md, rule 15 and 17).

The file's first half is in the page cache and its second half is not: with
inline on, the read's RWF_NOWAIT attempt moves the first half and the slow
path (the worker daemons or the ring) must add the rest to it, at the right
offset, into the right part of the buffer.  Every backend runs it; on the
backends without inline the whole read takes the slow path, and must come
back the same.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from helpers import cache_only, rand

from aioposix import LIO_NOWAIT, LIO_READ, Aiocb, AioContext

if TYPE_CHECKING:
    from conftest import Env

SIZE = 1 << 18  # 256 KiB: the first half cached, the second not
HALF = SIZE // 2
DATA = rand(SIZE, seed=14)
TRIES = 20  # setups tried until the read really was split (see split_read)


@pytest.fixture
def synced(aio: Env) -> Iterator[int]:
    """An fd on a file holding DATA, written back, so that eviction works."""
    fd = aio.file(DATA, name="boundary.bin")
    os.fsync(fd)
    yield fd
    os.close(fd)


def submit_read(ctx: AioContext, fd: int, how: str) -> Aiocb:
    """A read of the whole file, submitted ``how``: through the fast aio_read, the
    general aio_readv (an iov not split at the boundary), or an lio_listio entry."""
    if how == "aio_read":
        cb = Aiocb(fd, bytearray(SIZE))
        ctx.aio_read(cb)
    elif how == "aio_readv":
        cb = Aiocb(fd, iov=[bytearray(1000), bytearray(HALF), bytearray(SIZE - HALF - 1000)])
        ctx.aio_readv(cb)
    else:
        cb = Aiocb(fd, bytearray(SIZE), lio_opcode=LIO_READ)
    return cb


def got(cb: Aiocb) -> bytes:
    if cb.iov is not None:
        return b"".join(bytes(b) for b in cb.iov)
    return bytes(cb.buf)


async def split_read(aio: Env, ctx: AioContext, fd: int, how: str,
                     check: Callable[[Aiocb], None]) -> None:
    """Read the half-cached file and check the result; with inline on, until a read
    has left its submit call in flight (the uncached half can be read back in the
    meantime, by readahead, making the whole read a page-cache hit)."""
    for _ in range(TRIES):
        cache_only(fd, HALF)
        cb = submit_read(ctx, fd, how)
        if how == "lio_listio":
            await ctx.lio_listio(LIO_NOWAIT, [cb])
        went_on = cb.error == errno.EINPROGRESS
        await ctx.aio_suspend([cb], 10)
        check(cb)
        if went_on or not aio.inline:
            return
    raise AssertionError(f"no read in {TRIES} left its submit call in flight")


@pytest.mark.parametrize("how", ["aio_read", "aio_readv", "lio_listio"])
async def test_read_across_the_cached_boundary_gets_every_byte(aio: Env, synced: int,
                                                               how: str) -> None:
    async with AioContext() as ctx:
        def check(cb: Aiocb) -> None:
            assert ctx.aio_error(cb) == 0
            assert ctx.aio_return(cb) == SIZE
            data = got(cb)
            assert data[:HALF] == DATA[:HALF]
            assert data[HALF:] == DATA[HALF:]

        await split_read(aio, ctx, synced, how, check)


async def test_read_across_the_boundary_and_past_eof_is_short(aio: Env, synced: int) -> None:
    """The uncached rest ends at EOF: the count is what the file holds, cached part
    included."""
    async with AioContext() as ctx:
        for _ in range(TRIES):
            cache_only(synced, HALF)
            cb = Aiocb(synced, bytearray(SIZE + 4096), offset=1000)
            ctx.aio_read(cb)
            went_on = cb.error == errno.EINPROGRESS
            assert await cb == SIZE - 1000
            assert bytes(cb.buf[:SIZE - 1000]) == DATA[1000:]
            assert bytes(cb.buf[SIZE - 1000:]) == bytes(4096 + 1000)
            if went_on or not aio.inline:
                return
        raise AssertionError(f"no read in {TRIES} left its submit call in flight")
