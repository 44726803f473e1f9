"""aioposix.stdin, stdout, stderr and their ``_bytes`` forms, as aiofiles has them.

Each looks ``sys.stdin`` (``sys.stdin.buffer``, ...) up at every call, so
it follows a replaced ``sys.stdout`` (pytest's capture, a redirect) and
keeps its order with ``print()``: the data goes through the same Python
object, not around it to the descriptor.  Every call that may block (a
read of a terminal, a write to a full pipe) is a pool job (``_offload``),
never made on the loop thread.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, AnyStr, Generic

from aioposix._backends.offload import run_job


class _StdStream(Generic[AnyStr]):
    """What the text and binary streams share."""

    def __init__(self, name: str, get: Callable[[], Any]) -> None:
        self._name = name
        self._get = get

    @property
    def _file(self) -> Any:
        """The stream now (aiofiles' name for the synchronous file wrapped)."""
        return self._get()

    async def _call(self, method: str, *args: Any) -> Any:
        return await run_job(getattr(self._get(), method), *args)

    @property
    def name(self) -> Any:
        return self._get().name

    @property
    def mode(self) -> str:
        return str(getattr(self._get(), "mode", ""))

    @property
    def closed(self) -> bool:
        return bool(self._get().closed)

    def fileno(self) -> int:
        return int(self._get().fileno())

    def detach(self) -> Any:
        return self._get().detach()

    async def read(self, n: int = -1) -> AnyStr:
        return await self._call("read", n)  # type: ignore[no-any-return]

    async def readline(self, size: int = -1) -> AnyStr:
        return await self._call("readline", size)  # type: ignore[no-any-return]

    async def readlines(self, hint: int = -1) -> list[AnyStr]:
        return await self._call("readlines", hint)  # type: ignore[no-any-return]

    async def write(self, data: AnyStr) -> int:
        return await self._call("write", data)  # type: ignore[no-any-return]

    async def writelines(self, lines: Iterable[AnyStr]) -> None:
        await self._call("writelines", list(lines))

    async def flush(self) -> None:
        await self._call("flush")

    async def close(self) -> None:
        await self._call("close")

    async def isatty(self) -> bool:
        return await self._call("isatty")  # type: ignore[no-any-return]

    async def seekable(self) -> bool:
        return await self._call("seekable")  # type: ignore[no-any-return]

    async def writable(self) -> bool:
        return await self._call("writable")  # type: ignore[no-any-return]

    async def seek(self, offset: int, whence: int = 0) -> int:
        return await self._call("seek", offset, whence)  # type: ignore[no-any-return]

    async def tell(self) -> int:
        return await self._call("tell")  # type: ignore[no-any-return]

    async def truncate(self, size: int | None = None) -> int:
        return await self._call("truncate", size)  # type: ignore[no-any-return]

    def __aiter__(self) -> AsyncIterator[AnyStr]:
        return self

    async def __anext__(self) -> AnyStr:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name}>"


class StdTextStream(_StdStream[str]):
    """sys.stdin, sys.stdout or sys.stderr, async (aiofiles' text streams:
    ``readable()`` is a coroutine)."""

    async def readable(self) -> bool:
        return await self._call("readable")  # type: ignore[no-any-return]

    @property
    def buffer(self) -> Any:
        return self._get().buffer

    @property
    def encoding(self) -> str:
        return str(self._get().encoding)

    @property
    def errors(self) -> str | None:
        return self._get().errors  # type: ignore[no-any-return]

    @property
    def line_buffering(self) -> bool:
        return bool(self._get().line_buffering)

    @property
    def newlines(self) -> Any:
        return self._get().newlines


class StdBinaryStream(_StdStream[bytes]):
    """The ``buffer`` of sys.stdin, sys.stdout or sys.stderr, async."""

    def readable(self) -> bool:
        return bool(self._get().readable())

    async def read1(self, n: int = -1) -> bytes:
        return await self._call("read1", n)  # type: ignore[no-any-return]

    async def readinto(self, buf: Any) -> int:
        return await self._call("readinto", buf)  # type: ignore[no-any-return]

    async def peek(self, n: int = 0) -> bytes:
        return await self._call("peek", n)  # type: ignore[no-any-return]

    @property
    def raw(self) -> Any:
        return self._get().raw


stdin = StdTextStream("sys.stdin", lambda: sys.stdin)
stdout = StdTextStream("sys.stdout", lambda: sys.stdout)
stderr = StdTextStream("sys.stderr", lambda: sys.stderr)
stdin_bytes = StdBinaryStream("sys.stdin.buffer", lambda: sys.stdin.buffer)
stdout_bytes = StdBinaryStream("sys.stdout.buffer", lambda: sys.stdout.buffer)
stderr_bytes = StdBinaryStream("sys.stderr.buffer", lambda: sys.stderr.buffer)
