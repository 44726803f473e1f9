"""Who may call a context: its loop, on the thread that runs it (rule 27).

A context belongs to the loop it is first used on.  Every call from anywhere
else (another loop, a thread with no running loop) raises RuntimeError
before anything is queued or reaped.  vfs_aio.c needs no such test: a
process's kaioinfo is reached only through that process.

The full test asks asyncio for the running loop, which costs a getpid system
call (asyncio's guard against a loop inherited through fork).  So each full
test that passes records the thread it ran on, and a call on that thread
while the context's loop runs needs no other:
``self._thread == _thread() and self._running()`` (a thread ident and the
loop's ``is_running``, two C calls).  A thread runs one loop at a time, so
a loop that runs while we are on its recorded thread runs here.  The hot
paths write that test inline.  The one case it cannot see is a loop that
stopped and now runs on another thread, called from the thread it used to
run on before any full test on the new one (docs/contexts.md, "Threads and
loops").  After fork the record is cleared, so the child makes the full
test, which refuses the parent's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from aioposix._core.running import TRIO_MESSAGE, in_trio

_running_loop = asyncio._get_running_loop  # the C call: None when no loop runs here
_thread = threading.get_ident


class LoopAffinity:
    """The context's loop, the thread it was last seen on, and the tests."""

    _loop: asyncio.AbstractEventLoop | None
    _closed: bool
    _thread: int  # the thread a full test last passed on (0: none)
    _running: Callable[[], bool]  # the loop's is_running (bool until bound: bool() is False)

    def _check_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """RuntimeError unless ``loop`` (the running one) may use this context."""
        if loop is None:
            if in_trio():
                raise RuntimeError(TRIO_MESSAGE)
            raise RuntimeError("AioContext calls must be made from a running event loop "
                               "(none runs in this thread)")
        if self._loop is not None and loop is not self._loop:
            raise RuntimeError("this AioContext belongs to another event loop; use "
                               "aioposix.current_context() or a context made on this loop")

    def _check_open(self) -> None:
        """RuntimeError if the context is closed or this is not its loop."""
        if self._closed:
            raise RuntimeError("the AioContext is closed")
        if not (self._thread == _thread() and self._running()):
            self._full_check()

    def _full_check(self) -> asyncio.AbstractEventLoop | None:
        """The running loop, refused unless it may use this context; when it
        is the context's own, the thread is recorded for the cheap test."""
        loop = _running_loop()
        if loop is None or (loop is not self._loop and self._loop is not None):
            self._check_loop(loop)
        if loop is self._loop:
            self._thread = _thread()
        return loop
