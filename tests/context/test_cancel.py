"""aio_cancel, cancelled awaits and rundown on regular files (docs/contract.md, rule 8, 12, 25).

Keeping a file job queued on purpose: rule 18 says an aio_fsync completes
only after every job submitted earlier on the same fd has completed, so an
fsync (and an O_APPEND write, which must land in order) submitted behind a
job still in flight waits its turn; it stays queued at least until the loop
runs again.  Where no such guarantee exists (jobs handed to the pool or the
ring), the tests assert the invariants of rule 12 instead of one outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
from typing import TYPE_CHECKING, Any

import pytest
from helpers import MakeFile, check_errno, loop_errors

import aioposix
from aioposix import (
    AIO_ALLDONE,
    AIO_CANCELED,
    AIO_NOTCANCELED,
    LIO_NOWAIT,
    LIO_SYNC,
    LIO_WRITE,
    SIGEV_SIGNAL,
    SIGEV_THREAD,
    Aiocb,
    AioContext,
    SigEvent,
)

if TYPE_CHECKING:
    from conftest import Env

EINPROGRESS = errno.EINPROGRESS
ECANCELED = errno.ECANCELED
APPEND = os.O_RDWR | os.O_APPEND


def hold(ctx: AioContext, fd: int) -> Aiocb:
    """An fsync on ``fd``: later fsyncs and O_APPEND writes on ``fd`` wait behind it."""
    head = Aiocb(fd)
    ctx.aio_fsync(os.O_SYNC, head)
    assert ctx.aio_error(head) == EINPROGRESS
    return head


def fsync(ctx: AioContext, fd: int, **kw: Any) -> Aiocb:
    cb = Aiocb(fd, **kw)
    ctx.aio_fsync(os.O_DSYNC, cb)
    return cb


def assert_cancelled(cb: Aiocb) -> None:
    assert (cb.error, cb.status) == (ECANCELED, -1)


def idle(ctx: AioContext) -> bool:
    s = ctx.statistics()
    return (s.queued, s.active, s.done, s.parked) == (0, 0, 0, 0)


# -- outcomes of aio_cancel --------------------------------------------------------

async def test_aio_cancel_nothing_matching_alldone(aio: Env, new_file: MakeFile) -> None:
    fd, other_fd = new_file(), new_file()
    async with AioContext() as ctx:
        assert ctx.aio_cancel(fd) == AIO_ALLDONE
        assert ctx.aio_cancel(fd, Aiocb(fd, b"never submitted")) == AIO_ALLDONE
        head = hold(ctx, other_fd)
        assert ctx.aio_cancel(fd) == AIO_ALLDONE  # jobs on another fd do not match
        assert ctx.aio_error(head) == EINPROGRESS
        assert await head == 0


async def test_aio_cancel_done_job_alldone(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    async with AioContext() as ctx:
        cb = Aiocb(fd, b"landed")
        ctx.aio_write(cb)
        await ctx.aio_suspend([cb], timeout=10)
        assert ctx.aio_cancel(fd, cb) == AIO_ALLDONE
        assert ctx.aio_cancel(fd) == AIO_ALLDONE
        assert ctx.aio_error(cb) == 0
        assert ctx.aio_return(cb) == 6
        assert ctx.aio_cancel(fd, cb) == AIO_ALLDONE  # reaped
    assert os.pread(fd, 100, 0) == b"landed"


async def test_aio_cancel_bad_fd_ebadf(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    closed = os.dup(fd)
    os.close(closed)
    async with AioContext() as ctx:
        for args in ((closed,), (closed, Aiocb(closed, b"x")), (-1,)):
            with pytest.raises(OSError) as info:
                ctx.aio_cancel(*args)
            check_errno(info, errno.EBADF)


async def test_aio_cancel_queued_job_canceled(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    async with AioContext() as ctx:
        head = hold(ctx, fd)
        queued = fsync(ctx, fd)
        assert ctx.aio_cancel(fd, queued) == AIO_CANCELED
        assert ctx.aio_error(queued) == ECANCELED
        assert ctx.aio_cancel(fd, queued) == AIO_ALLDONE  # done now, not yet reaped
        assert ctx.aio_return(queued) == -1
        assert await head == 0
    assert_cancelled(queued)


async def test_aio_cancel_one_cb_leaves_the_others(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    async with AioContext() as ctx:
        head = hold(ctx, fd)
        before, target, after = (fsync(ctx, fd) for _ in range(3))
        assert ctx.aio_cancel(fd, target) == AIO_CANCELED
        assert ctx.aio_error(before) == ctx.aio_error(after) == EINPROGRESS
        assert [await head, await before, await after] == [0, 0, 0]
        with pytest.raises(OSError) as info:
            await target
        check_errno(info, ECANCELED)


async def test_cancelled_append_write_does_not_land(aio: Env, new_file: MakeFile) -> None:
    fd = new_file(b"<", APPEND)
    async with AioContext() as ctx:
        head = hold(ctx, fd)
        writes = [Aiocb(fd, part) for part in (b"aaa", b"bbb", b"ccc")]
        for cb in writes:
            ctx.aio_write(cb)
        assert ctx.aio_cancel(fd, writes[1]) == AIO_CANCELED
        assert await head == 0
        assert await writes[0] == 3
        assert await writes[2] == 3
        with pytest.raises(OSError) as info:
            await writes[1]
        check_errno(info, ECANCELED)
    assert os.pread(fd, 100, 0) == b"<aaaccc"


async def test_aio_cancel_fd_cancels_every_queued_job(aio: Env, new_file: MakeFile) -> None:
    fd = new_file(flags=APPEND)
    notified: list[object] = []
    async with AioContext() as ctx:
        head = hold(ctx, fd)
        writes = [Aiocb(fd, b"w%d" % i, sigevent=SigEvent(SIGEV_THREAD, value=i,
                                                          function=notified.append))
                  for i in range(4)]
        for cb in writes:
            ctx.aio_write(cb)
        tail = fsync(ctx, fd)
        result = ctx.aio_cancel(fd)
        assert result in (AIO_CANCELED, AIO_NOTCANCELED)
        assert [cb.error for cb in [*writes, tail]] == [ECANCELED] * 5
        # the head was cancelled too, or it had started (then it was not cancelled)
        assert (result == AIO_CANCELED) == (head.error == ECANCELED)
        await aio.until(lambda: len(notified) == 4)
        assert ctx.aio_error(head) in (EINPROGRESS, 0, ECANCELED)
        async for _ in ctx.aio_waitcomplete(timeout=10):
            pass
    assert sorted(notified) == [0, 1, 2, 3]  # cancelled jobs still notify
    for cb in [*writes, tail]:
        assert_cancelled(cb)
    assert head.error in (0, ECANCELED)
    assert os.fstat(fd).st_size == 0  # no cancelled write landed


async def test_aio_cancel_touches_only_the_given_fd(aio: Env, new_file: MakeFile) -> None:
    fd1, fd2 = new_file(), new_file()
    async with AioContext() as ctx:
        heads = [hold(ctx, fd1), hold(ctx, fd2)]
        queued1, queued2 = fsync(ctx, fd1), fsync(ctx, fd2)
        assert ctx.aio_cancel(fd1, queued2) == AIO_ALLDONE  # cb on another fd: no match
        assert ctx.aio_cancel(fd1) in (AIO_CANCELED, AIO_NOTCANCELED)
        assert queued1.error == ECANCELED
        assert ctx.aio_return(queued1) == -1
        assert ctx.aio_error(queued2) == EINPROGRESS
        assert await queued2 == 0
        for head in heads:
            with contextlib.suppress(OSError):
                await head
        assert idle(ctx)


async def test_cancelled_jobs_still_notify(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    loop = asyncio.get_running_loop()
    signalled: list[int] = []
    called: list[tuple[object, int]] = []
    async with AioContext() as ctx:
        head = hold(ctx, fd)
        by_signal = fsync(ctx, fd, sigevent=SigEvent(SIGEV_SIGNAL, signo=signal.SIGUSR2))
        by_thread = fsync(ctx, fd, sigevent=SigEvent(
            SIGEV_THREAD, value="v", function=lambda v: called.append((v, by_thread.error))))
        loop.add_signal_handler(signal.SIGUSR2, lambda: signalled.append(by_signal.error))
        try:
            assert ctx.aio_cancel(fd, by_signal) == AIO_CANCELED
            assert ctx.aio_cancel(fd, by_thread) == AIO_CANCELED
            await aio.until(lambda: bool(signalled) and bool(called))
        finally:
            loop.remove_signal_handler(signal.SIGUSR2)
        assert signalled == [ECANCELED]
        assert called == [("v", ECANCELED)]
        assert await head == 0
        await ctx.aio_suspend([by_signal], timeout=0)  # done: returns at once
        done = [cb async for cb in ctx.aio_waitcomplete(timeout=10)]
    assert set(done) == {by_signal, by_thread}
    for cb in done:
        assert_cancelled(cb)


async def test_cancelled_job_buffer_can_be_resized(aio: Env, new_file: MakeFile) -> None:
    fd = new_file(flags=APPEND)
    buf = bytearray(b"payload")
    async with AioContext() as ctx:
        head = hold(ctx, fd)
        cb = Aiocb(fd, buf)
        ctx.aio_write(cb)
        assert ctx.aio_cancel(fd, cb) == AIO_CANCELED
        assert ctx.aio_return(cb) == -1
        buf.extend(b" and more")  # no export of the buffer is left behind
        assert await head == 0
    assert buf == b"payload and more"
    assert os.fstat(fd).st_size == 0


async def test_lio_batch_with_a_cancelled_entry_notifies_once(aio: Env,
                                                              new_file: MakeFile) -> None:
    fd = new_file()
    fired: list[list[int]] = []
    async with AioContext() as ctx:
        first = Aiocb(fd, lio_opcode=LIO_SYNC)
        second = Aiocb(fd, lio_opcode=LIO_SYNC)  # behind the first: still queued
        cbs = [first, second]
        sev = SigEvent(SIGEV_THREAD, function=lambda _v: fired.append([cb.error for cb in cbs]))
        await ctx.lio_listio(LIO_NOWAIT, cbs, sev)
        assert ctx.aio_error(second) == EINPROGRESS
        assert ctx.aio_cancel(fd, second) == AIO_CANCELED
        await aio.until(lambda: bool(fired))
        assert ctx.aio_return(first) == 0
        assert ctx.aio_return(second) == -1
        later: list[object] = []
        await ctx.lio_listio(LIO_NOWAIT, [], SigEvent(SIGEV_THREAD, function=later.append))
        await aio.until(lambda: bool(later))
    assert fired == [[0, ECANCELED]]


async def test_module_level_aio_cancel(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    head = Aiocb(fd)
    aioposix.aio_fsync(os.O_SYNC, head)
    queued = Aiocb(fd)
    aioposix.aio_fsync(os.O_SYNC, queued)
    assert aioposix.aio_cancel(fd, queued) == AIO_CANCELED
    assert aioposix.aio_error(queued) == ECANCELED
    assert aioposix.aio_return(queued) == -1
    assert await head == 0
    assert aioposix.aio_cancel(fd) == AIO_ALLDONE


@pytest.mark.parametrize("behind_fsync", [False, True], ids=["plain", "behind_fsync"])
async def test_aio_cancel_many_writes(aio: Env, new_file: MakeFile, behind_fsync: bool) -> None:
    """200 writes with max_active=1, cancelled at once: whatever had started runs to
    the end, everything else ends ECANCELED, did not land, and still notified."""
    fd = new_file()
    size = 64 * 1024
    payloads = [bytes([1 + i % 250]) * size for i in range(200)]
    notified: list[object] = []
    async with AioContext(max_active=1) as ctx:
        jobs = [hold(ctx, fd)] if behind_fsync else []
        writes = [Aiocb(fd, p, offset=i * size,
                        sigevent=SigEvent(SIGEV_THREAD, value=i, function=notified.append))
                  for i, p in enumerate(payloads)]
        for cb in writes:
            ctx.aio_write(cb)
        jobs += writes
        in_flight = {cb for cb in jobs if cb.error == EINPROGRESS}
        result = ctx.aio_cancel(fd)
        cancelled = {cb for cb in jobs if cb.error == ECANCELED}
        await aio.until(lambda: len(notified) == len(writes), timeout=30)
        async for _ in ctx.aio_waitcomplete(timeout=30):
            pass
    assert sorted(notified) == list(range(200))  # every write notified, cancelled or not
    assert cancelled <= in_flight
    assert {cb for cb in jobs if cb.error == ECANCELED} == cancelled  # none cancelled later
    if result == AIO_ALLDONE:
        assert not in_flight
    elif result == AIO_CANCELED:
        assert cancelled == in_flight
    else:
        assert result == AIO_NOTCANCELED
        assert cancelled < in_flight
    content = os.pread(fd, 200 * size, 0)
    for i, cb in enumerate(writes):
        region = content[i * size:(i + 1) * size]
        if cb in cancelled:
            assert cb.status == -1
            assert region == bytes(len(region)), f"cancelled write {i} landed"
        else:
            assert (cb.status, cb.error) == (size, 0)
            assert region == payloads[i]


# -- contexts ----------------------------------------------------------------------

async def test_aio_cancel_other_context_touches_nothing(aio: Env, new_file: MakeFile,
                                                        pipe: tuple[int, int]) -> None:
    fd = new_file()
    r, w = pipe
    async with AioContext() as ctx, AioContext() as other:
        head = hold(other, fd)
        queued = fsync(other, fd)
        parked = Aiocb(r, bytearray(4))
        other.aio_read(parked)
        assert ctx.aio_cancel(fd, queued) == AIO_ALLDONE
        assert ctx.aio_cancel(fd) == AIO_ALLDONE
        assert ctx.aio_cancel(r, parked) == AIO_ALLDONE
        assert ctx.aio_cancel(r) == AIO_ALLDONE
        assert other.aio_error(queued) == other.aio_error(parked) == EINPROGRESS
        assert [await head, await queued] == [0, 0]
        os.write(w, b"data")
        assert await parked == 4
    assert parked.buf == b"data"


# -- `await cb` in a task that gets cancelled (rule 8) -------------------------------

async def test_await_in_cancelled_task_cancels_parked_job(aio: Env,
                                                          pipe: tuple[int, int]) -> None:
    r, w = pipe
    with loop_errors() as errors:
        async with AioContext() as ctx:
            cb = Aiocb(r, bytearray(8))
            ctx.aio_read(cb)
            started = asyncio.Event()

            async def waiter() -> int:
                started.set()
                return await cb

            task = asyncio.ensure_future(waiter())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert_cancelled(cb)
            await aio.until(lambda: idle(ctx))
            with pytest.raises(OSError) as info:
                ctx.aio_error(cb)  # reaped by itself
            check_errno(info, errno.EINVAL)
        os.write(w, b"unread")
        assert os.read(r, 100) == b"unread"  # the cancelled read consumed nothing
    assert errors == []


async def test_await_in_cancelled_task_cancels_queued_file_job(aio: Env,
                                                               new_file: MakeFile) -> None:
    fd = new_file(flags=APPEND)
    with loop_errors() as errors:
        async with AioContext() as ctx:
            head = hold(ctx, fd)
            queued = Aiocb(fd, b"never")
            ctx.aio_write(queued)
            task = asyncio.ensure_future(_await(queued))
            await _started(task)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            outcome = queued.error
            assert await head == 0
            await aio.until(lambda: idle(ctx))
            with pytest.raises(OSError) as info:
                ctx.aio_error(queued)
            check_errno(info, errno.EINVAL)
    assert errors == []
    # still queued when the task was cancelled (unless the head finished first and the
    # write had started): cancelled and not landed, or completed and landed
    if outcome == ECANCELED:
        assert_cancelled(queued)
        assert os.fstat(fd).st_size == 0
    else:
        assert (queued.error, queued.status) == (0, 5)
        assert os.pread(fd, 100, 0) == b"never"


async def _await(cb: Aiocb) -> int:
    return await cb


async def _started(task: asyncio.Future[Any]) -> None:
    """Let ``task`` run its first step (up to its first suspension)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    loop.call_soon(fut.set_result, None)  # runs after the task's first step
    await fut


