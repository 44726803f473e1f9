"""What binary and text files share: the AsyncFile interface and the jobs.

Every transfer of a file is one or more jobs on its context: an ``Aiocb``
submitted with aio_read, aio_write, aio_readv, aio_writev or aio_fsync,
then ``await cb``.  The helpers below are those jobs; ``AsyncFile`` is the
interface of ``aioposix.open()``'s results (see ``_file``), with aiofiles'
split between plain methods and coroutines:

- plain (no I/O): ``fileno()``, ``detach()``, and ``readable()`` in binary
  mode; the properties ``name``, ``mode``, ``closed`` (and ``raw`` in
  binary mode, ``buffer``, ``encoding``, ... in text mode);
- coroutines: everything else, ``readable()`` in text mode included, as
  aiofiles has it.
"""

from __future__ import annotations

import abc
import asyncio
import errno
import io
import os
import stat
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, AnyStr, Generic, TypeVar

from aioposix._backends import offload, ring_ops
from aioposix._context.context import AioContext
from aioposix._core.errors import error
from aioposix._core.job import Aiocb

CHUNK = 64 * 1024  # read-ahead and write buffer size unless ``buffering`` says otherwise
BIG_READ = 256 * 1024  # reads from this size land in the result's memory (read_big)
PACE = 0.001  # seconds of big reads between yields to the loop (pace)
_F = TypeVar("_F", bound="AsyncFile[Any]")


def closed_error() -> ValueError:
    return ValueError("I/O operation on closed file.")


def detached_error() -> ValueError:
    return ValueError("raw stream has been detached")

# -- the jobs ------------------------------------------------------------------


async def read_job(ctx: AioContext, fd: int, n: int, offset: int) -> bytes:
    """One aio_read of up to ``n`` bytes at ``offset`` (shorter at EOF).

    Below BIG_READ the job reads into a whole bytearray (the context's
    cheapest path) and the bytes are copied out of it; from BIG_READ on it
    reads straight into the memory of the bytes returned (see
    ``read_big``), so a large read is copied once, by the kernel.
    """
    if n >= BIG_READ:
        return await read_big(ctx, fd, n, offset)
    if not n:
        return b""
    buf = bytearray(n)
    cb = Aiocb(fd, buf, n, offset)
    ctx.aio_read(cb)
    got = await cb
    if got != n:
        del buf[got:]
    return bytes(buf)


async def read_big(ctx: AioContext, fd: int, n: int, offset: int) -> bytes:
    """One aio_read of up to ``n`` bytes at ``offset`` into a BytesIO's own
    buffer, whose ``getvalue()`` is then that buffer, not a copy of it.

    The job holds the view it reads into, and the view holds the BytesIO:
    a task cancelled while the job runs leaves it memory to finish in.
    """
    store = io.BytesIO()
    store.seek(n - 1)
    store.write(b"\0")
    view = store.getbuffer()
    cb = Aiocb(fd, view, n, offset)
    ctx.aio_read(cb)
    inline = cb.error != errno.EINPROGRESS
    got = await cb
    del cb  # its views of the buffer go with it
    view.release()
    data = store.getvalue()  # the buffer itself once no view of it is left
    await pace(ctx, inline)
    return data if got == n else data[:got]


_LAST_YIELD: weakref.WeakKeyDictionary[AioContext, float] = weakref.WeakKeyDictionary()


async def pace(ctx: AioContext, inline: bool) -> None:
    """After a big read: yield to the loop once PACE seconds went by since
    the loop last had a turn (``inline``: the job finished in its submit
    call, so the task did not wait, and the loop has not run since).

    A cached read finishes inline, and the context yields once every so
    many jobs; big reads take long enough that so many of them in a row
    would hold the loop for tens of milliseconds.  The clock is kept per
    context (one per loop), so a loop that reads big blocks back to back
    lets timers and other tasks in about every PACE seconds.
    """
    now = time.perf_counter()
    last = _LAST_YIELD.get(ctx)
    if not inline or last is None:
        _LAST_YIELD[ctx] = now  # the task waited: the loop ran meanwhile
    elif now - last >= PACE:
        await asyncio.sleep(0)
        _LAST_YIELD[ctx] = time.perf_counter()


