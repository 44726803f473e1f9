"""Submit-time errors (docs/contract.md, rule 2, 3, 4 and 23): the errno, and nothing queued.

Every refusal is checked the same way: the call raises OSError with the
POSIX errno, cb.error holds that errno and cb.status is -1, the context
shows no job in any state, the job is unknown to it (aio_error raises
EINVAL) and the process-wide count vfs.aio.num_queue_count did not move.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

from aioposix import (
    EV_ADD,
    EV_CLEAR,
    LIO_NOP,
    LIO_NOWAIT,
    LIO_READ,
    LIO_WAIT,
    LIO_WRITE,
    SIGEV_KEVENT,
    SIGEV_SIGNAL,
    SIGEV_THREAD,
    Aiocb,
    AioContext,
    Kqueue,
    SigEvent,
    sysctl,
)

if TYPE_CHECKING:
    from conftest import Env

Submit = Callable[[AioContext, Aiocb], None]

SUBMITS: dict[str, Submit] = {
    "read": lambda ctx, cb: ctx.aio_read(cb),
    "write": lambda ctx, cb: ctx.aio_write(cb),
    "readv": lambda ctx, cb: ctx.aio_readv(cb),
    "writev": lambda ctx, cb: ctx.aio_writev(cb),
    "fsync": lambda ctx, cb: ctx.aio_fsync(os.O_SYNC, cb),
    "fdatasync": lambda ctx, cb: ctx.aio_fsync(os.O_DSYNC, cb),
}
READS = ("read", "readv")
WRITES = ("write", "writev")


def make_cb(op: str, fd: int, **kw: Any) -> Aiocb:
    """A well-formed control block for ``op`` on ``fd``."""
    if op == "read":
        return Aiocb(fd, bytearray(8), **kw)
    if op == "write":
        return Aiocb(fd, b"abcdefgh", **kw)
    if op == "readv":
        return Aiocb(fd, iov=[bytearray(4), bytearray(4)], **kw)
    if op == "writev":
        return Aiocb(fd, iov=[b"abcd", b"efgh"], **kw)
    return Aiocb(fd, **kw)


@pytest.fixture
async def ctx(aio: Env) -> AsyncIterator[AioContext]:
    async with AioContext() as context:
        yield context


@pytest.fixture
def fd(aio: Env) -> Any:
    descriptor = aio.file(b"0123456789abcdef")
    yield descriptor
    os.close(descriptor)


def load(ctx: AioContext) -> tuple[int, int, int]:
    """The context's jobs by state (queued, running and done together: workers move
    jobs between those on their own)."""
    stats = ctx.statistics()
    return (stats.queued + stats.active + stats.done, stats.parked, stats.buffer_jobs)


def assert_nothing_queued(ctx: AioContext, cb: Aiocb, queue_count: int,
                          jobs: tuple[int, int, int] = (0, 0, 0)) -> None:
    assert load(ctx) == jobs
    assert sysctl["vfs.aio.num_queue_count"] == queue_count
    with pytest.raises(OSError) as info:
        ctx.aio_error(cb)
    assert info.value.errno == errno.EINVAL


def assert_refused(ctx: AioContext, submit: Submit, cb: Aiocb, code: int) -> None:
    """``submit(ctx, cb)`` fails with ``code`` and leaves no trace."""
    before, jobs = sysctl["vfs.aio.num_queue_count"], load(ctx)
    with pytest.raises(OSError) as info:
        submit(ctx, cb)
    assert info.value.errno == code
    assert cb.error == code
    assert cb.status == -1
    assert_nothing_queued(ctx, cb, before, jobs)


# -- EBADF -------------------------------------------------------------------------------


@pytest.mark.parametrize("op", list(SUBMITS))
async def test_closed_fd_is_ebadf(aio: Env, ctx: AioContext, op: str) -> None:
    closed = aio.file(b"data")
    os.close(closed)
    assert_refused(ctx, SUBMITS[op], make_cb(op, closed), errno.EBADF)


@pytest.mark.parametrize("op", list(SUBMITS))
async def test_fd_minus_one_is_ebadf(ctx: AioContext, op: str) -> None:
    assert_refused(ctx, SUBMITS[op], make_cb(op, -1), errno.EBADF)


@pytest.mark.parametrize("op", WRITES)
async def test_write_on_read_only_fd_is_ebadf(aio: Env, ctx: AioContext, op: str) -> None:
    fd = aio.file(b"data", flags=os.O_RDONLY)
    try:
        assert_refused(ctx, SUBMITS[op], make_cb(op, fd), errno.EBADF)
        assert os.pread(fd, 8, 0) == b"data"
    finally:
        os.close(fd)


@pytest.mark.parametrize("op", READS)
async def test_read_on_write_only_fd_is_ebadf(aio: Env, ctx: AioContext, op: str) -> None:
    fd = aio.file(b"data", flags=os.O_WRONLY)
    try:
        assert_refused(ctx, SUBMITS[op], make_cb(op, fd), errno.EBADF)
    finally:
        os.close(fd)


# -- EINVAL and EFAULT on the control block ------------------------------------------------


@pytest.mark.parametrize("op", READS + WRITES)
async def test_negative_offset_on_regular_file_is_einval(ctx: AioContext, fd: int,
                                                         op: str) -> None:
    assert_refused(ctx, SUBMITS[op], make_cb(op, fd, offset=-1), errno.EINVAL)


@pytest.mark.parametrize("op", ["read", "write"])
async def test_negative_nbytes_is_einval(ctx: AioContext, fd: int, op: str) -> None:
    cb = make_cb(op, fd)
    cb.nbytes = -1
    assert_refused(ctx, SUBMITS[op], cb, errno.EINVAL)


@pytest.mark.parametrize("op", ["read", "write"])
async def test_nbytes_larger_than_buffer_is_efault(ctx: AioContext, fd: int, op: str) -> None:
    cb = make_cb(op, fd)
    cb.nbytes = 9  # the buffer holds 8
    assert_refused(ctx, SUBMITS[op], cb, errno.EFAULT)


@pytest.mark.parametrize("buf", [
    pytest.param(b"12345678", id="bytes"),
    pytest.param(memoryview(bytearray(8)).toreadonly(), id="readonly-memoryview"),
])
async def test_read_into_read_only_buffer_is_efault(ctx: AioContext, fd: int,
                                                    buf: Any) -> None:
    assert_refused(ctx, SUBMITS["read"], Aiocb(fd, buf), errno.EFAULT)


async def test_readv_with_a_read_only_iov_entry_is_efault(ctx: AioContext, fd: int) -> None:
    cb = Aiocb(fd, iov=[bytearray(4), b"read-only", bytearray(4)])
    assert_refused(ctx, SUBMITS["readv"], cb, errno.EFAULT)


@pytest.mark.parametrize("op", ["readv", "writev"])
async def test_iovcnt_over_iov_max_is_einval(ctx: AioContext, fd: int, op: str) -> None:
    count = os.sysconf("SC_IOV_MAX") + 1
    iov = [bytearray(1) for _ in range(count)]
    assert_refused(ctx, SUBMITS[op], Aiocb(fd, iov=iov), errno.EINVAL)


async def test_iovcnt_of_exactly_iov_max_is_accepted(ctx: AioContext, fd: int) -> None:
    iov = [bytearray(1) for _ in range(os.sysconf("SC_IOV_MAX"))]
    cb = Aiocb(fd, iov=iov)
    ctx.aio_readv(cb)
    assert await cb == 16
    assert b"".join(iov[:16]) == b"0123456789abcdef"


async def test_fsync_op_other_than_o_sync_or_o_dsync_is_einval(ctx: AioContext,
                                                                fd: int) -> None:
    assert_refused(ctx, lambda c, cb: c.aio_fsync(666, cb), Aiocb(fd), errno.EINVAL)


@pytest.mark.parametrize("op", [op for op in SUBMITS if "sync" not in op])
async def test_negative_reqprio_is_einval(ctx: AioContext, fd: int, op: str) -> None:
    assert_refused(ctx, SUBMITS[op], make_cb(op, fd, reqprio=-1), errno.EINVAL)


@pytest.mark.parametrize("op", [op for op in SUBMITS if "sync" in op])
async def test_fsync_ignores_reqprio(ctx: AioContext, fd: int, op: str) -> None:
    cb = make_cb(op, fd, reqprio=-1)
    SUBMITS[op](ctx, cb)
    assert await cb == 0


# -- bad sigevents -------------------------------------------------------------------------


@pytest.mark.parametrize("signo", [0, -1, 65])
async def test_bad_signal_number_is_einval(ctx: AioContext, fd: int, signo: int) -> None:
    try:
        sev = SigEvent(SIGEV_SIGNAL, signo=signo)
    except (ValueError, TypeError):
        return  # refused at construction: allowed by rule 2
    assert_refused(ctx, SUBMITS["write"], make_cb("write", fd, sigevent=sev), errno.EINVAL)


def _closed_kqueue() -> Kqueue:
    kq = Kqueue()
    kq.close()
    return kq


BAD_SIGEVENTS: list[Any] = [
    pytest.param(lambda: SigEvent(666), errno.EINVAL, id="unknown-notify"),
    pytest.param(lambda: SigEvent(SIGEV_THREAD), errno.EINVAL, id="thread-without-function"),
    pytest.param(lambda: SigEvent(SIGEV_KEVENT), errno.EINVAL, id="kevent-without-kqueue"),
    pytest.param(lambda: SigEvent(SIGEV_KEVENT, kqueue=_closed_kqueue()), errno.EBADF,
                 id="kevent-closed-kqueue"),
    pytest.param(lambda: SigEvent(SIGEV_KEVENT, kqueue=Kqueue(), kevent_flags=EV_ADD),
                 errno.EINVAL, id="kevent-flags-ev-add"),
    pytest.param(lambda: SigEvent(SIGEV_KEVENT, kqueue=Kqueue(), kevent_flags=EV_CLEAR | EV_ADD),
                 errno.EINVAL, id="kevent-flags-ev-clear-and-ev-add"),
]


@pytest.mark.parametrize(("make", "code"), BAD_SIGEVENTS)
@pytest.mark.parametrize("op", ["read", "write", "fsync"])
async def test_bad_sigevent_is_refused_at_submit(ctx: AioContext, fd: int, op: str,
                                                 make: Callable[[], SigEvent],
                                                 code: int) -> None:
    try:
        sev = make()
    except (ValueError, TypeError):
        return  # refused at construction: allowed by rule 2
    assert_refused(ctx, SUBMITS[op], make_cb(op, fd, sigevent=sev), code)


@pytest.mark.parametrize(("make", "code"), BAD_SIGEVENTS)
async def test_bad_lio_sigevent_is_refused_and_nothing_queued(ctx: AioContext, fd: int,
                                                              make: Callable[[], SigEvent],
                                                              code: int) -> None:
    try:
        sev = make()
    except (ValueError, TypeError):
        return
    cb = make_cb("write", fd, lio_opcode=LIO_WRITE)
    before = sysctl["vfs.aio.num_queue_count"]
    with pytest.raises(OSError) as info:
        await ctx.lio_listio(LIO_NOWAIT, [cb], sev)
    assert info.value.errno == code
    assert_nothing_queued(ctx, cb, before)


# -- lio_listio ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [LIO_NOWAIT, LIO_WAIT])
async def test_lio_bad_opcode_fails_the_entry_with_einval(ctx: AioContext, fd: int,
                                                          mode: int) -> None:
    cb = make_cb("write", fd, lio_opcode=666)
    before = sysctl["vfs.aio.num_queue_count"]
    with pytest.raises(OSError) as info:
        await ctx.lio_listio(mode, [cb])
    assert info.value.errno == errno.EIO
    assert cb.error == errno.EINVAL
    assert cb.status == -1
    assert_nothing_queued(ctx, cb, before)


@pytest.mark.parametrize("opcode", [LIO_WRITE, LIO_READ, LIO_NOP])
async def test_lio_entry_on_a_bad_fd_fails_with_ebadf(ctx: AioContext, opcode: int) -> None:
    """Rule 5: a LIO_NOP entry is checked like any other (a bad fd is EBADF)."""
    cb = Aiocb(-1, bytearray(8), lio_opcode=opcode)
    before = sysctl["vfs.aio.num_queue_count"]
    with pytest.raises(OSError) as info:
        await ctx.lio_listio(LIO_NOWAIT, [cb])
    assert info.value.errno == errno.EIO
    assert cb.error == errno.EBADF
    assert cb.status == -1
    assert_nothing_queued(ctx, cb, before)


async def test_lio_bad_entry_does_not_stop_the_good_ones(ctx: AioContext, fd: int) -> None:
    good = Aiocb(fd, bytearray(4), None, 4, lio_opcode=LIO_READ)
    bad = Aiocb(fd, bytearray(4), None, -4, lio_opcode=LIO_READ)
    with pytest.raises(OSError) as info:
        await ctx.lio_listio(LIO_WAIT, [bad, good])
    assert info.value.errno == errno.EIO
    assert bad.error == errno.EINVAL
    assert ctx.aio_error(good) == 0
    assert ctx.aio_return(good) == 4
    assert good.buf == b"4567"


@pytest.mark.parametrize("mode", [7, -1])
async def test_lio_bad_mode_is_einval(ctx: AioContext, fd: int, mode: int) -> None:
    cb = make_cb("write", fd, lio_opcode=LIO_WRITE)
    before = sysctl["vfs.aio.num_queue_count"]
    with pytest.raises(OSError) as info:
        await ctx.lio_listio(mode, [cb])
    assert info.value.errno == errno.EINVAL
    assert_nothing_queued(ctx, cb, before)
    assert os.pread(fd, 16, 0) == b"0123456789abcdef"


@pytest.mark.parametrize("mode", [LIO_NOWAIT, LIO_WAIT])
async def test_lio_more_entries_than_aio_listio_max_is_einval(aio: Env, fd: int,
                                                              mode: int) -> None:
    sysctl["vfs.aio.max_aio_queue_per_proc"] = 4
    assert sysctl["p1003_1b.aio_listio_max"] == 4
    async with AioContext(max_queued=64) as ctx:
        cbs = [Aiocb(fd, bytearray(1), None, i, lio_opcode=LIO_READ) for i in range(5)]
        before = sysctl["vfs.aio.num_queue_count"]
        with pytest.raises(OSError) as info:
            await ctx.lio_listio(mode, cbs)
        assert info.value.errno == errno.EINVAL
        for cb in cbs:
            assert_nothing_queued(ctx, cb, before)
        # exactly the limit is fine
        await ctx.lio_listio(LIO_WAIT, cbs[:4])
        assert [ctx.aio_return(cb) for cb in cbs[:4]] == [1, 1, 1, 1]
        assert b"".join(cb.buf for cb in cbs[:4]) == b"0123"


# -- aio_suspend ---------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [-1, -0.001, float("nan")])
async def test_aio_suspend_negative_timeout_is_einval(ctx: AioContext, timeout: float) -> None:
    r, w = os.pipe()
    try:
        cb = Aiocb(r, bytearray(4))
        ctx.aio_read(cb)  # parked: nothing to read yet
        with pytest.raises(OSError) as info:
            await ctx.aio_suspend([cb], timeout)
        assert info.value.errno == errno.EINVAL
        assert ctx.aio_error(cb) == errno.EINPROGRESS
        os.write(w, b"ping")
        assert await cb == 4
    finally:
        os.close(r)
        os.close(w)


async def test_aio_suspend_more_entries_than_aio_listio_max_is_einval(aio: Env) -> None:
    sysctl["vfs.aio.max_aio_queue_per_proc"] = 4
    r, w = os.pipe()
    try:
        async with AioContext() as ctx:
            cb = Aiocb(r, bytearray(4))
            ctx.aio_read(cb)
            with pytest.raises(OSError) as info:
                await ctx.aio_suspend([cb, None, None, None, None], 5)
            assert info.value.errno == errno.EINVAL
            os.write(w, b"pong")
            await ctx.aio_suspend([cb, None, None, None], 5)  # the limit itself is fine
            assert ctx.aio_return(cb) == 4
    finally:
        os.close(r)
        os.close(w)


# -- rule 3: a cb in flight belongs to its context -------------------------------------------


@pytest.mark.parametrize("again", ["same-context", "other-context", "lio"])
async def test_resubmitting_a_cb_in_flight_is_einval(aio: Env, ctx: AioContext, fd: int,
                                                     again: str) -> None:
    cb = Aiocb(fd, b"NEW!", None, 4)
    before = sysctl["vfs.aio.num_queue_count"]
    ctx.aio_write(cb)
    async with AioContext() as other:
        with pytest.raises(OSError) as info:
            if again == "same-context":
                ctx.aio_write(cb)
            elif again == "other-context":
                other.aio_write(cb)
            else:
                cb.lio_opcode = LIO_WRITE
                await ctx.lio_listio(LIO_NOWAIT, [cb])
        assert info.value.errno == (errno.EIO if again == "lio" else errno.EINVAL)
        assert other.statistics().queued == other.statistics().done == 0
    # the refusal did not touch the job in flight
    assert sysctl["vfs.aio.num_queue_count"] == before + 1
    assert ctx.aio_error(cb) in (0, errno.EINPROGRESS)
    assert await cb == 4
    assert cb.error == 0
    assert os.pread(fd, 16, 0) == b"0123NEW!89abcdef"
    assert sysctl["vfs.aio.num_queue_count"] == before
    # reaped: the cb may be used again
    cb.offset = 12
    ctx.aio_write(cb)
    assert await cb == 4
    assert os.pread(fd, 16, 0) == b"0123NEW!89abNEW!"


# -- quotas: EAGAIN --------------------------------------------------------------------------


async def test_context_queue_limit_is_eagain_until_a_job_is_reaped(aio: Env, fd: int) -> None:
    async with AioContext(max_queued=4) as ctx:
        cbs = [Aiocb(fd, bytearray(2), None, 2 * i) for i in range(4)]
        for cb in cbs:
            ctx.aio_read(cb)
        before = sysctl["vfs.aio.num_queue_count"]
        fifth = Aiocb(fd, bytearray(2), None, 8)
        with pytest.raises(BlockingIOError) as info:
            ctx.aio_read(fifth)
        assert info.value.errno == errno.EAGAIN
        assert fifth.error == errno.EAGAIN
        assert fifth.status == -1
        assert sysctl["vfs.aio.num_queue_count"] == before
        with pytest.raises(OSError):
            ctx.aio_error(fifth)
        # jobs done but not reaped still count: reaping one frees a slot
        assert await cbs[0] == 2
        ctx.aio_read(fifth)
        assert [await cb for cb in (*cbs[1:], fifth)] == [2, 2, 2, 2]
        assert [bytes(cb.buf) for cb in (*cbs, fifth)] == [b"01", b"23", b"45", b"67", b"89"]


async def test_process_wide_queue_limit_is_eagain_in_every_context(aio: Env, fd: int) -> None:
    async with AioContext() as first, AioContext() as second:
        sysctl["vfs.aio.max_aio_queue"] = sysctl["vfs.aio.num_queue_count"] + 2
        held = [Aiocb(fd, bytearray(1), None, i) for i in range(2)]
        for cb in held:
            first.aio_read(cb)
        for ctx in (first, second):
            cb = Aiocb(fd, bytearray(1))
            assert_refused(ctx, SUBMITS["read"], cb, errno.EAGAIN)
        lio_cb = Aiocb(fd, bytearray(1), lio_opcode=LIO_READ)
        with pytest.raises(BlockingIOError):  # rule 13: only limits refused entries
            await second.lio_listio(LIO_NOWAIT, [lio_cb])
        assert lio_cb.error == errno.EAGAIN
        assert await held[0] == 1
        cb = Aiocb(fd, bytearray(1), None, 5)
        second.aio_read(cb)  # a slot is free again, for any context
        assert await cb == 1
        assert await held[1] == 1
        assert (held[0].buf, held[1].buf, cb.buf) == (b"0", b"1", b"5")


# -- a closed context ------------------------------------------------------------------------


def _call(name: str, fd: int) -> Callable[[AioContext], Any]:
    cb = make_cb("read", fd)
    calls: dict[str, Callable[[AioContext], Any]] = {
        "aio_read": lambda c: c.aio_read(cb),
        "aio_write": lambda c: c.aio_write(make_cb("write", fd)),
        "aio_readv": lambda c: c.aio_readv(make_cb("readv", fd)),
        "aio_writev": lambda c: c.aio_writev(make_cb("writev", fd)),
        "aio_fsync": lambda c: c.aio_fsync(os.O_SYNC, Aiocb(fd)),
        "aio_error": lambda c: c.aio_error(cb),
        "aio_return": lambda c: c.aio_return(cb),
        "aio_cancel": lambda c: c.aio_cancel(fd),
        "aio_suspend": lambda c: c.aio_suspend([cb], 1),
        "lio_listio": lambda c: c.lio_listio(LIO_WAIT, [make_cb("read", fd,
                                                                 lio_opcode=LIO_READ)]),
        "aio_waitcomplete": lambda c: c.aio_waitcomplete(1).__anext__(),
    }
    return calls[name]


@pytest.mark.parametrize("name", [
    "aio_read", "aio_write", "aio_readv", "aio_writev", "aio_fsync", "aio_error",
    "aio_return", "aio_cancel", "aio_suspend", "lio_listio", "aio_waitcomplete",
])
async def test_call_on_closed_context_is_runtime_error(fd: int, name: str) -> None:
    ctx = AioContext()
    await ctx.aclose()
    assert ctx.closed
    before = sysctl["vfs.aio.num_queue_count"]
    with pytest.raises(RuntimeError):
        result = _call(name, fd)(ctx)
        if isinstance(result, Awaitable):
            await result
    assert sysctl["vfs.aio.num_queue_count"] == before


# -- odd descriptors -------------------------------------------------------------------------


async def test_read_on_a_directory_fails_cleanly(aio: Env, ctx: AioContext) -> None:
    """Whatever errno it is (EISDIR at completion today), the job fails and nothing leaks."""
    dfd = os.open(aio.tmp, os.O_RDONLY | os.O_DIRECTORY)
    try:
        before = sysctl["vfs.aio.num_queue_count"]
        cb = Aiocb(dfd, bytearray(8))
        try:
            ctx.aio_read(cb)
        except OSError as exc:
            assert exc.errno == cb.error != 0
        else:
            with pytest.raises(OSError) as info:
                await cb
            assert info.value.errno == cb.error == errno.EISDIR
        assert cb.status == -1
        assert_nothing_queued(ctx, cb, before)
        # the context still works
        fd = aio.file(b"fine")
        try:
            ok = Aiocb(fd, bytearray(4))
            ctx.aio_read(ok)
            assert await ok == 4
            assert ok.buf == b"fine"
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


# -- rule 4: a closed fd number reused by another file never gets the data --------------------


@pytest.mark.parametrize("append", [False, True], ids=["positional", "o-append"])
async def test_queued_writes_never_land_in_a_file_that_reuses_the_fd(aio: Env,
                                                                     append: bool) -> None:
    """Each job holds its own reference to the file it was submitted on: every
    write finishes in full on the old file, and the newcomer is untouched."""
    size, count = 1 << 16, 32
    blocks = [bytes([65 + i % 26]) * size for i in range(count)]
    old_path, new_path = aio.tmp / "old.bin", aio.tmp / "new.bin"
    flags = os.O_RDWR | os.O_CREAT | (os.O_APPEND if append else 0)
    async with AioContext(max_active=1) as ctx:
        fd = os.open(old_path, flags)
        cbs = [Aiocb(fd, block, None, i * size) for i, block in enumerate(blocks)]
        for cb in cbs:
            ctx.aio_write(cb)
        os.close(fd)
        reused = os.open(new_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        try:
            assert reused == fd
            assert [await cb for cb in cbs] == [size] * count
            assert os.fstat(reused).st_size == 0
            assert new_path.read_bytes() == b""
        finally:
            os.close(reused)
    # O_APPEND: in submission order; positional: each block at its offset
    assert old_path.read_bytes() == b"".join(blocks)


async def test_parked_write_never_lands_in_a_file_that_reuses_the_fd(aio: Env,
                                                                     ctx: AioContext) -> None:
    r, w = os.pipe()
    new_path = aio.tmp / "new.bin"
    reused = -1
    try:
        os.set_blocking(w, False)
        filler = 0
        try:
            while True:
                filler += os.write(w, b"f" * 65536)
        except BlockingIOError:
            pass
        os.set_blocking(w, True)
        payload = b"payload!" * 1024
        cb = Aiocb(w, payload)
        ctx.aio_write(cb)  # the pipe is full: it parks
        assert ctx.statistics().parked == 1
        number, w = w, -1
        os.close(number)
        reused = os.open(new_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        assert reused == number
        os.set_blocking(r, False)
        got = bytearray()

        def drained() -> bool:
            try:
                got.extend(os.read(r, 1 << 20))
            except BlockingIOError:
                pass
            return ctx.aio_error(cb) != errno.EINPROGRESS

        await aio.until(drained)
        status = await cb
        while chunk := os.read(r, 1 << 20):  # the job's own dup is closed: EOF comes
            got.extend(chunk)
        assert new_path.read_bytes() == b""
        assert status == len(payload)
        assert bytes(got) == b"f" * filler + payload
    finally:
        for d in (r, w, reused):
            if d >= 0:
                os.close(d)