async def test_await_in_cancelled_task_running_job_reaps_itself(aio: Env,
                                                                new_file: MakeFile) -> None:
    fd = new_file()
    data = os.urandom(8 << 20)
    with loop_errors() as errors:
        async with AioContext() as ctx:
            cb = Aiocb(fd, data)
            ctx.aio_write(cb)
            task = asyncio.ensure_future(_await(cb))
            await _started(task)
            task.cancel()
            try:
                result = await task
            except asyncio.CancelledError:
                result = None
            await aio.until(lambda: idle(ctx), timeout=30)
            with pytest.raises(OSError) as info:
                ctx.aio_error(cb)
            check_errno(info, errno.EINVAL)
    assert errors == []
    if cb.error == ECANCELED:  # it was still queued
        assert result is None and cb.status == -1
        assert os.fstat(fd).st_size == 0
    else:
        assert (cb.error, cb.status) == (0, len(data))
        assert result in (None, len(data))
        assert os.pread(fd, len(data) + 1, 0) == data


async def test_cancelled_task_awaiting_done_jobs_leaks_none(aio: Env,
                                                            new_file: MakeFile) -> None:
    """Awaiting many finished jobs in a row yields to the loop now and then
    (docs/contract.md, rule 1); a task cancelled at such a point must still reap
    the job it awaited."""
    fd = new_file(os.urandom(4096))
    with loop_errors() as errors:
        async with AioContext(max_queued=1000) as ctx:
            cbs = [Aiocb(fd, bytearray(16), offset=i) for i in range(1000)]
            for cb in cbs:
                ctx.aio_read(cb)
            await aio.until(lambda: all(cb.error != EINPROGRESS for cb in cbs))
            reaped: list[int] = []

            async def consumer() -> None:
                for cb in cbs:
                    reaped.append(await cb)

            task = asyncio.ensure_future(consumer())
            await _started(task)
            task.cancel()
            try:
                await task
                stopped_at = None
            except asyncio.CancelledError:
                stopped_at = cbs[len(reaped)]
            assert reaped == [16] * len(reaped)
            if stopped_at is not None:
                assert stopped_at.error == 0
                await aio.until(lambda: ctx.statistics().done == len(cbs) - len(reaped) - 1,
                                timeout=2)
                with pytest.raises(OSError) as info:
                    ctx.aio_error(stopped_at)  # reaped by itself
                check_errno(info, errno.EINVAL)
            assert len([cb async for cb in ctx.aio_waitcomplete(timeout=10)]) == (
                len(cbs) - len(reaped) - (stopped_at is not None))
    assert errors == []


