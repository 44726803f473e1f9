"""Submit-time checks at the edges of the numbers (docs/contract.md, rule 2).

A number past any fd the OS can have is EBADF, like any fd that is not open;
a size no buffer can have is ENOMEM or EINVAL with a message, never a bare
MemoryError or OverflowError; an fd set to -1 after the Aiocb was made is
EBADF on every submit.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any

import pytest

import aioposix
from aioposix import Aiocb, sysctl

if TYPE_CHECKING:
    from conftest import Env

SUBMITS = {
    "aio_read": lambda cb: aioposix.aio_read(cb),
    "aio_write": lambda cb: aioposix.aio_write(cb),
    "aio_fsync": lambda cb: aioposix.aio_fsync(os.O_SYNC, cb),
}


@pytest.mark.parametrize("fd", [2**31, 2**63, 2**70, -1, -(2**70)], ids=repr)
@pytest.mark.parametrize("op", list(SUBMITS))
async def test_fd_no_os_can_have_is_ebadf(aio: Env, op: str, fd: int) -> None:
    queued = sysctl["vfs.aio.num_queue_count"]
    cb = Aiocb(fd, bytearray(8))
    with pytest.raises(OSError) as info:
        SUBMITS[op](cb)
    assert info.value.errno == errno.EBADF
    assert (cb.error, cb.status) == (errno.EBADF, -1)
    assert sysctl["vfs.aio.num_queue_count"] == queued


@pytest.mark.parametrize("fd", [2**70, -1])
async def test_aio_cancel_of_a_huge_fd_is_ebadf(aio: Env, fd: int) -> None:
    with pytest.raises(OSError) as info:
        aioposix.aio_cancel(fd)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize("op", list(SUBMITS))
async def test_fildes_set_to_minus_one_after_construction_is_ebadf(
        aio: Env, new_file: Any, op: str) -> None:
    cb = Aiocb(new_file(b"data"), bytearray(4) if op != "aio_write" else b"data")
    cb.fildes = -1
    with pytest.raises(OSError) as info:
        SUBMITS[op](cb)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize("size", [2**62, 2**63 - 1])
async def test_pread_of_an_impossible_size_is_an_oserror(aio: Env, new_file: Any,
                                                         size: int) -> None:
    fd = new_file(b"abc")
    with pytest.raises(OSError) as info:
        await aioposix.pread(fd, size, 0)
    assert info.value.errno in (errno.ENOMEM, errno.EINVAL)
    assert str(size) in str(info.value)
    assert await aioposix.pread(fd, 3, 0) == b"abc"  # nothing left behind


async def test_pread_of_a_negative_size_is_einval(aio: Env, new_file: Any) -> None:
    with pytest.raises(OSError) as info:
        await aioposix.pread(new_file(b"abc"), -1, 0)
    assert info.value.errno == errno.EINVAL


async def test_read_with_no_buffer_of_an_impossible_size_is_an_oserror(
        aio: Env, new_file: Any) -> None:
    queued = sysctl["vfs.aio.num_queue_count"]
    cb = Aiocb(new_file(b"abc"), None, 2**62)
    with pytest.raises(OSError) as info:
        aioposix.aio_read(cb)
    assert info.value.errno in (errno.ENOMEM, errno.EINVAL)
    assert sysctl["vfs.aio.num_queue_count"] == queued
