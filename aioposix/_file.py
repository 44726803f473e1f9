"""AsyncFile: an aiofiles-style file object whose I/O is AIO jobs.

``open()`` takes the arguments of the builtin ``open`` and gives back an
object usable both as ``async with aioposix.open(...) as f`` and as
``f = await aioposix.open(...)``, like aiofiles.  Binary modes give an
``AsyncBinaryFile``, text modes an ``AsyncTextFile`` wrapped around one
(``f.buffer``), as io does; both are ``AsyncFile``.

How it maps onto the AIO calls:

- every transfer is one or more jobs on a context (``context=`` or
  ``current_context()``): an ``Aiocb`` submitted with aio_read, aio_write,
  aio_readv, aio_writev or aio_fsync, then ``await cb``;
- the file keeps its own position, like aiofile does, and every job is
  positional at that position, so the descriptor's offset is never used
  (it is set to the file's position on close when ``closefd=False``).  In
  append modes the descriptor is O_APPEND: the kernel appends whatever the
  offset, and after each write the position becomes the new end of file;
- reads go through a read-ahead buffer (64 KiB by default, or
  ``buffering``): readline and ``async for`` cost one job per chunk, not
  one per line.  Writes are buffered the same way, and flush, close, seek,
  tell and any read write them out first, so a read after a write sees it;
- open(2), fstat(2), ftruncate(2) and lseek(2) are done inline: they are
  metadata calls that do not wait for the disk on a local filesystem, and
  a job for them would cost more than the call itself.

Text mode decodes with an incremental decoder and translates newlines as
``io.TextIOWrapper`` does (its tell/seek cookies included); it is done on
the loop thread, in the caller's task.  One task at a time per file: like
io objects, an AsyncFile is not meant to be shared by concurrent tasks.
"""

from __future__ import annotations

import abc
import codecs
import errno
import io
import locale
import os
import stat
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any, AnyStr, Generic, Literal, TypeVar, overload

from ._context import AioContext, current_context
from ._job import Aiocb

__all__ = ["AsyncBinaryFile", "AsyncFile", "AsyncTextFile", "open"]

CHUNK = 64 * 1024  # read-ahead and write buffer size unless ``buffering`` says otherwise
_NEWLINES = (None, "", "\n", "\r", "\r\n")
_MODE_CHARS = frozenset("axrwb+t")
_SEEK_EXTRA = tuple(getattr(os, name) for name in ("SEEK_DATA", "SEEK_HOLE") if hasattr(os, name))

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


def _closed_error() -> ValueError:
    return ValueError("I/O operation on closed file.")


# -- the jobs ------------------------------------------------------------------


async def _read_job(ctx: AioContext, fd: int, n: int, offset: int) -> bytearray:
    """One aio_read of up to ``n`` bytes at ``offset`` (shorter at EOF)."""
    buf = bytearray(n)
    if n:
        cb = Aiocb(fd, buf, n, offset)
        ctx.aio_read(cb)
        del buf[await cb:]
    return buf


async def _read_into_job(ctx: AioContext, fd: int, view: memoryview, offset: int) -> int:
    cb = Aiocb(fd, view, view.nbytes, offset)
    ctx.aio_read(cb)
    return await cb


async def _write_all(ctx: AioContext, fd: int, data: Any, offset: int) -> int:
    """aio_write until all of ``data`` is out; returns its length."""
    with memoryview(data) as whole, whole.cast("B") as view:
        done = 0
        while done < view.nbytes:
            cb = Aiocb(fd, view[done:], view.nbytes - done, offset + done)
            ctx.aio_write(cb)
            moved = await cb
            if moved == 0:
                raise OSError(errno.EIO, "write made no progress")
            done += moved
        return done


def _byte_count(data: Any) -> int:
    with memoryview(data) as view:
        return view.nbytes


# -- open ----------------------------------------------------------------------


class _Opening(Generic[_F]):
    """What ``open()`` returns: awaitable, and an async context manager
    that closes the file on the way out (aiofiles' AiofilesContextManager)."""

    def __init__(self, make: Callable[[], _F]) -> None:
        self._make = make
        self._file: _F | None = None

    async def _open(self) -> _F:
        self._file = self._make()
        return self._file

    def __await__(self) -> Generator[Any, None, _F]:
        return self._open().__await__()

    async def __aenter__(self) -> _F:
        return await self._open()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self._file is not None
        await self._file.close()


