"""Async ``os`` calls, as aiofiles.os has them: each call is a pool job.

``await aioposix.os.stat(path)`` returns what ``os.stat(path)`` returns
(and raises what it raises); the call is made on a worker thread of
aioposix's job pool, not on the loop thread.  ``aioposix.os.path`` has the
``os.path`` queries.  ``wrap(func)`` makes any blocking function such a job.
See docs/asyncfile.md.
"""

from __future__ import annotations

from .._offload import wrap as wrap
from .._os import access as access
from .._os import getcwd as getcwd
from .._os import link as link
from .._os import listdir as listdir
from .._os import makedirs as makedirs
from .._os import mkdir as mkdir
from .._os import readlink as readlink
from .._os import remove as remove
from .._os import removedirs as removedirs
from .._os import rename as rename
from .._os import renames as renames
from .._os import replace as replace
from .._os import rmdir as rmdir
from .._os import scandir as scandir
from .._os import sendfile as sendfile
from .._os import stat as stat
from .._os import statvfs as statvfs
from .._os import symlink as symlink
from .._os import unlink as unlink
from . import path as path

__all__ = [
    "access", "getcwd", "link", "listdir", "makedirs", "mkdir", "path", "readlink", "remove",
    "removedirs", "rename", "renames", "replace", "rmdir", "scandir", "sendfile", "stat",
    "statvfs", "symlink", "unlink", "wrap",
]
