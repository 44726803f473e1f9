"""Where a job that cannot finish inline goes: facts about its fd.

The seed decides in aio_aqueue: a socket goes to the socket queue (here the
readiness bridge), a disk with block-aligned requests to physio (here
io_uring), everything else to the daemons.  These helpers read the fd's
type, flags and logical block size for that decision.
"""

from __future__ import annotations

import fcntl
import os
import stat
import sys
from fcntl import F_GETFL as _F_GETFL
from fcntl import fcntl as _fcntl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._job import Aiocb

_O_DIRECT = getattr(os, "O_DIRECT", 0)


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