# -- rundown (rule 25) --------------------------------------------------------------

async def test_rundown_cancels_queued_jobs(aio: Env, new_file: MakeFile) -> None:
    fd = new_file(flags=APPEND)
    notified: list[object] = []
    baseline = aioposix.sysctl["vfs.aio.num_queue_count"]
    async with AioContext() as ctx:
        head = hold(ctx, fd)
        tail = fsync(ctx, fd)
        writes = [Aiocb(fd, b"w%d" % i, sigevent=SigEvent(SIGEV_THREAD, value=i,
                                                          function=notified.append))
                  for i in range(5)]
        for cb in writes:
            ctx.aio_write(cb)
    assert ctx.closed
    assert head.error in (0, ECANCELED)
    assert head.status == (0 if head.error == 0 else -1)
    for cb in [tail, *writes]:
        assert_cancelled(cb)
    assert sorted(notified) == [0, 1, 2, 3, 4]
    assert os.fstat(fd).st_size == 0
    assert aioposix.sysctl["vfs.aio.num_queue_count"] == baseline
    async with AioContext() as again:  # every cb was freed: each can be submitted again
        again.aio_write(writes[0])
        assert await writes[0] == 2
    assert os.pread(fd, 10, 0) == b"w0"


async def test_rundown_cancels_parked_jobs(aio: Env, pipe: tuple[int, int]) -> None:
    r, w = pipe
    async with AioContext() as ctx:
        cb = Aiocb(r, bytearray(8))
        ctx.aio_read(cb)
    assert_cancelled(cb)
    os.write(w, b"kept")
    assert os.read(r, 100) == b"kept"