@overload
def open(path: FileArg, mode: OpenBinaryMode = "rb", buffering: int = -1,
         encoding: None = None, errors: None = None, newline: None = None,
         closefd: bool = True, opener: Opener | None = None, *,
         context: AioContext | None = None) -> _Opening[AsyncBinaryFile]: ...


@overload
def open(path: FileArg, mode: OpenTextMode, buffering: int = -1,
         encoding: str | None = None, errors: str | None = None, newline: str | None = None,
         closefd: bool = True, opener: Opener | None = None, *,
         context: AioContext | None = None) -> _Opening[AsyncTextFile]: ...


@overload
def open(path: FileArg, mode: str, buffering: int = -1,
         encoding: str | None = None, errors: str | None = None, newline: str | None = None,
         closefd: bool = True, opener: Opener | None = None, *,
         context: AioContext | None = None) -> _Opening[AsyncFile[Any]]: ...


def open(path: FileArg, mode: str = "rb", buffering: int = -1,
         encoding: str | None = None, errors: str | None = None, newline: str | None = None,
         closefd: bool = True, opener: Opener | None = None, *,
         context: AioContext | None = None) -> _Opening[Any]:
    """Open a file for AIO; the arguments are those of the builtin ``open``.

    Await the result, or use it with ``async with``.  The file is opened
    when awaited; its jobs go to ``context`` (default: the running loop's
    ``current_context()``).
    """
    text = _check_mode(mode, buffering, encoding, errors, newline)

    def make() -> AsyncFile[Any]:
        ctx = context if context is not None else current_context()
        raw = AsyncBinaryFile._open(path, mode, buffering, closefd, opener, ctx)
        if not text:
            return raw
        try:
            return AsyncTextFile(raw, encoding, errors, newline, line_buffering=buffering == 1,
                                 mode=mode)
        except BaseException:
            raw._close_fd()
            raise

    return _Opening(make)


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
    if newline not in _NEWLINES:
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


def _open_fd(path: FileArg, mode: str, closefd: bool, opener: Opener | None) -> int:
    if isinstance(path, int):
        return path
    if not closefd:
        raise ValueError("Cannot use closefd=False with file name")
    flags = _os_flags(mode)
    fd = opener(path, flags) if opener is not None else os.open(path, flags, 0o666)
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fd_mode(mode: str) -> str:
    """The mode as FileIO spells it (what io's binary files report)."""
    plus = "+" if "+" in mode else ""
    for c in "xa":
        if c in mode:
            return f"{c}b{plus}"
    return f"rb{plus}" if "r" in mode or plus else "wb"


# -- the shared interface ------------------------------------------------------


