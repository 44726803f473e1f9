"""aiofiles.os and aiofiles.os.path for aioposix: kernel-submitted where io_uring
has the call, pool jobs otherwise.

The same names, arguments and results as ``os`` and ``os.path`` (and so as
aiofiles.os), made async.  ``stat`` (and the ``os.path`` queries built on
it), ``rename``, ``replace``, ``remove``, ``unlink``, ``rmdir``, ``mkdir``,
``symlink``, ``link`` and ``fsync`` go to the kernel on the loop's io_uring
ring when they can (``aioposix._backends.ring_ops`` says when, and what a
cancelled task means there); every other call, and these when they cannot,
runs as one job on aioposix's job pool (``aioposix._backends.offload``):
cancellable while queued, never on the loop thread.  ``loop=`` and
``executor=`` are accepted, as aiofiles takes them, and unused.
"""

from __future__ import annotations

import os
import os.path
import stat as _stat
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aioposix._backends import ring_ops
from aioposix._backends.offload import run_job, wrap

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike, FileDescriptorOrPath, StrOrBytesPath

access = wrap(os.access)
getcwd = wrap(os.getcwd)
listdir = wrap(os.listdir)
makedirs = wrap(os.makedirs)
readlink = wrap(os.readlink)
removedirs = wrap(os.removedirs)
renames = wrap(os.renames)
scandir = wrap(os.scandir)
sendfile = wrap(os.sendfile)
statvfs = wrap(os.statvfs)

abspath = wrap(os.path.abspath)
ismount = wrap(os.path.ismount)
samefile = wrap(os.path.samefile)
sameopenfile = wrap(os.path.sameopenfile)

F = TypeVar("F", bound=Callable[..., Any])


def _doc_of(func: Callable[..., Any]) -> Callable[[F], F]:
    """Give the async call the docstring of the ``os`` call it makes (its own
    signature stays: the arguments of ``os``, and ``loop=`` and ``executor=``)."""

    def mark(call: F) -> F:
        call.__doc__ = func.__doc__
        return call

    return mark


# -- kernel-submitted where they can be -------------------------------------------------


