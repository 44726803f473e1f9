"""The io_uring ABI, as the ring needs it: structures, system calls, the probe.

Linux's <linux/io_uring.h> by hand, with ctypes and struct: the setup
parameters, the SQE and CQE layouts, the opcodes and flags aioposix uses,
the three system calls, how to take a buffer's address without a copy, and
``probe()``, which says once per process whether io_uring can be used here.
The ring itself (``aioposix._backends.ring``) builds on this.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from typing import Any

from aioposix._core.errors import error, failed

NR_SETUP, NR_ENTER, NR_REGISTER = 425, 426, 427  # the same on x86-64 and arm64
OFF_SQ_RING, OFF_CQ_RING, OFF_SQES = 0, 0x8000000, 0x10000000
FEAT_SINGLE_MMAP = 1
ENTER_GETEVENTS = 1
SETUP_CQSIZE = 1 << 3
SQ_CQ_OVERFLOW = 1 << 1  # sq_ring->flags: CQEs wait in the kernel's overflow list
REGISTER_EVENTFD = 4
OP_READV, OP_WRITEV, OP_FSYNC, OP_READ, OP_WRITE = 1, 2, 3, 22, 23
FSYNC_DATASYNC = 1
SQE = struct.Struct("=BBHiQQIIQHHiQQ")  # io_uring_sqe: 64 bytes
CQE = struct.Struct("=QiI")  # io_uring_cqe: 16 bytes
U32 = struct.Struct("=I")


class SqOffsets(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in (
        "head", "tail", "ring_mask", "ring_entries", "flags", "dropped", "array", "resv1")] + [
        ("user_addr", ctypes.c_uint64)]


class CqOffsets(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in (
        "head", "tail", "ring_mask", "ring_entries", "overflow", "cqes", "flags", "resv1")] + [
        ("user_addr", ctypes.c_uint64)]


class Params(ctypes.Structure):
    _fields_ = [
        ("sq_entries", ctypes.c_uint32), ("cq_entries", ctypes.c_uint32),
        ("flags", ctypes.c_uint32), ("sq_thread_cpu", ctypes.c_uint32),
        ("sq_thread_idle", ctypes.c_uint32), ("features", ctypes.c_uint32),
        ("wq_fd", ctypes.c_uint32), ("resv", ctypes.c_uint32 * 3),
        ("sq_off", SqOffsets), ("cq_off", CqOffsets),
    ]


libc = ctypes.CDLL(None, use_errno=True)
syscall = libc.syscall
syscall.restype = ctypes.c_long


def check(result: int) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise failed(code)
    return result


class Iovecs(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def address(view: Any, writable: bool) -> tuple[int, int, Any]:
    """(address, length, what keeps it alive) of one buffer, with no copy."""
    if type(view) is bytes:
        pointer = ctypes.c_char_p(view)
        return ctypes.cast(pointer, ctypes.c_void_p).value or 0, len(view), (view, pointer)
    mv = view if type(view) is memoryview else memoryview(view)
    if mv.readonly:
        if writable:
            raise error(errno.EFAULT, "cannot read into a read-only buffer")
        data = bytes(mv)  # a read-only buffer ctypes cannot address: one copy
        return address(data, False)
    if mv.nbytes == 0:
        return 0, 0, None
    first = _char_at(mv)  # its first byte: holds an export of the buffer while in flight
    return ctypes.addressof(first), mv.nbytes, first


_char_at = ctypes.c_char.from_buffer


_PROBE: dict[str, str | None] = {}  # {"reason": why io_uring is unusable, or None}


def probe() -> str | None:
    """None if io_uring works here, else the reason (ENOSYS, EPERM, disabled).

    Asked once per process (and again in a forked child).
    """
    if "reason" not in _PROBE:
        _PROBE["reason"] = _probe_now()
    return _PROBE["reason"]


def _probe_now() -> str | None:
    if os.environ.get("AIOPOSIX_NO_IO_URING"):
        return "AIOPOSIX_NO_IO_URING is set"
    machine = os.uname().machine
    if machine not in ("x86_64", "amd64"):
        return f"the ring's memory ordering is relied on only for x86-64, not {machine}"
    return _try_setup()


def _try_setup() -> str | None:
    params = Params()
    fd = syscall(NR_SETUP, 4, ctypes.byref(params))
    if fd < 0:
        code = ctypes.get_errno()
        return f"io_uring_setup failed: {errno.errorcode.get(code, code)} ({os.strerror(code)})"
    os.close(fd)
    return None


def after_fork_in_child() -> None:
    _PROBE.clear()  # a child asks again
