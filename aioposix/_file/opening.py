"""open() and wrap(): aiofiles-style file objects whose I/O is AIO jobs.

``open()`` takes the arguments of the builtin ``open`` (and aiofiles'
``loop=`` and ``executor=``, unused) and gives back an object usable both
as ``async with aioposix.open(...) as f`` and as ``f = await
aioposix.open(...)``, like aiofiles.  Binary modes give an
``AsyncBinaryFile`` (``_binfile``), text modes an ``AsyncTextFile``
(``_textfile``) wrapped around one (``f.buffer``), as io does; both are
``AsyncFile`` (``_filebase``).  ``wrap()`` makes one of an io file object
that is already open (aiofiles.threadpool.wrap), and ``_tempfile`` uses it.

The file is opened when the result is awaited, off the loop thread: with
IORING_OP_OPENAT on the loop's io_uring ring where io_uring works, as a pool
job otherwise (``open_fd`` in ``aioposix._file.base``).  An ``opener`` is
called as before, on the loop thread, and an fd is taken as it is.  Closing
the file closes its fd with IORING_OP_CLOSE, or a pool job (``close_fd``).
One task at a time per file: like io objects, an AsyncFile is not meant to
be shared by concurrent tasks.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar, overload

from aioposix._context.context import AioContext
from aioposix._context.default import current_context
from aioposix._core.running import running_loop
from aioposix._file.base import CHUNK, AsyncFile, open_fd
from aioposix._file.binary import AsyncBinaryFile
from aioposix._file.text import NEWLINES, AsyncTextFile

__all__ = ["CHUNK", "AsyncBinaryFile", "AsyncFile", "AsyncTextFile", "open", "wrap"]

_MODE_CHARS = frozenset("axrwb+t")

StrPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]
FileArg = StrPath | int
Opener = Callable[[Any, int], int]
_F = TypeVar("_F", bound="AsyncFile[Any]")

OpenTextMode = Literal[
    "r", "w", "a", "x", "r+", "w+", "a+", "x+", "+r", "+w", "+a", "+x",
    "rt", "wt", "at", "xt", "r+t", "w+t", "a+t", "x+t", "rt+", "wt+", "at+", "xt+",
]
OpenBinaryMode = Literal[
    "rb", "wb", "ab", "xb", "rb+", "wb+", "ab+", "xb+", "r+b", "w+b", "a+b", "x+b",
    "br", "bw", "ba", "bx", "+rb", "+wb", "+ab", "+xb",
]


class _Opening(Generic[_F]):
    """What ``open()`` returns: awaitable (once: awaiting again gives the
    same file), and an async context manager that closes the file on the
    way out (aiofiles' AiofilesContextManager, whose ``_obj`` is the file)."""

    def __init__(self, make: Callable[[], Awaitable[_F]]) -> None:
        self._make = make
        self._obj: _F | None = None

    async def _open(self) -> _F:
        if self._obj is None:
            self._obj = await self._make()
        return self._obj

    def __await__(self) -> Generator[Any, None, _F]:
        return self._open().__await__()

    async def __aenter__(self) -> _F:
        return await self._open()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self._obj is not None
        await self._obj.close()


@overload
def open(path: FileArg, mode: OpenTextMode = "r", buffering: int = -1,
         encoding: str | None = None, errors: str | None = None, newline: str | None = None,
         closefd: bool = True, opener: Opener | None = None, *,
         context: AioContext | None = None, loop: object = None,
         executor: object = None) -> _Opening[AsyncTextFile]: ...


@overload
def open(path: FileArg, mode: OpenBinaryMode, buffering: int = -1,
         encoding: None = None, errors: None = None, newline: None = None,
         closefd: bool = True, opener: Opener | None = None, *,
         context: AioContext | None = None, loop: object = None,
         executor: object = None) -> _Opening[AsyncBinaryFile]: ...


@overload
def open(path: FileArg, mode: str, buffering: int = -1,
         encoding: str | None = None, errors: str | None = None, newline: str | None = None,
         closefd: bool = True, opener: Opener | None = None, *,
         context: AioContext | None = None, loop: object = None,
         executor: object = None) -> _Opening[AsyncFile[Any]]: ...


def open(path: FileArg, mode: str = "r", buffering: int = -1,
         encoding: str | None = None, errors: str | None = None, newline: str | None = None,
         closefd: bool = True, opener: Opener | None = None, *,
         context: AioContext | None = None, loop: object = None,
         executor: object = None) -> _Opening[Any]:
    """Open a file for AIO; the arguments are those of the builtin ``open``.

    Await the result, or use it with ``async with``.  The file is opened
    when awaited; its jobs go to ``context`` (default: the running loop's
    ``current_context()``).  ``loop`` and ``executor`` are accepted for
    aiofiles' sake and unused: the jobs run on the running loop's context.
    """
    text = _check_mode(mode, buffering, encoding, errors, newline)

    async def make() -> AsyncFile[Any]:
        ctx = context if context is not None else _running_context()
        raw = await _open_binary(path, mode, buffering, closefd, opener, ctx)
        if not text:
            return raw
        try:
            return AsyncTextFile(raw, encoding, errors, newline, line_buffering=buffering == 1,
                                 mode=mode)
        except BaseException:
            raw._close_fd()
            raise

    return _Opening(make)


def _running_context() -> AioContext:
    running_loop()  # a clear error under trio, before current_context() looks
    return current_context()


def _check_mode(mode: str, buffering: int, encoding: str | None, errors: str | None,
                newline: str | None) -> bool:
    """Refuse what io.open refuses; True for a text mode."""
    chars = set(mode)
    if chars - _MODE_CHARS or len(mode) > len(chars):
        raise ValueError(f"invalid mode: {mode!r}")
    if sum(c in chars for c in "rwax") != 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    if "t" in chars and "b" in chars:
        raise ValueError("can't have text and binary mode at once")
    binary = "b" in chars
    if binary:
        for name, value in (("encoding", encoding), ("errors", errors), ("newline", newline)):
            if value is not None:
                raise ValueError(f"binary mode doesn't take an {name} argument")
    elif buffering == 0:
        raise ValueError("can't have unbuffered text I/O")
    if newline not in NEWLINES:
        raise ValueError(f"illegal newline value: {newline!r}")
    return not binary


def _os_flags(mode: str) -> int:
    flags = os.O_CLOEXEC | (os.O_RDWR if "+" in mode else 0)
    if "r" in mode:
        return flags | (0 if "+" in mode else os.O_RDONLY)
    flags |= 0 if "+" in mode else os.O_WRONLY
    if "w" in mode:
        return flags | os.O_CREAT | os.O_TRUNC
    if "a" in mode:
        return flags | os.O_CREAT | os.O_APPEND
    return flags | os.O_CREAT | os.O_EXCL


async def _open_fd(path: FileArg, mode: str, closefd: bool, opener: Opener | None) -> int:
    """The descriptor: opened by ``open_fd`` or the opener, or given (an fd
    of a directory is refused, and left open, as the builtin open does)."""
    if isinstance(path, int):
        _refuse_directory(path, path)
        return path
    if not closefd:
        raise ValueError("Cannot use closefd=False with file name")
    flags = _os_flags(mode)
    fd = opener(path, flags) if opener is not None else await open_fd(path, flags)
    try:
        _refuse_directory(fd, os.fspath(path))  # the name as io reports it
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse_directory(fd: int, name: FileArg) -> None:
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)


