"""The daemon pool: worker threads that run blocking file I/O (vfs_aio.c's aiod).

vfs_aio.c keeps free and active daemon lists, starts daemons on demand up
to ``max_aio_procs`` (aio_newproc), lets an idle daemon above
``target_aio_procs`` exit after ``aiod_lifetime``, and picks work with
``aio_selectjob``: the first job whose process has fewer than
``kaio_maxactive_count`` jobs running.

What this means for us:
- Each context owns a ``PoolPort`` (its share of vfs_aio.c's global queue,
  with its active count and max_active).  Queues with work sit in one
  round-robin rotation, so a context with 10,000 queued jobs cannot starve
  another: after each pick the picked context goes to the back.
- A cancelled job is not searched for and removed (that is a list scan);
  its state leaves QUEUED under the pool lock and workers skip it.
- Each context reaches the pool through its own ``PoolPort`` (the backend
  contract of ``aioposix._core.contract``): ``submit`` queues a batch with
  one lock and one round of wake-ups, ``take_back`` gives back a job no
  worker has started, and results go back through the port, which wakes
  the owning loop once per batch of completions, not once per job, and
  reports each job there through the context's ``Finish`` callback.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from aioposix._core import syscalls
from aioposix._core.contract import Finish
from aioposix._core.job import DONE, QUEUED, RUNNING, Aiocb
from aioposix._core.states import STARTED, TAKEN, TakeBack
from aioposix._kernel.kernel import KERNEL

if TYPE_CHECKING:
    import asyncio

    from aioposix._kernel.tunables import Sysctl

# How often an idle worker looks for ports whose loop closed before it
# collected their results (see DaemonPool.watch).
_JANITOR_PERIOD = 1.0


class PoolPort:
    """One context's share of the pool: its queue, how many of its jobs run and
    may run (max_active), and the hand-back of results to its loop."""

    __slots__ = ("__weakref__", "_finish", "_loop", "_orphaned", "_pool", "_posted", "active",
                 "in_rotation", "jobs", "lock", "max_active", "owner")

    def __init__(self, pool: DaemonPool, owner: object, max_active: int, finish: Finish,
                 orphaned: Callable[[], None]) -> None:
        self._pool = pool
        self.owner = owner  # the context: a job is run only while it still belongs to it
        self.max_active = max_active
        self.active = 0  # jobs of this context on a worker now
        # FIFO of (cb, its reap count at submit).  An entry whose job was taken
        # back (cancelled) is skipped: its state is no longer QUEUED, or, if the
        # cb was reaped and submitted again meanwhile, its reap count moved on.
        self.jobs: deque[tuple[Aiocb, int]] = deque()
        self.in_rotation = False
        self._finish = finish
        self._orphaned = orphaned  # the loop closed under results: the loop-less rundown
        self._loop: asyncio.AbstractEventLoop | None = None
        self._posted: list[tuple[Aiocb, int, int]] = []  # [(cb, status, errno)] from workers
        self.lock = threading.Lock()  # guards _posted; the loop-less rundown takes it too

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # -- the backend contract ---------------------------------------------------

    def submit(self, jobs: Sequence[Aiocb]) -> None:
        self._pool.submit(self, jobs)

    def take_back(self, cb: Aiocb) -> TakeBack:
        return TAKEN if self._pool.take_back(cb) else STARTED

    # -- results, from the workers to the loop ------------------------------------

    def post(self, cb: Aiocb, status: int, error: int) -> None:
        """From a worker (or a ring with no loop): queue the result; wake the loop
        once per batch."""
        loop = self._loop
        assert loop is not None
        with self.lock:
            self._posted.append((cb, status, error))
            if len(self._posted) > 1 and not loop.is_closed():
                return  # a drain is already on its way
        try:
            loop.call_soon_threadsafe(self.drain)
        except RuntimeError:  # the loop is closed: nobody will reap these
            self._orphaned()
        else:
            self._pool.watch(self)  # in case it closes before running the drain

    def drain(self) -> None:
        """On the loop: report every result posted so far (all of them even if
        one report raises; the first error is raised after them)."""
        with self.lock:
            batch, self._posted = self._posted, []
        failed: BaseException | None = None
        for cb, status, error in batch:
            try:
                self._finish(cb, status, error)
            except BaseException as exc:  # raised below, once all are told
                failed = failed or exc
        if failed is not None:
            raise failed

    def pending(self) -> bool:
        """Results are waiting for the loop (and the loop still runs)."""
        loop = self._loop
        return bool(self._posted) and loop is not None and not loop.is_closed()

    def take_posted(self) -> list[tuple[Aiocb, int, int]]:
        """For the loop-less rundown, which holds ``lock``: the results never drained."""
        batch, self._posted = self._posted, []
        return batch

    def check_orphaned(self) -> None:
        """From an idle worker: results still waiting for a loop that closed."""
        loop = self._loop
        if self._posted and loop is not None and loop.is_closed():
            self._orphaned()

    def forget(self) -> None:
        """The context ran down with no loop: leave the pool's rotation."""
        self._pool.forget(self)

    def after_fork(self) -> None:
        self._posted = []
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<PoolPort queued<={len(self.jobs)} active={self.active}/{self.max_active}>"


class DaemonPool:
    """Process-wide worker threads, shared by every context and loop."""

    def __init__(self, sysctl: Sysctl) -> None:
        self._sysctl = sysctl
        self._names = itertools.count(1)
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._rotation: deque[PoolPort] = deque()  # queues with jobs, round robin
        self._threads: set[threading.Thread] = set()
        self._idle = 0
        # {id: weak context}: results posted, the loop asked to collect them; weak,
        # so that the pool never keeps a dropped context (and its slots) alive
        self._watched: dict[int, weakref.ref[PoolPort]] = {}

    @property
    def num_procs(self) -> int:
        return len(self._threads)

    def submit(self, queue: PoolPort, jobs: Sequence[Aiocb]) -> None:
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
            cb._state = DONE  # no worker will pick it; the caller completes it at once
            return True

    def forget(self, queue: PoolPort) -> None:
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

    def _select(self) -> tuple[PoolPort, Aiocb] | None:
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

    def _drop(self, queue: PoolPort) -> None:
        self._rotation.popleft()
        queue.in_rotation = False

    def watch(self, port: PoolPort) -> None:
        """``port`` asked its loop to collect results: if that loop closes first,
        an idle worker notices within _JANITOR_PERIOD and frees them."""
        with self._cond:
            self._watched[id(port)] = weakref.ref(port)

    def _next_job(self, finished: list[PoolPort]
                  ) -> tuple[PoolPort, Aiocb] | list[PoolPort] | None:
        """Finish the last job's accounting and wait for the next job.

        ``finished`` holds the queue of the job just run, and is emptied here:
        an idle worker must hold no reference to any context.

        Returns the job; or ports to check for a closed loop; or None: the
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
        finished: list[PoolPort] = []
        while cond is self._cond and (item := self._next_job(finished)) is not None:
            if isinstance(item, list):
                _check_orphaned(item)
                item = None
                continue
            queue, cb = item
            item = None
            status, error = syscalls.run(cb)
            queue.post(cb, status, error)
            finished.append(queue)
            del queue, cb  # (while idle, hold nothing of the job or its context)

    def after_fork_in_child(self) -> None:
        self._reset()


def _check_orphaned(ports: list[PoolPort]) -> None:
    for port in ports:
        port.check_orphaned()


POOL = DaemonPool(KERNEL.sysctl)
KERNEL.install(pool=POOL, after_fork=POOL.after_fork_in_child)
