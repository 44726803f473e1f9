"""State kept per event loop: its default context, readiness bridge and ring.

Each is stored on the loop object itself, not in a module-level table: a
table keyed by the loop (even a weak one) whose values point back at the
loop would keep every loop alive for the life of the process.  Stored on
the loop, the loop and its state form one cycle that the garbage collector
frees together.  Entries carry the fork generation, so a child process
never uses state made by its parent.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

_generation = [0]  # bumped in a forked child
_FALLBACK: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
    weakref.WeakKeyDictionary())  # for a loop class that takes no attributes


def get(loop: asyncio.AbstractEventLoop, name: str) -> Any:
    """The loop's ``name`` state, or None."""
    entry = _table(loop).get(name)
    if entry is None or entry[0] != _generation[0]:
        return None
    return entry[1]


def put(loop: asyncio.AbstractEventLoop, name: str, value: Any) -> None:
    _table(loop)[name] = (_generation[0], value)


def drop(loop: asyncio.AbstractEventLoop, name: str) -> None:
    _table(loop).pop(name, None)


def _table(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    table: dict[str, Any] | None = getattr(loop, "_aioposix_state", None)
    if table is None:
        table = {}
        try:
            loop._aioposix_state = table  # type: ignore[attr-defined]
        except AttributeError:
            table = _FALLBACK.setdefault(loop, table)
    return table


def after_fork_in_child() -> None:
    _generation[0] += 1
