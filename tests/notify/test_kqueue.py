"""The notification layer (docs/contract.md, rules 13, 19-21): Kqueue, KEvent, SigEvent, lio.

What a user sees: EVFILT_AIO events (ident = the cb, udata = the sigevent's
value, data = the job's errno, EV_EOF), EVFILT_LIO events (ident = the list
object) fired once per batch, EVFILT_USER and EVFILT_READ/EVFILT_WRITE
knotes with the kqueue(2) flag semantics, signals and SIGEV_THREAD callbacks,
and that no notification ever runs inside a submit call.  The two FreeBSD
stress programs aio_kqueue_test.c and lio_kqueue_test.c are ported (fewer
runs) at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest
from helpers import loop_errors

from aioposix import (
    AIO_ALLDONE,
    AIO_CANCELED,
    AIO_NOTCANCELED,
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_DISABLE,
    EV_DISPATCH,
    EV_ENABLE,
    EV_EOF,
    EV_ERROR,
    EV_ONESHOT,
    EVFILT_AIO,
    EVFILT_LIO,
    EVFILT_READ,
    EVFILT_USER,
    EVFILT_WRITE,
    LIO_NOWAIT,
    LIO_READ,
    LIO_WRITE,
    NOTE_FFAND,
    NOTE_FFCOPY,
    NOTE_FFOR,
    NOTE_TRIGGER,
    SIGEV_KEVENT,
    SIGEV_SIGNAL,
    SIGEV_THREAD,
    Aiocb,
    AioContext,
    KEvent,
    Kqueue,
    SigEvent,
)

if TYPE_CHECKING:
    from conftest import Env

DEADLINE = 10.0  # seconds an expected event may take
QUIET = 0.05  # how long a poll waits to show that nothing (more) comes
DATA = bytes(range(256)) * 16  # 4 KiB
Pair = tuple[socket.socket, socket.socket]


# -- helpers -------------------------------------------------------------------


async def one_event(kq: Kqueue) -> KEvent:
    """The next event (fails if none comes within DEADLINE)."""
    events = await kq.control(None, 1, DEADLINE)
    assert len(events) == 1, "no event within the deadline"
    return events[0]


async def quiet(kq: Kqueue) -> list[KEvent]:
    """Whatever arrives within QUIET seconds (expected: nothing)."""
    return await kq.control(None, 8, QUIET)


def kev_sev(kq: Kqueue, value: object = None, flags: int = 0) -> SigEvent:
    return SigEvent(SIGEV_KEVENT, kqueue=kq, value=value, kevent_flags=flags)


def user(ident: int, flags: int = 0, fflags: int = 0, udata: object = None) -> KEvent:
    return KEvent(ident, EVFILT_USER, flags, fflags, 0, udata)


def trigger(ident: int, fflags: int = 0) -> KEvent:
    return user(ident, 0, NOTE_TRIGGER | fflags)


@contextlib.contextmanager
def a_pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    try:
        yield r, w
    finally:
        os.close(r)
        os.close(w)


@contextlib.contextmanager
def counting_signal(signo: int) -> Iterator[list[int]]:
    """Count deliveries of ``signo`` through the running loop's signal handler."""
    loop = asyncio.get_running_loop()
    old = signal.getsignal(signo)
    hits: list[int] = []
    loop.add_signal_handler(signo, hits.append, signo)
    try:
        yield hits
    finally:
        loop.remove_signal_handler(signo)
        signal.signal(signo, old)


@pytest.fixture
def pair(aio: Env) -> Iterator[Pair]:
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture
async def kq(aio: Env) -> AsyncIterator[Kqueue]:
    """A Kqueue closed on the loop at the end (list it after ``pair``, so the
    sockets it watches are still open when it goes)."""
    queue = Kqueue()
    try:
        yield queue
    finally:
        queue.close()


def assert_idle(ctx: AioContext) -> None:
    s = ctx.statistics()
    assert (s.queued, s.active, s.done, s.parked) == (0, 0, 0, 0)


# -- KEvent and Kqueue basics ----------------------------------------------------


def test_kevent_fields_and_defaults() -> None:
    ev = KEvent(5)
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata) == (
        5, EVFILT_READ, EV_ADD, 0, 0, None)
    marker = object()
    ev = KEvent(7, EVFILT_USER, EV_ADD | EV_CLEAR, 3, 4, marker)
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data) == (
        7, EVFILT_USER, EV_ADD | EV_CLEAR, 3, 4)
    assert ev.udata is marker


async def test_control_returns_empty_on_timeout(aio: Env, kq: Kqueue) -> None:
    assert await kq.control(None, 4, 0.01) == []
    assert await kq.control(None, 4, 0) == []
    assert await kq.control([user(1, EV_ADD)], 4, 0.01) == []  # added, never triggered


async def test_async_for_yields_every_event(aio: Env, kq: Kqueue) -> None:
    await kq.control([user(i, EV_ADD | EV_ONESHOT, udata=f"u{i}") for i in range(3)], 0)
    await kq.control([trigger(i) for i in range(3)], 0)
    seen: list[KEvent] = []

    async def consume() -> None:
        async for ev in kq:
            seen.append(ev)
            if len(seen) == 3:
                break

    await asyncio.wait_for(consume(), DEADLINE)
    assert sorted((ev.ident, ev.udata) for ev in seen) == [(0, "u0"), (1, "u1"), (2, "u2")]
    assert all(ev.filter == EVFILT_USER for ev in seen)