async def test_rundown_waits_for_running_jobs(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    size = 1 << 20
    payloads = [bytes([i + 1]) * size for i in range(16)]
    async with AioContext(max_active=2) as ctx:
        cbs = [Aiocb(fd, p, offset=i * size) for i, p in enumerate(payloads)]
        for cb in cbs:
            ctx.aio_write(cb)
    assert idle(ctx)
    content = os.pread(fd, 16 * size, 0)
    for i, cb in enumerate(cbs):
        assert cb.error in (0, ECANCELED)  # nothing is left in progress
        region = content[i * size:(i + 1) * size]
        if cb.error == 0:
            assert cb.status == size
            assert region == payloads[i]
        else:
            assert cb.status == -1
            assert region == bytes(len(region))


async def test_closed_context_refuses_calls(aio: Env, new_file: MakeFile) -> None:
    fd = new_file()
    ctx = AioContext()
    cb = Aiocb(fd, b"x", lio_opcode=LIO_WRITE)
    ctx.aio_write(cb)
    await ctx.aclose()
    assert ctx.closed
    assert (cb.error, cb.status) in ((0, 1), (ECANCELED, -1))
    fresh = Aiocb(fd, b"y", lio_opcode=LIO_WRITE)
    for call in (ctx.aio_write, ctx.aio_read, lambda c: ctx.aio_fsync(os.O_SYNC, c),
                 lambda c: ctx.aio_cancel(fd, c), ctx.aio_error, ctx.aio_return):
        with pytest.raises(RuntimeError):
            call(fresh)
    with pytest.raises(RuntimeError):
        await ctx.lio_listio(LIO_NOWAIT, [fresh])
    with pytest.raises(RuntimeError):
        await ctx.aio_suspend([fresh], timeout=0)
    await ctx.aclose()  # a second close is harmless
    assert (fresh.error, fresh.status) == (0, -1)  # nothing was queued
