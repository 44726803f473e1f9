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

The routes a job may take are named here too (``Route``), so that the
routing decision (``aioposix._routing``), the context and the backends
share one vocabulary, and the record of a notification due later
(``Notice``).  Nothing here imports a backend or the context: they import
this.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from aioposix._core.job import Aiocb
    from aioposix._core.sigevent import SigEvent


class Route(enum.Enum):
    """Where a job runs (decided once, by ``aioposix._routing.route``)."""

    INLINE = "inline"  # on the loop thread now, with RWF_NOWAIT (a page-cache hit)
    BRIDGE = "bridge"  # the readiness bridge: sockets, pipes, FIFOs, ttys
    RING = "ring"  # io_uring, as the backend of regular files
    DIRECT = "direct"  # io_uring, as the kernel path of O_DIRECT files and disks (max_buf)
    POOL = "pool"  # the worker daemons


class TakeBack(enum.Enum):
    """What ``Backend.take_back`` did with a job it was asked to give back."""

    TAKEN = "taken"  # it never started: the caller ends it with ECANCELED
    STARTED = "started"  # it is running (on a worker, in the kernel): it ends on its own
    ENDED_SHORT = "ended short"  # a write that had moved bytes: the backend ended it with them


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


class Batch(Protocol):
    """An lio_listio batch as a job sees it: told once when the job is done."""

    def job_done(self, error: int) -> None: ...


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


class EventQueue(Protocol):
    """A Kqueue as a sigevent and a context see it (``aioposix._notify.kqueue``)."""

    @property
    def closed(self) -> bool: ...

    def _post(self, ident: object, kfilter: int, flags: int, data: int, udata: object,
              gen: int = 0) -> None: ...

    def _keep_once(self, cb: object, gen: int) -> None: ...


class Owner(Protocol):
    """The context as its jobs see it: a job waits and is reaped through these."""

    def await_job(self, cb: Aiocb) -> Generator[Any, None, int]:
        """The generator behind ``await cb``."""
        ...
