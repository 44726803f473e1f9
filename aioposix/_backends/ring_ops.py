"""os calls that are not reads or writes, submitted to the kernel on the loop's ring.

``aioposix.os`` runs stat (IORING_OP_STATX), rename and replace
(IORING_OP_RENAMEAT), remove, unlink and rmdir (IORING_OP_UNLINKAT), mkdir
(IORING_OP_MKDIRAT), symlink (IORING_OP_SYMLINKAT), link (IORING_OP_LINKAT)
and fsync (IORING_OP_FSYNC), and ``aioposix.open`` opens a path
(IORING_OP_OPENAT) and its file's awaited close closes the fd
(IORING_OP_CLOSE), as kernel-submitted jobs where they can: the loop
thread writes one SQE (``Ring.submit_op``), the kernel makes the call, and
the CQE resumes the awaiting task; no thread of ours takes part.  The result
is what ``os`` gives: an ``os.stat_result`` built from ``struct statx`` as
``os.stat`` builds it from ``struct stat``, and the same OSError (errno,
strerror, filename, filename2); the calls that raise an audit event in
``os`` raise the same one here.

Each function below returns None (``stat``, ``open``) or False (the others) when the
call cannot go that way, and the caller then makes it a pool job
(``aioposix._backends.offload``):
- io_uring is unavailable here, or ``vfs.aio.backend`` is ``threads``
  (``vfs.aio.backend_active`` is not ``io_uring``);
- this kernel lacks the opcode: asked once per process with
  IORING_REGISTER_PROBE;
- an argument of a form the kernel path does not take: a path that is not
  str, bytes or os.PathLike, or holds a NUL; a dir_fd or mode that is not a
  plain int in range; an fd given as an object with ``fileno()``; open's
  flags or mode not a plain int in range.  ``os`` then raises what it
  raises, or makes the call;
- the ring already holds as many requests as its CQ can take.

What the kernel reads or writes (the encoded paths, the statx buffer) is
held in the request's ``keep`` until its CQE.  A request given to the
kernel cannot be taken back: a task cancelled while it waits gets
CancelledError at once, the kernel still makes the call (the rename
happens) and its result is dropped; but for an open, whose result is a
descriptor: that one is closed (on the CQE, or by the cancelled task if the
CQE came before it ran), so none is left open for nobody.

A loop holds its ring for these calls from the first one until it shuts
down (``shutdown_asyncgens``, which asyncio.run calls); a loop closed
without that leaves its ring to the reaper, which closes it.

The kernel makes an IORING_OP_OPENAT without waiting where it can (as if
O_NONBLOCK were given, the flag then cleared): a FIFO opened for reading
does not wait for a writer there, so ``aioposix._file.base.open_fd``
opens one again the way open(2) does.  What ``aioposix.open`` does not
open by a path (an fd, an ``opener``) does not come here.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import struct
import sys
from collections.abc import AsyncGenerator, Callable
from typing import Any, Final

from aioposix._backends import ring as uring
from aioposix._backends import uring_abi as abi
from aioposix._core import loopdata
from aioposix._core.running import running_loop
from aioposix._kernel.kernel import KERNEL

# enum io_uring_op (include/uapi/linux/io_uring.h)
OP_FSYNC: Final = 3
OP_OPENAT: Final = 18
OP_CLOSE: Final = 19
OP_STATX: Final = 21
OP_RENAMEAT: Final = 35
OP_UNLINKAT: Final = 36
OP_MKDIRAT: Final = 37
OP_SYMLINKAT: Final = 38
OP_LINKAT: Final = 39
REGISTER_PROBE: Final = 8
OP_SUPPORTED: Final = 1  # IO_URING_OP_SUPPORTED in io_uring_probe_op.flags
PROBE_OPS: Final = 256

# include/uapi/linux/fcntl.h, include/uapi/linux/stat.h
AT_FDCWD: Final = -100
AT_SYMLINK_NOFOLLOW: Final = 0x100
AT_REMOVEDIR: Final = 0x200
AT_SYMLINK_FOLLOW: Final = 0x400
AT_EMPTY_PATH: Final = 0x1000
STATX_BASIC_STATS: Final = 0x7FF

# struct statx up to stx_dev_minor: mask, blksize, attributes, nlink, uid, gid, mode,
# spare, ino, size, blocks, attributes_mask, then atime, btime, ctime, mtime
# (tv_sec, tv_nsec, reserved), then rdev major/minor, dev major/minor
STATX: Final = struct.Struct("=IIQIIIHHQQQQ" + "qIi" * 4 + "IIII")
STATX_SIZE: Final = 256

_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1
_supported: list[frozenset[int]] = []  # the opcodes this kernel has, probed once
_submitted = 0  # calls handed to the kernel in this process (read by the tests)


# -- the loop's ring and what the kernel has -----------------------------------------


def supported_ops(ring: uring.Ring) -> frozenset[int]:
    """The opcodes this kernel supports (IORING_REGISTER_PROBE), asked once per process."""
    if not _supported:
        buf = ctypes.create_string_buffer(16 + PROBE_OPS * 8)  # zeroed, as the kernel wants
        ok = abi.syscall(abi.NR_REGISTER, ring.fd, REGISTER_PROBE, buf, PROBE_OPS) >= 0
        count = buf.raw[1] if ok else 0  # ops_len
        flags = struct.unpack_from(f"={count * 4}H", buf, 16)[1::4] if count else ()
        _supported.append(frozenset(op for op, f in enumerate(flags) if f & OP_SUPPORTED))
    return _supported[0]


class _Hold:
    """The loop's hold on its ring for these calls, given back at the loop's shutdown."""

    __slots__ = ("loop", "ring", "sentinel")

    def __init__(self, loop: asyncio.AbstractEventLoop, ring: uring.Ring) -> None:
        self.loop: asyncio.AbstractEventLoop | None = loop
        self.ring = ring
        self.sentinel = _at_shutdown(self)  # kept: the loop holds its async generators weakly
        try:
            self.sentinel.asend(None).send(None)  # started: the loop now knows it
        except StopIteration:
            pass

    def give_back(self) -> None:
        loop, self.loop = self.loop, None
        if loop is None:
            return
        if loopdata.get(loop, "ring_ops") is self:
            loopdata.drop(loop, "ring_ops")
        uring.release(self.ring)  # closed here if nothing else holds it


async def _at_shutdown(hold: _Hold) -> AsyncGenerator[None, None]:
    """Closed by the loop's shutdown_asyncgens(): the ring is given back then."""
    try:
        yield
    finally:
        hold.give_back()


