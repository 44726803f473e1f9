"""lio_listio batches (vfs_aio.c's ``struct aio_liojob``).

A batch counts its entries still in flight.  Like modern FreeBSD it starts
with one extra count, a guard held while the entries are being queued, so
nothing fires before every entry is in; releasing the guard of an empty
list fires at once (FreeBSD bug 220398, where an empty LIO_NOWAIT list never
notified, does not happen here).  The one notification for the batch is
delivered on the loop thread: an EVFILT_LIO event whose ident is the user's
list object, a signal, or a callback; LIO_WAIT callers wait on a future.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aioposix._core.constants import EVFILT_LIO
from aioposix._notify.sigevent import deliver

if TYPE_CHECKING:
    import asyncio

    from aioposix._core.job import Aiocb
    from aioposix._core.sigevent import SigEvent


class LioBatch:
    __slots__ = ("cbs", "failed", "loop", "pending", "sigevent", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, cbs: Sequence[Aiocb | None],
                 sigevent: SigEvent | None, wait: bool) -> None:
        self.loop = loop
        self.cbs = cbs
        self.sigevent = sigevent
        self.pending = 1  # the guard, released by arm()
        self.failed = False  # an entry failed to queue or completed with an error
        self.waiter: asyncio.Future[None] | None = loop.create_future() if wait else None

    def add(self, cb: Aiocb) -> None:
        self.pending += 1
        cb._lio = self

    def arm(self) -> None:
        """Every entry is queued: release the guard."""
        self.job_done(0)

    def job_done(self, error: int) -> None:
        if error:
            self.failed = True
        self.pending -= 1
        if self.pending == 0:
            self.loop.call_soon(self._fire)

    def _fire(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        if self.sigevent is not None:
            deliver(self.sigevent, self.loop, self.cbs, 0, EVFILT_LIO)

    def __repr__(self) -> str:
        return f"<LioBatch entries={len(self.cbs)} pending={self.pending} failed={self.failed}>"