async def test_close_wakes_waiter_and_ends_iteration(aio: Env) -> None:
    kq = Kqueue()
    loop = asyncio.get_running_loop()
    got: list[KEvent] = []

    async def consume() -> None:
        async for ev in kq:
            got.append(ev)

    waiter = asyncio.create_task(kq.control(None, 1))
    consumer = asyncio.create_task(consume())
    loop.call_soon(kq.close)  # runs after both tasks have started waiting
    assert await asyncio.wait_for(waiter, DEADLINE) == []
    await asyncio.wait_for(consumer, DEADLINE)
    assert got == []
    assert kq.closed
    with pytest.raises(OSError) as exc:
        await kq.control(None, 1, 0)
    assert exc.value.errno == errno.EBADF
    kq.close()  # closing twice is harmless
    assert kq.closed


# -- EVFILT_AIO ------------------------------------------------------------------


async def test_evfilt_aio_event_fields(aio: Env, kq: Kqueue) -> None:
    fd = aio.file(DATA)
    tag = object()
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, bytearray(100), offset=10, sigevent=kev_sev(kq, tag))
            ctx.aio_read(cb)
            ev = await one_event(kq)
            assert ev.ident is cb
            assert ev.filter == EVFILT_AIO
            assert ev.udata is tag
            assert ev.data == 0
            assert ev.flags & EV_EOF
            assert ctx.aio_return(cb) == 100
            assert cb.buf == DATA[10:110]
    finally:
        os.close(fd)


async def test_evfilt_aio_write_event(aio: Env, kq: Kqueue) -> None:
    fd = aio.file(b"")
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, b"hello kqueue", offset=3, sigevent=kev_sev(kq, "w"))
            ctx.aio_write(cb)
            ev = await one_event(kq)
            assert (ev.ident, ev.filter, ev.udata, ev.data) == (cb, EVFILT_AIO, "w", 0)
            assert ctx.aio_return(cb) == 12
        assert os.pread(fd, 64, 0) == b"\0\0\0hello kqueue"
    finally:
        os.close(fd)


async def test_evfilt_aio_data_is_the_job_error(aio: Env, kq: Kqueue) -> None:
    fd = os.open(aio.tmp, os.O_RDONLY | os.O_DIRECTORY)  # reading it fails with EISDIR
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, bytearray(16), sigevent=kev_sev(kq, 1))
            ctx.aio_read(cb)
            ev = await one_event(kq)
            assert ev.ident is cb
            assert ev.data == errno.EISDIR
            assert ev.flags & EV_EOF
            assert ctx.aio_error(cb) == errno.EISDIR
            assert ctx.aio_return(cb) == -1
    finally:
        os.close(fd)


@pytest.mark.parametrize("kfilter", [EVFILT_AIO, EVFILT_LIO])
async def test_changelist_cannot_add_aio_or_lio_knote(aio: Env, kq: Kqueue,
                                                      kfilter: int) -> None:
    fd = aio.file(DATA)
    try:
        cb = Aiocb(fd, bytearray(8))
        events = await kq.control([KEvent(cb, kfilter, EV_ADD, udata="x")], 4, 0)
        assert len(events) == 1
        assert events[0].flags & EV_ERROR
        assert events[0].data == errno.EPERM
        assert events[0].ident is cb and events[0].filter == kfilter
        with pytest.raises(OSError) as exc:  # no room for the error event
            await kq.control([KEvent(cb, kfilter, EV_ADD)], 0)
        assert exc.value.errno == errno.EPERM
        assert await kq.control(None, 4, 0) == []  # nothing was registered
    finally:
        os.close(fd)


async def test_aio_knote_level_triggered_until_reaped(aio: Env, kq: Kqueue) -> None:
    fd = aio.file(DATA)
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, bytearray(64), sigevent=kev_sev(kq, "lvl"))
            ctx.aio_read(cb)
            assert (await one_event(kq)).ident is cb
            again = await kq.control(None, 4, 0)  # done and not reaped: still there
            assert [ev.ident for ev in again] == [cb]
            assert again[0].udata == "lvl"
            assert ctx.aio_return(cb) == 64
            assert await quiet(kq) == []  # reaped: its knote went with it
    finally:
        os.close(fd)


async def test_aio_knote_of_reaped_job_does_not_end_an_untimed_wait(aio: Env,
                                                                   kq: Kqueue) -> None:
    """control(..., timeout=None) returns only with an event: a knote of a job
    reaped since its last delivery must not make it return [] early."""
    fd = aio.file(DATA)
    try:
        async with AioContext() as ctx:
            first = Aiocb(fd, bytearray(8), sigevent=kev_sev(kq))
            ctx.aio_read(first)
            assert (await one_event(kq)).ident is first
            assert ctx.aio_return(first) == 8
            waiting = asyncio.create_task(kq.control(None, 1))
            second = Aiocb(fd, bytearray(8), offset=8, sigevent=kev_sev(kq))
            ctx.aio_read(second)  # its event is posted after the task started waiting
            events = await asyncio.wait_for(waiting, DEADLINE)
            assert [ev.ident for ev in events] == [second]
            assert ctx.aio_return(second) == 8
    finally:
        os.close(fd)


