"""Completion notification: checking and firing sigevents (SIGEV_NONE/SIGNAL/THREAD/KEVENT).

vfs_aio.c posts a signal (``psignal``) or activates an EVFILT_AIO knote when
a job finishes; modern FreeBSD adds EVFILT_LIO for whole batches.  Here a
SigEvent is validated at submit (EINVAL/EBADF, nothing queued) and
delivered on the loop thread, after the context's bookkeeping for the job
is complete: never inside a submit call, never half-updated (rule 21).
"""

from __future__ import annotations

import errno
import os
import signal
from typing import TYPE_CHECKING

from aioposix._core.constants import (
    EVFILT_AIO,
    KEVENT_FLAGS_ALLOWED,
    SIGEV_KEVENT,
    SIGEV_NONE,
    SIGEV_SIGNAL,
    SIGEV_THREAD,
)
from aioposix._core.errors import einval, error
from aioposix._core.sigevent import SigEvent
from aioposix._notify.kqueue import Kqueue

if TYPE_CHECKING:
    import asyncio


def _bad(why: str) -> OSError:
    return einval(why)


def validate(sev: object) -> None:
    """Refuse a sigevent the way aio_aqueue does: EINVAL, or EBADF for a closed Kqueue.

    A SigEvent found valid is remembered as such until one of its fields is
    set again; only whether its Kqueue was closed meanwhile is asked each time.
    """
    if type(sev) is SigEvent and sev._checked:
        if sev.notify == SIGEV_KEVENT and sev.kqueue is not None and sev.kqueue.closed:
            raise error(errno.EBADF, "the Kqueue is closed")
        return
    if not isinstance(sev, SigEvent):
        raise _bad("sigevent must be a SigEvent or None")
    _check(sev)
    sev._checked = True


def usable(sev: object) -> bool:
    """``validate`` as a test: True for a sigevent it accepts (one found valid
    before, with no field set since, is known at once unless it names a Kqueue,
    which may have closed meanwhile)."""
    if type(sev) is SigEvent and sev._checked and sev.notify != SIGEV_KEVENT:
        return True
    try:
        validate(sev)
    except OSError:
        return False
    return True


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
        raise error(errno.EBADF, "the Kqueue is closed")


def deliver(sev: SigEvent, loop: asyncio.AbstractEventLoop, ident: object, data: int,
            kfilter: int = EVFILT_AIO, gen: int = 0) -> None:
    """Fire one notification, on ``loop`` (running: the caller's); user errors
    go to the loop's handler."""
    kind = sev.notify
    try:
        if kind == SIGEV_KEVENT:  # first: the one that comes in thousands
            assert sev.kqueue is not None
            sev.kqueue._post(loop, ident, kfilter, sev.kevent_flags, data, sev.value, gen)
        elif kind == SIGEV_SIGNAL:
            os.kill(os.getpid(), sev.signo)
        elif kind == SIGEV_THREAD:
            assert sev.function is not None
            sev.function(sev.value)
    except Exception as exc:
        loop.call_exception_handler({
            "message": f"aioposix: a {sev!r} notification raised", "exception": exc})
