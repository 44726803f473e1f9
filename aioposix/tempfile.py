"""Temporary files and directories, as aiofiles.tempfile has them.

``async with aioposix.tempfile.TemporaryFile() as f`` gives an AsyncFile
whose reads and writes are AIO jobs; see docs/asyncfile.md.
"""

from __future__ import annotations

from ._tempfile import NamedTemporaryFile as NamedTemporaryFile
from ._tempfile import SpooledTemporaryFile as SpooledTemporaryFile
from ._tempfile import TemporaryDirectory as TemporaryDirectory
from ._tempfile import TemporaryFile as TemporaryFile

__all__ = ["NamedTemporaryFile", "SpooledTemporaryFile", "TemporaryDirectory", "TemporaryFile"]
