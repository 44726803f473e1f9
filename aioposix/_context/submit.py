"""Submit-time work of the general path: check, snapshot, admit.

vfs_aio.c's aio_aqueue checks the request (the fd, its access mode, the
offset, the sigevent), copies it in, then counts it against the quotas
before anything is queued.  ``checked`` does those steps in that order for
every job that does not take the submit fast path; a refusal leaves the
job untouched (its error and status say why) and nothing queued.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from aioposix._core import validate
from aioposix._core.constants import LIO_DSYNC, LIO_SYNC, LIO_WRITE, LIO_WRITEV, SIGEV_NONE
from aioposix._notify.sigevent import validate as validate_sigevent

if TYPE_CHECKING:
    from typing import NoReturn

    from aioposix._core.job import Aiocb
    from aioposix._core.peers import Owner
    from aioposix._core.sigevent import SigEvent
    from aioposix._kernel.quotas import Quota

_SYNCS = (LIO_SYNC, LIO_DSYNC)
_WRITES = (LIO_WRITE, LIO_WRITEV)

flags_of = validate.fd_flags


def checked(cb: Aiocb, op: int, quota: Quota, owner: Owner) -> int:
    """Check and snapshot ``cb`` for ``op``, then admit it; its fd's flags."""
    try:
        flags = _prepare(cb, op)
        quota.admit(cb, owner)
    except OSError as exc:
        release_views(cb)
        refuse(cb, exc)
    return flags


def _prepare(cb: Aiocb, op: int) -> int:
    fd = cb.fildes
    flags = validate.fd_flags(fd)
    validate.check_access(fd, flags, op)
    sync = op in _SYNCS
    if not sync:  # aio_fsync ignores buf, nbytes, offset and reqprio
        validate.check_reqprio(cb)
    offset = 0 if sync else validate.offset_of(cb, fd)
    sev = cb.sigevent
    if sev is not None:
        validate_sigevent(sev)
    views, nbytes = validate.target(cb, op)
    cb._key, cb._op, cb._off, cb._n, cb._views = fd, op, offset, nbytes, views
    cb._sev = notifying(sev)
    cb._progress = 0
    return flags


def refuse(cb: Aiocb, exc: OSError) -> NoReturn:
    """Raise ``exc``; a job that was never admitted records it as its outcome."""
    if cb._ctx is None:
        cb._error, cb._status = exc.errno or errno.EINVAL, -1
        cb._sev = None  # (the fast path reads it only when cb.sigevent is set)
    raise exc


def notifying(sev: SigEvent | None) -> SigEvent | None:
    """The sigevent to deliver at completion: None for none or SIGEV_NONE."""
    return sev if sev is not None and sev.notify != SIGEV_NONE else None


def ordered(cb: Aiocb, flags: int) -> bool:
    """Whether the job waits for every earlier job on its fd (fsync, O_APPEND write)."""
    return cb._op in _SYNCS or (cb._op in _WRITES and bool(flags & os.O_APPEND))


def pin(cb: Aiocb) -> None:
    """The job outlives its submit call: hold an export of every bytearray."""
    assert cb._views is not None
    cb._views = validate.pin(cb._views)


def release_views(cb: Aiocb) -> None:
    """Drop the exports the job made, so the user's bytearray can be resized again."""
    views = cb._views
    if views:
        for view in views:
            if type(view) is memoryview:
                view.release()
    cb._views = None