def ring_for(opcode: int) -> uring.Ring | None:
    """The running loop's ring if ``opcode`` can be submitted on it now, else None.

    Raises RuntimeError (naming the cause) when no asyncio loop runs."""
    loop = running_loop()
    if KERNEL.backend() != "io_uring":  # vfs.aio.backend_active: threads, or no io_uring
        return None
    hold: _Hold | None = loopdata.get(loop, "ring_ops")
    if hold is None:
        try:
            ring = uring.acquire(loop)
        except OSError:  # no ring to be had now (EMFILE, ENOMEM): the pool serves
            return None
        hold = _Hold(loop, ring)
        loopdata.put(loop, "ring_ops", hold)
    if opcode not in supported_ops(hold.ring):
        return None
    return hold.ring


def _done(future: asyncio.Future[int], result: int, err: int) -> None:
    """A CQE: on the loop's thread, or on the reaper's once the loop has closed."""
    if future.done() or future.get_loop().is_closed():
        return  # the task was cancelled, or nobody is left to tell
    future.set_result(-err if err else result)


Done = Callable[[asyncio.Future[int], int, int], None]


def _start(ring: uring.Ring, keep: object, opcode: int, fd: int, *, off: int = 0,
           addr: int = 0, length: int = 0, op_flags: int = 0,
           done: Done = _done) -> asyncio.Future[int] | None:
    """One SQE; the future of the CQE's result (negative: -errno), or None if the
    ring is full.  ``done`` gets the CQE (``_done``: the result to the future)."""
    global _submitted
    loop = ring.loop
    assert loop is not None
    future: asyncio.Future[int] = loop.create_future()
    try:
        ring.submit_op(future, done, keep, opcode, fd, off=off, addr=addr,
                       length=length & 0xFFFFFFFF, op_flags=op_flags)
    except BlockingIOError:
        return None  # (an audit event, if any, is raised again by the pool job's os call)
    _submitted += 1
    return future


