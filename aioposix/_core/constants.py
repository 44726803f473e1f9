"""The numbers of the POSIX AIO and kqueue interfaces, with FreeBSD's values.

The values follow FreeBSD's <aio.h>, <signal.h> and <sys/event.h> so that a
reader holding vfs_aio.c or a FreeBSD program sees the same numbers here.
"""

from __future__ import annotations

import os
from typing import Final

# lio_listio opcodes (FreeBSD <aio.h>; LIO_VECTORED is a modifier bit).
LIO_NOP: Final = 0
LIO_WRITE: Final = 1
LIO_READ: Final = 2
LIO_VECTORED: Final = 0x4
LIO_WRITEV: Final = LIO_WRITE | LIO_VECTORED
LIO_READV: Final = LIO_READ | LIO_VECTORED
LIO_SYNC: Final = 0x8
LIO_DSYNC: Final = 0x10 | LIO_SYNC

# lio_listio modes.
LIO_NOWAIT: Final = 0
LIO_WAIT: Final = 1

# aio_cancel results.
AIO_CANCELED: Final = 1
AIO_NOTCANCELED: Final = 2
AIO_ALLDONE: Final = 3

# The header's compile-time value; the runtime limit is the sysctl
# p1003_1b.aio_listio_max (= vfs.aio.max_aio_queue_per_proc).
AIO_LISTIO_MAX: Final = 16

# sigevent notification kinds.
SIGEV_NONE: Final = 0
SIGEV_SIGNAL: Final = 1
SIGEV_THREAD: Final = 2
SIGEV_KEVENT: Final = 3

# kqueue filters.
EVFILT_READ: Final = -1
EVFILT_WRITE: Final = -2
EVFILT_AIO: Final = -3
EVFILT_LIO: Final = -10
EVFILT_USER: Final = -11

# kevent flags.
EV_ADD: Final = 0x0001
EV_DELETE: Final = 0x0002
EV_ENABLE: Final = 0x0004
EV_DISABLE: Final = 0x0008
EV_ONESHOT: Final = 0x0010
EV_CLEAR: Final = 0x0020
EV_RECEIPT: Final = 0x0040
EV_DISPATCH: Final = 0x0080
EV_ERROR: Final = 0x4000
EV_EOF: Final = 0x8000

# EVFILT_USER fflags.
NOTE_FFNOP: Final = 0x00000000
NOTE_FFAND: Final = 0x40000000
NOTE_FFOR: Final = 0x80000000
NOTE_FFCOPY: Final = 0xC0000000
NOTE_FFCTRLMASK: Final = 0xC0000000
NOTE_FFLAGSMASK: Final = 0x00FFFFFF
NOTE_TRIGGER: Final = 0x01000000

# What a SIGEV_KEVENT sigevent may ask for (vfs_aio.c: anything else is EINVAL).
KEVENT_FLAGS_ALLOWED: Final = EV_ONESHOT | EV_CLEAR | EV_DISPATCH

IOV_MAX: Final = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024
