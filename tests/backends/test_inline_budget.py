"""A task awaiting many inline completions still lets the loop run (docs/contract.md, rule 1).

Awaiting a job done at submit does not suspend the task; the inline budget
makes such awaits yield once in a while.  A self-rescheduling timer counts the
loop iterations while a task awaits ten thousand cached reads: it must keep
firing (progress, not timing: it is counted, never timed).
"""

from __future__ import annotations

import asyncio
import errno
import os
from typing import TYPE_CHECKING

import pytest
from helpers import rand

from aioposix import Aiocb, AioContext

if TYPE_CHECKING:
    from conftest import Env

AWAITS = 10_000


@pytest.mark.backends("inline", "io_uring+inline")  # the backends that serve hits inline
async def test_a_timer_keeps_running_during_ten_thousand_inline_awaits(aio: Env) -> None:
    data = rand(4096, seed=3)
    fd = aio.file(data)
    loop = asyncio.get_running_loop()
    ticks = [0]

    def tick() -> None:
        ticks[0] += 1
        handle[0] = loop.call_later(0, tick)

    handle = [loop.call_later(0, tick)]
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, bytearray(512))
            ctx.aio_read(cb)
            await cb  # the context is bound: the fast path serves the rest
            start, inline = ticks[0], 0
            for i in range(AWAITS):
                cb = Aiocb(fd, bytearray(512), offset=(i % 8) * 512)
                ctx.aio_read(cb)
                inline += cb.error != errno.EINPROGRESS
                assert await cb == 512
                assert cb.buf == data[(i % 8) * 512:(i % 8 + 1) * 512]
            during = ticks[0] - start
        assert inline == AWAITS  # every one was done at submit
        assert during >= 10, f"the timer fired {during} times during {AWAITS} awaits"
    finally:
        handle[0].cancel()
        os.close(fd)