@_doc_of(os.stat)
async def stat(path: FileDescriptorOrPath, *, dir_fd: int | None = None,
               follow_symlinks: bool = True, loop: object = None,
               executor: object = None) -> os.stat_result:
    result = await ring_ops.stat(path, dir_fd, follow_symlinks)
    if result is None:
        result = await run_job(os.stat, path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
    return result


@_doc_of(os.rename)
async def rename(src: StrOrBytesPath, dst: StrOrBytesPath, *, src_dir_fd: int | None = None,
                 dst_dir_fd: int | None = None, loop: object = None,
                 executor: object = None) -> None:
    if not await ring_ops.rename(src, dst, src_dir_fd, dst_dir_fd):
        await run_job(os.rename, src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)


@_doc_of(os.replace)
async def replace(src: StrOrBytesPath, dst: StrOrBytesPath, *, src_dir_fd: int | None = None,
                  dst_dir_fd: int | None = None, loop: object = None,
                  executor: object = None) -> None:
    if not await ring_ops.rename(src, dst, src_dir_fd, dst_dir_fd):  # the same call on POSIX
        await run_job(os.replace, src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)


@_doc_of(os.remove)
async def remove(path: StrOrBytesPath, *, dir_fd: int | None = None, loop: object = None,
                 executor: object = None) -> None:
    if not await ring_ops.unlink(path, dir_fd):
        await run_job(os.remove, path, dir_fd=dir_fd)


@_doc_of(os.unlink)
async def unlink(path: StrOrBytesPath, *, dir_fd: int | None = None, loop: object = None,
                 executor: object = None) -> None:
    if not await ring_ops.unlink(path, dir_fd):
        await run_job(os.unlink, path, dir_fd=dir_fd)


@_doc_of(os.rmdir)
async def rmdir(path: StrOrBytesPath, *, dir_fd: int | None = None, loop: object = None,
                executor: object = None) -> None:
    if not await ring_ops.unlink(path, dir_fd, rmdir=True):
        await run_job(os.rmdir, path, dir_fd=dir_fd)


@_doc_of(os.mkdir)
async def mkdir(path: StrOrBytesPath, mode: int = 0o777, *, dir_fd: int | None = None,
                loop: object = None, executor: object = None) -> None:
    if not await ring_ops.mkdir(path, mode, dir_fd):
        await run_job(os.mkdir, path, mode, dir_fd=dir_fd)


@_doc_of(os.symlink)
async def symlink(src: StrOrBytesPath, dst: StrOrBytesPath, target_is_directory: bool = False,
                  *, dir_fd: int | None = None, loop: object = None,
                  executor: object = None) -> None:
    if not await ring_ops.symlink(src, dst, dir_fd):
        await run_job(os.symlink, src, dst, target_is_directory, dir_fd=dir_fd)


@_doc_of(os.link)
async def link(src: StrOrBytesPath, dst: StrOrBytesPath, *, src_dir_fd: int | None = None,
               dst_dir_fd: int | None = None, follow_symlinks: bool = True,
               loop: object = None, executor: object = None) -> None:
    if not await ring_ops.link(src, dst, src_dir_fd, dst_dir_fd, follow_symlinks):
        await run_job(os.link, src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd,
                      follow_symlinks=follow_symlinks)


@_doc_of(os.fsync)
async def fsync(fd: FileDescriptorLike, *, loop: object = None, executor: object = None) -> None:
    if not await ring_ops.fsync(fd):
        await run_job(os.fsync, fd)


# -- the os.path queries on stat, as genericpath and posixpath make them ----------------


@_doc_of(os.path.exists)
async def exists(path: FileDescriptorOrPath, *, loop: object = None,
                 executor: object = None) -> bool:
    try:
        await stat(path)
    except (OSError, ValueError):
        return False
    return True


@_doc_of(os.path.isfile)
async def isfile(path: FileDescriptorOrPath, *, loop: object = None,
                 executor: object = None) -> bool:
    try:
        st = await stat(path)
    except (OSError, ValueError):
        return False
    return _stat.S_ISREG(st.st_mode)


@_doc_of(os.path.isdir)
async def isdir(s: FileDescriptorOrPath, *, loop: object = None,
                executor: object = None) -> bool:
    try:
        st = await stat(s)
    except (OSError, ValueError):
        return False
    return _stat.S_ISDIR(st.st_mode)


@_doc_of(os.path.islink)
async def islink(path: StrOrBytesPath, *, loop: object = None,
                 executor: object = None) -> bool:
    try:
        st = await stat(path, follow_symlinks=False)
    except (OSError, ValueError, AttributeError):
        return False
    return _stat.S_ISLNK(st.st_mode)


@_doc_of(os.path.getsize)
async def getsize(filename: FileDescriptorOrPath, *, loop: object = None,
                  executor: object = None) -> int:
    return (await stat(filename)).st_size


@_doc_of(os.path.getmtime)
async def getmtime(filename: FileDescriptorOrPath, *, loop: object = None,
                   executor: object = None) -> float:
    return (await stat(filename)).st_mtime


@_doc_of(os.path.getatime)
async def getatime(filename: FileDescriptorOrPath, *, loop: object = None,
                   executor: object = None) -> float:
    return (await stat(filename)).st_atime


@_doc_of(os.path.getctime)
async def getctime(filename: FileDescriptorOrPath, *, loop: object = None,
                   executor: object = None) -> float:
    return (await stat(filename)).st_ctime


OS_NAMES = (
    "access", "fsync", "getcwd", "link", "listdir", "makedirs", "mkdir", "readlink", "remove",
    "removedirs", "rename", "renames", "replace", "rmdir", "scandir", "sendfile", "stat",
    "statvfs", "symlink", "unlink",
)
PATH_NAMES = (
    "abspath", "exists", "getatime", "getctime", "getmtime", "getsize", "isdir", "isfile",
    "islink", "ismount", "samefile", "sameopenfile",
)
