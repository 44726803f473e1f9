"""The default context of each event loop (what the module-level calls use).

vfs_aio.c makes a process's kaioinfo on its first AIO call
(aio_init_aioinfo); here a loop's default context is made on the first
module-level call from that loop, kept on the loop (``aioposix._core.loopdata``),
and run down when the loop shuts down.
"""

from __future__ import annotations

import asyncio

from aioposix._context.context import AioContext
from aioposix._core import loopdata
from aioposix._core.running import running_loop

_running_loop = asyncio._get_running_loop  # the C call: None when no loop runs here


def current_context() -> AioContext:
    """The running loop's default context, made on first use."""
    loop = _running_loop()
    if loop is None:
        loop = running_loop()  # raises, saying why (trio, or no loop at all)
    ctx: AioContext | None = loopdata.get(loop, "context")
    if ctx is None or ctx.closed:
        ctx = AioContext()
        ctx._bind()
        ctx._default = True
        loopdata.put(loop, "context", ctx)
    return ctx
