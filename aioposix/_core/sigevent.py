"""SigEvent: the user's ``struct sigevent``, how a job says it is done.

The record only; checking one (``aioposix._notify.sigevent.validate``) and
firing one (``deliver``) belong to notification.  It lives with the job
because an Aiocb carries one (the aiocb's ``aio_sigevent`` in vfs_aio.c).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aioposix._core.constants import SIGEV_KEVENT, SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD

if TYPE_CHECKING:
    from aioposix._core.peers import EventQueue


class SigEvent:
    """``struct sigevent``: how a job (or an lio batch) says it is done.

    SIGEV_NONE: nothing.  SIGEV_SIGNAL: ``signo`` is sent to this process.
    SIGEV_THREAD: ``function(value)`` runs on the loop thread.  SIGEV_KEVENT:
    an EVFILT_AIO (or EVFILT_LIO) event is posted to ``kqueue`` with udata
    ``value`` and the flags in ``kevent_flags`` (EV_ONESHOT, EV_CLEAR,
    EV_DISPATCH).  Bad combinations are refused at submit with EINVAL.
    """

    __slots__ = ("_checked", "function", "kevent_flags", "kqueue", "notify", "signo", "value")

    def __init__(self, notify: int = SIGEV_NONE, *, signo: int = 0, value: object = None,
                 kqueue: EventQueue | None = None, kevent_flags: int = 0,
                 function: Callable[[object], None] | None = None) -> None:
        if isinstance(notify, bool) or not isinstance(notify, int):
            raise TypeError("notify must be one of the SIGEV_* constants")
        self.notify = notify
        self.signo = signo
        self.value = value
        self.kqueue = kqueue
        self.kevent_flags = kevent_flags
        self.function = function
        self._checked: bool = False  # validate() found it valid, and nothing changed since

    def __setattr__(self, name: str, value: object) -> None:
        # any change of a field forgets that the sigevent was found valid
        object.__setattr__(self, name, value)
        if name != "_checked":
            object.__setattr__(self, "_checked", False)

    def __repr__(self) -> str:
        kind = {SIGEV_NONE: "NONE", SIGEV_SIGNAL: "SIGNAL", SIGEV_THREAD: "THREAD",
                SIGEV_KEVENT: "KEVENT"}.get(self.notify, str(self.notify))
        return f"SigEvent(SIGEV_{kind}, signo={self.signo}, value={self.value!r})"