@pytest.mark.parametrize("flags", [EV_ONESHOT, EV_CLEAR], ids=["oneshot", "clear"])
async def test_aio_knote_reported_once(aio: Env, kq: Kqueue, flags: int) -> None:
    fd = aio.file(DATA)
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, bytearray(64), sigevent=kev_sev(kq, "once", flags))
            ctx.aio_read(cb)
            ev = await one_event(kq)
            assert (ev.ident, ev.udata, ev.data) == (cb, "once", 0)
            assert ev.flags & flags
            assert await quiet(kq) == []  # not reported again although not reaped
            assert ctx.aio_error(cb) == 0
            assert ctx.aio_return(cb) == 64
    finally:
        os.close(fd)


async def test_aio_knote_dispatch_disabled_until_enabled(aio: Env, kq: Kqueue) -> None:
    fd = aio.file(DATA)
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, bytearray(64), sigevent=kev_sev(kq, "d", EV_DISPATCH))
            ctx.aio_read(cb)
            assert (await one_event(kq)).ident is cb
            assert await quiet(kq) == []  # disabled after delivery
            await kq.control([KEvent(cb, EVFILT_AIO, EV_ENABLE)], 0)
            ev = await one_event(kq)  # still done and unreaped: reported again
            assert (ev.ident, ev.udata) == (cb, "d")
            assert ctx.aio_return(cb) == 64
    finally:
        os.close(fd)


async def test_cancelled_job_notifies_ecanceled(aio: Env, kq: Kqueue) -> None:
    with a_pipe() as (r, _w):
        async with AioContext() as ctx:
            cb = Aiocb(r, bytearray(8), sigevent=kev_sev(kq, "c"))
            ctx.aio_read(cb)  # an empty pipe: the job parks
            assert await kq.control(None, 1, 0) == []
            assert ctx.aio_cancel(r, cb) == AIO_CANCELED
            ev = await one_event(kq)
            assert (ev.ident, ev.filter, ev.udata) == (cb, EVFILT_AIO, "c")
            assert ev.data == errno.ECANCELED
            assert ctx.aio_error(cb) == errno.ECANCELED
            assert ctx.aio_return(cb) == -1


async def test_job_completes_after_its_kqueue_closed(aio: Env) -> None:
    kq = Kqueue()
    fd = aio.file(DATA)
    with a_pipe() as (r, w):
        try:
            async with AioContext() as ctx:
                parked = Aiocb(r, bytearray(8), sigevent=kev_sev(kq))
                cached = Aiocb(fd, bytearray(32), sigevent=kev_sev(kq))
                ctx.aio_read(parked)
                ctx.aio_read(cached)
                kq.close()
                os.write(w, b"abc")
                assert await asyncio.wait_for(parked, DEADLINE) == 3
                assert parked.buf[:3] == b"abc"
                assert await asyncio.wait_for(cached, DEADLINE) == 32
                assert cached.buf == DATA[:32]
                assert_idle(ctx)
            with pytest.raises(OSError) as exc:  # the events went nowhere
                await kq.control(None, 1, 0)
            assert exc.value.errno == errno.EBADF
        finally:
            os.close(fd)


async def test_submit_with_closed_kqueue_is_ebadf(aio: Env) -> None:
    kq = Kqueue()
    kq.close()
    fd = aio.file(DATA)
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, bytearray(8), sigevent=kev_sev(kq))
            with pytest.raises(OSError) as exc:
                ctx.aio_read(cb)
            assert exc.value.errno == errno.EBADF
            assert (cb.error, cb.status) == (errno.EBADF, -1)
            entry = Aiocb(fd, bytearray(8), lio_opcode=LIO_READ)
            with pytest.raises(OSError) as exc:
                await ctx.lio_listio(LIO_NOWAIT, [entry], kev_sev(kq))
            assert exc.value.errno == errno.EBADF
            assert_idle(ctx)
            with pytest.raises(OSError) as exc:
                ctx.aio_error(cb)
            assert exc.value.errno == errno.EINVAL  # nothing was queued
    finally:
        os.close(fd)


# -- EVFILT_LIO and batch notifications -------------------------------------------


async def test_lio_kevent_fires_once_when_the_whole_batch_is_done(aio: Env,
                                                                 kq: Kqueue) -> None:
    fd = aio.file(b"")
    tag = object()
    with a_pipe() as (r, w):
        try:
            async with AioContext() as ctx:
                cbs = [Aiocb(fd, bytes([65 + i]) * 512, offset=512 * i, lio_opcode=LIO_WRITE)
                       for i in range(4)]
                cbs.append(Aiocb(r, bytearray(4), lio_opcode=LIO_READ))  # parks on the pipe
                await ctx.lio_listio(LIO_NOWAIT, cbs, kev_sev(kq, tag))
                assert await quiet(kq) == []  # the pipe read is not done yet
                os.write(w, b"done")
                ev = await one_event(kq)
                assert ev.ident is cbs
                assert ev.filter == EVFILT_LIO
                assert ev.udata is tag
                assert ev.flags & EV_EOF
                assert [ctx.aio_error(cb) for cb in cbs] == [0] * 5
                assert [ctx.aio_return(cb) for cb in cbs] == [512] * 4 + [4]
                assert await quiet(kq) == []  # exactly one event for the batch
            assert os.pread(fd, 4096, 0) == b"A" * 512 + b"B" * 512 + b"C" * 512 + b"D" * 512
        finally:
            os.close(fd)


