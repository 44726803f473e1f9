"""The contract between a context and the backends that run its jobs.

vfs_aio.c hands a job to one of three runners (the socket queue, physio,
the daemons' job queue) and each reports back through ``aio_complete``;
cancelling asks the runner to give the job back if it has not started
(``aio_cancel_cleared``, the queue removal in ``aio_cancel``).  Here every
backend, whatever it runs on, keeps the same small promise:

- ``submit(jobs)`` takes a batch of jobs (one or more) in one hand-off;
  batching beyond that (one ``io_uring_enter`` per loop iteration, one
  wake-up per pool batch) is the backend's own business;
- ``take_back(job)`` tries to take a job back for cancelling, and says what
  happened (``TakeBack``);
- each job it finishes is reported once, on the context's loop thread,
  through the ``Finish`` callback it was given: ``(job, result, errno)``,
  result being the bytes moved (or 0 for a sync), -1 with an errno on
  failure.

The routes and outcomes are named in ``aioposix._core.states`` (``Route``,
``TakeBack``), shared by the routing decision (``aioposix._routing``), the
context and the backends; the record of a notification due later
(``Notice``) is here.  Nothing here imports a backend or the context: they
import this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from aioposix._core.peers import Batch
from aioposix._core.states import TakeBack

if TYPE_CHECKING:
    from aioposix._core.job import Aiocb
    from aioposix._core.sigevent import SigEvent


Finish = Callable[["Aiocb", int, int], None]
"""How a backend reports a finished job: ``finish(job, result, errno)``."""


class Backend(Protocol):
    """What every backend offers its context."""

    def submit(self, jobs: Sequence[Aiocb]) -> None:
        """Take these jobs (already counted, in flight, holding their fd) to run."""
        ...

    def take_back(self, cb: Aiocb) -> TakeBack:
        """Give ``cb`` back if it has not started; say what happened."""
        ...


class Notice(NamedTuple):
    """A finished job's notifications, snapshotted when it finished, for later.

    Reaping or reusing the Aiocb before they run changes nothing: the
    sigevent, the batch and the errno are those of that job, and ``gen``
    tells it from a later use of the same Aiocb.
    """

    cb: Aiocb
    gen: int
    sigevent: SigEvent | None
    batch: Batch | None
    error: int


