"""Completion notification: the sigevent (SIGEV_NONE/SIGNAL/THREAD/KEVENT).

The seed posts a signal (``psignal``) or activates an EVFILT_AIO knote when
a job finishes; modern FreeBSD adds EVFILT_LIO for whole batches.  Here a
SigEvent is validated at submit (EINVAL/EBADF, nothing queued) and
delivered on the loop thread, after the context's bookkeeping for the job
is complete: never inside a submit call, never half-updated (rule 21).
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._constants import (
    EVFILT_AIO,
    KEVENT_FLAGS_ALLOWED,
    SIGEV_KEVENT,
    SIGEV_NONE,
    SIGEV_SIGNAL,
    SIGEV_THREAD,
)
from ._kqueue import Kqueue

if TYPE_CHECKING:
    import asyncio


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
                 kqueue: Kqueue | None = None, kevent_flags: int = 0,
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


def _bad(why: str) -> OSError:
    return OSError(errno.EINVAL, f"Invalid argument: {why}")


def validate(sev: object) -> None:
    """Refuse a sigevent the way aio_aqueue does: EINVAL, or EBADF for a closed Kqueue.

    A SigEvent found valid is remembered as such until one of its fields is
    set again; only whether its Kqueue was closed meanwhile is asked each time.
    """
    if type(sev) is SigEvent and sev._checked:
        if sev.notify == SIGEV_KEVENT and sev.kqueue is not None and sev.kqueue.closed:
            raise OSError(errno.EBADF, "Bad file descriptor: the Kqueue is closed")
        return
    if not isinstance(sev, SigEvent):
        raise _bad("sigevent must be a SigEvent or None")
    _check(sev)
    sev._checked = True


def _check(sev: SigEvent) -> None:
    kind = sev.notify
    if kind == SIGEV_NONE:
        return
    if kind == SIGEV_SIGNAL:
        signo = sev.signo
        if isinstance(signo, bool) or not isinstance(signo, int) or not 0 < signo < signal.NSIG:
            raise _bad(f"bad signal number {signo!r}")
    elif kind == SIGEV_THREAD:
        if not callable(sev.function):
            raise _bad("SIGEV_THREAD needs a callable function")
    elif kind == SIGEV_KEVENT:
        _validate_kevent(sev)
    else:
        raise _bad(f"unknown sigev_notify {kind!r}")


def _validate_kevent(sev: SigEvent) -> None:
    if not isinstance(sev.kqueue, Kqueue):
        raise _bad("SIGEV_KEVENT needs a Kqueue")
    flags = sev.kevent_flags
    if isinstance(flags, bool) or not isinstance(flags, int) or flags & ~KEVENT_FLAGS_ALLOWED:
        raise _bad("kevent_flags may hold only EV_ONESHOT, EV_CLEAR and EV_DISPATCH")
    if sev.kqueue.closed:
        raise OSError(errno.EBADF, "Bad file descriptor: the Kqueue is closed")


def deliver(sev: SigEvent, loop: asyncio.AbstractEventLoop, ident: object, data: int,
            kfilter: int = EVFILT_AIO, gen: int = 0) -> None:
    """Fire one notification, on the loop thread; user errors go to the loop's handler."""
    kind = sev.notify
    try:
        if kind == SIGEV_KEVENT:  # first: the one that comes in thousands
            assert sev.kqueue is not None
            sev.kqueue._post(ident, kfilter, sev.kevent_flags, data, sev.value, gen)
        elif kind == SIGEV_SIGNAL:
            os.kill(os.getpid(), sev.signo)
        elif kind == SIGEV_THREAD:
            assert sev.function is not None
            sev.function(sev.value)
    except Exception as exc:
        loop.call_exception_handler({
            "message": f"aioposix: a {sev!r} notification raised", "exception": exc})