async def _submit(ring: uring.Ring, keep: object, opcode: int, fd: int, *, off: int = 0,
                  addr: int = 0, length: int = 0, op_flags: int = 0) -> int | None:
    """One SQE; the CQE's result (negative: -errno), or None if the ring is full."""
    future = _start(ring, keep, opcode, fd, off=off, addr=addr, length=length,
                    op_flags=op_flags)
    return None if future is None else await future


# -- arguments as os takes them --------------------------------------------------------


def _path(path: object) -> tuple[object, bytes] | None:
    """(the path as os reports it, its bytes for the kernel), or None if os should see it."""
    try:
        name = os.fspath(path)  # type: ignore[call-overload]
    except TypeError:
        return None
    encoded = os.fsencode(name)
    if b"\0" in encoded:
        return None  # os raises ValueError
    return name, encoded


def _dir_fd(dir_fd: object) -> int | None:
    """The dir_fd for the kernel (AT_FDCWD for None), or None if os should see it."""
    if dir_fd is None:
        return AT_FDCWD
    if type(dir_fd) is int and _INT_MIN <= dir_fd <= _INT_MAX:
        return dir_fd
    return None


def _audit_fd(fd: int) -> int:
    return -1 if fd == AT_FDCWD else fd  # as os reports the default dir_fd


def _address(data: bytes) -> tuple[int, Any]:
    address, _, keep = abi.address(data, False)  # bytes end in a NUL: a C string as it is
    return address, keep


def _error(err: int, filename: object = None, filename2: object = None) -> OSError:
    """The OSError os raises for ``err`` (its subclass, strerror, file names)."""
    if filename is None:
        return OSError(err, os.strerror(err))
    return OSError(err, os.strerror(err), filename, None, filename2)


# -- stat ------------------------------------------------------------------------------


def stat_result(buf: Any) -> os.stat_result:
    """``os.stat_result`` from a ``struct statx``, field for field as ``os.stat`` gives it."""
    (_, blksize, _, nlink, uid, gid, mode, _, ino, size, blocks, _,
     a_s, a_ns, _, _, _, _, c_s, c_ns, _, m_s, m_ns, _,
     rdev_major, rdev_minor, dev_major, dev_minor) = STATX.unpack_from(buf)
    dev = os.makedev(dev_major, dev_minor)
    return os.stat_result(
        (mode, ino, dev, nlink, uid, gid, size, a_s, m_s, c_s),
        {"st_atime": a_s + a_ns * 1e-9, "st_mtime": m_s + m_ns * 1e-9,
         "st_ctime": c_s + c_ns * 1e-9,
         "st_atime_ns": a_s * 1_000_000_000 + a_ns, "st_mtime_ns": m_s * 1_000_000_000 + m_ns,
         "st_ctime_ns": c_s * 1_000_000_000 + c_ns,
         "st_blksize": blksize, "st_blocks": blocks,
         "st_rdev": os.makedev(rdev_major, rdev_minor)})


