"""The process-wide kernel: tunables, global counters, the hooks of its backends.

vfs_aio.c keeps globals shared by every process: ``num_queue_count``
(jobs outstanding system-wide, capped by ``max_aio_queue``),
``num_buf_aio``, the daemon lists and ``jobrefid``.  Here they belong to one
``Kernel`` object per process, shared by every event loop in every thread.
The job counters are deques of tokens, changed by single atomic calls (see
``aioposix._kernel.quotas``).

The kernel does not import its backends: each one, when it is imported,
hands the kernel what the kernel must know of it (``install``): the daemon
pool its thread count, the ring its availability probe, and each of them
what to reset in a forked child.

After ``os.fork()`` the child gets a fresh kernel state: no workers, no
jobs, no default contexts (docs/contract.md, rule 26).  Contexts created
before the fork are closed in the child, and per-loop state made by the
parent is ignored.
"""

from __future__ import annotations

import os
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from aioposix._core import loopdata
from aioposix._kernel import backend
from aioposix._kernel.reaper import REAPER
from aioposix._kernel.tunables import Sysctl, Value

if TYPE_CHECKING:
    from weakref import WeakSet


class Workers(Protocol):
    """The daemon pool as the kernel sees it."""

    @property
    def num_procs(self) -> int: ...


class ForkAware(Protocol):
    """A context as the kernel sees it: forgotten in a forked child."""

    def _forget_after_fork(self) -> None: ...


def _no_ring() -> str:
    return "no io_uring backend is loaded"


class _NoWorkers:
    num_procs = 0


class Kernel:
    def __init__(self) -> None:
        self.sysctl = Sysctl(self._counters, self._changed)
        self.max_aio_queue = self.sysctl.get_int("vfs.aio.max_aio_queue")  # read per job
        self.tokens: deque[None] = deque()  # one per job submitted and not reaped
        self.buf_tokens: deque[None] = deque()  # one per kernel-submitted job in flight
        self.contexts: WeakSet[ForkAware] = weakref.WeakSet()  # every live context
        self.pool: Workers = _NoWorkers()
        self._ring_probe: Callable[[], str | None] = _no_ring
        self._fork_hooks: list[Callable[[], None]] = []

    def install(self, *, pool: Workers | None = None,
                ring_probe: Callable[[], str | None] | None = None,
                after_fork: Callable[[], None] | None = None) -> None:
        """A backend hands the kernel what it must know of it."""
        if pool is not None:
            self.pool = pool
        if ring_probe is not None:
            self._ring_probe = ring_probe
        if after_fork is not None:
            self._fork_hooks.append(after_fork)

    def ring_unavailable(self) -> str | None:
        """None if io_uring works here, else why not."""
        return self._ring_probe()

    def _counters(self) -> dict[str, Value]:
        reason = self._ring_probe()
        return {
            "vfs.aio.backend_active": self.backend(),
            "vfs.aio.io_uring": "available" if reason is None else f"unavailable: {reason}",
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
        return backend.active(setting, self._ring_probe)

    @property
    def num_queue_count(self) -> int:
        return len(self.tokens)

    def after_fork_in_child(self) -> None:
        self.tokens.clear()
        self.buf_tokens.clear()
        loopdata.after_fork_in_child()
        REAPER.after_fork_in_child()
        for hook in self._fork_hooks:
            hook()
        for ctx in list(self.contexts):
            ctx._forget_after_fork()


KERNEL = Kernel()
sysctl = KERNEL.sysctl

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=KERNEL.after_fork_in_child)