async def test_lio_listio_empty_nowait_kevent(aio: Env, kq: Kqueue) -> None:
    """FreeBSD's bug 220398: an empty LIO_NOWAIT list must still notify."""
    udata = 0xDEADBEEFDEADBEEF
    async with AioContext() as ctx:
        empty: list[Aiocb | None] = []
        await ctx.lio_listio(LIO_NOWAIT, empty, kev_sev(kq, udata))
        ev = await one_event(kq)
        assert ev.ident is empty
        assert ev.filter == EVFILT_LIO
        assert ev.udata == udata
        assert await quiet(kq) == []


@pytest.mark.parametrize("entries", [0, 3], ids=["empty", "three"])
async def test_lio_listio_empty_nowait_signal(aio: Env, entries: int) -> None:
    fd = aio.file(DATA)
    try:
        with counting_signal(signal.SIGUSR1) as usr1, counting_signal(signal.SIGUSR2) as usr2:
            async with AioContext() as ctx:
                cbs = [Aiocb(fd, bytearray(16), offset=16 * i, lio_opcode=LIO_READ)
                       for i in range(entries)]
                await ctx.lio_listio(LIO_NOWAIT, cbs, SigEvent(SIGEV_SIGNAL,
                                                               signo=signal.SIGUSR1))
                await aio.until(lambda: len(usr1) >= 1, DEADLINE)
                # a later batch signalling SIGUSR2 is a sentinel: once it arrived,
                # a second SIGUSR1 for the first batch would have arrived too
                await ctx.lio_listio(LIO_NOWAIT, [], SigEvent(SIGEV_SIGNAL,
                                                              signo=signal.SIGUSR2))
                await aio.until(lambda: len(usr2) >= 1, DEADLINE)
                assert usr1 == [signal.SIGUSR1]
                assert [ctx.aio_return(cb) for cb in cbs] == [16] * entries
    finally:
        os.close(fd)


@pytest.mark.parametrize("entries", [0, 3], ids=["empty", "three"])
async def test_lio_listio_empty_nowait_thread(aio: Env, entries: int) -> None:
    fd = aio.file(DATA)
    calls: list[tuple[object, int]] = []
    try:
        async with AioContext() as ctx:
            cbs = [Aiocb(fd, bytearray(16), offset=16 * i, lio_opcode=LIO_READ)
                   for i in range(entries)]

            def record(value: object) -> None:
                calls.append((value, threading.get_ident()))

            await ctx.lio_listio(LIO_NOWAIT, cbs, SigEvent(SIGEV_THREAD, function=record,
                                                           value="batch"))
            await aio.until(lambda: len(calls) >= 1, DEADLINE)
            await ctx.lio_listio(LIO_NOWAIT, [], SigEvent(SIGEV_THREAD, function=record,
                                                          value="sentinel"))
            await aio.until(lambda: len(calls) >= 2, DEADLINE)
            assert calls == [("batch", threading.get_ident()),
                             ("sentinel", threading.get_ident())]
            assert [ctx.aio_return(cb) for cb in cbs] == [16] * entries
    finally:
        os.close(fd)


async def test_lio_listio_eagain_kevent(aio: Env, kq: Kqueue) -> None:
    """Two LIO_NOWAIT lists of max_queued writes each: the second gets EAGAIN."""
    max_queued = 8
    fd = aio.file(b"")
    buffer = b"\x5a" * 4096
    try:
        async with AioContext(max_queued=max_queued) as ctx:
            lists = [[Aiocb(fd, buffer, offset=(i * max_queued + j) * 4096,
                            lio_opcode=LIO_WRITE) for j in range(max_queued)]
                     for i in range(2)]
            await ctx.lio_listio(LIO_NOWAIT, lists[0], kev_sev(kq, 0))
            with pytest.raises(BlockingIOError) as exc:
                await ctx.lio_listio(LIO_NOWAIT, lists[1], kev_sev(kq, 1))
            assert exc.value.errno == errno.EAGAIN
            assert all(cb.error == errno.EAGAIN for cb in lists[1])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE
            while True:  # the first list's event (the refused list may add its own)
                ev = await one_event(kq)
                assert ev.filter == EVFILT_LIO
                if ev.udata == 0:
                    break
                assert loop.time() < deadline
            assert ev.ident is lists[0]
            assert [ctx.aio_return(cb) for cb in lists[0]] == [4096] * max_queued
            assert_idle(ctx)
    finally:
        os.close(fd)


# -- single-job signals and callbacks --------------------------------------------


async def test_sigev_signal_job(aio: Env) -> None:
    fd = aio.file(DATA)
    try:
        with counting_signal(signal.SIGUSR1) as hits:
            async with AioContext() as ctx:
                cb = Aiocb(fd, bytearray(32), sigevent=SigEvent(SIGEV_SIGNAL,
                                                                signo=signal.SIGUSR1))
                ctx.aio_read(cb)
                await aio.until(lambda: bool(hits), DEADLINE)
                assert hits == [signal.SIGUSR1]
                assert ctx.aio_return(cb) == 32
    finally:
        os.close(fd)


