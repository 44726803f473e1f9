"""Admission: the one place where a job is counted against its quotas.

vfs_aio.c's aio_aqueue refuses a job with EAGAIN when the process already
has ``max_aio_queue_per_proc`` jobs (``kaio_count``) or the system
``max_aio_queue`` (``num_queue_count``); otherwise it counts the job in
both and marks it in progress.  ``Quota.admit`` does exactly that, for
every submit, fast or general; ``release`` gives both counts back when the
job is reaped or freed.  Changing a quota rule is a change here only.

The system-wide count is a deque of tokens in the kernel: ``append`` and
``pop`` are single C calls, atomic under the GIL, so loops in many threads
count jobs without a lock.  ``admit`` appends first and checks after: two
submitters racing at the limit may both be refused, but the total never
goes over ``max_aio_queue``.

The third quota, ``max_buf`` (vfs_aio.c's ``max_buf_aio``, jobs in the
kernel path), is counted by that path's backend, which owns those jobs
(``aioposix._backends.ring.RingPort``).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from aioposix._core.errors import error
from aioposix._core.job import WAITING
from aioposix._kernel.kernel import KERNEL

if TYPE_CHECKING:
    from aioposix._core.job import Aiocb
    from aioposix._core.peers import Owner

_EINPROGRESS = errno.EINPROGRESS


class Quota:
    """One context's count of jobs accepted and not yet reaped, and its limit."""

    __slots__ = ("count", "max_queued", "tokens")

    def __init__(self, max_queued: int) -> None:
        self.max_queued = max_queued
        self.count = 0  # jobs accepted and not yet reaped (kaio_count)
        self.tokens = KERNEL.tokens  # the system-wide count (the same deque, fork or not)

    def admit(self, cb: Aiocb, owner: Owner) -> None:
        """Count ``cb`` against both quotas (EAGAIN past either) and mark it in flight."""
        if self.count >= self.max_queued:
            raise error(errno.EAGAIN, f"the context has {self.count} jobs not yet reaped "
                                      f"(max_queued={self.max_queued})")
        tokens = self.tokens
        tokens.append(None)
        if len(tokens) > KERNEL.max_aio_queue:
            tokens.pop()
            raise error(errno.EAGAIN, "vfs.aio.max_aio_queue jobs are outstanding")
        self.count += 1
        cb._ctx = owner
        cb._error, cb._status, cb._state = _EINPROGRESS, -1, WAITING

    def release(self) -> None:
        """A job was reaped or freed: give its places back."""
        self.count -= 1
        self.tokens.pop()

    def release_all(self) -> None:
        """Every job was freed at once (a context dropped with its loop)."""
        pop = self.tokens.pop
        for _ in range(self.count):
            pop()
        self.count = 0
