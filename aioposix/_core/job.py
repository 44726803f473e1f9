"""Aiocb: the user's control block, which also carries the kernel's job record.

In vfs_aio.c the kernel copies the user's ``struct aiocb`` into a
``struct kaiocb`` and keeps it on per-state lists (the job queue, the
running list, the done queue ...).  Here the job record lives in private
slots of the Aiocb itself: one object per request, no second allocation,
and every lookup by cb (aio_error, aio_return, aio_cancel, await) is a slot
read, O(1) whatever the number of jobs in flight.

What the kernel copies at submit (vfs_aio.c's copyin of the aiocb) is
snapshotted into ``_key``/``_off``/``_views``: changing cb.offset or cb.buf
after submitting does not change the running job, exactly like the C
interface.  A job waits and is reaped through its context's own methods
(``aioposix._core.peers.Owner``); this module knows nothing of contexts,
backends or batches beyond that contract.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from aioposix._core.constants import LIO_NOP
from aioposix._core.errors import einval
from aioposix._core.states import JobState, Route

_POOL = Route.POOL

if TYPE_CHECKING:
    import asyncio

    from aioposix._core.peers import Batch, Owner
    from aioposix._core.sigevent import SigEvent


IDLE = JobState.IDLE
WAITING = JobState.WAITING
QUEUED = JobState.QUEUED
RUNNING = JobState.RUNNING
PARKED = JobState.PARKED
KERNEL = JobState.KERNEL
DONE = JobState.DONE


class Aiocb:
    """A POSIX AIO control block (``struct aiocb``).

    Set the public attributes, submit it with one of the context calls, then
    ``await cb`` (or poll aio_error/aio_return, aio_suspend, a signal, a
    callback, a Kqueue or aio_waitcomplete).  ``error`` and ``status`` are
    read-only: EINPROGRESS/-1 while in flight, then the outcome.
    """

    __slots__ = (
        "_autoreap", "_bridge_key", "_ctx", "_error", "_fd", "_gen", "_key", "_lio", "_n", "_off",
        "_op", "_progress", "_route", "_sev", "_stat", "_state", "_status", "_views", "_waiter",
        "buf", "fildes", "iov", "lio_opcode", "nbytes", "offset", "reqprio", "sigevent",
    )

    def __init__(self, fildes: int, buf: Any = None, nbytes: int | None = None,
                 offset: int = 0, *, lio_opcode: int = LIO_NOP,
                 sigevent: SigEvent | None = None, reqprio: int = 0,
                 iov: Sequence[Any] | None = None) -> None:
        self.fildes = fildes
        self.buf = buf
        if nbytes is None and buf is not None:
            nbytes = _byte_length(buf)
        self.nbytes = nbytes
        self.offset = offset
        self.lio_opcode = lio_opcode
        self.sigevent = sigevent
        self.reqprio = reqprio
        self.iov = iov
        self._error = 0
        self._status = -1
        self._state = IDLE
        self._ctx: Owner | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._lio: Batch | None = None
        self._autoreap = False
        self._views: list[Any] | None = None  # the job's buffers, as snapshotted
        self._fd = -1
        self._off = 0
        self._n = 0
        self._op = LIO_NOP
        self._progress = 0
        self._gen = 0  # how many times this cb was reaped: tells a job from its reuse
        self._route = _POOL  # where the slow path sent it
        self._key = -1  # the fd number at submit: the context's {fd: jobs} key
        self._sev: SigEvent | None = None  # the sigevent as submitted
        self._bridge_key: tuple[int, int, int, bool] | None = None
        self._stat: os.stat_result | None = None  # the fd's fstat, from routing to hand-off

    @property
    def error(self) -> int:
        """EINPROGRESS while in flight, then 0 or the errno of the job."""
        return self._error

    @property
    def status(self) -> int:
        """-1 until done, then the bytes moved (-1 when the job failed)."""
        return self._status

    @property
    def state(self) -> JobState:
        """Where the job is now (IDLE before submit and after reaping)."""
        return self._state

    def __await__(self) -> Generator[Any, None, int]:
        """Wait for the job, reap it (as aio_return) and return the count.

        Raises OSError(error) for a failed or cancelled job.  A task
        cancelled while waiting cancels the job if it is still queued;
        otherwise the job runs on and reaps itself when done.
        """
        ctx = self._ctx
        if ctx is None:
            raise einval("the aiocb is not in flight (never submitted, or already reaped)")
        return ctx.await_job(self)

    def __repr__(self) -> str:
        return (f"<Aiocb fd={self.fildes} op={self._op} offset={self.offset} "
                f"nbytes={self.nbytes} {self._state.value} error={self._error} "
                f"status={self._status}>")


def _byte_length(buf: Any) -> int:
    if type(buf) is bytearray or type(buf) is bytes:
        return len(buf)
    try:
        with memoryview(buf) as view:
            return view.nbytes
    except TypeError:
        return 0  # not a buffer: submit refuses it with EFAULT
