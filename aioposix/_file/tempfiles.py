"""aioposix.tempfile: the ``tempfile`` classes as aiofiles.tempfile has them.

``async with aioposix.tempfile.TemporaryFile() as f`` (or ``f = await
...``) gives an AsyncFile: the file is made by ``tempfile`` in a pool job
(mkstemp and, for TemporaryFile, the unlink), then adopted (``_file.adopt``)
so that every read and write is an AIO job, like any ``aioposix.open``
file.  Closing it closes ``tempfile``'s object, which deletes a named file
as ``tempfile`` would.

A SpooledTemporaryFile lives in memory until it outgrows ``max_size``: there
its calls are made at once (no I/O); once rolled over to a file, each call
is a pool job on ``tempfile``'s object.  TemporaryDirectory's ``async with``
gives the path, as ``tempfile``'s does; making and removing it are pool jobs.
"""

from __future__ import annotations

import functools
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from types import TracebackType
from typing import Any

from aioposix._backends.offload import run_job
from aioposix._context.context import AioContext
from aioposix._file.base import AsyncFile
from aioposix._file.opening import _Opening, adopt

StrPath = Any  # str, bytes or os.PathLike, as tempfile takes them


class _TempOpening(_Opening[AsyncFile[Any]]):
    """Makes the tempfile object in a pool job and adopts it; leaving
    ``async with`` also runs the object's ``__exit__`` (Python 3.12: a
    NamedTemporaryFile with delete_on_close=False is deleted there)."""

    def __init__(self, make: Callable[[], Any], newline: str | None, buffering: int,
                 context: AioContext | None) -> None:
        super().__init__(self._adopt_new)
        self._make_sync = make
        self._options = (newline, buffering, context)
        self._sync: Any = None

    async def _adopt_new(self) -> AsyncFile[Any]:
        made = await run_job(self._make_sync)
        newline, buffering, context = self._options
        inner = getattr(made, "file", made)  # a NamedTemporaryFile's wrapper holds the file
        try:
            f = adopt(inner, made.close, newline=newline, name=made.name, buffering=buffering,
                      context=context)
        except BaseException:
            made.close()
            raise
        if sys.version_info < (3, 12) and hasattr(made, "delete"):
            setattr(f, "delete", made.delete)  # noqa: B010 (aiofiles offers it below 3.12)
        self._sync = made
        return f

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            self._sync.__exit__(exc_type, exc, tb)


def TemporaryFile(mode: str = "w+b", buffering: int = -1, encoding: str | None = None,
                  newline: str | None = None, suffix: str | None = None,
                  prefix: str | None = None, dir: StrPath | None = None,
                  loop: object = None, executor: object = None, *,
                  errors: str | None = None,
                  context: AioContext | None = None) -> _Opening[AsyncFile[Any]]:
    """An unnamed temporary file (tempfile.TemporaryFile), as an AsyncFile."""
    make = functools.partial(tempfile.TemporaryFile, mode, buffering, encoding, newline,
                             suffix, prefix, dir, errors=errors)
    return _TempOpening(make, newline, buffering, context)


def NamedTemporaryFile(mode: str = "w+b", buffering: int = -1, encoding: str | None = None,
                       newline: str | None = None, suffix: str | None = None,
                       prefix: str | None = None, dir: StrPath | None = None,
                       delete: bool = True, delete_on_close: bool = True,
                       loop: object = None, executor: object = None, *,
                       errors: str | None = None,
                       context: AioContext | None = None) -> _Opening[AsyncFile[Any]]:
    """A named temporary file (tempfile.NamedTemporaryFile), as an AsyncFile.

    ``f.name`` is its path; it is deleted on close (``delete``), or, with
    ``delete_on_close=False`` (Python 3.12 and later), when ``async with``
    ends.  Below 3.12 the file also has tempfile's ``delete`` attribute.
    """
    kwargs: dict[str, Any] = {"errors": errors}
    if sys.version_info >= (3, 12):
        kwargs["delete_on_close"] = delete_on_close
    elif not delete_on_close:
        raise TypeError("delete_on_close needs Python 3.12 or later")
    make = functools.partial(tempfile.NamedTemporaryFile, mode, buffering, encoding, newline,
                             suffix, prefix, dir, delete, **kwargs)
    return _TempOpening(make, newline, buffering, context)


# -- SpooledTemporaryFile ------------------------------------------------------------


