"""AsyncBinaryFile: io's BufferedRandom, with every transfer an AIO job.

The file keeps its own position, like aiofile does, and every job is
positional at that position, so the descriptor's offset is never used (it
is set to the file's position on close when ``closefd=False``, and on
``detach()``).  In append modes the descriptor is O_APPEND: the kernel
appends whatever the offset, and after each write the position becomes
the new end of file.

Sequential reads (each starting where the last ended) go through a
read-ahead buffer (64 KiB, or ``buffering``): readline and ``async for``
cost one job per chunk.  Any other read (after a seek elsewhere) and any
read of a chunk or more reads exactly what is asked into the result: a
seek and a 4 KiB read are one 4 KiB job.  Writes are buffered, and flush,
close, seek, tell and any read write them out first.
fstat(2), ftruncate(2) and lseek(2) are done inline: metadata calls that
do not wait for the disk on a local filesystem, cheaper than a job.
"""

from __future__ import annotations

import errno
import io
import operator
import os
import stat
from collections.abc import Callable, Sequence
from typing import Any

from aioposix._context.context import AioContext
from aioposix._core.errors import error
from aioposix._core.job import Aiocb
from aioposix._file.base import (
    BIG_READ,
    CHUNK,
    AsyncFile,
    byte_count,
    close_fd,
    closed_error,
    detached_error,
    fd_mode,
    read_into_job,
    read_job,
    seek_target,
    start_position,
    write_all,
)
from aioposix._file.rawaccess import RawAccess


