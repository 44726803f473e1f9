"""aiofiles.os and aiofiles.os.path for aioposix: each call is a pool job.

The same names, arguments and results as ``os`` and ``os.path`` (and so as
aiofiles.os), made async.  Each call runs as one job on aioposix's
job pool (see ``_offload``): cancellable while queued, never on the
loop thread.  ``loop=`` and ``executor=`` are accepted, as aiofiles takes
them, and unused.
"""

from __future__ import annotations

import os
import os.path

from aioposix._backends.offload import wrap

access = wrap(os.access)
getcwd = wrap(os.getcwd)
link = wrap(os.link)
listdir = wrap(os.listdir)
makedirs = wrap(os.makedirs)
mkdir = wrap(os.mkdir)
readlink = wrap(os.readlink)
remove = wrap(os.remove)
removedirs = wrap(os.removedirs)
rename = wrap(os.rename)
renames = wrap(os.renames)
replace = wrap(os.replace)
rmdir = wrap(os.rmdir)
scandir = wrap(os.scandir)
sendfile = wrap(os.sendfile)
stat = wrap(os.stat)
statvfs = wrap(os.statvfs)
symlink = wrap(os.symlink)
unlink = wrap(os.unlink)

abspath = wrap(os.path.abspath)
exists = wrap(os.path.exists)
getatime = wrap(os.path.getatime)
getctime = wrap(os.path.getctime)
getmtime = wrap(os.path.getmtime)
getsize = wrap(os.path.getsize)
isdir = wrap(os.path.isdir)
isfile = wrap(os.path.isfile)
islink = wrap(os.path.islink)
ismount = wrap(os.path.ismount)
samefile = wrap(os.path.samefile)
sameopenfile = wrap(os.path.sameopenfile)

OS_NAMES = (
    "access", "getcwd", "link", "listdir", "makedirs", "mkdir", "readlink", "remove",
    "removedirs", "rename", "renames", "replace", "rmdir", "scandir", "sendfile", "stat",
    "statvfs", "symlink", "unlink",
)
PATH_NAMES = (
    "abspath", "exists", "getatime", "getctime", "getmtime", "getsize", "isdir", "isfile",
    "islink", "ismount", "samefile", "sameopenfile",
)
