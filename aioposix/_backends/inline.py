"""The inline route: a read or write served on the loop thread, now.

vfs_aio.c has no such route (every job is queued); modern FreeBSD and
Linux's io_uring both try a buffered request in the submitting thread
first, without blocking, and queue it only if it would block.  Here that
try is ``preadv2``/``pwritev2`` with ``RWF_NOWAIT``: a page-cache hit
completes in the submit call, with no thread, no ring and no coroutine.

``attempt`` makes the try for a job that ``route`` sent here; it either
finishes the job (the result and errno to complete it with) or leaves it
for the slow path with ``cb._progress`` set to the bytes already moved (a
read partly in the cache goes on from there).

Buffered writes to regular files are adaptive.  Where the filesystem takes
RWF_NOWAIT writes, those are used (they never block).  Where it refuses
them (EOPNOTSUPP: ext4 takes them only through io_uring), a write into the
page cache is still a memory copy of a few microseconds, far cheaper than
any hand-off; so a positioned write of at most PLAIN_MAX bytes to a regular
file is made with a plain ``pwritev`` on the loop thread, timed.  A write
that takes longer than SLOW (the kernel throttled it: dirty pages, a full
journal, a contended lock) closes this for COOLDOWN seconds, during which
writes go to the backend (io_uring or the daemons) as before; then plain
writes are tried again.  Each slow write that comes within CALM seconds of
the last one doubles the cooldown (up to MAX_COOLDOWN), so on a device
that keeps throttling, plain writes are soon tried only every few seconds
(docs/io_uring.md, "Buffered writes").
"""

from __future__ import annotations

import errno
import os
import stat
import time
from typing import TYPE_CHECKING

from aioposix._core import faults, syscalls
from aioposix._core.constants import LIO_READ, LIO_READV

if TYPE_CHECKING:
    from aioposix._core.job import Aiocb

RWF_NOWAIT = syscalls.RWF_NOWAIT
# errnos that mean "this fd cannot be served inline", not "the job failed"
_NOT_HERE = frozenset({errno.ESPIPE, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})

PLAIN_MAX = 256 * 1024  # bytes: larger writes go to the backend
SLOW = 0.0005  # seconds: a plain write slower than this was held up by the kernel
COOLDOWN = 0.05  # seconds without plain writes after a slow one ...
MAX_COOLDOWN = 5.0  # ... doubled for each slow one that follows within CALM, up to this
CALM = 1.0  # seconds with no slow write, after which the cooldown is back to COOLDOWN
_clock = time.perf_counter


class Inline:
    """One context's inline route: what it learnt about writes on this host."""

    __slots__ = ("_cooldown", "_last_slow", "_plain_after", "writes_ok")

    def __init__(self) -> None:
        self.writes_ok = True  # until a filesystem refuses an RWF_NOWAIT write
        self._plain_after = 0.0  # plain writes are closed until this time (a cooldown)
        self._cooldown = COOLDOWN  # the next cooldown
        self._last_slow = -CALM  # when the last slow plain write ended

    def writes_inline(self) -> bool:
        """Whether a write may be tried inline now (RWF_NOWAIT, or a plain write)."""
        return self.writes_ok or _clock() >= self._plain_after

    def attempt(self, cb: Aiocb, done: int = 0) -> tuple[int, int] | None:
        """Serve ``cb`` now: (status, errno) to finish it with, or None for the slow
        path (``cb._progress`` then holds the bytes already moved)."""
        if faults.ARMED and (code := faults.take("inline")):
            return -1, code
        is_read = cb._op == LIO_READ or cb._op == LIO_READV
        if not is_read and not self.writes_ok:
            return self._plain_write(cb, done)
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
                cb._progress = done
                if exc.errno == errno.EOPNOTSUPP and not is_read and cb._off >= 0:
                    self.writes_ok = False  # this filesystem has no RWF_NOWAIT writes
                    return self._plain_write(cb, done)
                return None
            return (done, 0) if done else (-1, exc.errno or errno.EIO)

    def _plain_write(self, cb: Aiocb, done: int) -> tuple[int, int] | None:
        """A positioned write to a regular file, with a plain pwritev, timed."""
        cb._progress = done
        if cb._off < 0 or cb._n - done > PLAIN_MAX or _clock() < self._plain_after:
            return None
        st = cb._stat
        if st is None:
            st = cb._stat = os.fstat(cb._key)
        if not stat.S_ISREG(st.st_mode):
            return None
        views = cb._views
        assert views is not None
        started = _clock()
        try:
            while done < cb._n:
                moved = syscalls.write_once(cb._key, syscalls.remaining(views, done),
                                            cb._off + done, 0)
                if moved == 0:
                    break
                done += moved
        except OSError as exc:
            return (done, 0) if done else (-1, exc.errno or errno.EIO)
        finally:
            ended = _clock()
            if ended - started > SLOW:
                self._back_off(ended)
        return done, 0

    def _back_off(self, now: float) -> None:
        """The kernel held a plain write up: no more of them for a while."""
        calm = now - self._last_slow >= CALM
        self._cooldown = COOLDOWN if calm else min(self._cooldown * 2, MAX_COOLDOWN)
        self._last_slow = now
        self._plain_after = now + self._cooldown