class AsyncSpooledTemporaryFile:
    """tempfile.SpooledTemporaryFile, async: calls made at once while in
    memory, pool jobs once rolled over to a file (as aiofiles does)."""

    def __init__(self, file: tempfile.SpooledTemporaryFile[Any]) -> None:
        self._file = file

    async def _call(self, method: str, *args: Any) -> Any:
        bound = getattr(self._file, method)
        if self._file._rolled:  # type: ignore[attr-defined]
            return await run_job(bound, *args)
        return bound(*args)

    async def _check(self) -> None:
        """Roll over once the data outgrows max_size (as tempfile's write does)."""
        spool = self._file
        limit = spool._max_size  # type: ignore[attr-defined]
        if not spool._rolled and limit and spool.tell() > limit:  # type: ignore[attr-defined]
            await self.rollover()

    async def write(self, data: Any) -> int:
        if self._file._rolled:  # type: ignore[attr-defined]
            return await run_job(self._file.write, data)
        written = self._file._file.write(data)
        await self._check()
        return int(written)

    async def writelines(self, lines: Iterable[Any]) -> None:
        for line in lines:
            await self.write(line)

    async def rollover(self) -> None:
        """Move the data to a real temporary file (a pool job)."""
        await run_job(self._file.rollover)

    async def fileno(self) -> int:
        """The descriptor (rolls over first, as tempfile's fileno does)."""
        return await run_job(self._file.fileno)

    async def read(self, n: int = -1) -> Any:
        return await self._call("read", n)

    async def readline(self, size: int = -1) -> Any:
        return await self._call("readline", size)

    async def readlines(self, hint: int = -1) -> list[Any]:
        return await self._call("readlines", hint)  # type: ignore[no-any-return]

    async def seek(self, offset: int, whence: int = 0) -> int:
        return await self._call("seek", offset, whence)  # type: ignore[no-any-return]

    async def tell(self) -> int:
        return await self._call("tell")  # type: ignore[no-any-return]

    async def truncate(self, size: int | None = None) -> int | None:
        return await self._call("truncate", size)  # type: ignore[no-any-return]

    async def flush(self) -> None:
        await self._call("flush")

    async def isatty(self) -> bool:
        return await self._call("isatty")  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self._call("close")

    @property
    def closed(self) -> bool:
        return self._file.closed

    @property
    def encoding(self) -> str | None:
        return self._file.encoding

    @property
    def mode(self) -> str:
        return self._file.mode

    @property
    def name(self) -> Any:
        return self._file.name

    @property
    def newlines(self) -> Any:
        return self._file.newlines

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line


class _Spooling:
    """What SpooledTemporaryFile returns: awaitable, and an async context manager."""

    def __init__(self, make: Callable[[], tempfile.SpooledTemporaryFile[Any]]) -> None:
        self._make = make
        self._obj: AsyncSpooledTemporaryFile | None = None

    async def _open(self) -> AsyncSpooledTemporaryFile:
        if self._obj is None:
            self._obj = AsyncSpooledTemporaryFile(self._make())  # memory only: no I/O
        return self._obj

    def __await__(self) -> Generator[Any, None, AsyncSpooledTemporaryFile]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncSpooledTemporaryFile:
        return await self._open()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self._obj is not None
        await self._obj.close()


def SpooledTemporaryFile(max_size: int = 0, mode: str = "w+b", buffering: int = -1,
                         encoding: str | None = None, newline: str | None = None,
                         suffix: str | None = None, prefix: str | None = None,
                         dir: StrPath | None = None, loop: object = None,
                         executor: object = None, *,
                         errors: str | None = None) -> _Spooling:
    """A temporary file kept in memory until it outgrows ``max_size``
    (tempfile.SpooledTemporaryFile)."""
    return _Spooling(functools.partial(tempfile.SpooledTemporaryFile, max_size, mode, buffering,
                                       encoding, newline, suffix, prefix, dir, errors=errors))


# -- TemporaryDirectory --------------------------------------------------------------


class AsyncTemporaryDirectory:
    """tempfile.TemporaryDirectory, async: ``name``, ``await cleanup()``."""

    def __init__(self, directory: tempfile.TemporaryDirectory[Any]) -> None:
        self._file = directory

    @property
    def name(self) -> Any:
        return self._file.name

    async def cleanup(self) -> None:
        """Remove the directory and everything in it (a pool job)."""
        await run_job(self._file.cleanup)

    async def close(self) -> None:
        await self.cleanup()


class _Directory:
    """What TemporaryDirectory returns: awaited, the AsyncTemporaryDirectory;
    with ``async with``, its path (as tempfile's ``with`` gives)."""

    def __init__(self, make: Callable[[], tempfile.TemporaryDirectory[Any]]) -> None:
        self._make = make
        self._obj: AsyncTemporaryDirectory | None = None

    async def _open(self) -> AsyncTemporaryDirectory:
        if self._obj is None:
            self._obj = AsyncTemporaryDirectory(await run_job(self._make))
        return self._obj

    def __await__(self) -> Generator[Any, None, AsyncTemporaryDirectory]:
        return self._open().__await__()

    async def __aenter__(self) -> Any:
        return (await self._open()).name

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self._obj is not None
        await self._obj.cleanup()


def TemporaryDirectory(suffix: str | None = None, prefix: str | None = None,
                       dir: StrPath | None = None, loop: object = None,
                       executor: object = None, *,
                       ignore_cleanup_errors: bool = False) -> _Directory:
    """A temporary directory (tempfile.TemporaryDirectory), made by a pool job."""
    return _Directory(functools.partial(tempfile.TemporaryDirectory, suffix, prefix, dir,
                                        ignore_cleanup_errors))
