"""Submit-time checks (vfs_aio.c's aio_aqueue before it queues anything).

Every refusal is an OSError with the errno POSIX and FreeBSD give:
EBADF for a descriptor that is not open or not open the right way, EINVAL
for a bad offset, opcode, priority or iovcnt, EFAULT for a buffer that
cannot take the transfer.  On success the job's target is snapshotted into
the cb (vfs_aio.c's copyin): later changes to cb.buf or cb.offset do not
touch a job in flight.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from typing import Any

from aioposix._core.constants import IOV_MAX, LIO_DSYNC, LIO_READ, LIO_READV, LIO_SYNC, LIO_WRITEV
from aioposix._core.errors import error
from aioposix._core.job import Aiocb

MAX_OFFSET = (1 << 63) - 1
READS = (LIO_READ, LIO_READV)
SYNCS = (LIO_SYNC, LIO_DSYNC)
_F_GETFL = fcntl.F_GETFL
_O_PATH = getattr(os, "O_PATH", 0)


def fd_flags(fd: object) -> int:
    """The fd's status flags (F_GETFL); EBADF when it is not an open descriptor."""
    if type(fd) is not int or fd < 0:
        raise error(errno.EBADF, f"{fd!r} is not an open file descriptor")
    try:
        flags: int = fcntl.fcntl(fd, _F_GETFL)
    except (OSError, OverflowError):  # (a number past any fd the OS can have)
        raise error(errno.EBADF, f"fd {fd} is not open") from None
    if flags & _O_PATH:
        raise error(errno.EBADF, f"fd {fd} is an O_PATH descriptor")
    return flags


def check_access(fd: int, flags: int, op: int) -> None:
    mode = flags & os.O_ACCMODE
    if op in READS and mode == os.O_WRONLY:
        raise error(errno.EBADF, f"fd {fd} is not open for reading")
    if op not in READS and op not in SYNCS and mode == os.O_RDONLY:
        raise error(errno.EBADF, f"fd {fd} is not open for writing")


def offset_of(cb: Aiocb, fd: int) -> int:
    """The position to use: cb.offset, or -1 (no position) for a character device."""
    offset = cb.offset
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise error(errno.EINVAL, "offset must be an int")
    if offset > MAX_OFFSET:
        raise error(errno.EINVAL, "offset past the largest file offset")
    if offset < 0:
        if not stat.S_ISCHR(os.fstat(fd).st_mode):
            raise error(errno.EINVAL, "negative offset on a file that is not a character device")
        return -1
    return offset


def check_reqprio(cb: Aiocb) -> None:
    prio = cb.reqprio
    if isinstance(prio, bool) or not isinstance(prio, int) or prio < 0:
        raise error(errno.EINVAL, "reqprio must be an int >= 0")


def _view(obj: Any, writable: bool) -> memoryview:
    try:
        view = memoryview(obj)
    except TypeError:
        raise error(errno.EFAULT, f"{type(obj).__name__} is not a buffer") from None
    if writable and view.readonly:
        view.release()
        raise error(errno.EFAULT, f"cannot read into a read-only {type(obj).__name__}")
    if not view.c_contiguous:
        view.release()
        raise error(errno.EFAULT, "the buffer is not C-contiguous")
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _count(cb: Aiocb, size: int) -> int:
    nbytes = cb.nbytes
    if nbytes is None:
        return size
    if isinstance(nbytes, bool) or not isinstance(nbytes, int):
        raise error(errno.EINVAL, "nbytes must be an int")
    if nbytes < 0:
        raise error(errno.EINVAL, "negative nbytes")
    if nbytes > size:
        raise error(errno.EFAULT, f"nbytes {nbytes} is larger than the {size}-byte buffer")
    return nbytes


def buffer_target(cb: Aiocb, writable: bool) -> tuple[list[Any], int]:
    """([the buffer], nbytes) for aio_read/aio_write; the fast case copies nothing."""
    buf = cb.buf
    if buf is None and writable:
        size = cb.nbytes
        ok = isinstance(size, int) and not isinstance(size, bool) and size > 0
        buf = cb.buf = allocate(size if ok and size is not None else 0)
    kind = type(buf)
    if kind is bytearray or (kind is bytes and not writable):
        nbytes = _count(cb, len(buf))
        if nbytes == len(buf):
            return [buf], nbytes
    view = _view(buf, writable)
    nbytes = _count(cb, view.nbytes)
    return [view if nbytes == view.nbytes else view[:nbytes]], nbytes


def allocate(size: int) -> bytearray:
    """A zeroed buffer of ``size`` bytes; EINVAL/ENOMEM rather than a bare error."""
    if size < 0 or size > MAX_OFFSET:
        raise error(errno.EINVAL, f"cannot read {size} bytes")
    try:
        return bytearray(size)
    except (MemoryError, OverflowError):
        raise error(errno.ENOMEM, f"cannot allocate a {size}-byte buffer") from None


def iov_target(cb: Aiocb, writable: bool) -> tuple[list[Any], int]:
    """(views, total) for aio_readv/aio_writev; EINVAL past IOV_MAX entries."""
    iov = cb.iov
    if iov is None or isinstance(iov, bytes | bytearray | memoryview | str):
        raise error(errno.EINVAL, "aio_readv/aio_writev need cb.iov, a sequence of buffers")
    try:
        entries = list(iov)
    except TypeError:
        raise error(errno.EINVAL, "cb.iov must be a sequence of buffers") from None
    if len(entries) > IOV_MAX:
        raise error(errno.EINVAL, f"iovcnt {len(entries)} is over IOV_MAX ({IOV_MAX})")
    views = [_view(entry, writable) for entry in entries]
    return views, sum(view.nbytes for view in views)


def target(cb: Aiocb, op: int) -> tuple[list[Any], int]:
    if op in SYNCS:
        return [], 0
    if op in (LIO_READV, LIO_WRITEV):
        return iov_target(cb, op == LIO_READV)
    return buffer_target(cb, op == LIO_READ)


def pin(views: list[Any]) -> list[Any]:
    """Hold an export of every bytearray while a job outlives its submit call
    (the same list when nothing needs one: memoryviews and bytes hold themselves)."""
    for v in views:
        if type(v) is bytearray:
            return [memoryview(v) if type(v) is bytearray else v for v in views]
    return views