async def test_sigev_thread_job_runs_on_loop_thread_with_value(aio: Env) -> None:
    fd = aio.file(DATA)
    calls: list[tuple[object, int]] = []
    marker = object()
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, bytearray(32), offset=64, sigevent=SigEvent(
                SIGEV_THREAD, value=marker,
                function=lambda v: calls.append((v, threading.get_ident()))))
            ctx.aio_read(cb)
            await aio.until(lambda: bool(calls), DEADLINE)
            assert calls == [(marker, threading.get_ident())]
            assert await cb == 32
            assert cb.buf == DATA[64:96]
    finally:
        os.close(fd)


# -- EVFILT_USER -------------------------------------------------------------------


async def test_user_event_add_trigger_delete(aio: Env, kq: Kqueue) -> None:
    assert await kq.control([user(1, EV_ADD, udata="u")], 4, 0) == []
    await kq.control([trigger(1)], 0)
    ev = await one_event(kq)
    assert (ev.ident, ev.filter, ev.udata) == (1, EVFILT_USER, "u")
    assert [e.ident for e in await kq.control(None, 4, 0)] == [1]  # no EV_CLEAR: stays
    await kq.control([user(1, EV_DELETE)], 0)
    assert await quiet(kq) == []


async def test_user_event_clear(aio: Env, kq: Kqueue) -> None:
    await kq.control([user(2, EV_ADD | EV_CLEAR)], 0)
    await kq.control([trigger(2)], 0)
    assert (await one_event(kq)).ident == 2
    assert await quiet(kq) == []  # reset once delivered
    await kq.control([trigger(2)], 0)
    assert (await one_event(kq)).ident == 2
    assert await quiet(kq) == []


async def test_user_event_fflags_and_or_copy(aio: Env, kq: Kqueue) -> None:
    await kq.control([user(3, EV_ADD | EV_CLEAR, NOTE_FFCOPY | 0x11)], 0)
    await kq.control([user(3, 0, NOTE_FFOR | 0x100)], 0)
    await kq.control([user(3, 0, NOTE_FFAND | 0x101)], 0)
    assert await kq.control(None, 4, 0) == []  # fflags operations do not trigger
    await kq.control([trigger(3)], 0)
    ev = await one_event(kq)
    assert ev.ident == 3
    assert ev.fflags == 0x101  # (0x11 | 0x100) & 0x101
    await kq.control([trigger(3, NOTE_FFCOPY | 0x42)], 0)
    assert (await one_event(kq)).fflags == 0x42


async def test_user_event_clear_keeps_fflags(aio: Env, kq: Kqueue) -> None:
    """kqueue(2) EV_CLEAR resets the trigger, not the user-defined fflags
    (FreeBSD filt_usertouch reports kn_sfflags, which EV_CLEAR leaves alone)."""
    await kq.control([user(4, EV_ADD | EV_CLEAR, NOTE_FFCOPY | 0x7)], 0)
    await kq.control([trigger(4)], 0)
    assert (await one_event(kq)).fflags == 0x7
    await kq.control([trigger(4)], 0)  # NOTE_FFNOP: the flags stay as they were
    assert (await one_event(kq)).fflags == 0x7


# -- EVFILT_READ / EVFILT_WRITE ---------------------------------------------------


def rd(sock: socket.socket, flags: int, udata: object = None) -> KEvent:
    return KEvent(sock.fileno(), EVFILT_READ, flags, 0, 0, udata)


async def test_read_filter_reports_bytes_available(aio: Env, pair: Pair, kq: Kqueue) -> None:
    a, b = pair
    assert await kq.control([rd(a, EV_ADD, "r")], 4, QUIET) == []
    b.send(b"hello")
    ev = await one_event(kq)
    assert (ev.ident, ev.filter, ev.udata, ev.data) == (a.fileno(), EVFILT_READ, "r", 5)
    assert not ev.flags & EV_EOF
    b.send(b"!!")
    assert (await one_event(kq)).data == 7  # level-triggered: still readable, now 7
    assert a.recv(64) == b"hello!!"
    assert await quiet(kq) == []  # drained: no longer readable


async def test_read_filter_eof_after_peer_close(aio: Env, pair: Pair, kq: Kqueue) -> None:
    a, b = pair
    await kq.control([rd(a, EV_ADD)], 0)
    b.close()
    ev = await one_event(kq)
    assert ev.ident == a.fileno()
    assert ev.flags & EV_EOF
    assert ev.data == 0


async def test_read_filter_delete(aio: Env, pair: Pair, kq: Kqueue) -> None:
    a, b = pair
    await kq.control([rd(a, EV_ADD)], 0)
    await kq.control([rd(a, EV_DELETE)], 0)
    b.send(b"x")
    assert await quiet(kq) == []
    errors = await kq.control([rd(a, EV_DELETE)], 4, 0)  # already gone
    assert [(e.flags & EV_ERROR, e.data) for e in errors] == [(EV_ERROR, errno.ENOENT)]


async def test_read_filter_disable_enable(aio: Env, pair: Pair, kq: Kqueue) -> None:
    a, b = pair
    await kq.control([rd(a, EV_ADD)], 0)
    await kq.control([rd(a, EV_DISABLE)], 0)
    b.send(b"xyz")
    assert await quiet(kq) == []
    await kq.control([rd(a, EV_ENABLE)], 0)
    ev = await one_event(kq)
    assert (ev.ident, ev.data) == (a.fileno(), 3)


