"""Temporary files and directories, as aiofiles.tempfile has them.

``async with aioposix.tempfile.TemporaryFile() as f`` gives an AsyncFile
whose reads and writes are AIO jobs; see docs/asyncfile.md.
"""

from __future__ import annotations

from aioposix._file.tempfiles import NamedTemporaryFile as NamedTemporaryFile
from aioposix._file.tempfiles import SpooledTemporaryFile as SpooledTemporaryFile
from aioposix._file.tempfiles import TemporaryDirectory as TemporaryDirectory
from aioposix._file.tempfiles import TemporaryFile as TemporaryFile

__all__ = ["NamedTemporaryFile", "SpooledTemporaryFile", "TemporaryDirectory", "TemporaryFile"]