class AsyncFile(abc.ABC, Generic[AnyStr]):
    """What binary and text files share: bytes or str, per ``AnyStr``."""

    @property
    @abc.abstractmethod
    def name(self) -> Any:
        """The path (or fd) given to ``open``."""

    @property
    @abc.abstractmethod
    def mode(self) -> str:
        """The mode, as io reports it."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once ``close()`` has run."""

    @abc.abstractmethod
    def fileno(self) -> int:
        """The file descriptor."""

    @abc.abstractmethod
    def readable(self) -> bool:
        """Whether the file was opened for reading."""

    @abc.abstractmethod
    async def read(self, n: int = -1) -> AnyStr:
        """Up to ``n`` bytes or characters (all the rest when n < 0); empty at EOF."""

    @abc.abstractmethod
    async def readline(self, size: int = -1) -> AnyStr:
        """The next line, with its line ending; at most ``size`` when size >= 0."""

    @abc.abstractmethod
    async def write(self, data: AnyStr) -> int:
        """Write ``data`` (buffered); returns its length."""

    @abc.abstractmethod
    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position; returns the new one."""

    @abc.abstractmethod
    async def tell(self) -> int:
        """The position (after writing out buffered data)."""

    @abc.abstractmethod
    async def truncate(self, size: int | None = None) -> int:
        """Cut or extend the file to ``size`` (default: the position)."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Write out buffered data."""

    @abc.abstractmethod
    async def fsync(self) -> None:
        """Flush, then an aio_fsync(O_SYNC) job: the data is on stable storage."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and close; closing twice is harmless."""

    @abc.abstractmethod
    async def pread(self, n: int, offset: int) -> bytes:
        """Up to ``n`` bytes at ``offset``; the position does not move."""

    @abc.abstractmethod
    async def pwrite(self, data: Any, offset: int) -> int:
        """Write all of ``data`` at ``offset``; the position does not move.

        With O_APPEND (modes 'a') Linux appends whatever the offset, as
        os.pwrite does.
        """

    @abc.abstractmethod
    async def readv(self, bufs: Sequence[Any]) -> int:
        """Fill ``bufs`` in order from the position (one aio_readv), advance it."""

    @abc.abstractmethod
    async def writev(self, bufs: Sequence[Any]) -> int:
        """Write ``bufs`` in order at the position (one aio_writev), advance it."""

    async def seekable(self) -> bool:
        """Whether seek works (a regular file or a block device)."""
        return True

    async def writable(self) -> bool:
        """Whether the file was opened for writing."""
        return False

    async def isatty(self) -> bool:
        return os.isatty(self.fileno())

    async def readlines(self, hint: int = -1) -> list[AnyStr]:
        """The remaining lines; stop once ``hint`` bytes/characters are read (hint > 0)."""
        lines: list[AnyStr] = []
        total = 0
        async for line in self:
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    async def writelines(self, lines: Iterable[AnyStr]) -> None:
        """Write each of ``lines``; no line endings are added."""
        for line in lines:
            await self.write(line)

    def __aiter__(self) -> AsyncIterator[AnyStr]:
        return self

    async def __anext__(self) -> AnyStr:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    async def __aenter__(self: _F) -> _F:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self.fileno()}"
        return f"<{type(self).__name__} name={self.name!r} mode={self.mode!r} {state}>"


# -- binary files --------------------------------------------------------------


