"""The inline yield budget: how long one loop iteration may spend on inline jobs.

Awaiting a job that finished inline does not suspend the task, so tasks
busy with cached reads (or inline writes) would never let timers and other
tasks run.  Every context gives its loop's iterations a slice of time for
such awaits (SLICE, half a millisecond): the first inline await of
an iteration starts the slice; once it is spent, every inline await of the
iteration waits at a gate, a FIFO of futures.  The gate lets GATE_WIDTH
tasks through per loop iteration, in the order they arrived; the first of
them usually spends the next slice by itself.  So an iteration holds about
a slice of inline work however many tasks are busy and whatever a job
costs, timers and I/O run within about a millisecond, and the tasks take
turns (vfs_aio.c has no counterpart: its jobs always complete elsewhere).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

SLICE = 0.0005  # seconds of inline completions per loop iteration
GATE_WIDTH = 4  # tasks let through the gate per loop iteration
CREDIT = 3  # inline awaits let on between two looks at the clock
_clock = time.perf_counter


class Budget:
    """One context's slice of each loop iteration, and its gate.

    An inline await takes one ``credit`` if there is one (``credit -= 1``, no
    call); at 0 it asks ``gate``, which looks at the clock and either gives
    CREDIT more or says to wait.  So the clock is read at every fourth
    inline await, and a slice overruns by at most CREDIT completions.
    """

    __slots__ = ("_ends", "_gate", "_opening", "_spent", "_started", "credit")

    def __init__(self) -> None:
        self.credit = 0  # inline awaits that may go on before gate() is asked again
        self._started = False  # this iteration's slice has started
        self._spent = False  # ... and is spent: every inline await waits at the gate
        self._ends = 0.0  # when this iteration's slice ends
        self._gate: deque[asyncio.Future[None]] = deque()  # tasks waiting their turn
        self._opening = False  # a call to _open is scheduled

    def gate(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None] | None:
        """None if an inline await may go on now (with CREDIT more after it),
        else the future to wait for."""
        if not self._started:  # the first inline await of this iteration: the slice starts
            loop.call_soon(self._reset)
            self._started = True
            self._ends = _clock() + SLICE
            self.credit = CREDIT
            return None
        if not self._spent and _clock() <= self._ends:
            self.credit = CREDIT
            return None
        self._spent = True
        fut = loop.create_future()
        self._gate.append(fut)
        if not self._opening:
            self._opening = True
            loop.call_soon(self._open, loop)
        return fut

    def _reset(self) -> None:
        """The iteration is over: the next one starts a slice of its own."""
        self._started = self._spent = False
        self.credit = 0

    def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let the next GATE_WIDTH waiting tasks through (they run next iteration)."""
        gate, width = self._gate, GATE_WIDTH
        while gate and width:
            fut = gate.popleft()
            if not fut.done():  # (a task cancelled at the gate left its future done)
                fut.set_result(None)
                width -= 1
        if gate:
            loop.call_soon(self._open, loop)
        else:
            self._opening = False
