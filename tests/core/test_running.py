"""Outside asyncio, the first call says why it cannot work.

aioposix needs an asyncio event loop.  Under trio (AnyIO's trio backend
included) the file layer and the pool jobs raise a RuntimeError that names
the cause instead of asyncio's bare "no running event loop".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

import aioposix
import aioposix.os
from aioposix._core.running import TRIO_MESSAGE, running_loop

pytest.importorskip("trio")


def run_on_trio(call: Callable[[], Awaitable[object]]) -> RuntimeError:
    async def main() -> None:
        await call()

    with pytest.raises(RuntimeError) as info:
        anyio.run(main, backend="trio")
    return info.value


def test_open_under_trio_names_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    assert str(run_on_trio(lambda: aioposix.open(path, "rb"))) == TRIO_MESSAGE


def test_os_calls_under_trio_name_the_cause(tmp_path: Path) -> None:
    assert str(run_on_trio(lambda: aioposix.os.stat(tmp_path))) == TRIO_MESSAGE


def test_tempfile_under_trio_names_the_cause() -> None:
    error = run_on_trio(lambda: aioposix.tempfile.TemporaryFile())
    assert str(error) == TRIO_MESSAGE


def test_without_any_loop_the_error_says_none_runs() -> None:
    with pytest.raises(RuntimeError, match="no running event loop") as info:
        running_loop()
    assert "trio" not in str(info.value)


def test_under_asyncio_it_is_the_running_loop() -> None:
    async def main() -> asyncio.AbstractEventLoop:
        return running_loop()

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(main()) is loop
    finally:
        loop.close()