async def read_into_job(ctx: AioContext, fd: int, buf: Any, offset: int) -> int:
    """One aio_read into ``buf``: a bytearray whole (the cheapest path),
    anything else as a memoryview of bytes."""
    n = len(buf) if type(buf) is bytearray else buf.nbytes
    cb = Aiocb(fd, buf, n, offset)
    ctx.aio_read(cb)
    inline = cb.error != errno.EINPROGRESS
    got: int = await cb
    if n >= BIG_READ:
        await pace(ctx, inline)
    return got


async def write_all(ctx: AioContext, fd: int, data: Any, offset: int) -> int:
    """aio_write until all of ``data`` is out; returns its length."""
    with memoryview(data) as whole, whole.cast("B") as view:
        done = 0
        while done < view.nbytes:
            cb = Aiocb(fd, view[done:], view.nbytes - done, offset + done)
            ctx.aio_write(cb)
            moved = await cb
            if moved == 0:
                raise error(errno.EIO, "write made no progress")
            done += moved
        return done


def byte_count(data: Any) -> int:
    with memoryview(data) as view:
        return view.nbytes


def pwrite_all(fd: int, data: bytes, offset: int) -> int:
    """os.pwrite until all of ``data`` is out, now (detach's last write)."""
    with memoryview(data) as view:
        done = 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], offset + done)
        return done


_SEEK_EXTRA = tuple(getattr(os, name) for name in ("SEEK_DATA", "SEEK_HOLE") if hasattr(os, name))


def seek_target(fd: int, pos: int, offset: int, whence: int) -> int:
    """Where a seek goes from ``pos`` (not checked for being negative)."""
    if whence == os.SEEK_SET:
        return offset
    if whence == os.SEEK_CUR:
        return pos + offset
    if whence == os.SEEK_END:
        return os.fstat(fd).st_size + offset
    if whence in _SEEK_EXTRA:  # SEEK_DATA, SEEK_HOLE: only the kernel knows
        return os.lseek(fd, offset, whence)
    raise ValueError(f"whence value {whence} unsupported")


def start_position(fd: int, append: bool) -> tuple[int, bool]:
    """Where a file opened on ``fd`` starts, and whether it can seek."""
    try:
        return os.lseek(fd, 0, os.SEEK_END if append else os.SEEK_CUR), True
    except OSError as exc:
        if exc.errno != errno.ESPIPE:
            raise
        return 0, False


def fd_mode(mode: str) -> str:
    """The mode as FileIO spells it (what io's binary files report)."""
    plus = "+" if "+" in mode else ""
    for c in "xa":
        if c in mode:
            return f"{c}b{plus}"
    return f"rb{plus}" if "r" in mode or plus else "wb"


# -- open(2) and close(2), off the loop thread ---------------------------------------


async def open_fd(path: Any, flags: int) -> int:
    """``os.open(path, flags, 0o666)``: IORING_OP_OPENAT on the loop's ring where
    io_uring works (``ring_ops.open``), else a pool job, cancellable while queued.

    The kernel tries a ring open without waiting first: a FIFO opened for reading
    then has no writer to wait for, where open(2) waits.  That descriptor is held
    while a pool job opens the FIFO again as open(2) does (the FIFO has a reader
    meanwhile, as it has while open(2) waits), then closed."""
    fd = await ring_ops.open(path, flags, 0o666)
    if fd is None:
        return await _pool_open(path, flags)
    if flags & os.O_ACCMODE != os.O_RDONLY or not stat.S_ISFIFO(os.fstat(fd).st_mode):
        return fd
    try:
        return await _pool_open(path, flags)
    finally:
        os.close(fd)


async def _pool_open(path: Any, flags: int) -> int:
    """os.open as a pool job.  Cancelled once a worker has started it, the
    descriptor it gives is closed when it comes (no task is left to take it)."""
    job = offload._executor().submit(os.open, path, flags, 0o666)
    try:
        return await asyncio.wrap_future(job)
    except BaseException:
        job.add_done_callback(_close_unclaimed)  # (queued: taken back, nothing to close)
        raise


def _close_unclaimed(job: Future[int]) -> None:
    if not job.cancelled() and job.exception() is None:
        os.close(job.result())


async def close_fd(fd: int) -> None:
    """``os.close(fd)``: IORING_OP_CLOSE on the loop's ring where io_uring works
    (``ring_ops.close``), else a pool job.  Either way a task cancelled while it
    waits does not stop it: the descriptor is closed all the same."""
    if not await ring_ops.close(fd):
        job = asyncio.wrap_future(offload._executor().submit(os.close, fd))
        await asyncio.shield(job)


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
