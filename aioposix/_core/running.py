"""The running asyncio loop, or an error that says why there is none.

aioposix lives on an asyncio event loop (its completions are loop
callbacks, its waits are loop futures).  Called from trio, including
AnyIO's trio backend, ``asyncio.get_running_loop()`` says only "no running
event loop", which sends the user looking for a loop they did not forget.
``running_loop()`` names the cause instead.  trio is detected without
importing it: only when the program already imported it.
"""

from __future__ import annotations

import asyncio
import sys

TRIO_MESSAGE = "aioposix needs an asyncio event loop; AnyIO's trio backend is not supported"
NO_LOOP_MESSAGE = "no running event loop: aioposix needs one (call it from asyncio code)"


def running_loop() -> asyncio.AbstractEventLoop:
    """``asyncio.get_running_loop()``, with a RuntimeError that names the cause."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(TRIO_MESSAGE if in_trio() else NO_LOOP_MESSAGE) from None


def in_trio() -> bool:
    """True when the calling thread runs a trio event loop."""
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True
