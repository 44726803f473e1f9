"""What a job knows of the objects around it: its context, its batch, a kqueue.

A job (``aioposix._core.job``) is waited for and reaped through its
context, counts itself out of its lio_listio batch, and a sigevent names
the kqueue that gets its event.  These protocols say just that much, so
that the job and the sigevent import neither the context, nor the batch,
nor the kqueue (the layers above them).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio


class Batch(Protocol):
    """An lio_listio batch as a job sees it: told once when the job is done."""

    def job_done(self, error: int) -> None: ...


class EventQueue(Protocol):
    """A Kqueue as a sigevent and a context see it (``aioposix._notify.kqueue``)."""

    @property
    def closed(self) -> bool: ...

    def _post(self, loop: asyncio.AbstractEventLoop, ident: object, kfilter: int, flags: int,
              data: int, udata: object, gen: int = 0) -> None: ...

    def _keep_once(self, cb: object, gen: int) -> None: ...


class Owner(Protocol):
    """The context as its jobs see it: a job waits and is reaped through these."""

    def await_job(self, cb: Any) -> Generator[Any, None, int]:
        """The generator behind ``await cb``."""
        ...
