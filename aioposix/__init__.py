"""aioposix: POSIX asynchronous I/O for asyncio, modelled on FreeBSD's kernel AIO.

The public facade: everything is defined in the private modules and
re-exported here.
"""

from __future__ import annotations

# The aiofiles-shaped submodules, importable as attributes (``aioposix.os.stat``)
# but kept out of ``__all__``: a star import must not shadow the stdlib's os.
from . import os as os
from . import tempfile as tempfile
from . import threadpool as threadpool
from ._binfile import AsyncBinaryFile as AsyncBinaryFile
from ._calls import aio_cancel as aio_cancel
from ._calls import aio_error as aio_error
from ._calls import aio_fsync as aio_fsync
from ._calls import aio_read as aio_read
from ._calls import aio_readv as aio_readv
from ._calls import aio_return as aio_return
from ._calls import aio_suspend as aio_suspend
from ._calls import aio_waitcomplete as aio_waitcomplete
from ._calls import aio_write as aio_write
from ._calls import aio_writev as aio_writev
from ._calls import lio_listio as lio_listio
from ._calls import pread as pread
from ._calls import pwrite as pwrite
from ._constants import AIO_ALLDONE as AIO_ALLDONE
from ._constants import AIO_CANCELED as AIO_CANCELED
from ._constants import AIO_LISTIO_MAX as AIO_LISTIO_MAX
from ._constants import AIO_NOTCANCELED as AIO_NOTCANCELED
from ._constants import EV_ADD as EV_ADD
from ._constants import EV_CLEAR as EV_CLEAR
from ._constants import EV_DELETE as EV_DELETE
from ._constants import EV_DISABLE as EV_DISABLE
from ._constants import EV_DISPATCH as EV_DISPATCH
from ._constants import EV_ENABLE as EV_ENABLE
from ._constants import EV_EOF as EV_EOF
from ._constants import EV_ERROR as EV_ERROR
from ._constants import EV_ONESHOT as EV_ONESHOT
from ._constants import EV_RECEIPT as EV_RECEIPT
from ._constants import EVFILT_AIO as EVFILT_AIO
from ._constants import EVFILT_LIO as EVFILT_LIO
from ._constants import EVFILT_READ as EVFILT_READ
from ._constants import EVFILT_USER as EVFILT_USER
from ._constants import EVFILT_WRITE as EVFILT_WRITE
from ._constants import LIO_DSYNC as LIO_DSYNC
from ._constants import LIO_NOP as LIO_NOP
from ._constants import LIO_NOWAIT as LIO_NOWAIT
from ._constants import LIO_READ as LIO_READ
from ._constants import LIO_READV as LIO_READV
from ._constants import LIO_SYNC as LIO_SYNC
from ._constants import LIO_WAIT as LIO_WAIT
from ._constants import LIO_WRITE as LIO_WRITE
from ._constants import LIO_WRITEV as LIO_WRITEV
from ._constants import NOTE_FFAND as NOTE_FFAND
from ._constants import NOTE_FFCOPY as NOTE_FFCOPY
from ._constants import NOTE_FFNOP as NOTE_FFNOP
from ._constants import NOTE_FFOR as NOTE_FFOR
from ._constants import NOTE_TRIGGER as NOTE_TRIGGER
from ._constants import SIGEV_KEVENT as SIGEV_KEVENT
from ._constants import SIGEV_NONE as SIGEV_NONE
from ._constants import SIGEV_SIGNAL as SIGEV_SIGNAL
from ._constants import SIGEV_THREAD as SIGEV_THREAD
from ._context import AioContext as AioContext
from ._context import ContextStatistics as ContextStatistics
from ._context import current_context as current_context
from ._file import open as open
from ._filebase import AsyncFile as AsyncFile
from ._job import Aiocb as Aiocb
from ._job import JobState as JobState
from ._kernel import sysctl as sysctl
from ._kqueue import KEvent as KEvent
from ._kqueue import Kqueue as Kqueue
from ._notify import SigEvent as SigEvent
from ._stdio import stderr as stderr
from ._stdio import stderr_bytes as stderr_bytes
from ._stdio import stdin as stdin
from ._stdio import stdin_bytes as stdin_bytes
from ._stdio import stdout as stdout
from ._stdio import stdout_bytes as stdout_bytes
from ._textfile import AsyncTextFile as AsyncTextFile

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