async def stat(path: object, dir_fd: object, follow_symlinks: object) -> os.stat_result | None:
    """``os.stat(path, dir_fd=, follow_symlinks=)`` as IORING_OP_STATX (None: not submitted)."""
    ring = ring_for(OP_STATX)
    if ring is None:
        return None
    if type(path) is int:  # an open fd: fstat, as os.stat(fd) makes it
        if path < 0 or dir_fd is not None or not follow_symlinks:
            return None
        name: object = path
        dfd, encoded, flags = path, b"", AT_EMPTY_PATH
    else:
        named, dfd_ = _path(path), _dir_fd(dir_fd)
        if named is None or dfd_ is None:
            return None
        (name, encoded), dfd = named, dfd_
        flags = 0 if follow_symlinks else AT_SYMLINK_NOFOLLOW
    buf = ctypes.create_string_buffer(STATX_SIZE)
    address, keep = _address(encoded)
    result = await _submit(ring, (keep, buf), OP_STATX, dfd, addr=address,
                           off=ctypes.addressof(buf), length=STATX_BASIC_STATS, op_flags=flags)
    if result is None:
        return None
    if result < 0:
        raise _error(-result, name)
    return stat_result(buf)


# -- the directory calls and fsync: True once made, False if not submitted ----------------


async def _two_paths(opcode: int, event: str, src: object, dst: object, src_dir_fd: object,
                     dst_dir_fd: object, flags: int = 0) -> bool:
    """renameat / linkat: fd and addr the source, len and addr2 the destination."""
    ring = ring_for(opcode)
    old, new = _path(src), _path(dst)
    old_fd, new_fd = _dir_fd(src_dir_fd), _dir_fd(dst_dir_fd)
    if ring is None or old is None or new is None or old_fd is None or new_fd is None:
        return False
    sys.audit(event, old[0], new[0], _audit_fd(old_fd), _audit_fd(new_fd))
    (old_addr, old_keep), (new_addr, new_keep) = _address(old[1]), _address(new[1])
    result = await _submit(ring, (old_keep, new_keep), opcode, old_fd, addr=old_addr,
                           off=new_addr, length=new_fd, op_flags=flags)
    if result is None:
        return False
    if result < 0:
        raise _error(-result, old[0], new[0])
    return True


async def rename(src: object, dst: object, src_dir_fd: object, dst_dir_fd: object) -> bool:
    """``os.rename`` / ``os.replace`` as IORING_OP_RENAMEAT (renameat2 with no flags)."""
    return await _two_paths(OP_RENAMEAT, "os.rename", src, dst, src_dir_fd, dst_dir_fd)


async def link(src: object, dst: object, src_dir_fd: object, dst_dir_fd: object,
               follow_symlinks: object) -> bool:
    """``os.link`` as IORING_OP_LINKAT, with the flags os gives linkat: AT_SYMLINK_FOLLOW
    only when follow_symlinks and a dir_fd is given (os calls plain link(2), which does
    not follow, otherwise)."""
    given = _dir_fd(src_dir_fd) != AT_FDCWD or _dir_fd(dst_dir_fd) != AT_FDCWD
    flags = AT_SYMLINK_FOLLOW if follow_symlinks and given else 0
    return await _two_paths(OP_LINKAT, "os.link", src, dst, src_dir_fd, dst_dir_fd, flags)


async def unlink(path: object, dir_fd: object, rmdir: bool = False) -> bool:
    """``os.unlink`` / ``os.remove`` (``os.rmdir`` with ``rmdir``) as IORING_OP_UNLINKAT."""
    ring = ring_for(OP_UNLINKAT)
    named, dfd = _path(path), _dir_fd(dir_fd)
    if ring is None or named is None or dfd is None:
        return False
    sys.audit("os.rmdir" if rmdir else "os.remove", named[0], _audit_fd(dfd))
    address, keep = _address(named[1])
    result = await _submit(ring, keep, OP_UNLINKAT, dfd, addr=address,
                           op_flags=AT_REMOVEDIR if rmdir else 0)
    if result is None:
        return False
    if result < 0:
        raise _error(-result, named[0])
    return True