class AsyncBinaryFile(RawAccess, AsyncFile[bytes]):
    """A binary file (io's BufferedRandom) whose I/O is AIO jobs.

    Invariants: the bytes at ``_pos`` are ``_rbuf[_roff:]`` (read-ahead),
    or ``_wbuf`` is what goes at ``_pos`` (buffered writes); never both.
    ``_next`` is the file offset where the last read from the file ended
    (the end of the read-ahead after a fill): a read from there is
    sequential and may read ahead.
    """

    def __init__(self, fd: int, *, name: Any, mode: str, context: AioContext,
                 buffering: int = -1, closefd: bool = True) -> None:
        self._fd = fd
        self._name = name
        self._mode = fd_mode(mode)
        self._ctx = context
        self._closefd = closefd
        self._closed = False
        self._readable = "r" in mode or "+" in mode
        self._writable = "r" not in mode or "+" in mode
        self._append = "a" in mode
        self._chunk = buffering if buffering > 1 else CHUNK
        self._wlimit = 0 if buffering == 0 else self._chunk
        self._rbuf, self._roff = b"", 0
        self._wbuf = bytearray()
        self._cb: Aiocb | None = None  # reused by exact small reads (_start_exact)
        self._rawio: io.FileIO | None = None  # ``raw``, once asked for
        self._closer: Callable[[], object] | None = None  # an adopted io object's close
        self._detached = False
        self._pos, self._seekable = start_position(fd, self._append)
        self._next = self._pos  # a file read from where it was opened reads ahead
        self._regular = stat.S_ISREG(os.fstat(fd).st_mode)

    # -- properties and checks --------------------------------------------------

    @property
    def name(self) -> Any:
        return self._name

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def closed(self) -> bool:
        if self._detached:
            raise detached_error()
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
            raise detached_error() if self._detached else closed_error()

    def _check_seekable(self) -> None:
        self._check_open()
        if not self._seekable:
            raise error(errno.ESPIPE, "the file is not seekable")

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

    def _start_exact(self, n: int, offset: int) -> Aiocb:
        """Submit a read of exactly ``n`` (<= BIG_READ) bytes at ``offset``
        on a whole bytearray, the context's cheapest job.  Its Aiocb is the
        file's, reused while every job it ran was awaited to its end (the
        caller drops it otherwise); above CHUNK a new one, not kept."""
        cb = self._cb
        if cb is None or n > CHUNK:
            cb = Aiocb(self._fd, bytearray(n), n, offset)
            if n <= CHUNK:
                self._cb = cb
        elif cb.nbytes != n:
            cb.buf, cb.nbytes, cb.offset = bytearray(n), n, offset
        else:
            cb.offset = offset
        self._ctx.aio_read(cb)
        return cb

    def _drop_read_ahead(self) -> None:
        self._rbuf, self._roff = b"", 0

    async def _fill(self) -> int:
        """Append one chunk to the read-ahead; returns its size (0: EOF)."""
        have = self._buffered()
        start = self._pos + have
        got = await read_job(self._ctx, self._fd, self._chunk, start)
        self._next = start + len(got)
        if got:
            self._rbuf = self._rbuf[self._roff:] + got if have else got
            self._roff = 0
        return len(got)

    def _exact(self, n: int) -> bool:
        """Whether a read of ``n`` bytes at the position, nothing read
        ahead, reads exactly that: a chunk or more, or not sequential."""
        return n >= self._chunk or self._pos != self._next

    def _clamp(self, n: int, offset: int) -> int:
        """A big read of a regular file is no bigger than what is there."""
        if n >= BIG_READ and self._regular:
            return min(n, max(os.fstat(self._fd).st_size - offset, 0))
        return n

    async def _read_exact(self, n: int) -> bytes:
        """Up to ``n`` bytes at the position with one job, no read-ahead."""
        pos = self._pos
        got = await read_job(self._ctx, self._fd, self._clamp(n, pos), pos)
        self._pos = self._next = pos + len(got)
        return got

    async def _raw_write(self, data: Any) -> int:
        """Write ``data`` at the position, then move the position past it."""
        n = await write_all(self._ctx, self._fd, data, self._pos)
        self._pos = os.fstat(self._fd).st_size if self._append else self._pos + n
        return n

    async def _flush_writes(self) -> None:
        if self._wbuf:
            await self._raw_write(bytes(self._wbuf))
            self._wbuf.clear()

    # -- reading --------------------------------------------------------------------

    async def read(self, n: int | None = -1) -> bytes:
        if self._closed or not self._readable:
            self._check_readable()
        if self._wbuf:
            await self._flush_writes()
        if n is None or n < 0:
            return await self._read_all()
        pos = self._pos
        if not self._rbuf and 0 < n < BIG_READ and (pos != self._next or n >= self._chunk):
            # Not sequential (a seek went elsewhere): exactly n bytes, one job.
            cb = self._start_exact(n, pos)
            try:
                got = await cb
            except BaseException:
                self._cb = None  # it may still be in flight: not reused
                raise
            self._pos = self._next = pos + got
            if got == n:
                return bytes(cb.buf)
            return bytes(cb.buf[:got]) + await self._read_rest(n - got) if got else b""
        have = len(self._rbuf) - self._roff
        if have >= n:
            return self._take(n)
        first = self._take(have) if have else b""
        return first + await self._read_rest(n - have)

    async def _read_rest(self, need: int) -> bytes:
        """Up to ``need`` bytes, the read-ahead being empty: to EOF, as io's
        read(n) goes on after a short read."""
        parts = []
        while need > 0:
            got = await self._read_more(need)
            if not got:
                break
            parts.append(got)
            need -= len(got)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _read_more(self, need: int) -> bytes:
        """Up to ``need`` bytes with one job, the read-ahead being empty:
        through the read-ahead when sequential and small, else exactly."""
        if self._exact(need):
            return await self._read_exact(need)
        await self._fill()
        return self._take(need)

    async def _read_all(self) -> bytes:
        parts = [self._take(self._buffered())]
        regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        while True:
            want = max(os.fstat(self._fd).st_size - self._pos, self._chunk)
            got = await read_job(self._ctx, self._fd, want, self._pos)
            self._pos = self._next = self._pos + len(got)
            parts.append(got)
            if not got or (regular and len(got) < want):  # a short read of a file: EOF
                return parts[0] if len(parts) == 1 else b"".join(parts)

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

    async def peek(self, n: int = 0) -> bytes:
        """The read-ahead at the position, without moving it (as
        io.BufferedReader.peek: may be more or less than ``n``).  One job
        fills it when it is empty; b"" at EOF."""
        self._check_readable()
        await self._flush_writes()
        if not self._buffered():
            await self._fill()
        return bytes(self._rbuf[self._roff:])

    async def readall(self) -> bytes:
        """Everything from the position to EOF (io.FileIO.readall)."""
        return await self.read()

    async def readinto(self, buf: Any) -> int:
        """Fill ``buf`` from the position (fewer bytes at EOF); returns the count."""
        self._check_readable()
        if self._wbuf:
            await self._flush_writes()
        with memoryview(buf) as whole, whole.cast("B") as view:
            done = 0
            if type(buf) is bytearray and not self._buffered() and self._exact(len(buf)):
                done = await self._readinto_exact(buf)  # whole: the cheapest job
                if not done:
                    return 0
            while done < view.nbytes:  # and after a short read, to EOF as io does
                moved = await self._readinto_some(view[done:])
                if not moved:
                    break
                done += moved
            return done

    async def readinto1(self, buf: Any) -> int:
        """Fill ``buf`` with at most one job (io.BufferedReader.readinto1): from
        what is buffered, else one read; returns the count (0 at EOF)."""
        self._check_readable()
        if self._wbuf:
            await self._flush_writes()
        with memoryview(buf) as whole, whole.cast("B") as view:
            if not view.nbytes:
                return 0
            if type(buf) is bytearray and not self._buffered() and self._exact(len(buf)):
                return await self._readinto_exact(buf)  # whole: the cheapest job
            return await self._readinto_some(view)

    async def _readinto_exact(self, buf: Any) -> int:
        got = await read_into_job(self._ctx, self._fd, buf, self._pos)
        self._pos = self._next = self._pos + got
        return got

    async def _readinto_some(self, view: memoryview) -> int:
        if not self._buffered():
            if self._exact(view.nbytes):
                return await self._readinto_exact(view)
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
        if self._closed or not self._readable:
            self._check_readable()
        if self._wbuf:
            await self._flush_writes()
        if not 0 < n < BIG_READ:
            return await read_job(self._ctx, self._fd, self._clamp(n, offset), offset)
        cb = self._start_exact(n, offset)  # read_job's small case, inline: the hot path
        try:
            got = await cb
        except BaseException:
            self._cb = None  # it may still be in flight: not reused
            raise
        return bytes(cb.buf) if got == n else bytes(cb.buf[:got])

    async def readv(self, bufs: Sequence[Any]) -> int:
        self._check_readable()
        await self._flush_writes()
        self._drop_read_ahead()
        cb = Aiocb(self._fd, None, None, self._pos, iov=bufs)
        self._ctx.aio_readv(cb)
        got = await cb
        self._pos = self._next = self._pos + got
        return got

    # -- writing --------------------------------------------------------------------

    async def write(self, data: Any) -> int:
        self._check_writable()
        n = byte_count(data)
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
        return await write_all(self._ctx, self._fd, data, offset)

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
        if self._closed or not self._seekable:
            self._check_seekable()
        if self._wbuf:
            await self._flush_writes()
        if whence == 0 and type(offset) is int:  # SEEK_SET
            target = offset
        else:
            target = seek_target(self._fd, self._pos, operator.index(offset), whence)
        if target < 0:
            raise error(errno.EINVAL, f"negative seek position {target}")
        if self._rbuf:
            self._move_to(target)
        else:
            self._pos = target  # nothing read ahead to keep or drop
        return target

    def _move_to(self, target: int) -> None:
        """Set the position, nothing buffered to write."""
        start = self._pos - self._roff  # the file offset of the read-ahead
        if start <= target <= start + len(self._rbuf):
            self._roff = target - start  # still inside it: keep it
        else:
            self._drop_read_ahead()
        self._pos = target

    async def tell(self) -> int:
        self._check_seekable()
        await self._flush_writes()
        return self._pos

    # -- closing ----------------------------------------------------------------------

    async def close(self) -> None:
        """Write out what is buffered, then close the descriptor: IORING_OP_CLOSE
        where io_uring works, else a pool job (``close_fd``).  The file is closed
        even if either fails; a task cancelled meanwhile does not stop the close."""
        if self._detached:
            raise detached_error()  # as io's close after detach
        if self._closed:
            return
        try:
            await self._flush_writes()
        finally:
            fd = self._let_go()
            if fd is not None:
                await close_fd(fd)

    def _close_fd(self) -> None:
        """Close now, on this thread (a file whose making failed)."""
        fd = self._let_go()
        if fd is not None:
            os.close(fd)

    def _let_go(self) -> int | None:
        """Mark the file closed and hand back what is not ours; the descriptor still
        to close (None: not ours to close, or ``raw``, which owns it, closed it)."""
        self._closed = True
        self._drop_read_ahead()
        if not self._closefd and self._seekable:  # the caller keeps the fd: leave it
            os.lseek(self._fd, self._pos, os.SEEK_SET)  # where we were
        fd: int | None = self._fd if self._closefd else None
        if self._rawio is not None:
            self._rawio.close()  # closes the fd if it is ours
            fd = None
        if self._closer is not None:
            self._closer()
        return fd
