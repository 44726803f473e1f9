"""The routing decision: where a job runs, decided in one place (``route``).

vfs_aio.c decides in aio_aqueue/aio_queue_file: a socket job goes to the
socket's queue (here the readiness bridge), a raw-disk job with
block-aligned buffers to physio (aio_qphysio: here io_uring as the kernel
path, within ``max_buf``), everything else to the daemons' job queue.
aioposix adds a route before those: a read or write that the page cache can
serve at once runs inline, on the loop thread, with ``RWF_NOWAIT``.

``route`` takes the facts about the fd and the request and returns a
``Route``; nothing else decides where a job runs.  Its rules, in order:

1. ``INLINE``: a read or write, inline attempts on (``vfs.aio.inline``),
   nothing of the context in flight on the fd (order), not O_DIRECT, not
   already tried, and for a write not O_APPEND (those wait their turn in
   the fd's queue) and the inline route open to writes (RWF_NOWAIT writes,
   or adaptive plain writes to regular files: see
   ``aioposix._backends.inline``).  The submit fast path applies this rule before it knows the
   fd's flags (it learns them from the attempt: ESPIPE is a pipe or socket,
   EAGAIN a cache miss, an error the general path explains);
2. ``BRIDGE``: a read or write on a socket, pipe, FIFO or tty;
3. ``DIRECT``: O_DIRECT or a block device, block-aligned, io_uring
   usable, and the context below ``max_buf`` kernel-path jobs (syncs of
   such files go to ``RING``: they hold no buffer);
4. ``POOL`` for any other O_DIRECT or block-device job (misaligned: the
   daemons, where the kernel says EINVAL, as in vfs_aio.c);
5. ``RING`` for a regular file when io_uring is the file backend;
6. ``POOL`` for everything else.

The helpers below read the fd's type, flags and logical block size for it.
"""

from __future__ import annotations

import fcntl
import os
import stat
import sys
from fcntl import F_GETFL as _F_GETFL
from fcntl import fcntl as _fcntl
from typing import TYPE_CHECKING, NamedTuple, Protocol

from aioposix._core.constants import LIO_READ, LIO_READV, LIO_WRITE, LIO_WRITEV
from aioposix._core.states import BRIDGE, DIRECT, INLINE, POOL, RING, Route

if TYPE_CHECKING:
    from aioposix._core.job import Aiocb

_O_DIRECT = getattr(os, "O_DIRECT", 0)
_S_ISSOCK = stat.S_ISSOCK


_NOT_PLAIN = os.O_APPEND | _O_DIRECT | getattr(os, "O_PATH", 0)


def writable_stat(fd: int) -> os.stat_result | None:
    """fstat of ``fd`` if it is open for writing with no O_APPEND/O_DIRECT;
    None sends the caller down the general path."""
    try:
        flags = _fcntl(fd, _F_GETFL)
        if flags & _NOT_PLAIN or flags & os.O_ACCMODE == os.O_RDONLY:
            return None
        return os.fstat(fd)
    except OSError:
        return None


def aligned(cb: Aiocb, st: os.stat_result) -> bool:
    """Offset and size are multiples of the device's logical block size."""
    size = _logical_block_size(cb._key, st)
    return cb._off >= 0 and cb._off % size == 0 and cb._n % size == 0


def _logical_block_size(fd: int, st: os.stat_result) -> int:
    if stat.S_ISBLK(st.st_mode):
        try:
            raw = fcntl.ioctl(fd, _BLKSSZGET, b"\0\0\0\0")
            return int.from_bytes(raw, sys.byteorder) or 512
        except OSError:
            return 512
    return st.st_blksize or 4096


_BLKSSZGET = 0x1268


def is_pollable(st: os.stat_result) -> bool:
    mode = st.st_mode
    return stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode) or (
        stat.S_ISCHR(mode) and os.major(st.st_rdev) in _TTY_MAJORS)


# Character devices that poll and may block: ttys, pty masters and slaves
# (Linux majors 4, 5, 136-143 and the ptmx range 128-135).  Memory devices
# (/dev/zero, /dev/full) never block and go to the pool.
_TTY_MAJORS = frozenset({4, 5, *range(128, 144)})


_RW = (LIO_READ, LIO_READV, LIO_WRITE, LIO_WRITEV)
_WRITES = (LIO_WRITE, LIO_WRITEV)


class InlineRoute(Protocol):
    """The context's inline route, as routing asks it (``aioposix._backends.inline``)."""

    def writes_inline(self) -> bool: ...


class Facts(NamedTuple):
    """What the context knows that bears on the route, besides the fd itself
    (kept by the context, and made anew only when one of them changes)."""

    inline: InlineRoute | None  # None: vfs.aio.inline is off
    ring_files: bool  # io_uring is the backend of regular files
    ring_usable: bool  # io_uring works here (for the kernel path)
    buf_room: bool  # the context has fewer than max_buf jobs in the kernel path


def route(cb: Aiocb, flags: int, busy: bool, tried: bool, facts: Facts) -> Route:
    """Where ``cb`` runs.  ``flags``: its fd's status flags; ``busy``: other jobs
    of the context are in flight on its fd; ``tried``: the inline attempt was
    just made and could not finish.

    The fd's fstat is ``cb._stat`` when the caller has it; otherwise it is
    taken here, only if the route depends on it, and kept there (OSError
    if the fd is gone).
    """
    op = cb._op
    inline = facts.inline
    if (not tried and not busy and inline is not None and op in _RW and not flags & _O_DIRECT
            and (op not in _WRITES or (not flags & os.O_APPEND and inline.writes_inline()))):
        return INLINE
    st = cb._stat
    if st is None:
        st = cb._stat = os.fstat(cb._key)
    if op in _RW and (_S_ISSOCK(st.st_mode) or is_pollable(st)):  # (sockets: no call)
        return BRIDGE
    if flags & _O_DIRECT or stat.S_ISBLK(st.st_mode):
        if facts.ring_usable and aligned(cb, st):
            if op not in _RW:
                return RING
            if facts.buf_room:
                return DIRECT
        return POOL
    if facts.ring_files and stat.S_ISREG(st.st_mode):
        return RING
    return POOL