class AsyncBinaryFile(AsyncFile[bytes]):
    """A binary file (io's BufferedRandom) whose I/O is AIO jobs.

    Invariants: the bytes at ``_pos`` are ``_rbuf[_roff:]`` (read-ahead),
    or ``_wbuf`` is what goes at ``_pos`` (buffered writes); never both.
    """

    def __init__(self, fd: int, *, name: Any, mode: str, context: AioContext,
                 buffering: int = -1, closefd: bool = True) -> None:
        self._fd = fd
        self._name = name
        self._mode = _fd_mode(mode)
        self._ctx = context
        self._closefd = closefd
        self._closed = False
        self._readable = "r" in mode or "+" in mode
        self._writable = "r" not in mode or "+" in mode
        self._append = "a" in mode
        self._chunk = buffering if buffering > 1 else CHUNK
        self._wlimit = 0 if buffering == 0 else self._chunk
        self._rbuf = b""
        self._roff = 0
        self._wbuf = bytearray()
        self._pos, self._seekable = self._start_position()

    @classmethod
    def _open(cls, path: FileArg, mode: str, buffering: int, closefd: bool,
              opener: Opener | None, ctx: AioContext) -> AsyncBinaryFile:
        fd = _open_fd(path, mode, closefd, opener)
        name = path if isinstance(path, int) else os.fspath(path)
        try:
            return cls(fd, name=name, mode=mode, context=ctx, buffering=buffering,
                       closefd=closefd)
        except BaseException:
            if closefd:
                os.close(fd)
            raise

    def _start_position(self) -> tuple[int, bool]:
        try:
            return os.lseek(self._fd, 0, os.SEEK_END if self._append else os.SEEK_CUR), True
        except OSError as exc:
            if exc.errno != errno.ESPIPE:
                raise
            return 0, False

    # -- properties and checks --------------------------------------------------

    @property
    def name(self) -> Any:
        return self._name

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def context(self) -> AioContext:
        """The context the file's jobs go to."""
        return self._ctx

    def fileno(self) -> int:
        self._check_open()
        return self._fd

    def readable(self) -> bool:
        self._check_open()
        return self._readable

    async def writable(self) -> bool:
        self._check_open()
        return self._writable

    async def seekable(self) -> bool:
        self._check_open()
        return self._seekable

    def _check_open(self) -> None:
        if self._closed:
            raise _closed_error()

    def _check_seekable(self) -> None:
        self._check_open()
        if not self._seekable:
            raise OSError(errno.ESPIPE, os.strerror(errno.ESPIPE))

    def _check_readable(self) -> None:
        self._check_open()
        if not self._readable:
            raise io.UnsupportedOperation("File not open for reading")

    def _check_writable(self) -> None:
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("File not open for writing")

    # -- buffers ------------------------------------------------------------------

    def _buffered(self) -> int:
        return len(self._rbuf) - self._roff

    def _take(self, n: int) -> bytes:
        """``n`` bytes (at most what is buffered) from the read-ahead."""
        start = self._roff
        data = self._rbuf[start:start + n]
        self._roff += len(data)
        self._pos += len(data)
        if self._roff == len(self._rbuf):
            self._rbuf, self._roff = b"", 0
        return data

    def _drop_read_ahead(self) -> None:
        self._rbuf, self._roff = b"", 0

    async def _fill(self) -> int:
        """Append one chunk to the read-ahead; returns its size (0: EOF)."""
        have = self._buffered()
        got = await _read_job(self._ctx, self._fd, self._chunk, self._pos + have)
        if got:
            self._rbuf = self._rbuf[self._roff:] + got
            self._roff = 0
        return len(got)

    async def _raw_write(self, data: Any) -> int:
        """Write ``data`` at the position, then move the position past it."""
        n = await _write_all(self._ctx, self._fd, data, self._pos)
        self._pos = os.fstat(self._fd).st_size if self._append else self._pos + n
        return n

    async def _flush_writes(self) -> None:
        if self._wbuf:
            await self._raw_write(bytes(self._wbuf))
            self._wbuf.clear()

    # -- reading --------------------------------------------------------------------

    async def read(self, n: int | None = -1) -> bytes:
        self._check_readable()
        await self._flush_writes()
        if n is None or n < 0:
            return await self._read_all()
        parts = [self._take(n)]
        need = n - len(parts[0])
        while need > 0:
            got = await self._read_more(need)
            if not got:
                break
            parts.append(got)
            need -= len(got)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _read_more(self, need: int) -> bytes:
        """Up to ``need`` bytes with one job, the read-ahead being empty."""
        if need >= self._chunk:
            got = bytes(await _read_job(self._ctx, self._fd, need, self._pos))
            self._pos += len(got)
            return got
        await self._fill()
        return self._take(need)

    async def _read_all(self) -> bytes:
        parts = [self._take(self._buffered())]
        regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        while True:
            want = max(os.fstat(self._fd).st_size - self._pos, self._chunk)
            got = await _read_job(self._ctx, self._fd, want, self._pos)
            self._pos += len(got)
            parts.append(bytes(got))
            if not got or (regular and len(got) < want):  # a short read of a file: EOF
                return b"".join(parts)

    async def read1(self, n: int = -1) -> bytes:
        """At most one job: what is buffered, else one read (up to ``n`` bytes)."""
        self._check_readable()
        await self._flush_writes()
        have = self._buffered()
        if have or n == 0:
            return self._take(have if n < 0 else n)
        if n < 0 or n >= self._chunk:
            return await self._read_more(max(n, self._chunk))
        return await self._read_more(n)

    async def readinto(self, buf: Any) -> int:
        """Fill ``buf`` from the position (fewer bytes at EOF); returns the count."""
        self._check_readable()
        await self._flush_writes()
        with memoryview(buf) as whole, whole.cast("B") as view:
            done = 0
            while done < view.nbytes:
                moved = await self._readinto_some(view[done:])
                if not moved:
                    break
                done += moved
            return done

    async def _readinto_some(self, view: memoryview) -> int:
        if not self._buffered():
            if view.nbytes >= self._chunk:
                got = await _read_into_job(self._ctx, self._fd, view, self._pos)
                self._pos += got
                return got
            await self._fill()
        data = self._take(view.nbytes)
        view[:len(data)] = data
        return len(data)

    async def readline(self, size: int | None = -1) -> bytes:
        self._check_readable()
        await self._flush_writes()
        limit = -1 if size is None else size
        searched = 0  # bytes of the read-ahead already searched for b"\n"
        while True:
            end = self._rbuf.find(b"\n", self._roff + searched)
            have = self._buffered()
            if end >= 0:
                line_len = end - self._roff + 1
                return self._take(line_len if limit < 0 else min(line_len, limit))
            if 0 <= limit <= have:
                return self._take(limit)
            searched = have
            if not await self._fill():
                return self._take(have)

    async def pread(self, n: int, offset: int) -> bytes:
        self._check_readable()
        await self._flush_writes()
        return bytes(await _read_job(self._ctx, self._fd, n, offset))

    async def readv(self, bufs: Sequence[Any]) -> int:
        self._check_readable()
        await self._flush_writes()
        self._drop_read_ahead()
        cb = Aiocb(self._fd, None, None, self._pos, iov=bufs)
        self._ctx.aio_readv(cb)
        got = await cb
        self._pos += got
        return got

    # -- writing --------------------------------------------------------------------

    async def write(self, data: Any) -> int:
        self._check_writable()
        n = _byte_count(data)
        self._drop_read_ahead()
        if len(self._wbuf) + n > self._wlimit:
            await self._flush_writes()
            if n >= self._wlimit:
                return await self._raw_write(data)
        self._wbuf += data
        return n

    async def pwrite(self, data: Any, offset: int) -> int:
        self._check_writable()
        await self._flush_writes()
        self._drop_read_ahead()
        return await _write_all(self._ctx, self._fd, data, offset)

    async def writev(self, bufs: Sequence[Any]) -> int:
        self._check_writable()
        await self._flush_writes()
        self._drop_read_ahead()
        cb = Aiocb(self._fd, None, None, self._pos, iov=bufs)
        self._ctx.aio_writev(cb)
        moved = await cb
        self._pos = os.fstat(self._fd).st_size if self._append else self._pos + moved
        return moved

    async def flush(self) -> None:
        self._check_open()
        await self._flush_writes()

    async def fsync(self) -> None:
        await self.flush()
        cb = Aiocb(self._fd)
        self._ctx.aio_fsync(os.O_SYNC, cb)
        await cb

    async def truncate(self, size: int | None = None) -> int:
        self._check_writable()
        await self._flush_writes()
        if size is None:
            size = self._pos
        os.ftruncate(self._fd, size)
        self._drop_read_ahead()
        return size

    # -- position ------------------------------------------------------------------

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_seekable()
        await self._flush_writes()
        target = self._seek_target(offset, whence)
        if target < 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        start = self._pos - self._roff  # the file offset of the read-ahead
        if start <= target <= start + len(self._rbuf):
            self._roff = target - start  # still inside it: keep it
        else:
            self._drop_read_ahead()
        self._pos = target
        return target

    def _seek_target(self, offset: int, whence: int) -> int:
        if whence == os.SEEK_SET:
            return offset
        if whence == os.SEEK_CUR:
            return self._pos + offset
        if whence == os.SEEK_END:
            return os.fstat(self._fd).st_size + offset
        if whence in _SEEK_EXTRA:  # SEEK_DATA, SEEK_HOLE: only the kernel knows
            return os.lseek(self._fd, offset, whence)
        raise ValueError(f"whence value {whence} unsupported")

    async def tell(self) -> int:
        self._check_seekable()
        await self._flush_writes()
        return self._pos

    # -- closing ----------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self._flush_writes()
        finally:
            self._close_fd()

    def _close_fd(self) -> None:
        self._closed = True
        self._drop_read_ahead()
        if self._closefd:
            os.close(self._fd)
        elif self._seekable:  # the caller keeps the fd: leave it where we were
            os.lseek(self._fd, self._pos, os.SEEK_SET)


