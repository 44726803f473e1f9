"""The inline route: a read or write served on the loop thread, now.

vfs_aio.c has no such route (every job is queued); modern FreeBSD and
Linux's io_uring both try a buffered request in the submitting thread
first, without blocking, and queue it only if it would block.  Here that
try is ``preadv2``/``pwritev2`` with ``RWF_NOWAIT``: a page-cache hit
completes in the submit call, with no thread, no ring and no coroutine.

``attempt`` makes the try for a job that ``route`` sent here; it either
finishes the job (the result and errno to complete it with) or leaves it
for the slow path with ``cb._progress`` set to the bytes already moved (a
read partly in the cache goes on from there).  A filesystem that refuses
RWF_NOWAIT writes (EOPNOTSUPP: ext4 takes them only through io_uring) is
remembered by the context's ``Inline`` state, so later writes skip the try.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from aioposix._core import faults, syscalls
from aioposix._core.constants import LIO_READ, LIO_READV

if TYPE_CHECKING:
    from aioposix._core.job import Aiocb

RWF_NOWAIT = syscalls.RWF_NOWAIT
# errnos that mean "this fd cannot be served inline", not "the job failed"
_NOT_HERE = frozenset({errno.ESPIPE, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})


class Inline:
    """One context's inline route: what it learnt about RWF_NOWAIT writes."""

    __slots__ = ("writes_ok",)

    def __init__(self) -> None:
        self.writes_ok = True  # until a filesystem refuses an RWF_NOWAIT write

    def attempt(self, cb: Aiocb, done: int = 0) -> tuple[int, int] | None:
        """Serve ``cb`` now: (status, errno) to finish it with, or None for the slow
        path (``cb._progress`` then holds the bytes already moved)."""
        if faults.ARMED and (code := faults.take("inline")):
            return -1, code
        is_read = cb._op == LIO_READ or cb._op == LIO_READV
        views = cb._views
        assert views is not None
        try:
            while True:
                part = syscalls.remaining(views, done)
                pos = cb._off + done if cb._off >= 0 else -1
                if is_read:
                    moved = syscalls.read_once(cb._key, part, pos, RWF_NOWAIT)
                else:
                    moved = syscalls.write_once(cb._key, part, pos, RWF_NOWAIT)
                done += moved
                if moved == 0 or done >= cb._n:
                    return done, 0
        except BlockingIOError:
            cb._progress = done
            return None
        except OSError as exc:
            if exc.errno in _NOT_HERE:
                if exc.errno == errno.EOPNOTSUPP and not is_read and cb._off >= 0:
                    self.writes_ok = False  # this filesystem has no RWF_NOWAIT writes
                cb._progress = done
                return None
            return (done, 0) if done else (-1, exc.errno or errno.EIO)
