"""Async ``os.path`` queries, as aiofiles.os.path has them: each call is a pool job."""

from __future__ import annotations

from .._os import abspath as abspath
from .._os import exists as exists
from .._os import getatime as getatime
from .._os import getctime as getctime
from .._os import getmtime as getmtime
from .._os import getsize as getsize
from .._os import isdir as isdir
from .._os import isfile as isfile
from .._os import islink as islink
from .._os import ismount as ismount
from .._os import samefile as samefile
from .._os import sameopenfile as sameopenfile

__all__ = [
    "abspath", "exists", "getatime", "getctime", "getmtime", "getsize", "isdir", "isfile",
    "islink", "ismount", "samefile", "sameopenfile",
]
