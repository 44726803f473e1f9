"""Async ``os.path`` queries, as aiofiles.os.path has them.

The queries made of a stat (exists, isfile, isdir, islink, getsize, getmtime,
getatime, getctime) are kernel-submitted statx calls where io_uring can take
them, pool jobs otherwise; the others are pool jobs.
"""

from __future__ import annotations

from aioposix._file.osops import abspath as abspath
from aioposix._file.osops import exists as exists
from aioposix._file.osops import getatime as getatime
from aioposix._file.osops import getctime as getctime
from aioposix._file.osops import getmtime as getmtime
from aioposix._file.osops import getsize as getsize
from aioposix._file.osops import isdir as isdir
from aioposix._file.osops import isfile as isfile
from aioposix._file.osops import islink as islink
from aioposix._file.osops import ismount as ismount
from aioposix._file.osops import samefile as samefile
from aioposix._file.osops import sameopenfile as sameopenfile

__all__ = [
    "abspath", "exists", "getatime", "getctime", "getmtime", "getsize", "isdir", "isfile",
    "islink", "ismount", "samefile", "sameopenfile",
]