async def _open_binary(path: FileArg, mode: str, buffering: int, closefd: bool,
                       opener: Opener | None, ctx: AioContext) -> AsyncBinaryFile:
    fd = await _open_fd(path, mode, closefd, opener)
    name = path if isinstance(path, int) else os.fspath(path)
    try:
        return AsyncBinaryFile(fd, name=name, mode=mode, context=ctx, buffering=buffering,
                               closefd=closefd)
    except BaseException:
        if closefd:
            os.close(fd)
        raise


# -- wrap: adopt an open io object ---------------------------------------------------


def wrap(file: Any, *, loop: object = None, executor: object = None,
         context: AioContext | None = None) -> AsyncFile[Any]:
    """The AsyncFile of an open io file object (aiofiles.threadpool.wrap).

    The new file takes ``file`` over: it starts at ``file``'s position (its
    buffer written out first), does its I/O as AIO jobs on the descriptor,
    and closes ``file`` when it is closed; do not use ``file`` meanwhile.
    Text files keep their encoding and errors (universal newlines).  Not
    an io file object: TypeError.  ``loop`` and ``executor`` are unused.
    """
    if not isinstance(file, io.IOBase):
        raise TypeError(f"Unsupported io type: {file!r}.")
    return adopt(file, file.close, context=context)


def adopt(file: Any, closer: Callable[[], object], *, newline: str | None = None,
          name: Any = None, buffering: int = -1,
          context: AioContext | None = None) -> AsyncFile[Any]:
    """wrap(), with ``closer`` called once the new file is closed (and
    ``name``, ``newline`` and ``buffering`` given, for the tempfiles)."""
    ctx = context if context is not None else _running_context()
    file.flush()
    fd = file.fileno()
    if file.seekable():
        position = file.tell()
        if position >= 1 << 64:  # a text cookie with decoder state
            raise io.UnsupportedOperation("the position is inside a multi-byte character")
        os.lseek(fd, position, os.SEEK_SET)
    text = isinstance(file, io.TextIOBase)
    mode = str(getattr(file, "mode", None) or getattr(file.buffer if text else file, "mode", "rb"))
    if name is None:
        name = getattr(file, "name", fd)
    raw = AsyncBinaryFile(fd, name=name, mode=mode, context=ctx, buffering=buffering,
                          closefd=False)
    raw._closer = closer
    if not text:
        return raw
    return AsyncTextFile(raw, file.encoding, file.errors, newline, mode=mode,
                         line_buffering=buffering == 1)
