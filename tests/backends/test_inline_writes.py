"""Buffered writes served inline (docs/io_uring.md, "Buffered writes").

A positioned write to a regular file is tried on the loop thread, with
RWF_NOWAIT where the filesystem takes it, else with a plain write while
those stay quick.  Whatever way it goes, every byte must land where it was
asked to, and nothing may be made inline that must wait its turn (O_APPEND,
or an fd with jobs of the context in flight).
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

import pytest
from helpers import rand

from aioposix import Aiocb, AioContext

if TYPE_CHECKING:
    from conftest import Env

SIZES = (1, 4096, 65536, 256 * 1024, 256 * 1024 + 1, 1 << 20)


@pytest.mark.parametrize("size", SIZES)
async def test_writes_land_in_full_whatever_the_way(aio: Env, size: int) -> None:
    fd = aio.file(b"")
    try:
        async with AioContext() as ctx:
            jobs = []
            for i, kind in enumerate((bytes, bytearray, memoryview)):
                data = rand(size, seed=i)
                buf = kind(data) if kind is not memoryview else memoryview(bytearray(data))
                cb = Aiocb(fd, buf, offset=i * size + 7)
                ctx.aio_write(cb)
                jobs.append((cb, data))
            for cb, _ in jobs:
                assert await cb == size
        whole = os.pread(fd, 3 * size + 7, 0)
        assert whole[:7] == bytes(7)
        for i, (_, data) in enumerate(jobs):
            assert whole[i * size + 7:(i + 1) * size + 7] == data
    finally:
        os.close(fd)


@pytest.mark.backends("inline", "io_uring+inline")
async def test_a_small_write_in_a_fresh_context_is_done_at_submit(aio: Env) -> None:
    fd = aio.file(rand(8192))
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, b"x" * 4096, offset=4096)
            ctx.aio_write(cb)
            assert cb.error == 0 and cb.status == 4096  # no hand-off: done in the call
            assert await cb == 4096
        assert os.pread(fd, 4096, 4096) == b"x" * 4096
    finally:
        os.close(fd)


@pytest.mark.backends("pool", "io_uring")
async def test_with_inline_off_no_write_is_made_in_the_submit_call(aio: Env) -> None:
    fd = aio.file(rand(8192))
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, b"y" * 512, offset=0)
            ctx.aio_write(cb)
            assert cb.error == errno.EINPROGRESS  # the backend has it
            assert await cb == 512
        assert os.pread(fd, 512, 0) == b"y" * 512
    finally:
        os.close(fd)


async def test_append_writes_are_never_made_ahead_of_their_turn(aio: Env) -> None:
    path = aio.tmp / "log.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        async with AioContext() as ctx:
            jobs = [Aiocb(fd, bytes([65 + i]) * 100) for i in range(20)]
            for cb in jobs:
                ctx.aio_write(cb)
            for cb in jobs[1:]:
                assert cb.error == errno.EINPROGRESS  # behind the first: they wait their turn
            for cb in jobs:
                assert await cb == 100
        assert path.read_bytes() == b"".join(bytes([65 + i]) * 100 for i in range(20))
    finally:
        os.close(fd)
