"""The daemon pool: worker threads that run blocking file I/O (the seed's aiod).

vfs_aio.c keeps free and active daemon lists, starts daemons on demand up
to ``max_aio_procs`` (aio_newproc), lets an idle daemon above
``target_aio_procs`` exit after ``aiod_lifetime``, and picks work with
``aio_selectjob``: the first job whose process has fewer than
``kaio_maxactive_count`` jobs running.

What this means for us:
- Each context owns a ``PoolQueue`` (its share of the seed's global queue,
  with its active count and max_active).  Queues with work sit in one
  round-robin rotation, so a context with 10,000 queued jobs cannot starve
  another: after each pick the picked context goes to the back.
- A cancelled job is not searched for and removed (that is a list scan);
  its state leaves QUEUED under the pool lock and workers skip it.
- Workers hand results back through ``PoolQueue.owner._post``, which wakes
  the owning loop once per batch of completions, not once per job.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Protocol

from . import _io
from ._job import QUEUED, RUNNING, Aiocb

if TYPE_CHECKING:
    from ._tunables import Sysctl


class Owner(Protocol):
    def _post(self, cb: Aiocb, status: int, error: int) -> None: ...

    def _check_orphaned(self) -> None: ...


# How often an idle worker looks for contexts whose loop closed before it
# collected their results (see DaemonPool.watch).
_JANITOR_PERIOD = 1.0


class PoolQueue:
    """One context's queue in the pool: its jobs, how many run, how many may."""

    __slots__ = ("active", "in_rotation", "jobs", "max_active", "owner")

    def __init__(self, owner: Owner, max_active: int) -> None:
        self.owner = owner
        self.max_active = max_active
        self.active = 0  # jobs of this context on a worker now
        # FIFO of (cb, its reap count at submit).  An entry whose job was taken
        # back (cancelled) is skipped: its state is no longer QUEUED, or, if the
        # cb was reaped and submitted again meanwhile, its reap count moved on.
        self.jobs: deque[tuple[Aiocb, int]] = deque()
        self.in_rotation = False

    def __repr__(self) -> str:
        return f"<PoolQueue queued<={len(self.jobs)} active={self.active}/{self.max_active}>"


class DaemonPool:
    """Process-wide worker threads, shared by every context and loop."""

    def __init__(self, sysctl: Sysctl) -> None:
        self._sysctl = sysctl
        self._names = itertools.count(1)
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._rotation: deque[PoolQueue] = deque()  # queues with jobs, round robin
        self._threads: set[threading.Thread] = set()
        self._idle = 0
        # {id: weak context}: results posted, the loop asked to collect them; weak,
        # so that the pool never keeps a dropped context (and its slots) alive
        self._watched: dict[int, weakref.ref[Owner]] = {}

    @property
    def num_procs(self) -> int:
        return len(self._threads)

    def submit(self, queue: PoolQueue, jobs: list[Aiocb]) -> None:
        """Queue a batch in one hand-off: one lock, one round of wake-ups."""
        with self._cond:
            for cb in jobs:
                cb._state = QUEUED
            queue.jobs.extend([(cb, cb._gen) for cb in jobs])
            if not queue.in_rotation:
                queue.in_rotation = True
                self._rotation.append(queue)
            wanted = min(len(jobs), max(queue.max_active - queue.active, 1))
            self._cond.notify(min(wanted, self._idle))
            self._grow(wanted - self._idle)

    def take_back(self, cb: Aiocb) -> bool:
        """Take a job back before any worker starts it (cancel); False if too late."""
        with self._cond:
            if cb._state is not QUEUED:
                return False
            cb._state = RUNNING  # the caller completes it as cancelled at once
            return True

    def forget(self, queue: PoolQueue) -> None:
        """A context run down with no loop: its queue leaves the rotation (its
        entries were taken back), so the pool holds no reference to it."""
        with self._cond:
            queue.jobs.clear()
            if queue.in_rotation:
                self._rotation.remove(queue)
                queue.in_rotation = False

    def _grow(self, missing: int) -> None:
        limit = self._sysctl.get_int("vfs.aio.max_aio_procs")
        target = self._sysctl.get_int("vfs.aio.target_aio_procs")
        want = max(missing, target - len(self._threads))
        for _ in range(min(want, limit - len(self._threads))):
            thread = threading.Thread(target=self._daemon, name=f"aiod-{next(self._names)}",
                                      daemon=True)
            self._threads.add(thread)
            thread.start()

    def _select(self) -> tuple[PoolQueue, Aiocb] | None:
        """aio_selectjob, fair: the next context in rotation below its max_active."""
        rotation = self._rotation
        for _ in range(len(rotation)):
            queue = rotation[0]
            if queue.active >= queue.max_active:
                rotation.rotate(-1)
                continue
            jobs = queue.jobs
            while jobs:
                cb, gen = jobs.popleft()
                if cb._state is QUEUED and cb._gen == gen and cb._ctx is queue.owner:
                    cb._state = RUNNING
                    queue.active += 1
                    rotation.rotate(-1) if jobs else self._drop(queue)
                    return queue, cb
            self._drop(queue)
        return None

    def _drop(self, queue: PoolQueue) -> None:
        self._rotation.popleft()
        queue.in_rotation = False

    def watch(self, owner: Owner) -> None:
        """``owner`` asked its loop to collect results: if that loop closes first,
        an idle worker notices within _JANITOR_PERIOD and frees them."""
        with self._cond:
            self._watched[id(owner)] = weakref.ref(owner)

    def _next_job(self, finished: list[PoolQueue]
                  ) -> tuple[PoolQueue, Aiocb] | list[Owner] | None:
        """Finish the last job's accounting and wait for the next job.

        ``finished`` holds the queue of the job just run, and is emptied here:
        an idle worker must hold no reference to any context.

        Returns the job; or contexts to check for a closed loop; or None: the
        worker has been idle for aiod_lifetime and is not needed, time to exit.
        """
        with self._cond:
            if finished:
                finished.pop().active -= 1
            idle_since = time.monotonic()
            while (item := self._select()) is None:
                self._idle += 1
                woken = self._cond.wait(_JANITOR_PERIOD)
                self._idle -= 1
                if not woken and self._watched:
                    owners = [o for ref in self._watched.values() if (o := ref()) is not None]
                    self._watched.clear()
                    return owners
                if self._retire(idle_since):
                    return None
            return item

    def _retire(self, idle_since: float) -> bool:
        lifetime = self._sysctl.get_float("vfs.aio.aiod_lifetime")
        target = self._sysctl.get_int("vfs.aio.target_aio_procs")
        if (time.monotonic() - idle_since < lifetime or len(self._threads) <= target
                or self._rotation):
            return False
        self._threads.discard(threading.current_thread())
        return True

    def _daemon(self) -> None:
        cond = self._cond  # a fork gives the child a new pool; this thread is the parent's
        finished: list[PoolQueue] = []
        while cond is self._cond and (item := self._next_job(finished)) is not None:
            if isinstance(item, list):
                _check_orphaned(item)
                item = None
                continue
            queue, cb = item
            item = None
            status, error = _io.run(cb)
            queue.owner._post(cb, status, error)
            finished.append(queue)
            del queue, cb  # (while idle, hold nothing of the job or its context)

    def after_fork_in_child(self) -> None:
        self._reset()


def _check_orphaned(owners: list[Owner]) -> None:
    for owner in owners:
        owner._check_orphaned()