async def test_read_filter_oneshot(aio: Env, pair: Pair, kq: Kqueue) -> None:
    a, b = pair
    await kq.control([rd(a, EV_ADD | EV_ONESHOT)], 0)
    b.send(b"1")
    ev = await one_event(kq)
    assert ev.ident == a.fileno() and ev.flags & EV_ONESHOT
    b.send(b"2")
    assert await quiet(kq) == []  # the knote is gone
    errors = await kq.control([rd(a, EV_DELETE)], 4, 0)
    assert [e.data for e in errors] == [errno.ENOENT]


async def test_read_filter_dispatch(aio: Env, pair: Pair, kq: Kqueue) -> None:
    a, b = pair
    await kq.control([rd(a, EV_ADD | EV_DISPATCH)], 0)
    b.send(b"ab")
    assert (await one_event(kq)).data == 2
    b.send(b"c")
    assert await quiet(kq) == []  # disabled after delivery, though readable
    await kq.control([rd(a, EV_ENABLE)], 0)
    assert (await one_event(kq)).data == 3
    assert await quiet(kq) == []  # disabled again


async def test_read_filter_clear(aio: Env, pair: Pair, kq: Kqueue) -> None:
    """EV_CLEAR: once delivered, the state is reset; unread data that was
    already reported does not make it fire again, new data does."""
    a, b = pair
    await kq.control([rd(a, EV_ADD | EV_CLEAR)], 0)
    b.send(b"ab")
    assert (await one_event(kq)).data == 2
    assert await quiet(kq) == []  # nothing new since the last delivery
    b.send(b"cd")
    assert (await one_event(kq)).data == 4


async def test_write_filter_on_socketpair(aio: Env, pair: Pair, kq: Kqueue) -> None:
    a, _ = pair
    await kq.control([KEvent(a.fileno(), EVFILT_WRITE, EV_ADD | EV_ONESHOT, udata="w")], 0)
    ev = await one_event(kq)
    assert (ev.ident, ev.filter, ev.udata) == (a.fileno(), EVFILT_WRITE, "w")
    assert await quiet(kq) == []


async def test_bad_change_reported_as_ev_error(aio: Env, kq: Kqueue) -> None:
    fd = aio.file(b"", "closed.bin")
    os.close(fd)  # a descriptor number that is not open
    changes = [user(99, EV_DELETE, udata="gone"), KEvent(fd, EVFILT_READ, EV_ADD),
               user(5, EV_ADD, NOTE_TRIGGER)]
    events = await kq.control(changes, 8, 0)
    errors = [(e.ident, e.data, e.udata) for e in events if e.flags & EV_ERROR]
    assert errors == [(99, errno.ENOENT, "gone"), (fd, errno.EBADF, None)]
    # the good change after the bad ones was applied
    events += await kq.control(None, 8, 0)
    assert any(e.ident == 5 and not e.flags & EV_ERROR for e in events)
    for bad, code in ((user(99, EV_DELETE), errno.ENOENT),
                      (KEvent(fd, EVFILT_READ, EV_ADD), errno.EBADF)):
        with pytest.raises(OSError) as exc:  # no room for an error event
            await kq.control([bad], 0)
        assert exc.value.errno == code


# -- rule 21 and rule 1: when notifications run ------------------------------------


async def test_sigev_thread_callback_submits_and_cancels(aio: Env) -> None:
    fd = aio.file(DATA)
    with a_pipe() as (r, _w), loop_errors() as errors:
        try:
            async with AioContext() as ctx:
                parked = [Aiocb(r, bytearray(1)) for _ in range(3)]
                for cb in parked:
                    ctx.aio_read(cb)
                spawned: list[Aiocb] = []
                seen: dict[str, int] = {}
                first = Aiocb(fd, bytearray(16))

                def on_done(value: object) -> None:
                    # inside the notification: reap the job, submit more, cancel others
                    assert value is first
                    seen["status"] = ctx.aio_return(first)
                    for i in range(4):
                        cb = Aiocb(fd, bytearray(16), offset=16 * (i + 1))
                        ctx.aio_read(cb)
                        spawned.append(cb)
                    seen["cancel"] = ctx.aio_cancel(r)

                first.sigevent = SigEvent(SIGEV_THREAD, function=on_done, value=first)
                ctx.aio_read(first)
                await aio.until(lambda: "cancel" in seen, DEADLINE)
                assert seen == {"status": 16, "cancel": AIO_CANCELED}
                assert first.buf == DATA[:16]
                for cb in parked:
                    with pytest.raises(OSError) as exc:
                        await asyncio.wait_for(cb, DEADLINE)
                    assert exc.value.errno == errno.ECANCELED
                for i, cb in enumerate(spawned):
                    assert await asyncio.wait_for(cb, DEADLINE) == 16
                    assert cb.buf == DATA[16 * (i + 1):16 * (i + 2)]
                assert_idle(ctx)
        finally:
            os.close(fd)
    assert errors == []


