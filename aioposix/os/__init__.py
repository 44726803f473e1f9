"""Async ``os`` calls, as aiofiles.os has them, and ``fsync``.

``await aioposix.os.stat(path)`` returns what ``os.stat(path)`` returns
(and raises what it raises), never blocking the loop thread: where io_uring
has the call (stat, rename, replace, remove, unlink, rmdir, mkdir, symlink,
link, fsync) the kernel makes it, submitted on the loop's ring; every other
call, and these where the ring cannot take them, runs on a worker thread of
aioposix's job pool.  ``aioposix.os.path`` has the ``os.path`` queries.
``wrap(func)`` makes any blocking function a pool job.  See docs/asyncfile.md.
"""

from __future__ import annotations

from aioposix._backends.offload import wrap as wrap
from aioposix._file.osops import access as access
from aioposix._file.osops import fsync as fsync
from aioposix._file.osops import getcwd as getcwd
from aioposix._file.osops import link as link
from aioposix._file.osops import listdir as listdir
from aioposix._file.osops import makedirs as makedirs
from aioposix._file.osops import mkdir as mkdir
from aioposix._file.osops import readlink as readlink
from aioposix._file.osops import remove as remove
from aioposix._file.osops import removedirs as removedirs
from aioposix._file.osops import rename as rename
from aioposix._file.osops import renames as renames
from aioposix._file.osops import replace as replace
from aioposix._file.osops import rmdir as rmdir
from aioposix._file.osops import scandir as scandir
from aioposix._file.osops import sendfile as sendfile
from aioposix._file.osops import stat as stat
from aioposix._file.osops import statvfs as statvfs
from aioposix._file.osops import symlink as symlink
from aioposix._file.osops import unlink as unlink
from aioposix.os import path

__all__ = [
    "access", "fsync", "getcwd", "link", "listdir", "makedirs", "mkdir", "path", "readlink",
    "remove", "removedirs", "rename", "renames", "replace", "rmdir", "scandir", "sendfile",
    "stat", "statvfs", "symlink", "unlink", "wrap",
]
