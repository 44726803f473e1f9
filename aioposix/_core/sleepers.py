"""Sleepers: tasks waiting for "something happened" with a deadline.

aio_suspend, aio_waitcomplete, a rundown and Kqueue.control all sleep the
same way (vfs_aio.c's tsleep on the kaioinfo or the kqueue): a future in a
list, woken all together by the next event, or expired by a timer.
"""

from __future__ import annotations

import asyncio


class Sleepers:
    """The tasks waiting for the next event of one object."""

    __slots__ = ("_futures",)

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[bool]] = []

    def __bool__(self) -> bool:
        return bool(self._futures)

    @property
    def waiting(self) -> list[asyncio.Future[bool]]:
        """The futures of the tasks asleep now (a list: its truth is a C-level test)."""
        return self._futures

    async def sleep(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> bool:
        """Wait for the next wake(); False once ``deadline`` (loop time) has passed."""
        if deadline is not None and loop.time() >= deadline:
            return False
        fut: asyncio.Future[bool] = loop.create_future()
        self._futures.append(fut)
        timer = None if deadline is None else loop.call_at(deadline, _expire, fut)
        try:
            return await fut
        finally:  # the undo: no timer and no stale future left behind (also on cancel)
            if timer is not None:
                timer.cancel()
            if fut in self._futures:
                self._futures.remove(fut)

    def wake(self) -> None:
        if not self._futures:
            return
        futures = self._futures[:]
        self._futures.clear()  # (the same list: ``waiting`` stays the one to test)
        for fut in futures:
            if not fut.done():
                fut.set_result(True)


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)
