"""The process-wide kernel: tunables, global counters, the daemon pool.

vfs_aio.c keeps globals shared by every process: ``num_queue_count``
(jobs outstanding system-wide, capped by ``max_aio_queue``),
``num_buf_aio``, the daemon lists and ``jobrefid``.  Here they belong to one
``Kernel`` object per process, shared by every event loop in every thread,
and guarded by one lock for the counters (the pool has its own).

After ``os.fork()`` the child gets a fresh kernel state: no workers, no
jobs, no default contexts (rule 26).  Contexts created before the fork are
marked stale by the generation number and refuse new work in the child.
"""

from __future__ import annotations

import errno
import os
import threading
import weakref
from typing import TYPE_CHECKING

from ._daemon import DaemonPool
from ._tunables import Sysctl

if TYPE_CHECKING:
    import asyncio

    from ._context import AioContext


class Kernel:
    def __init__(self) -> None:
        self.sysctl = Sysctl(self._counters)
        self.pool = DaemonPool(self.sysctl)
        self.lock = threading.Lock()
        self.generation = 0
        self.num_queue_count = 0  # jobs submitted and not reaped, every context
        self.num_buf_aio = 0  # jobs in io_uring, every context
        # {loop: its default AioContext}
        self.defaults: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AioContext] = (
            weakref.WeakKeyDictionary())
        self.contexts: weakref.WeakSet[AioContext] = weakref.WeakSet()  # every live context

    def _counters(self) -> dict[str, int]:
        return {
            "vfs.aio.num_aio_procs": self.pool.num_procs,
            "vfs.aio.num_queue_count": self.num_queue_count,
            "vfs.aio.num_buf_aio": self.num_buf_aio,
        }

    def reserve(self, count: int = 1) -> None:
        """Count ``count`` new jobs against max_aio_queue, or raise EAGAIN."""
        limit = self.sysctl.get_int("vfs.aio.max_aio_queue")
        with self.lock:
            if self.num_queue_count + count > limit:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable: "
                                      "vfs.aio.max_aio_queue jobs are outstanding")
            self.num_queue_count += count

    def release(self, count: int = 1) -> None:
        with self.lock:
            self.num_queue_count -= count

    def after_fork_in_child(self) -> None:
        self.lock = threading.Lock()
        self.generation += 1
        self.num_queue_count = 0
        self.num_buf_aio = 0
        self.defaults = weakref.WeakKeyDictionary()
        self.pool.after_fork_in_child()
        for ctx in list(self.contexts):
            ctx._forget_after_fork()


KERNEL = Kernel()
sysctl = KERNEL.sysctl

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=KERNEL.after_fork_in_child)
