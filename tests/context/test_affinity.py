"""Who may call a context, and with what (docs/contract.md, rules 19 and 27).

A context belongs to its loop: every call from another loop or from a thread
with no running loop raises RuntimeError at once, with nothing queued.  A
value that is not an Aiocb where one is expected is a TypeError, and
lio_listio checks every entry's type before it queues any.  A Kqueue takes
events from jobs of any loop or thread, and is waited on from one loop at a
time.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import pytest
import uvloop
from helpers import run_on

import aioposix
from aioposix import (
    LIO_NOWAIT,
    LIO_READ,
    LIO_WAIT,
    SIGEV_KEVENT,
    SIGEV_THREAD,
    Aiocb,
    AioContext,
    Kqueue,
    SigEvent,
    sysctl,
)

if TYPE_CHECKING:
    from conftest import Env

Call = Callable[[AioContext, Aiocb], Any]

CALLS: dict[str, Call] = {
    "aio_read": lambda ctx, cb: ctx.aio_read(cb),
    "aio_write": lambda ctx, cb: ctx.aio_write(cb),
    "aio_readv": lambda ctx, cb: ctx.aio_readv(cb),
    "aio_fsync": lambda ctx, cb: ctx.aio_fsync(os.O_SYNC, cb),
    "aio_error": lambda ctx, cb: ctx.aio_error(cb),
    "aio_return": lambda ctx, cb: ctx.aio_return(cb),
    "aio_cancel": lambda ctx, cb: ctx.aio_cancel(cb.fildes, cb),
    "aio_suspend": lambda ctx, cb: ctx.aio_suspend([cb], 0),
    "lio_listio": lambda ctx, cb: ctx.lio_listio(LIO_WAIT, [cb]),
    "aio_waitcomplete": lambda ctx, cb: ctx.aio_waitcomplete(0).__anext__(),
    "aclose": lambda ctx, cb: ctx.aclose(),
}


def on_thread(fn: Callable[[], Any]) -> BaseException | None:
    """Run ``fn`` on a thread of its own; what it raised (None if nothing)."""
    box: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            box.append(exc)
        else:
            box.append(None)

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert box, "the thread did not finish"
    return box[0]


def from_another_loop(ctx: AioContext, call: Call, cb: Aiocb) -> BaseException | None:
    async def main() -> None:
        result = call(ctx, cb)
        if asyncio.iscoroutine(result) or isinstance(result, Coroutine):
            await result
    return on_thread(lambda: asyncio.run(main()))


def from_no_loop(ctx: AioContext, call: Call, cb: Aiocb) -> BaseException | None:
    def run() -> None:
        result = call(ctx, cb)
        if isinstance(result, Coroutine):
            try:
                result.send(None)
            finally:
                result.close()
    return on_thread(run)


# what the RuntimeError says, by where the call came from
SAYS = {from_another_loop: "this AioContext belongs to another event loop",
        from_no_loop: "must be made from a running event loop"}


@pytest.mark.parametrize("where", [from_another_loop, from_no_loop],
                         ids=["another-loop", "no-loop"])
@pytest.mark.parametrize("name", list(CALLS))
async def test_a_call_from_elsewhere_is_refused_with_nothing_queued(
        aio: Env, new_file: Any, name: str, where: Any) -> None:
    fd = new_file(b"x" * 4096)
    async with AioContext() as ctx:
        first = Aiocb(fd, bytearray(4096))
        ctx.aio_read(first)  # the context now belongs to this loop
        assert await first == 4096
        queued = sysctl["vfs.aio.num_queue_count"]
        cb = Aiocb(fd, bytearray(16), iov=[bytearray(16)], lio_opcode=LIO_READ)
        raised = where(ctx, CALLS[name], cb)
        assert isinstance(raised, RuntimeError), raised
        assert SAYS[where] in str(raised), raised
        assert cb.state is aioposix.JobState.IDLE
        assert sysctl["vfs.aio.num_queue_count"] == queued
        stats = ctx.statistics()
        assert (stats.queued, stats.active, stats.done, stats.parked) == (0, 0, 0, 0)
        assert not ctx.closed
        ctx.aio_read(cb)  # and the context still works on its own loop
        assert await cb == 16


async def test_awaiting_a_job_from_another_loop_is_refused(aio: Env) -> None:
    r, w = os.pipe()
    try:
        cb = Aiocb(r, bytearray(4))
        aioposix.aio_read(cb)

        async def other() -> None:
            await cb
        raised = on_thread(lambda: asyncio.run(other()))
        assert isinstance(raised, RuntimeError), raised
        assert SAYS[from_another_loop] in str(raised), raised
        os.write(w, b"ping")
        assert await asyncio.wait_for(cb, 10) == 4
    finally:
        os.close(r)
        os.close(w)


async def test_awaiting_an_inline_job_from_another_thread_is_refused(
        aio: Env, new_file: Any) -> None:
    """A job done at submit, awaited from a loop on another thread while the
    yield budget has credit (an inline await just went through on this loop),
    is refused like any other, and stays there for its own loop to reap."""
    fd = new_file(b"y" * 8192)
    async with AioContext() as ctx:
        first = Aiocb(fd, bytearray(4096))
        ctx.aio_read(first)
        assert await first == 4096  # (inline: the budget now has credit, on this thread)
        cb = Aiocb(fd, bytearray(4096), offset=4096)
        ctx.aio_read(cb)

        async def other() -> None:
            await cb
        raised = on_thread(lambda: asyncio.run(other()))
        assert isinstance(raised, RuntimeError), raised
        assert SAYS[from_another_loop] in str(raised), raised
        assert await cb == 4096
        assert bytes(cb.buf) == b"y" * 4096


def refused_on_a_new_loop(kind: str, make: Callable[[], Any]) -> BaseException | None:
    """What ``make()`` (a coroutine) raised, run on a fresh loop of ``kind``
    on this thread (None if nothing)."""
    try:
        run_on(kind, make())
    except BaseException as exc:
        return exc
    return None


async def test_a_stopped_loop_s_context_refuses_the_next_loop_on_its_thread(
        aio: Env, new_file: Any) -> None:
    """A loop that stopped in the middle of its work (here: right after an
    inline await left the yield budget with credit) does not lend its context
    to the next loop run on the same thread: that loop's awaits and submits
    are refused, and the job waits for its own loop, which reaps it."""
    fd = new_file(b"z" * 8192)
    kind = "uvloop" if aio.loop == "uvloop" else "asyncio"

    def scenario() -> None:
        own = uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()
        try:
            async def start() -> tuple[AioContext, Aiocb]:
                ctx = AioContext()
                first = Aiocb(fd, bytearray(4096))
                ctx.aio_read(first)
                assert await first == 4096  # (inline: the budget has credit now)
                cb = Aiocb(fd, bytearray(4096), offset=4096)
                ctx.aio_read(cb)
                return ctx, cb  # the loop stops right after this iteration

            ctx, cb = own.run_until_complete(start())

            async def await_it() -> None:
                await cb

            async def submit() -> None:
                ctx.aio_read(Aiocb(fd, bytearray(16)))

            for make in (await_it, submit):
                raised = refused_on_a_new_loop(kind, make)
                assert isinstance(raised, RuntimeError), raised
                assert SAYS[from_another_loop] in str(raised), raised

            async def finish() -> None:
                assert await cb == 4096
                assert bytes(cb.buf) == b"z" * 4096
                assert ctx.statistics().done == 0
                await ctx.aclose()
            own.run_until_complete(finish())
        finally:
            own.close()

    assert on_thread(scenario) is None


NOT_CBS = [42, "x", None, b"abc", object()]


@pytest.mark.parametrize("bad", NOT_CBS, ids=repr)
@pytest.mark.parametrize("name", ["aio_read", "aio_write", "aio_readv", "aio_fsync",
                                  "aio_error", "aio_return", "aio_cancel"])
async def test_not_an_aiocb_is_a_type_error(aio: Env, new_file: Any, name: str,
                                            bad: object) -> None:
    fd = new_file(b"data")
    ctx = aioposix.current_context()
    queued = sysctl["vfs.aio.num_queue_count"]
    calls: dict[str, Callable[[], Any]] = {
        "aio_read": lambda: ctx.aio_read(bad),  # type: ignore[arg-type]
        "aio_write": lambda: ctx.aio_write(bad),  # type: ignore[arg-type]
        "aio_readv": lambda: ctx.aio_readv(bad),  # type: ignore[arg-type]
        "aio_fsync": lambda: ctx.aio_fsync(os.O_SYNC, bad),  # type: ignore[arg-type]
        "aio_error": lambda: ctx.aio_error(bad),  # type: ignore[arg-type]
        "aio_return": lambda: ctx.aio_return(bad),  # type: ignore[arg-type]
        "aio_cancel": lambda: ctx.aio_cancel(fd, bad),  # type: ignore[arg-type]
    }
    if bad is None and name == "aio_cancel":
        assert calls[name]() == aioposix.AIO_ALLDONE  # None means "every job on fd"
        return
    with pytest.raises(TypeError):
        calls[name]()
    assert sysctl["vfs.aio.num_queue_count"] == queued


@pytest.mark.parametrize("bad", [42, "x", b"abc"], ids=repr)
async def test_aio_suspend_with_a_non_aiocb_is_a_type_error(aio: Env, bad: object) -> None:
    with pytest.raises(TypeError):
        await aioposix.aio_suspend([bad])  # type: ignore[list-item]


@pytest.mark.parametrize("mode", [LIO_WAIT, LIO_NOWAIT], ids=["LIO_WAIT", "LIO_NOWAIT"])
async def test_lio_listio_checks_every_entry_type_before_queueing_any(
        aio: Env, new_file: Any, mode: int) -> None:
    fd = new_file(b"y" * 64)
    fired: list[object] = []
    good = [Aiocb(fd, bytearray(8), offset=8 * i, lio_opcode=LIO_READ) for i in range(3)]
    queued = sysctl["vfs.aio.num_queue_count"]
    sev = SigEvent(SIGEV_THREAD, function=fired.append, value="batch")
    with pytest.raises(TypeError):
        await aioposix.lio_listio(mode, [*good, 42], sev)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        await aioposix.lio_listio(mode, "abc")  # type: ignore[arg-type]
    assert all(cb.state is aioposix.JobState.IDLE for cb in good)
    assert sysctl["vfs.aio.num_queue_count"] == queued
    await asyncio.sleep(0)
    assert fired == []  # the refused batch never notifies
    await aioposix.lio_listio(LIO_WAIT, good)  # the entries are free to use
    assert [aioposix.aio_return(cb) for cb in good] == [8, 8, 8]


# -- a Kqueue between loops ----------------------------------------------------


async def test_kqueue_waited_on_one_loop_gets_events_of_jobs_on_another(
        aio: Env, new_file: Any) -> None:
    fd = new_file(b"z" * 8)
    kq = Kqueue()
    collected = threading.Event()
    box: list[int] = []

    async def poster() -> None:
        cb = Aiocb(fd, bytearray(8), sigevent=SigEvent(
            SIGEV_KEVENT, kqueue=kq, value="from the other loop"))
        aioposix.aio_read(cb)
        await aioposix.aio_suspend([cb], 20)
        await asyncio.to_thread(collected.wait, 20)  # reaped only once collected
        box.append(await cb)

    try:
        waiting = asyncio.ensure_future(kq.control(None, 1, timeout=20))
        await asyncio.sleep(0)  # (one step: the task is now waiting in control)
        thread = threading.Thread(target=lambda: asyncio.run(poster()))
        thread.start()
        events = await asyncio.wait_for(waiting, 20)
        collected.set()
        await asyncio.to_thread(thread.join, 20)
        assert [ev.udata for ev in events] == ["from the other loop"]
        assert box == [8]
    finally:
        collected.set()
        kq.close()


async def test_kqueue_waited_on_by_a_second_loop_at_once_is_refused(aio: Env) -> None:
    kq = Kqueue()
    try:
        waiting = asyncio.ensure_future(kq.control(None, 1, timeout=20))
        await asyncio.sleep(0)
        raised = on_thread(lambda: asyncio.run(kq.control(None, 1, timeout=0)))
        assert isinstance(raised, RuntimeError), raised
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # nobody waits now: another loop may take the queue over
        assert on_thread(lambda: asyncio.run(kq.control(None, 1, timeout=0))) is None
    finally:
        kq.close()
