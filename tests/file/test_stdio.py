"""aioposix.stdin, stdout, stderr and the _bytes forms: sys's streams, async."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

import aioposix

if TYPE_CHECKING:
    from conftest import Env


async def test_text_streams_follow_sys(aio: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert await aioposix.stdout.write("hello") == 5
    await aioposix.stderr.write("world")
    print("!", end="")  # same object: in order with print
    await aioposix.stdout.flush()
    assert capsys.readouterr() == ("hello!", "world")
    with pytest.raises(OSError):  # pytest's stdin refuses reads
        await aioposix.stdin.read()
    assert await aioposix.stdout.writable()


async def test_binary_streams_follow_sys(aio: Env,
                                         capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    await aioposix.stdout_bytes.write(b"hello")
    await aioposix.stderr_bytes.write(b"world")
    assert capsysbinary.readouterr() == (b"hello", b"world")
    with pytest.raises(OSError):
        await aioposix.stdin_bytes.read()


CHILD = textwrap.dedent("""
    import asyncio, aioposix

    async def main():
        lines = [line async for line in aioposix.stdin]
        await aioposix.stdout.write("".join(reversed(lines)))
        data = await aioposix.stdin_bytes.read()
        await aioposix.stderr_bytes.write(b"%d lines" % len(lines) + data)

    asyncio.run(main())
""")


def test_a_program_reads_stdin_and_writes_stdout_through_pipes() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], input=b"one\ntwo\nthree\n",
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == (b"three\ntwo\none\n", b"3 lines")
