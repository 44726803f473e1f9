"""The ring reports every completion it reaped, even when one report fails.

CQEs leave the CQ before their callbacks run; a callback that raised used
to take the rest of that batch with it, and those jobs then waited forever
(nothing would announce them again).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from aioposix._backends.ring import Ring

if TYPE_CHECKING:
    from conftest import Env

OP_NOP = 0  # IORING_OP_NOP: completes at once with result 0


class Broken(Exception):
    pass


@pytest.mark.backends("io_uring")
async def test_a_failing_report_loses_no_other_completion(aio: Env) -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    ring = Ring(loop, entries=8)
    told: list[int] = []

    def on_done(token: int, result: int, err: int) -> None:
        told.append(token)
        if token == 2:
            raise Broken("a report that fails")

    try:
        for token in range(5):
            ring.submit_op(token, on_done, None, OP_NOP, -1)
        deadline = loop.time() + 10
        while len(told) < 5 and loop.time() < deadline:
            await asyncio.sleep(0.005)
        assert sorted(told) == [0, 1, 2, 3, 4]
        assert ring.inflight == 0
        assert [type(c.get("exception")) for c in errors] == [Broken]
    finally:
        loop.set_exception_handler(None)
        if ring.inflight == 0:  # (a lost completion would keep close() waiting forever)
            ring.close()
