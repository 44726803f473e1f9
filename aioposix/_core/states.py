"""The enums of a job's life: its state, its route, and a take-back's outcome.

vfs_aio.c keeps a job's state in ``jobflags``/its list (JOBST_JOBQGLOBAL,
JOBST_JOBRUNNING, JOBST_JOBFINISHED ...), and its route is implicit in the
queue it was put on (the socket's, physio's, the daemons').  Here both are
named, with ``TakeBack`` for what cancelling a job did.  Nothing here
imports anything of the package: every layer may use these.
"""

from __future__ import annotations

import enum


class JobState(enum.Enum):
    """Where a job is in its life; the names read well in ``repr``."""

    IDLE = "idle"  # never submitted, or reaped
    WAITING = "waiting"  # accepted, not yet handed on (behind an fsync or O_APPEND barrier)
    QUEUED = "queued"  # in the daemon pool's queue
    RUNNING = "running"  # a worker daemon is running it
    PARKED = "parked"  # on the readiness bridge, waiting for the fd
    KERNEL = "kernel"  # submitted to io_uring
    DONE = "done"  # finished, not yet reaped

    __hash__ = object.__hash__  # members are singletons: hashed in C, not by Enum's name hash


class Route(enum.Enum):
    """Where a job runs (decided once, by ``aioposix._routing.route``)."""

    INLINE = "inline"  # on the loop thread now, with RWF_NOWAIT (a page-cache hit)
    BRIDGE = "bridge"  # the readiness bridge: sockets, pipes, FIFOs, ttys
    RING = "ring"  # io_uring, as the backend of regular files
    DIRECT = "direct"  # io_uring, as the kernel path of O_DIRECT files and disks (max_buf)
    POOL = "pool"  # the worker daemons

    __hash__ = object.__hash__  # (a dict key on every submit: see JobState)


class TakeBack(enum.Enum):
    """What ``Backend.take_back`` did with a job it was asked to give back."""

    TAKEN = "taken"  # it never started: the caller ends it with ECANCELED
    STARTED = "started"  # it is running (on a worker, in the kernel): it ends on its own
    ENDED_SHORT = "ended short"  # a write that had moved bytes: the backend ended it with them


# The members as module names, for the hot paths: reading an Enum class's
# attribute goes through its metaclass (about 60 ns a time here), a module
# global is a dict lookup (about 5 ns).  The job states have theirs in
# ``aioposix._core.job``.
INLINE, BRIDGE, RING, DIRECT, POOL = (
    Route.INLINE, Route.BRIDGE, Route.RING, Route.DIRECT, Route.POOL)
TAKEN, STARTED, ENDED_SHORT = TakeBack.TAKEN, TakeBack.STARTED, TakeBack.ENDED_SHORT
