"""The system calls a job makes: vfs_aio.c's aio_process(), for every path.

A job's target is snapshotted at submit into ``cb._views`` (a list of
byte memoryviews, or one bytearray), ``cb._off`` (-1: no position, as for
a character device given a negative offset) and ``cb._progress`` (bytes
already moved, when an inline attempt or a readiness round did part of it).
The same functions serve the inline RWF_NOWAIT attempt (``flags``), the
worker daemons (``flags=0``, blocking) and the readiness bridge.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aioposix._core import faults
from aioposix._core.constants import LIO_DSYNC, LIO_READ, LIO_READV, LIO_SYNC

if TYPE_CHECKING:
    from aioposix._core.job import Aiocb

RWF_NOWAIT: int = getattr(os, "RWF_NOWAIT", 0)


def remaining(views: Sequence[Any], skip: int) -> Sequence[Any]:
    """The part of ``views`` after the first ``skip`` bytes."""
    if skip == 0:
        return views
    out: list[Any] = []
    for view in views:
        size = len(view) if type(view) is bytearray else memoryview(view).nbytes
        if skip >= size:
            skip -= size
            continue
        out.append(memoryview(view)[skip:] if skip else view)
        skip = 0
    return out


def read_once(fd: int, views: Sequence[Any], offset: int, flags: int) -> int:
    """One read into ``views``; offset -1 reads at the fd's position."""
    if offset < 0:
        return os.readv(fd, views) if not flags else os.preadv(fd, views, -1, flags)
    return os.preadv(fd, views, offset, flags)


def write_once(fd: int, views: Sequence[Any], offset: int, flags: int) -> int:
    if offset < 0:
        return os.writev(fd, views) if not flags else os.pwritev(fd, views, -1, flags)
    return os.pwritev(fd, views, offset, flags)


def run_read(cb: Aiocb) -> int:
    """A blocking read for a worker: one call; a short count is EOF."""
    done = cb._progress
    views = cb._views
    assert views is not None
    off = cb._off + done if cb._off >= 0 else -1
    return done + read_once(cb._fd, remaining(views, done), off, 0)


def run_write(cb: Aiocb) -> int:
    """A blocking write for a worker: all of it, or a short count after an error."""
    done = cb._progress
    views = cb._views
    assert views is not None
    while done < cb._n:
        off = cb._off + done if cb._off >= 0 else -1
        try:
            moved = write_once(cb._fd, remaining(views, done), off, 0)
        except OSError:
            if done == 0:
                raise
            break  # what moved before the error stands, as write(2) reports it
        if moved == 0:
            break
        done += moved
    return done


def run_sync(cb: Aiocb) -> int:
    (os.fdatasync if cb._op == LIO_DSYNC else os.fsync)(cb._fd)
    return 0


def run(cb: Aiocb) -> tuple[int, int]:
    """Run a job to completion on a worker; returns (status, error)."""
    op = cb._op
    try:
        if faults.ARMED and (code := faults.take("pool")):
            return -1, code
        if op in (LIO_READ, LIO_READV):
            return run_read(cb), 0
        if op in (LIO_SYNC, LIO_DSYNC):
            return run_sync(cb), 0
        return run_write(cb), 0
    except OSError as exc:
        return -1, exc.errno or errno.EIO
    except Exception:  # a bug or a fault must not kill the daemon
        return -1, errno.EIO