async def test_kqueue_consumer_reaps_while_more_complete(aio: Env, kq: Kqueue) -> None:
    """Each reaped event lets the next pipe read complete; file writes
    complete alongside.  Every job is seen once and reaped once."""
    fd = aio.file(b"")
    with a_pipe() as (r, w):
        try:
            async with AioContext() as ctx:
                reads = [Aiocb(r, bytearray(1), sigevent=kev_sev(kq, ("r", i), EV_ONESHOT))
                         for i in range(8)]
                writes = [Aiocb(fd, bytes([i]) * 256, offset=256 * i,
                                sigevent=kev_sev(kq, ("w", i), EV_ONESHOT)) for i in range(8)]
                for cb in reads:
                    ctx.aio_read(cb)
                for cb in writes:
                    ctx.aio_write(cb)
                os.write(w, b"0")
                results: dict[object, tuple[int, bytes]] = {}

                async def consume() -> None:
                    async for ev in kq:
                        cb = ev.ident
                        assert ev.udata not in results
                        results[ev.udata] = (ctx.aio_return(cb), bytes(cb.buf))
                        kind, i = ev.udata
                        if kind == "r" and i < 7:
                            os.write(w, str(i + 1).encode())
                        if len(results) == 16:
                            return

                await asyncio.wait_for(consume(), DEADLINE)
                assert {results[("r", i)] for i in range(8)} == {
                    (1, str(i).encode()) for i in range(8)}
                assert [results[("w", i)][0] for i in range(8)] == [256] * 8
                assert_idle(ctx)
            assert os.pread(fd, 4096, 0) == b"".join(bytes([i]) * 256 for i in range(8))
        finally:
            os.close(fd)


async def test_sigev_thread_never_called_inside_submit(aio: Env) -> None:
    fd = aio.file(DATA)  # just written: a page-cache hit
    called: list[object] = []
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, bytearray(64), sigevent=SigEvent(SIGEV_THREAD,
                                                            function=called.append,
                                                            value="late"))
            ctx.aio_read(cb)
            assert called == []  # not inside aio_read, even if the job is already done
            await aio.until(lambda: bool(called), DEADLINE)
            assert called == ["late"]
            assert ctx.aio_return(cb) == 64
    finally:
        os.close(fd)


@pytest.mark.parametrize("notify", [SIGEV_THREAD, SIGEV_SIGNAL], ids=["thread", "signal"])
async def test_cancelled_job_reaped_at_once_still_notifies(aio: Env, notify: int) -> None:
    """Rule 12: a cancelled job fires its notification, even when the caller
    reaps it (aio_return) before the loop got to run that notification."""
    calls: list[object] = []
    with a_pipe() as (r, _w), counting_signal(signal.SIGUSR1) as hits:
        async with AioContext() as ctx:
            sev = (SigEvent(SIGEV_THREAD, function=calls.append, value="cancelled")
                   if notify == SIGEV_THREAD else SigEvent(SIGEV_SIGNAL, signo=signal.SIGUSR1))
            cb = Aiocb(r, bytearray(1), sigevent=sev)
            ctx.aio_read(cb)
            assert ctx.aio_cancel(r, cb) == AIO_CANCELED
            assert ctx.aio_return(cb) == -1
            await aio.until(lambda: bool(calls or hits), 3.0)
            assert calls == (["cancelled"] if notify == SIGEV_THREAD else [])
            assert hits == ([signal.SIGUSR1] if notify == SIGEV_SIGNAL else [])


async def test_notification_belongs_to_its_job_when_the_cb_is_reused(aio: Env) -> None:
    """A job cancelled and reaped at once still fires its own notification
    (rule 12), once; the cb's next job fires its own, once, when it is done."""
    calls: list[tuple[object, str]] = []
    with a_pipe() as (r, w):
        async with AioContext() as ctx:
            cb = Aiocb(r, bytearray(1))

            def record(value: object) -> None:
                calls.append((value, cb.state.value))

            cb.sigevent = SigEvent(SIGEV_THREAD, function=record, value="first")
            ctx.aio_read(cb)
            assert ctx.aio_cancel(r, cb) == AIO_CANCELED
            assert ctx.aio_return(cb) == -1  # reaped before its notification ran
            cb.sigevent = SigEvent(SIGEV_THREAD, function=record, value="second")
            ctx.aio_read(cb)  # the same cb, a new job: it parks on the empty pipe
            await aio.until(lambda: bool(calls), DEADLINE)
            os.write(w, b"x")
            assert await asyncio.wait_for(cb, DEADLINE) == 1
            # a later notification is a sentinel: the job's own came before it
            await ctx.lio_listio(LIO_NOWAIT, [], SigEvent(SIGEV_THREAD, function=record,
                                                          value="sentinel"))
            await aio.until(lambda: any(v == "sentinel" for v, _ in calls), DEADLINE)
    assert [value for value, _ in calls] == ["first", "second", "sentinel"]
    assert calls[1] == ("second", "done")  # not while the job was still parked


async def test_lio_notification_never_inside_submit(aio: Env) -> None:
    fd = aio.file(DATA)
    called: list[object] = []
    try:
        async with AioContext() as ctx:
            cbs = [Aiocb(fd, bytearray(8), offset=8 * i, lio_opcode=LIO_READ) for i in range(2)]
            sev = SigEvent(SIGEV_THREAD, function=called.append, value="batch")
            await ctx.lio_listio(LIO_NOWAIT, cbs, sev)
            assert called == []
            await ctx.lio_listio(LIO_NOWAIT, [], sev)
            assert called == []
            await aio.until(lambda: len(called) == 2, DEADLINE)
            assert [ctx.aio_return(cb) for cb in cbs] == [8, 8]
    finally:
        os.close(fd)


