"""aiofiles.threadpool's names, so that ``from aiofiles.threadpool import
open`` becomes ``from aioposix.threadpool import open``.

Nothing here runs on a thread pool: ``open`` is ``aioposix.open`` (AIO
jobs), ``wrap`` adopts an open io file object as an AsyncFile.
"""

from __future__ import annotations

from aioposix._file.opening import open as open
from aioposix._file.opening import wrap as wrap
from aioposix._file.stdio import stderr as stderr
from aioposix._file.stdio import stderr_bytes as stderr_bytes
from aioposix._file.stdio import stdin as stdin
from aioposix._file.stdio import stdin_bytes as stdin_bytes
from aioposix._file.stdio import stdout as stdout
from aioposix._file.stdio import stdout_bytes as stdout_bytes

__all__ = ["open", "stderr", "stderr_bytes", "stdin", "stdin_bytes", "stdout", "stdout_bytes",
           "wrap"]