# -- text files ----------------------------------------------------------------


def _pack_cookie(position: int, dec_flags: int = 0, bytes_to_feed: int = 0,
                 need_eof: bool = False, chars_to_skip: int = 0) -> int:
    """io.TextIOWrapper's tell() cookie: seek to position, set the decoder
    flags, feed bytes_to_feed bytes (with EOF), skip chars_to_skip chars."""
    return (position | (dec_flags << 64) | (bytes_to_feed << 128) | (chars_to_skip << 192)
            | int(need_eof) << 256)


def _unpack_cookie(cookie: int) -> tuple[int, int, int, bool, int]:
    rest, position = divmod(cookie, 1 << 64)
    rest, dec_flags = divmod(rest, 1 << 64)
    rest, bytes_to_feed = divmod(rest, 1 << 64)
    need_eof, chars_to_skip = divmod(rest, 1 << 64)
    return position, dec_flags, bytes_to_feed, bool(need_eof), chars_to_skip


def _line_end(line: str, start: int, translate: bool, universal: bool, readnl: str) -> int:
    """Where the first line of ``line`` ends (searching from ``start``), or -1."""
    if translate:
        pos = line.find("\n", start)
        return pos + 1 if pos >= 0 else -1
    if not universal:
        pos = line.find(readnl, start)
        return pos + len(readnl) if pos >= 0 else -1
    # universal, untranslated: \r, \n or \r\n (the decoder never splits \r\n)
    nl, cr = line.find("\n", start), line.find("\r", start)
    if cr < 0:
        return nl + 1 if nl >= 0 else -1
    if nl < 0 or cr < nl - 1:
        return cr + 1
    return nl + 1


