"""KEvent, the record of a change or an event (``struct kevent``), and Knote,
a Kqueue's record of one (ident, filter) it watches (``struct knote``).
"""

from __future__ import annotations

from typing import Any

from aioposix._core.constants import EV_ADD, EV_CLEAR, EV_DISPATCH, EV_ONESHOT, EVFILT_READ

Key = tuple[int, int]  # (id(ident) for objects, or the int ident; filter)


class KEvent:
    """One change or one event, with the fields of ``struct kevent``."""

    __slots__ = ("data", "fflags", "filter", "flags", "ident", "udata")

    def __init__(self, ident: Any, filter: int = EVFILT_READ, flags: int = EV_ADD,
                 fflags: int = 0, data: int = 0, udata: object = None) -> None:
        self.ident = ident
        self.filter = filter
        self.flags = flags
        self.fflags = fflags
        self.data = data
        self.udata = udata

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KEvent):
            return NotImplemented
        return (self.ident is other.ident or self.ident == other.ident) and (
            self.filter, self.flags, self.fflags, self.data) == (
            other.filter, other.flags, other.fflags, other.data)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"KEvent(ident={self.ident!r}, filter={self.filter}, flags={self.flags:#x}, "
                f"fflags={self.fflags:#x}, data={self.data}, udata={self.udata!r})")


class Knote:
    """One watched (ident, filter) of a Kqueue, and its state."""

    __slots__ = ("active", "data", "delivered", "dup", "enabled", "fflags", "filter", "final",
                 "flags", "gen", "ident", "key", "udata", "watching")

    def __init__(self, key: Key, ident: Any, kfilter: int, flags: int, udata: object) -> None:
        self.key = key
        self.ident = ident
        self.filter = kfilter
        self.flags = flags & (EV_ONESHOT | EV_CLEAR | EV_DISPATCH)
        self.udata = udata
        self.fflags = 0
        self.data = 0
        self.enabled = True
        self.active = False  # triggered and waiting to be collected
        self.watching = False  # registered in the queue's epoll
        self.dup = -1  # our dup of the fd, while watching
        self.gen = 0  # EVFILT_AIO: the reap count of the cb when its job finished
        self.delivered = False  # reported at least once
        self.final = False  # EVFILT_AIO: freed by a rundown, still owed one report


def knote_key(ident: Any, kfilter: int) -> Key:
    return (ident if type(ident) is int else id(ident), kfilter)
