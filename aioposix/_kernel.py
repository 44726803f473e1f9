"""The process-wide kernel: tunables, global counters, the daemon pool.

vfs_aio.c keeps globals shared by every process: ``num_queue_count``
(jobs outstanding system-wide, capped by ``max_aio_queue``),
``num_buf_aio``, the daemon lists and ``jobrefid``.  Here they belong to one
``Kernel`` object per process, shared by every event loop in every thread.
The job counters are deques of tokens, changed by single atomic calls (see
reserve()); the pool has its own lock.

After ``os.fork()`` the child gets a fresh kernel state: no workers, no
jobs, no default contexts (rule 26).  Contexts created before the fork are
closed in the child, and per-loop state made by the parent is ignored.
"""

from __future__ import annotations

import errno
import os
import weakref
from collections import deque
from typing import TYPE_CHECKING

from . import _backend, _loopdata, _uring
from ._daemon import DaemonPool
from ._reaper import REAPER
from ._tunables import Sysctl, Value

if TYPE_CHECKING:

    from ._context import AioContext


class Kernel:
    def __init__(self) -> None:
        self.sysctl = Sysctl(self._counters, self._changed)
        self.max_aio_queue = self.sysctl.get_int("vfs.aio.max_aio_queue")  # read per job
        self.pool = DaemonPool(self.sysctl)
        self.tokens: deque[None] = deque()  # one per job submitted and not reaped
        self.buf_tokens: deque[None] = deque()  # one per kernel-submitted job in flight
        self.contexts: weakref.WeakSet[AioContext] = weakref.WeakSet()  # every live context

    def _counters(self) -> dict[str, Value]:
        return {
            "vfs.aio.backend_active": self.backend(),
            "vfs.aio.io_uring": _backend.uring_status(),
            "vfs.aio.num_aio_procs": self.pool.num_procs,
            "vfs.aio.num_queue_count": self.num_queue_count,
            "vfs.aio.num_buf_aio": len(self.buf_tokens),
        }

    def _changed(self) -> None:
        self.max_aio_queue = self.sysctl.get_int("vfs.aio.max_aio_queue")

    def backend(self) -> str:
        """'threads' or 'io_uring': what new contexts use for file jobs."""
        setting = self.sysctl["vfs.aio.backend"]
        assert isinstance(setting, str)
        return _backend.active(setting)

    # num_queue_count is the length of a deque of tokens.  deque.append and
    # deque.pop are single C calls, atomic under the GIL, so loops in many
    # threads count jobs without taking a lock on the per-job path.  reserve()
    # appends first and checks after: two submitters racing at the limit may
    # both be refused, but the total never goes over max_aio_queue.

    @property
    def num_queue_count(self) -> int:
        return len(self.tokens)

    def reserve(self) -> None:
        """Count one new job against max_aio_queue, or raise EAGAIN."""
        tokens = self.tokens
        tokens.append(None)
        if len(tokens) > self.max_aio_queue:
            tokens.pop()
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable: "
                                  "vfs.aio.max_aio_queue jobs are outstanding")

    def after_fork_in_child(self) -> None:
        self.tokens.clear()
        self.buf_tokens.clear()
        _uring.after_fork_in_child()
        _loopdata.after_fork_in_child()
        self.pool.after_fork_in_child()
        REAPER.after_fork_in_child()
        for ctx in list(self.contexts):
            ctx._forget_after_fork()


KERNEL = Kernel()
sysctl = KERNEL.sysctl

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=KERNEL.after_fork_in_child)