class AsyncTextFile(AsyncFile[str]):
    """A text file: ``buffer`` (an AsyncBinaryFile) plus decoding and
    newline translation, as io.TextIOWrapper does them."""

    def __init__(self, buffer: AsyncBinaryFile, encoding: str | None = None,
                 errors: str | None = None, newline: str | None = None, *,
                 line_buffering: bool = False, mode: str = "r") -> None:
        if newline not in _NEWLINES:
            raise ValueError(f"illegal newline value: {newline!r}")
        self.buffer = buffer
        self.encoding = self._pick_encoding(encoding)
        self.errors = errors if errors is not None else "strict"
        self.line_buffering = line_buffering
        self._mode = mode
        self._translate = newline is None  # \r and \r\n read as \n
        self._universal = not newline  # any of \r, \n, \r\n ends a line
        self._readnl = newline or "\n"
        self._writenl = os.linesep if newline is None else newline  # "" means as is
        self._decoder = self._make_decoder() if buffer.readable() else None
        self._encoder: codecs.IncrementalEncoder | None = None
        self._decoded = ""
        self._used = 0  # chars of _decoded already returned
        self._snapshot: tuple[int, bytes] | None = None  # (dec_flags, bytes fed since)
        self._b2cratio = 0.0
        if buffer._writable and buffer._pos:  # no BOM in the middle of a file
            self._get_encoder().setstate(0)

    @staticmethod
    def _pick_encoding(encoding: str | None) -> str:
        if encoding is None or encoding == "locale":
            encoding = locale.getpreferredencoding(False)
        codecs.lookup(encoding)  # LookupError now, not on the first read
        return encoding

    def _make_decoder(self) -> codecs.IncrementalDecoder:
        decoder = codecs.getincrementaldecoder(self.encoding)(self.errors)
        if self._universal:
            return io.IncrementalNewlineDecoder(decoder, self._translate)  # type: ignore[return-value]
        return decoder

    def _get_encoder(self) -> codecs.IncrementalEncoder:
        if self._encoder is None:
            self._encoder = codecs.getincrementalencoder(self.encoding)(self.errors)
        return self._encoder

    # -- properties -------------------------------------------------------------------

    @property
    def name(self) -> Any:
        return self.buffer.name

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def closed(self) -> bool:
        return self.buffer.closed

    @property
    def newlines(self) -> str | tuple[str, ...] | None:
        """The line endings seen so far (universal newline reading only)."""
        return getattr(self._decoder, "newlines", None)

    def fileno(self) -> int:
        return self.buffer.fileno()

    def readable(self) -> bool:
        return self.buffer.readable()

    async def writable(self) -> bool:
        return await self.buffer.writable()

    async def seekable(self) -> bool:
        return await self.buffer.seekable()

    def _decoder_or_fail(self) -> codecs.IncrementalDecoder:
        self.buffer._check_readable()
        assert self._decoder is not None
        return self._decoder

    # -- decoded characters --------------------------------------------------------------

    def _set_decoded(self, chars: str) -> None:
        self._decoded, self._used = chars, 0

    def _get_decoded(self, n: int | None = None) -> str:
        start = self._used
        chars = self._decoded[start:] if n is None else self._decoded[start:start + n]
        self._used += len(chars)
        return chars

    async def _read_chunk(self) -> bool:
        """Decode one more chunk (snapshotting for tell); False at EOF."""
        decoder = self._decoder_or_fail()
        dec_buffer, dec_flags = decoder.getstate()
        chunk = await self.buffer.read1(self.buffer._chunk)
        chars = decoder.decode(chunk, not chunk)
        self._set_decoded(chars)
        self._b2cratio = len(chunk) / len(chars) if chars else 0.0
        self._snapshot = (dec_flags, dec_buffer + chunk)
        return bool(chunk)

    def _forget_decoded(self) -> None:
        self._set_decoded("")
        self._snapshot = None

    # -- reading ------------------------------------------------------------------------

    async def read(self, n: int | None = -1) -> str:
        decoder = self._decoder_or_fail()
        if n is None or n < 0:
            chars = self._get_decoded() + decoder.decode(await self.buffer.read(), final=True)
            self._forget_decoded()
            return chars
        result = self._get_decoded(n)
        while len(result) < n and await self._read_chunk():
            result += self._get_decoded(n - len(result))
        return result

    async def readline(self, size: int | None = -1) -> str:
        self._decoder_or_fail()
        limit = -1 if size is None else size
        line, start = self._get_decoded(), 0
        while True:
            end = _line_end(line, start, self._translate, self._universal, self._readnl)
            if end >= 0:
                break
            if 0 <= limit <= len(line):
                end = limit
                break
            start = max(len(line) - 1, 0)  # a "\r\n" may straddle the chunks
            more = await self._more_chars()
            if not more:
                self._forget_decoded()
                return line
            line += more
        if 0 <= limit < end:
            end = limit
        self._used -= len(line) - end  # give back what follows the line
        return line[:end]

    async def _more_chars(self) -> str:
        while await self._read_chunk():
            if self._decoded:
                break
        return self._get_decoded()

    # -- writing -------------------------------------------------------------------------

    async def write(self, data: str) -> int:
        if not isinstance(data, str):
            raise TypeError(f"write() argument must be str, not {type(data).__name__}")
        self.buffer._check_writable()
        await self._sync_position()
        length = len(data)
        if self._writenl not in ("", "\n") and "\n" in data:
            data = data.replace("\n", self._writenl)
        await self.buffer.write(self._get_encoder().encode(data))
        if self.line_buffering and ("\n" in data or "\r" in data):
            await self.buffer.flush()
        return length

    async def _sync_position(self) -> None:
        """Put the buffer's position at the text position and drop the
        read-ahead: a write goes where the reader stopped, not after the chunk
        read ahead (io.TextIOWrapper would write after it)."""
        if self._snapshot is None:
            return
        start, dec_flags, to_feed, _, to_skip = _unpack_cookie(await self.tell())
        if to_feed or to_skip:
            raise io.UnsupportedOperation("the position is inside a multi-byte character; "
                                          "seek before writing")
        await self.buffer.seek(start)
        self._forget_decoded()
        if self._decoder is not None:
            self._decoder.setstate((b"", dec_flags))

    async def flush(self) -> None:
        await self.buffer.flush()

    async def fsync(self) -> None:
        await self.buffer.fsync()

    async def truncate(self, size: int | None = None) -> int:
        await self.flush()
        if size is None:
            size = await self.tell()
        return await self.buffer.truncate(size)

    async def close(self) -> None:
        await self.buffer.close()

    # -- raw positional and vectored I/O (bytes, at the text position) ---------------------

    async def pread(self, n: int, offset: int) -> bytes:
        return await self.buffer.pread(n, offset)

    async def pwrite(self, data: Any, offset: int) -> int:
        moved = await self.buffer.pwrite(data, offset)
        await self._sync_position()  # the read-ahead may hold the old bytes
        return moved

    async def readv(self, bufs: Sequence[Any]) -> int:
        self.buffer._check_readable()
        await self._sync_position()
        return await self.buffer.readv(bufs)

    async def writev(self, bufs: Sequence[Any]) -> int:
        self.buffer._check_writable()
        await self._sync_position()
        return await self.buffer.writev(bufs)

    # -- position ------------------------------------------------------------------------

    async def tell(self) -> int:
        """An opaque cookie for seek(), as io.TextIOWrapper's (often the byte offset)."""
        await self.flush()
        position = await self.buffer.tell()
        if self._decoder is None or self._snapshot is None:
            return position
        dec_flags, fed = self._snapshot
        position -= len(fed)
        if self._used == 0:
            return _pack_cookie(position, dec_flags)
        decoder = self._decoder
        saved = decoder.getstate()
        try:
            return self._find_cookie(decoder, position, dec_flags, fed, self._used)
        finally:
            decoder.setstate(saved)

    def _find_cookie(self, decoder: codecs.IncrementalDecoder, position: int, dec_flags: int,
                     fed: bytes, chars: int) -> int:
        """Replay the decoder from the snapshot until ``chars`` characters
        come out (io.TextIOWrapper.tell, from _pyio)."""
        skip_bytes, dec_flags, chars = self._skip_ahead(decoder, dec_flags, fed, chars)
        start_pos, start_flags = position + skip_bytes, dec_flags
        if chars == 0:
            return _pack_cookie(start_pos, start_flags)
        bytes_fed = decoded = 0
        for i in range(skip_bytes, len(fed)):
            bytes_fed += 1
            decoded += len(decoder.decode(fed[i:i + 1]))
            dec_buffer, dec_flags = decoder.getstate()
            if not dec_buffer and decoded <= chars:  # a safe start point
                start_pos += bytes_fed
                chars -= decoded
                start_flags, bytes_fed, decoded = dec_flags, 0, 0
            if decoded >= chars:
                return _pack_cookie(start_pos, start_flags, bytes_fed, False, chars)
        decoded += len(decoder.decode(b"", final=True))
        if decoded < chars:
            raise OSError("can't reconstruct logical file position")
        return _pack_cookie(start_pos, start_flags, bytes_fed, True, chars)

    def _skip_ahead(self, decoder: codecs.IncrementalDecoder, dec_flags: int, fed: bytes,
                    chars: int) -> tuple[int, int, int]:
        """A guess close before the point, where the decoder holds nothing."""
        skip_bytes = int(self._b2cratio * chars)
        skip_back = 1
        while skip_bytes > 0:
            decoder.setstate((b"", dec_flags))
            n = len(decoder.decode(fed[:skip_bytes]))
            if n <= chars:
                left, flags = decoder.getstate()
                if not left:
                    return skip_bytes, flags, chars - n
                skip_bytes -= len(left)
                skip_back = 1
            else:
                skip_bytes -= skip_back
                skip_back *= 2
        decoder.setstate((b"", dec_flags))
        return 0, dec_flags, chars

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """To a tell() cookie; SEEK_CUR and SEEK_END take only 0, as in io."""
        self.buffer._check_open()
        if whence == os.SEEK_CUR:
            if offset != 0:
                raise io.UnsupportedOperation("can't do nonzero cur-relative seeks")
            offset, whence = await self.tell(), os.SEEK_SET
        elif whence == os.SEEK_END:
            if offset != 0:
                raise io.UnsupportedOperation("can't do nonzero end-relative seeks")
            await self.flush()
            position = await self.buffer.seek(0, os.SEEK_END)
            self._reset_codecs(position)
            return position
        if whence != os.SEEK_SET:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if offset < 0:
            raise ValueError(f"negative seek position {offset!r}")
        await self._seek_cookie(offset)
        return offset

    def _reset_codecs(self, position: int) -> None:
        self._forget_decoded()
        if self._decoder is not None:
            self._decoder.reset()
        if self._encoder is not None and position:
            self._encoder.setstate(0)
        elif self._encoder is not None:
            self._encoder.reset()

    async def _seek_cookie(self, cookie: int) -> None:
        """Back to the safe start point, then replay read(chars_to_skip)."""
        await self.flush()
        start, dec_flags, to_feed, need_eof, to_skip = _unpack_cookie(cookie)
        await self.buffer.seek(start)
        self._reset_codecs(cookie)
        decoder = self._decoder
        if decoder is None:
            return
        decoder.setstate((b"", dec_flags))
        self._snapshot = (dec_flags, b"")
        if to_skip:
            chunk = await self.buffer.read(to_feed)
            self._set_decoded(decoder.decode(chunk, need_eof))
            self._snapshot = (dec_flags, chunk)
            if len(self._decoded) < to_skip:
                raise OSError("can't restore logical file position")
            self._used = to_skip