async def test_kevent_never_posted_inside_submit(aio: Env, kq: Kqueue) -> None:
    fd = aio.file(DATA)
    try:
        async with AioContext() as ctx:
            cb = Aiocb(fd, bytearray(64), sigevent=kev_sev(kq, "k"))
            ctx.aio_read(cb)
            assert await kq.control(None, 4, 0) == []  # a poll that does not yield
            assert (await one_event(kq)).ident is cb
            assert ctx.aio_return(cb) == 64
    finally:
        os.close(fd)


# -- ports of FreeBSD's aio_kqueue_test.c and lio_kqueue_test.c ---------------------


async def test_aio_kqueue_test(aio: Env, kq: Kqueue) -> None:
    """aio_kqueue_test.c: runs of SIGEV_KEVENT writes, some cancelled at random;
    a cancelled job is reaped at once, the rest are harvested from the Kqueue."""
    runs, jobs, size = 3, 64, 32768
    buffer = bytes(range(256)) * (size // 256)
    rng = random.Random(0x5EED)
    fd = aio.file(b"", "aio_kqueue.bin")
    loop = asyncio.get_running_loop()
    written: list[int] = []
    try:
        async with AioContext() as ctx:
            for run in range(runs):
                pending: dict[Aiocb, int] = {}
                for i in range(jobs):
                    offset = (run * jobs + i) * size
                    cb = Aiocb(fd, buffer, offset=offset)
                    cb.sigevent = kev_sev(kq, cb)
                    ctx.aio_write(cb)
                    pending[cb] = offset
                    if rng.randrange(16) == 0:
                        result = ctx.aio_cancel(fd, cb)
                        assert result in (AIO_CANCELED, AIO_NOTCANCELED, AIO_ALLDONE)
                        if result == AIO_CANCELED:
                            assert ctx.aio_return(cb) == -1
                            del pending[cb]
                deadline = loop.time() + 30
                while pending:
                    assert loop.time() < deadline, f"run {run}: {len(pending)} never reported"
                    for ev in await kq.control(None, 1, 1.0):
                        cb = ev.udata
                        assert ev.ident is cb and ev.filter == EVFILT_AIO
                        assert cb in pending
                        assert ctx.aio_return(cb) == size
                        written.append(pending.pop(cb))
                assert_idle(ctx)
        assert written
        for offset in written:
            assert os.pread(fd, size, offset) == buffer
    finally:
        os.close(fd)


async def test_lio_kqueue_test(aio: Env, kq: Kqueue) -> None:
    """lio_kqueue_test.c: runs of 5 LIO_NOWAIT lists of 16 writes, one
    EVFILT_LIO event per list, then every entry returns the full size."""
    runs, lists, per_list, size = 3, 5, 16, 32768
    buffer = b"\xa5" * size
    fd = aio.file(b"", "lio_kqueue.bin")
    try:
        async with AioContext() as ctx:
            for run in range(runs):
                batches = [[Aiocb(fd, buffer, lio_opcode=LIO_WRITE,
                                  offset=size * (per_list * j + i) * (run + 1))
                            for i in range(per_list)] for j in range(lists)]
                for j, batch in enumerate(batches):
                    await ctx.lio_listio(LIO_NOWAIT, batch, kev_sev(kq, j))
                seen: set[int] = set()
                for _ in range(lists):
                    ev = await one_event(kq)
                    assert ev.filter == EVFILT_LIO
                    j = ev.udata
                    assert j not in seen
                    seen.add(j)
                    assert ev.ident is batches[j]
                    assert [ctx.aio_return(cb) for cb in batches[j]] == [size] * per_list
                assert seen == set(range(lists))
                assert await kq.control(None, 4, 0) == []
                assert_idle(ctx)
    finally:
        os.close(fd)


# -- rundown delivers what it cancels ---------------------------------------------


@pytest.mark.parametrize("flags", [0, EV_ONESHOT, EV_CLEAR, EV_DISPATCH],
                         ids=["level", "oneshot", "clear", "dispatch"])
async def test_rundown_cancelled_jobs_reach_a_kqueue_that_outlives_the_context(
        aio: Env, flags: int) -> None:
    """aclose() cancels parked jobs and frees them; each one's EVFILT_AIO event
    is still delivered, once, to the Kqueue (a reaper waiting there must not
    wait forever)."""
    kq = Kqueue()
    r, w = os.pipe()
    try:
        reaper = asyncio.ensure_future(_events(kq, 4))
        async with AioContext() as ctx:
            cbs = [Aiocb(r, bytearray(4), sigevent=SigEvent(
                SIGEV_KEVENT, kqueue=kq, value=i, kevent_flags=flags)) for i in range(4)]
            for cb in cbs:
                ctx.aio_read(cb)
        events = await asyncio.wait_for(reaper, DEADLINE)
        assert sorted(ev.udata for ev in events) == [0, 1, 2, 3]
        assert all(ev.filter == EVFILT_AIO and ev.data == errno.ECANCELED for ev in events)
        assert await kq.control(None, 8, timeout=QUIET) == []  # once each
    finally:
        kq.close()
        os.close(r)
        os.close(w)


async def _events(kq: Kqueue, n: int) -> list[KEvent]:
    got: list[KEvent] = []
    while len(got) < n:
        got += await kq.control(None, n - len(got))
    return got
