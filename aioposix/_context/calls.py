"""The module-level calls: each is the same call on ``current_context()``,
plus the ``pread``/``pwrite`` conveniences built on them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from aioposix._context.default import current_context
from aioposix._core.job import Aiocb
from aioposix._core.sigevent import SigEvent
from aioposix._core.validate import allocate


def aio_read(cb: Aiocb) -> None:
    current_context().aio_read(cb)


def aio_write(cb: Aiocb) -> None:
    current_context().aio_write(cb)


def aio_readv(cb: Aiocb) -> None:
    current_context().aio_readv(cb)


def aio_writev(cb: Aiocb) -> None:
    current_context().aio_writev(cb)


def aio_fsync(op: int, cb: Aiocb) -> None:
    current_context().aio_fsync(op, cb)


def aio_error(cb: Aiocb) -> int:
    return current_context().aio_error(cb)


def aio_return(cb: Aiocb) -> int:
    return current_context().aio_return(cb)


def aio_cancel(fildes: int, cb: Aiocb | None = None) -> int:
    return current_context().aio_cancel(fildes, cb)


async def aio_suspend(cbs: Iterable[Aiocb | None], timeout: float | None = None) -> None:
    await current_context().aio_suspend(cbs, timeout)


async def lio_listio(mode: int, cbs: Sequence[Aiocb | None],
                     sigevent: SigEvent | None = None) -> None:
    await current_context().lio_listio(mode, cbs, sigevent)


def aio_waitcomplete(timeout: float | None = None) -> AsyncIterator[Aiocb]:
    return current_context().aio_waitcomplete(timeout)


async def pread(fd: int, n_or_buf: int | Any, offset: int) -> Any:
    """Read at ``offset`` without moving the fd's position.

    Given a size, returns the bytes read (shorter at EOF); given a writable
    buffer, fills it and returns the count.
    """
    if isinstance(n_or_buf, int) and not isinstance(n_or_buf, bool):
        buf = allocate(n_or_buf)
        got = await _read(fd, buf, offset)
        del buf[got:]
        return bytes(buf)
    return await _read(fd, n_or_buf, offset)


async def _read(fd: int, buf: Any, offset: int) -> int:
    # a whole bytearray with its length as nbytes takes the submit fast path
    cb = Aiocb(fd, buf, len(buf) if type(buf) is bytearray else None, offset)
    current_context().aio_read(cb)
    return await cb


async def pwrite(fd: int, data: Any, offset: int) -> int:
    """Write all of ``data`` at ``offset`` without moving the fd's position."""
    cb = Aiocb(fd, data, None, offset)
    current_context().aio_write(cb)
    return await cb
