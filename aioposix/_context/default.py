"""The default context of each event loop (what the module-level calls use).

vfs_aio.c makes a process's kaioinfo on its first AIO call
(aio_init_aioinfo); here a loop's default context is made on the first
module-level call from that loop, kept on the loop (``aioposix._core.loopdata``),
and run down when the loop shuts down.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

from aioposix._context.context import AioContext
from aioposix._core import loopdata
from aioposix._core.running import running_loop

_running_loop = asyncio._get_running_loop  # the C call: None when no loop runs here


def _none() -> None:
    return None


# The last default context asked for, weakly (so that it never keeps a loop
# alive): most programs run one loop, and the module-level calls ask on every
# call.  A thread with a loop of its own finds the context is not its loop's
# and looks it up.
_last: Callable[[], AioContext | None] = _none


def current_context() -> AioContext:
    """The running loop's default context, made on first use."""
    global _last
    loop = _running_loop()
    ctx = _last()
    if ctx is not None and ctx._loop is loop and not ctx._closed and loop is not None:
        return ctx
    if loop is None:
        loop = running_loop()  # raises, saying why (trio, or no loop at all)
    ctx = loopdata.get(loop, "context")
    if ctx is None or ctx.closed:
        ctx = AioContext()
        ctx._bind()
        ctx._default = True
        loopdata.put(loop, "context", ctx)
    _last = weakref.ref(ctx)
    return ctx