async def mkdir(path: object, mode: object, dir_fd: object) -> bool:
    """``os.mkdir`` as IORING_OP_MKDIRAT (the mode in len)."""
    ring = ring_for(OP_MKDIRAT)
    named, dfd = _path(path), _dir_fd(dir_fd)
    if (ring is None or named is None or dfd is None or type(mode) is not int
            or not _INT_MIN <= mode <= _INT_MAX):
        return False
    sys.audit("os.mkdir", named[0], mode, _audit_fd(dfd))
    address, keep = _address(named[1])
    result = await _submit(ring, keep, OP_MKDIRAT, dfd, addr=address, length=mode)
    if result is None:
        return False
    if result < 0:
        raise _error(-result, named[0])
    return True


async def symlink(src: object, dst: object, dir_fd: object) -> bool:
    """``os.symlink`` as IORING_OP_SYMLINKAT: addr the target, fd and addr2 the link."""
    ring = ring_for(OP_SYMLINKAT)
    target, name, dfd = _path(src), _path(dst), _dir_fd(dir_fd)
    if ring is None or target is None or name is None or dfd is None:
        return False
    sys.audit("os.symlink", target[0], name[0], _audit_fd(dfd))
    (t_addr, t_keep), (n_addr, n_keep) = _address(target[1]), _address(name[1])
    result = await _submit(ring, (t_keep, n_keep), OP_SYMLINKAT, dfd, addr=t_addr, off=n_addr)
    if result is None:
        return False
    if result < 0:
        raise _error(-result, target[0], name[0])
    return True


async def fsync(fd: object) -> bool:
    """``os.fsync(fd)`` as IORING_OP_FSYNC, for an int fd."""
    ring = ring_for(OP_FSYNC)
    if ring is None or type(fd) is not int or not 0 <= fd <= _INT_MAX:
        return False
    result = await _submit(ring, None, OP_FSYNC, fd)
    if result is None:
        return False
    if result < 0:
        raise _error(-result)
    return True


# -- open and close: a descriptor handed out, one taken back ------------------------------


def _opened(future: asyncio.Future[int], result: int, err: int) -> None:
    """openat's CQE: as ``_done``, but a descriptor nobody is left to take is closed."""
    if future.done() or future.get_loop().is_closed():
        if not err and result >= 0:
            os.close(result)  # the task was cancelled, or the loop is gone: not leaked
        return
    future.set_result(-err if err else result)


async def open(path: object, flags: object, mode: object, dir_fd: object = None) -> int | None:
    """``os.open(path, flags, mode, dir_fd=)`` as IORING_OP_OPENAT (the mode in len, the
    flags in open_flags, with O_CLOEXEC added as os.open adds it); the new descriptor,
    or None if not submitted.

    Cancelled while it waits, the kernel may still open the file: the descriptor
    is then closed, by the CQE's callback or here if the CQE came first."""
    ring = ring_for(OP_OPENAT)
    named, dfd = _path(path), _dir_fd(dir_fd)
    if (ring is None or named is None or dfd is None or type(flags) is not int
            or not _INT_MIN <= flags <= _INT_MAX or type(mode) is not int
            or not 0 <= mode <= _INT_MAX):
        return None
    flags |= os.O_CLOEXEC
    sys.audit("open", named[0], None, flags)
    address, keep = _address(named[1])
    future = _start(ring, keep, OP_OPENAT, dfd, addr=address, length=mode,
                    op_flags=flags & 0xFFFFFFFF, done=_opened)
    if future is None:
        return None
    try:
        result = await future
    except BaseException:  # cancelled: if the CQE came already, its descriptor is ours
        if future.done() and not future.cancelled() and future.result() >= 0:
            os.close(future.result())
        raise
    if result < 0:
        raise _error(-result, named[0])
    return result


async def close(fd: object) -> bool:
    """``os.close(fd)`` as IORING_OP_CLOSE, for an int fd.

    Cancelled while it waits, the kernel still closes the descriptor."""
    ring = ring_for(OP_CLOSE)
    if ring is None or type(fd) is not int or not 0 <= fd <= _INT_MAX:
        return False
    result = await _submit(ring, None, OP_CLOSE, fd)
    if result is None:
        return False
    if result < 0:
        raise _error(-result)
    return True
