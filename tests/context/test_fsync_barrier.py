"""aio_fsync waits for every earlier job on its fd (docs/contract.md, rule 18).

The earlier job is a write to a full pipe: it stays parked until the test
drains the pipe, so the fsync behind it must stay EINPROGRESS that long, on
every backend; then the write finishes first and the fsync after it (fsync
of a pipe fails with EINVAL, as the kernel says).
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

import pytest

from aioposix import SIGEV_THREAD, Aiocb, AioContext, SigEvent

if TYPE_CHECKING:
    from conftest import Env


@pytest.mark.parametrize("op", [os.O_SYNC, os.O_DSYNC], ids=["sync", "dsync"])
async def test_fsync_stays_in_progress_until_the_earlier_write_completes(
        aio: Env, pipe: tuple[int, int], op: int) -> None:
    r, w = pipe
    order: list[str] = []
    payload = b"x" * (1 << 20)  # more than a pipe holds: the write parks
    async with AioContext() as ctx:
        write = Aiocb(w, payload, sigevent=SigEvent(SIGEV_THREAD, function=order.append,
                                                    value="write"))
        sync = Aiocb(w, sigevent=SigEvent(SIGEV_THREAD, function=order.append, value="fsync"))
        ctx.aio_write(write)
        ctx.aio_fsync(op, sync)
        with pytest.raises(BlockingIOError):  # deadline-bounded: nothing may finish
            await ctx.aio_suspend([sync], 0.2)
        assert ctx.aio_error(write) == errno.EINPROGRESS
        assert ctx.aio_error(sync) == errno.EINPROGRESS
        os.set_blocking(r, False)
        got = bytearray()

        def drained() -> bool:
            try:
                got.extend(os.read(r, 1 << 20))
            except BlockingIOError:
                pass
            return ctx.aio_error(sync) != errno.EINPROGRESS

        await aio.until(drained)
        assert await write == len(payload)
        assert bytes(got) == payload
        assert ctx.aio_error(sync) == errno.EINVAL  # fsync(2) of a pipe
        assert ctx.aio_return(sync) == -1
        await aio.until(lambda: len(order) == 2)
        assert order == ["write", "fsync"]
