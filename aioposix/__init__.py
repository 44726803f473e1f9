"""aioposix: POSIX asynchronous I/O for asyncio, modelled on FreeBSD's kernel AIO.

The public facade: everything is defined in the private modules and
re-exported here.
"""

from __future__ import annotations

# The aiofiles-shaped submodules, importable as attributes (``aioposix.os.stat``)
# but kept out of ``__all__``: a star import must not shadow the stdlib's os.
from aioposix import os as os
from aioposix import tempfile as tempfile
from aioposix import threadpool as threadpool
from aioposix._context.calls import aio_cancel as aio_cancel
from aioposix._context.calls import aio_error as aio_error
from aioposix._context.calls import aio_fsync as aio_fsync
from aioposix._context.calls import aio_read as aio_read
from aioposix._context.calls import aio_readv as aio_readv
from aioposix._context.calls import aio_return as aio_return
from aioposix._context.calls import aio_suspend as aio_suspend
from aioposix._context.calls import aio_waitcomplete as aio_waitcomplete
from aioposix._context.calls import aio_write as aio_write
from aioposix._context.calls import aio_writev as aio_writev
from aioposix._context.calls import lio_listio as lio_listio
from aioposix._context.calls import pread as pread
from aioposix._context.calls import pwrite as pwrite
from aioposix._context.checks import ContextStatistics as ContextStatistics
from aioposix._context.context import AioContext as AioContext
from aioposix._context.default import current_context as current_context
from aioposix._core.constants import AIO_ALLDONE as AIO_ALLDONE
from aioposix._core.constants import AIO_CANCELED as AIO_CANCELED
from aioposix._core.constants import AIO_LISTIO_MAX as AIO_LISTIO_MAX
from aioposix._core.constants import AIO_NOTCANCELED as AIO_NOTCANCELED
from aioposix._core.constants import EV_ADD as EV_ADD
from aioposix._core.constants import EV_CLEAR as EV_CLEAR
from aioposix._core.constants import EV_DELETE as EV_DELETE
from aioposix._core.constants import EV_DISABLE as EV_DISABLE
from aioposix._core.constants import EV_DISPATCH as EV_DISPATCH
from aioposix._core.constants import EV_ENABLE as EV_ENABLE
from aioposix._core.constants import EV_EOF as EV_EOF
from aioposix._core.constants import EV_ERROR as EV_ERROR
from aioposix._core.constants import EV_ONESHOT as EV_ONESHOT
from aioposix._core.constants import EV_RECEIPT as EV_RECEIPT
from aioposix._core.constants import EVFILT_AIO as EVFILT_AIO
from aioposix._core.constants import EVFILT_LIO as EVFILT_LIO
from aioposix._core.constants import EVFILT_READ as EVFILT_READ
from aioposix._core.constants import EVFILT_USER as EVFILT_USER
from aioposix._core.constants import EVFILT_WRITE as EVFILT_WRITE
from aioposix._core.constants import LIO_DSYNC as LIO_DSYNC
from aioposix._core.constants import LIO_NOP as LIO_NOP
from aioposix._core.constants import LIO_NOWAIT as LIO_NOWAIT
from aioposix._core.constants import LIO_READ as LIO_READ
from aioposix._core.constants import LIO_READV as LIO_READV
from aioposix._core.constants import LIO_SYNC as LIO_SYNC
from aioposix._core.constants import LIO_WAIT as LIO_WAIT
from aioposix._core.constants import LIO_WRITE as LIO_WRITE
from aioposix._core.constants import LIO_WRITEV as LIO_WRITEV
from aioposix._core.constants import NOTE_FFAND as NOTE_FFAND
from aioposix._core.constants import NOTE_FFCOPY as NOTE_FFCOPY
from aioposix._core.constants import NOTE_FFNOP as NOTE_FFNOP
from aioposix._core.constants import NOTE_FFOR as NOTE_FFOR
from aioposix._core.constants import NOTE_TRIGGER as NOTE_TRIGGER
from aioposix._core.constants import SIGEV_KEVENT as SIGEV_KEVENT
from aioposix._core.constants import SIGEV_NONE as SIGEV_NONE
from aioposix._core.constants import SIGEV_SIGNAL as SIGEV_SIGNAL
from aioposix._core.constants import SIGEV_THREAD as SIGEV_THREAD
from aioposix._core.job import Aiocb as Aiocb
from aioposix._core.sigevent import SigEvent as SigEvent
from aioposix._core.states import JobState as JobState
from aioposix._file.base import AsyncFile as AsyncFile
from aioposix._file.binary import AsyncBinaryFile as AsyncBinaryFile
from aioposix._file.opening import open as open
from aioposix._file.stdio import stderr as stderr
from aioposix._file.stdio import stderr_bytes as stderr_bytes
from aioposix._file.stdio import stdin as stdin
from aioposix._file.stdio import stdin_bytes as stdin_bytes
from aioposix._file.stdio import stdout as stdout
from aioposix._file.stdio import stdout_bytes as stdout_bytes
from aioposix._file.text import AsyncTextFile as AsyncTextFile
from aioposix._kernel.kernel import sysctl as sysctl
from aioposix._notify.kevent import KEvent as KEvent
from aioposix._notify.kqueue import Kqueue as Kqueue

__version__ = "0.1.0"

__all__ = [
    "AIO_ALLDONE",
    "AIO_CANCELED",
    "AIO_LISTIO_MAX",
    "AIO_NOTCANCELED",
    "EVFILT_AIO",
    "EVFILT_LIO",
    "EVFILT_READ",
    "EVFILT_USER",
    "EVFILT_WRITE",
    "EV_ADD",
    "EV_CLEAR",
    "EV_DELETE",
    "EV_DISABLE",
    "EV_DISPATCH",
    "EV_ENABLE",
    "EV_EOF",
    "EV_ERROR",
    "EV_ONESHOT",
    "EV_RECEIPT",
    "LIO_DSYNC",
    "LIO_NOP",
    "LIO_NOWAIT",
    "LIO_READ",
    "LIO_READV",
    "LIO_SYNC",
    "LIO_WAIT",
    "LIO_WRITE",
    "LIO_WRITEV",
    "NOTE_FFAND",
    "NOTE_FFCOPY",
    "NOTE_FFNOP",
    "NOTE_FFOR",
    "NOTE_TRIGGER",
    "SIGEV_KEVENT",
    "SIGEV_NONE",
    "SIGEV_SIGNAL",
    "SIGEV_THREAD",
    "AioContext",
    "Aiocb",
    "AsyncBinaryFile",
    "AsyncFile",
    "AsyncTextFile",
    "ContextStatistics",
    "JobState",
    "KEvent",
    "Kqueue",
    "SigEvent",
    "aio_cancel",
    "aio_error",
    "aio_fsync",
    "aio_read",
    "aio_readv",
    "aio_return",
    "aio_suspend",
    "aio_waitcomplete",
    "aio_write",
    "aio_writev",
    "current_context",
    "lio_listio",
    "open",
    "pread",
    "pwrite",
    "stderr",
    "stderr_bytes",
    "stdin",
    "stdin_bytes",
    "stdout",
    "stdout_bytes",
    "sysctl",
]
