"""The reaper: a process-wide thread that runs down what a dead loop left behind.

In vfs_aio.c, ``aio_proc_rundown`` runs when a process exits, so nothing a
process queued outlives it.  An asyncio loop has no such hook: it can be
closed (``loop.close()``) or simply dropped while jobs are queued, parked,
running on a worker or in the kernel, and asyncio tells nobody.  Two things
must still happen then (docs/contract.md, rule 25):

- the kernel must never write into freed memory: an io_uring ring with
  requests in flight keeps its buffers, its fds and its mappings until the
  kernel has completed every request, and is torn down only then;
- no process-wide slot, fd or buffer stays held by a context whose loop is
  gone: it is run down as ``aclose()`` would, with no loop.

``asyncio.run`` calls ``shutdown_asyncgens`` before it closes the loop, and
every bound context hooks that (see ``_context._rundown_at_shutdown``), so
the common case is a real ``aclose()`` on the loop.  The reaper is the net
under everything else: it looks, a few times a second while anything is
watched, for watched items whose loop is closed or collected, and runs them
down on its own thread.  Watched items are contexts (held weakly: a context
dropped with its loop gives its slots back in ``__del__``) and rings (held
strongly while open: that is what keeps the kernel's buffers alive).

Thread safety: a context's loop-less rundown takes the context's post lock,
the same lock the workers take to hand back results; a ring is touched only
by its loop's thread until that loop is closed, and only by the reaper
after.
"""

from __future__ import annotations

import threading
import weakref
from typing import Protocol

# How often the reaper looks for watched items whose loop went away (seconds).
PERIOD = 0.25


class Watched(Protocol):
    def loop_gone(self) -> bool:
        """True once the item's loop is closed or collected."""
        ...

    def run_down_without_loop(self) -> bool:
        """Run the item down on the reaper's thread; True when nothing is left to watch."""
        ...


class Reaper:
    """Watches contexts and rings; runs down those whose loop went away."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._weak: dict[int, weakref.ref[Watched]] = {}  # {id: weak context}
        self._strong: dict[int, Watched] = {}  # {id: ring}
        self._thread: threading.Thread | None = None

    def watch(self, item: Watched, strong: bool = False) -> None:
        with self._lock:
            if strong:
                self._strong[id(item)] = item
            else:
                self._weak[id(item)] = weakref.ref(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="aiod-reaper",
                                                daemon=True)
                self._thread.start()

    def unwatch(self, item: Watched) -> None:
        with self._lock:
            self._strong.pop(id(item), None)
            self._weak.pop(id(item), None)

    def watching(self, item: Watched) -> bool:
        with self._lock:
            return id(item) in self._strong or id(item) in self._weak

    def _run(self) -> None:
        lock = self._lock  # a fork gives the child a new reaper; this thread is the parent's
        stop = threading.Event()
        while not stop.wait(PERIOD):
            if lock is not self._lock or not self.sweep():
                return

    def sweep(self) -> bool:
        """One look at every watched item; False (and the thread ends) when none is left."""
        for item in self._gone():
            if item.run_down_without_loop():
                self.unwatch(item)
        with self._lock:
            if self._weak or self._strong:
                return True
            self._thread = None
            return False

    def _gone(self) -> list[Watched]:
        with self._lock:
            for key in [k for k, ref in self._weak.items() if ref() is None]:
                del self._weak[key]
            items = [i for ref in self._weak.values() if (i := ref()) is not None]
            items += list(self._strong.values())
        # contexts first: their rundown hands their rings over before the rings go
        return [item for item in items if item.loop_gone()]

    def after_fork_in_child(self) -> None:
        self._reset()


REAPER = Reaper()
