"""The readiness bridge (aioposix/_backends/bridge.py): docs/contract.md, rule 4, 12 and 16.

Jobs on pollable fds (sockets, pipes, FIFOs, ptys) park on the loop's
readiness and run with no worker thread.  Random data goes through one end
with aio_write and comes back through the other with aio_read, in every
completion style; ports of FreeBSD's tests/sys/aio/aio_test.c keep their
names (socket_poll, ..., vectored_socket_poll, aio_socket_two_reads,
aio_socket_blocking_short_write, aio_socket_short_write_cancel).
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import signal
import socket
import struct
import threading
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from helpers import open_fds, rand

import aioposix
from aioposix import (
    AIO_ALLDONE,
    AIO_CANCELED,
    AIO_NOTCANCELED,
    SIGEV_SIGNAL,
    SIGEV_THREAD,
    Aiocb,
    AioContext,
    SigEvent,
)

if TYPE_CHECKING:
    from conftest import Env

EINPROGRESS = errno.EINPROGRESS
DEADLINE = 20.0  # seconds: the bound of every wait in this file
STEP = 5.0  # seconds: the bound of one read whose data is already on its way


class Ends:
    """Everything a test opens (fds or sockets), closed at teardown."""

    def __init__(self) -> None:
        self._open: list[Any] = []

    def keep(self, thing: Any) -> Any:
        self._open.append(thing)
        return thing

    def fd(self, thing: Any) -> int:
        """Keep ``thing`` (an int fd or a socket) and return its fd number."""
        self.keep(thing)
        return thing if isinstance(thing, int) else int(thing.fileno())

    def close(self, thing: Any) -> None:
        self._open.remove(thing)
        _close(thing)

    def close_all(self) -> None:
        while self._open:
            _close(self._open.pop())


def _close(thing: Any) -> None:
    if isinstance(thing, int):
        os.close(thing)
    else:
        thing.close()


@pytest.fixture(autouse=True)
def _sigusr1_restored() -> Iterator[None]:
    saved = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, saved)


@pytest.fixture
def ends(aio: Env) -> Iterator[Ends]:
    """Depends on ``aio`` so it closes everything before the fixture counts fds."""
    kept = Ends()
    yield kept
    kept.close_all()


def socketpair(ends: Ends, kind: int = socket.SOCK_STREAM) -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    return ends.keep(a), ends.keep(b)


def tcp_pair(ends: Ends) -> tuple[socket.socket, socket.socket]:
    """A connected TCP pair on the loopback interface."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = ends.keep(socket.create_connection(server.getsockname()))
        accepted, _ = server.accept()
    return ends.keep(accepted), client


KINDS = ["unix_stream", "unix_dgram", "tcp", "pipe", "fifo", "pty_master_to_slave",
         "pty_slave_to_master"]
STREAMS = ["unix_stream", "tcp", "pipe", "fifo"]  # EOF when the writer closes


@dataclass
class Channel:
    """Two ends: read fd and write fd, and the objects that own them (to close early)."""

    rfd: int
    wfd: int
    r: Any
    w: Any


def endpoints(kind: str, aio: Env, ends: Ends) -> Channel:
    """A fresh channel of the given kind; ``ends`` closes it."""
    if kind in ("unix_stream", "unix_dgram"):
        way = socket.SOCK_STREAM if kind == "unix_stream" else socket.SOCK_DGRAM
        a, b = socketpair(ends, way)
        return Channel(a.fileno(), b.fileno(), a, b)
    if kind == "tcp":
        a, b = tcp_pair(ends)
        return Channel(a.fileno(), b.fileno(), a, b)
    if kind == "pipe":
        r, w = os.pipe()
        return Channel(ends.fd(r), ends.fd(w), r, w)
    if kind == "fifo":
        path = aio.tmp / "fifo"
        os.mkfifo(path)
        r = ends.fd(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        w = ends.fd(os.open(path, os.O_WRONLY))
        os.set_blocking(r, True)  # a plain blocking fd, as users have them
        return Channel(r, w, r, w)
    master, slave = os.openpty()
    ends.fd(master)
    ends.fd(slave)
    tty.setraw(slave)
    if kind == "pty_master_to_slave":
        return Channel(slave, master, slave, master)
    return Channel(master, slave, master, slave)


def message_sizes(kind: str) -> list[int]:
    """What the writer sends: one stream, or (for datagrams) many messages."""
    if kind == "unix_dgram":
        rng = random.Random(7)
        return [rng.randint(1, 2000) for _ in range(16)]
    if kind.startswith("pty"):
        return [20_000]
    return [100_003]


# -- every completion style (FreeBSD's socket_*, pipe_*, fifo_*, pty_* tests) -------

STYLES = ["poll", "suspend", "signal", "thread", "waitcomplete", "await"]


async def complete(aio: Env, ctx: AioContext, cb: Aiocb, submit: Callable[[Aiocb], None],
                   style: str, timeout: float = DEADLINE) -> int:
    """Submit ``cb`` and wait for it in ``style``; returns its status, reaped."""
    loop = asyncio.get_running_loop()
    if style == "signal":
        seen: list[int] = []
        loop.add_signal_handler(signal.SIGUSR1, lambda: seen.append(ctx.aio_error(cb)))
        try:
            cb.sigevent = SigEvent(SIGEV_SIGNAL, signo=signal.SIGUSR1)
            submit(cb)
            await aio.until(lambda: bool(seen), timeout)
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
            # a job cancelled by a failing test's rundown still signals: don't die of it
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        assert seen == [0]
        return ctx.aio_return(cb)
    if style == "thread":
        calls: list[tuple[object, int, int]] = []
        cb.sigevent = SigEvent(SIGEV_THREAD, value="token", function=lambda value: calls.append(
            (value, threading.get_ident(), ctx.aio_error(cb))))
        submit(cb)
        await aio.until(lambda: bool(calls), timeout)
        assert calls == [("token", threading.get_ident(), 0)]
        return ctx.aio_return(cb)
    submit(cb)
    if style == "poll":
        await aio.until(lambda: ctx.aio_error(cb) != EINPROGRESS, timeout)
        assert ctx.aio_error(cb) == 0
        return ctx.aio_return(cb)
    if style == "suspend":
        await ctx.aio_suspend([cb], timeout=timeout)
        assert ctx.aio_error(cb) == 0
        return ctx.aio_return(cb)
    if style == "waitcomplete":
        got = [done async for done in ctx.aio_waitcomplete(timeout=timeout)]
        assert got == [cb]
        assert cb.error == 0
        return cb.status
    return await asyncio.wait_for(cb, timeout)


async def read_some(aio: Env, ctx: AioContext, fd: int, style: str, vectored: bool) -> bytes:
    """One aio_read (or aio_readv into three buffers) on ``fd``: what it returned."""
    if vectored:
        bufs = [bytearray(7), bytearray(1000), bytearray(3089)]
        cb = Aiocb(fd, iov=bufs)
        count = await complete(aio, ctx, cb, ctx.aio_readv, style, STEP)
        return b"".join(bufs)[:count]
    cb = Aiocb(fd, bytearray(4096))
    count = await complete(aio, ctx, cb, ctx.aio_read, style, STEP)
    return bytes(cb.buf[:count])


def write_cbs(fd: int, messages: list[bytes], vectored: bool) -> list[Aiocb]:
    if not vectored:
        return [Aiocb(fd, msg) for msg in messages]
    return [Aiocb(fd, iov=[msg[:1], msg[1:len(msg) // 2], msg[len(msg) // 2:]])
            for msg in messages]


async def round_trip(aio: Env, kind: str, ends: Ends, style: str, vectored: bool) -> None:
    """Write random data with aio_write(v) on one end, read it back with aio_read(v)."""
    chan = endpoints(kind, aio, ends)
    rfd, wfd = chan.rfd, chan.wfd
    sizes = message_sizes(kind)
    messages = [rand(n, seed=i) for i, n in enumerate(sizes)]
    async with AioContext() as writer, AioContext() as reader:
        cbs = write_cbs(wfd, messages, vectored)
        for cb in cbs:
            (writer.aio_writev if vectored else writer.aio_write)(cb)
        received: list[bytes] = []
        while sum(map(len, received)) < sum(sizes):
            chunk = await read_some(aio, reader, rfd, style, vectored)
            assert len(chunk) >= 1  # a read completes with what is there, never 0 here
            received.append(chunk)
        for cb, size in zip(cbs, sizes, strict=True):
            assert await asyncio.wait_for(cb, DEADLINE) == size
    if kind == "unix_dgram":
        assert received == messages  # one read, one whole datagram, in order
    else:
        assert b"".join(received) == b"".join(messages)


# every style on every kind but the ptys, which get FreeBSD's one: pty_poll
ROUND_TRIPS = [(kind, style) for kind in KINDS if not kind.startswith("pty") for style in STYLES]
ROUND_TRIPS += [(kind, "poll") for kind in KINDS if kind.startswith("pty")]


@pytest.mark.parametrize(("kind", "style"), ROUND_TRIPS)
async def test_round_trip(aio: Env, ends: Ends, kind: str, style: str) -> None:
    """FreeBSD's socket_<style>, pipe_<style>, fifo_<style>, pty_poll."""
    await round_trip(aio, kind, ends, style, vectored=False)


@pytest.mark.parametrize("kind", KINDS)
async def test_vectored_poll(aio: Env, ends: Ends, kind: str) -> None:
    """FreeBSD's vectored_socket_poll, on every kind of pollable fd."""
    await round_trip(aio, kind, ends, "poll", vectored=True)


async def test_reads_parked_on_two_pty_masters_stay_apart(aio: Env, ends: Ends) -> None:
    """Every pty master is the same inode (/dev/ptmx): each job still reads its own pty."""
    ptys = [os.openpty() for _ in range(2)]
    for master, slave in ptys:
        ends.fd(master)
        ends.fd(slave)
        tty.setraw(slave)
    async with AioContext() as ctx:
        cbs = [Aiocb(master, bytearray(16)) for master, _ in ptys]
        for cb in cbs:
            ctx.aio_read(cb)
        os.write(ptys[1][1], b"second")
        await ctx.aio_suspend(cbs, timeout=STEP)
        assert ctx.aio_error(cbs[0]) == EINPROGRESS
        assert ctx.aio_return(cbs[1]) == 6
        assert cbs[1].buf[:6] == b"second"
        os.write(ptys[0][1], b"first")
        assert await asyncio.wait_for(cbs[0], STEP) == 5
        assert cbs[0].buf[:5] == b"first"


# -- end of file -------------------------------------------------------------------

@pytest.mark.parametrize("parked", [True, False], ids=["parked", "after-close"])
@pytest.mark.parametrize("kind", STREAMS)
async def test_read_returns_0_when_the_writer_closes(aio: Env, ends: Ends, kind: str,
                                                     parked: bool) -> None:
    chan = endpoints(kind, aio, ends)
    async with AioContext() as ctx:
        cb = Aiocb(chan.rfd, bytearray(100))
        if parked:
            ctx.aio_read(cb)
            assert ctx.aio_error(cb) == EINPROGRESS
            ends.close(chan.w)
        else:
            ends.close(chan.w)
            ctx.aio_read(cb)
        assert await asyncio.wait_for(cb, DEADLINE) == 0


# -- writes larger than the socket buffers -----------------------------------------

def socket_buffer(a: socket.socket, b: socket.socket) -> int:
    """max(SO_RCVBUF of the reader, SO_SNDBUF of the writer), as FreeBSD's tests size it."""
    return max(a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
               b.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))


async def drain(sock: socket.socket, n: int) -> bytes:
    """Read exactly ``n`` bytes from ``sock`` with the loop's own calls (a plain peer)."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    got = bytearray(n)
    view = memoryview(got)
    done = 0
    while done < n:
        moved = await loop.sock_recv_into(sock, view[done:])
        assert moved > 0, "the writer closed early"
        done += moved
    return bytes(got)


@pytest.mark.parametrize("vectored", [False, True], ids=["plain", "vectored"])
async def test_aio_socket_blocking_short_write(aio: Env, ends: Ends, vectored: bool) -> None:
    """A write of 2 x the socket buffers completes whole while the peer drains it."""
    a, b = socketpair(ends)
    size = 2 * socket_buffer(a, b)
    data = rand(size, seed=3)
    async with AioContext() as ctx:
        if vectored:
            half = size // 2 + 1
            cb = Aiocb(b.fileno(), iov=[data[:half], data[half:]])
            ctx.aio_writev(cb)
        else:
            cb = Aiocb(b.fileno(), data)
            ctx.aio_write(cb)
        received = await asyncio.wait_for(drain(a, size), DEADLINE)
        done = [job async for job in ctx.aio_waitcomplete(timeout=DEADLINE)]
    assert done == [cb]
    assert (cb.error, cb.status) == (0, size)
    assert received == data


async def test_aio_socket_short_write_cancel(aio: Env, ends: Ends) -> None:
    """Cancelling a socket write that moved bytes: AIO_NOTCANCELED, and it ends short."""
    a, b = socketpair(ends)
    size = socket_buffer(a, b)
    data = rand(3 * size, seed=4)
    async with AioContext() as ctx:
        cb = Aiocb(b.fileno(), data)
        ctx.aio_write(cb)
        received = await asyncio.wait_for(drain(a, size), DEADLINE)
        assert ctx.aio_error(cb) == EINPROGRESS
        assert ctx.aio_cancel(b.fileno(), cb) == AIO_NOTCANCELED
        done = [job async for job in ctx.aio_waitcomplete(timeout=DEADLINE)]
    assert done == [cb]
    assert cb.error == 0
    assert size <= cb.status <= 2 * size
    assert received == data[:size]


# -- cancelling parked jobs --------------------------------------------------------

async def test_aio_socket_two_reads(aio: Env, ends: Ends) -> None:
    """One byte wakes exactly one of two parked reads; the other cancels cleanly."""
    a, b = socketpair(ends)
    async with AioContext() as ctx:
        cbs = [Aiocb(a.fileno(), bytearray(1024)) for _ in range(2)]
        for cb in cbs:
            ctx.aio_read(cb)
        b.send(b"\xc3")
        first = await ctx.aio_waitcomplete(timeout=DEADLINE).__anext__()
        assert first.status == 1
        assert first.buf[0] == 0xC3
        other = cbs[1] if first is cbs[0] else cbs[0]
        assert ctx.aio_error(other) == EINPROGRESS
        assert ctx.aio_cancel(a.fileno(), other) == AIO_CANCELED
        assert ctx.aio_error(other) == errno.ECANCELED
        assert ctx.aio_return(other) == -1
        assert ctx.statistics().parked == 0


async def test_parked_read_cancelled_fires_its_notification(aio: Env, ends: Ends) -> None:
    a, _ = socketpair(ends)
    calls: list[int] = []
    async with AioContext() as ctx:
        cb = Aiocb(a.fileno(), bytearray(10), sigevent=SigEvent(
            SIGEV_THREAD, function=lambda _: calls.append(ctx.aio_error(cb))))
        ctx.aio_read(cb)
        assert ctx.statistics().parked == 1
        assert ctx.aio_cancel(a.fileno()) == AIO_CANCELED
        assert ctx.aio_cancel(a.fileno()) == AIO_ALLDONE
        await aio.until(lambda: bool(calls), DEADLINE)
        assert calls == [errno.ECANCELED]
        with pytest.raises(OSError) as info:
            await cb
        assert info.value.errno == errno.ECANCELED
        assert cb.status == -1


async def test_cancelled_await_cancels_the_parked_read(aio: Env, ends: Ends) -> None:
    a, b = socketpair(ends)
    async with AioContext() as ctx:
        cb = Aiocb(a.fileno(), bytearray(10))
        ctx.aio_read(cb)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(cb, 0.05)
        assert cb.error == errno.ECANCELED
        assert ctx.statistics().parked == 0
        b.send(b"still here")  # nobody took it: the next read gets it
        again = Aiocb(a.fileno(), bytearray(10))
        ctx.aio_read(again)
        assert await asyncio.wait_for(again, DEADLINE) == 10
        assert again.buf == b"still here"


# -- a job done during its submit call ------------------------------------------------

async def test_reused_cb_is_not_woken_by_its_previous_completion(aio: Env,
                                                                ends: Ends) -> None:
    """Reap a read that finished during aio_read, resubmit the cb, await it again:
    the second await waits for the second job (the first one's notification is not it)."""
    loop = asyncio.get_running_loop()
    a, b = socketpair(ends)
    async with AioContext() as ctx:
        cb = Aiocb(a.fileno(), bytearray(10))
        b.send(b"x")
        ctx.aio_read(cb)
        assert await cb == 1
        ctx.aio_read(cb)  # nothing there now: it waits
        assert ctx.aio_error(cb) == EINPROGRESS
        loop.call_later(0.05, b.send, b"y")  # the peer answers a little later
        watchdog = loop.call_later(DEADLINE, ctx.aio_cancel, a.fileno(), cb)
        try:
            assert await cb == 1
        finally:
            watchdog.cancel()
        assert cb.buf[:1] == b"y"


async def test_notification_of_a_job_reaped_at_once_still_fires(aio: Env, ends: Ends) -> None:
    """Rule 1 and 19: the SIGEV_THREAD call comes after the submit call, reaped or not."""
    a, b = socketpair(ends)
    calls: list[object] = []
    async with AioContext() as ctx:
        cb = Aiocb(a.fileno(), bytearray(10), sigevent=SigEvent(
            SIGEV_THREAD, value="v", function=calls.append))
        b.send(b"x")
        ctx.aio_read(cb)
        assert calls == []  # never inside the call
        await ctx.aio_suspend([cb], timeout=DEADLINE)
        assert ctx.aio_return(cb) == 1
        await aio.until(lambda: bool(calls), STEP)
        assert calls == ["v"]


# -- errors ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["unix_stream", "pipe", "fifo"])
async def test_write_with_no_reader_is_epipe(aio: Env, ends: Ends, kind: str) -> None:
    """EPIPE is the job's error (SIGPIPE is ignored by Python: no crash)."""
    chan = endpoints(kind, aio, ends)
    ends.close(chan.r)
    async with AioContext() as ctx:
        cb = Aiocb(chan.wfd, b"nobody listens")
        ctx.aio_write(cb)
        with pytest.raises(OSError) as info:
            await asyncio.wait_for(cb, DEADLINE)
        assert info.value.errno == errno.EPIPE
        assert (cb.error, cb.status) == (errno.EPIPE, -1)


async def test_parked_write_fails_when_the_reader_goes(aio: Env, ends: Ends) -> None:
    """A write parked on a full socket ends when the peer closes: EPIPE/ECONNRESET, or
    short with what moved (never the full count, never a hang)."""
    a, b = socketpair(ends)
    size = 3 * socket_buffer(a, b)
    async with AioContext() as ctx:
        cb = Aiocb(b.fileno(), bytes(size))
        ctx.aio_write(cb)
        assert ctx.aio_error(cb) == EINPROGRESS
        ends.close(a)
        await ctx.aio_suspend([cb], timeout=DEADLINE)
        if cb.error:
            assert (cb.error, cb.status) in ((errno.EPIPE, -1), (errno.ECONNRESET, -1))
        else:
            assert 0 < cb.status < size
        ctx.aio_return(cb)


async def test_tcp_reset_while_a_read_is_parked_is_econnreset(aio: Env, ends: Ends) -> None:
    a, b = tcp_pair(ends)
    async with AioContext() as ctx:
        cb = Aiocb(a.fileno(), bytearray(10))
        ctx.aio_read(cb)
        assert ctx.aio_error(cb) == EINPROGRESS
        b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ends.close(b)  # linger 0: the close sends a RST
        with pytest.raises(OSError) as info:
            await asyncio.wait_for(cb, DEADLINE)
        assert info.value.errno == errno.ECONNRESET


# -- rule 4: a closed and reused fd number -----------------------------------------

async def test_parked_read_stays_on_its_file_when_the_number_is_reused(aio: Env,
                                                                      ends: Ends) -> None:
    old_a, old_b = socketpair(ends)
    number = old_a.fileno()
    async with AioContext() as ctx:
        cb = Aiocb(number, bytearray(64))
        ctx.aio_read(cb)
        assert ctx.aio_error(cb) == EINPROGRESS
        ends.close(old_a)
        new_a, new_b = socketpair(ends)
        assert number in (new_a.fileno(), new_b.fileno())  # the number was reused
        newcomer_peer = new_b if new_a.fileno() == number else new_a
        newcomer_peer.send(b"for the new socket")
        old_b.send(b"for the old job")
        await ctx.aio_suspend([cb], timeout=DEADLINE)
        assert (cb.error, cb.status) == (0, len(b"for the old job"))
        assert cb.buf[:cb.status] == b"for the old job"
        assert ctx.aio_return(cb) == len(b"for the old job")
        mine = new_a if new_a.fileno() == number else new_b
        mine.setblocking(False)
        assert mine.recv(64) == b"for the new socket"  # never consumed by the old job


async def test_parked_write_never_lands_in_the_reused_number(aio: Env, ends: Ends) -> None:
    old_a, old_b = socketpair(ends)
    old_a.setblocking(False)
    old_b.setblocking(False)
    filled = 0
    try:
        while True:
            filled += old_b.send(bytes(65536))
    except BlockingIOError:
        pass
    number = old_b.fileno()
    async with AioContext() as ctx:
        cb = Aiocb(number, b"late data" * 100)
        ctx.aio_write(cb)
        assert ctx.aio_error(cb) == EINPROGRESS
        ends.close(old_b)
        new_a, new_b = socketpair(ends)
        assert number in (new_a.fileno(), new_b.fileno())
        received = await asyncio.wait_for(drain(old_a, filled), DEADLINE)
        await ctx.aio_suspend([cb], timeout=DEADLINE)
        assert (cb.error, cb.status) == (0, 900)  # in full, on the old socket
        assert await asyncio.wait_for(drain(old_a, 900), DEADLINE) == b"late data" * 100
        assert ctx.aio_return(cb) == 900
    assert received == bytes(filled)
    for sock in (new_a, new_b):
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)  # nothing landed in the newcomer


# -- contexts, rundown, and the application's own readers --------------------------

async def test_jobs_of_two_contexts_on_one_socket_stay_apart(aio: Env, ends: Ends) -> None:
    a, b = socketpair(ends)
    async with AioContext() as one:
        two = AioContext()
        cb1 = Aiocb(a.fileno(), bytearray(10))
        cb2 = Aiocb(a.fileno(), bytearray(10))
        one.aio_read(cb1)
        two.aio_read(cb2)
        assert (one.statistics().parked, two.statistics().parked) == (1, 1)
        assert two.aio_cancel(a.fileno()) == AIO_CANCELED
        assert two.aio_error(cb2) == errno.ECANCELED
        assert one.aio_error(cb1) == EINPROGRESS
        with pytest.raises(OSError):
            one.aio_error(cb2)  # not known to the other context
        await two.aclose()
        assert one.aio_error(cb1) == EINPROGRESS
        b.send(b"first")
        assert await asyncio.wait_for(cb1, DEADLINE) == 5
        assert cb1.buf[:5] == b"first"


async def test_rundown_of_one_context_leaves_the_others_job_parked(aio: Env,
                                                                   ends: Ends) -> None:
    a, b = socketpair(ends)
    async with AioContext() as keeper:
        cb_keep = Aiocb(a.fileno(), bytearray(10))
        async with AioContext() as leaver:
            cb_gone = Aiocb(a.fileno(), bytearray(10))
            leaver.aio_read(cb_gone)  # first in line
            keeper.aio_read(cb_keep)
        assert (cb_gone.error, cb_gone.status) == (errno.ECANCELED, -1)
        assert keeper.aio_error(cb_keep) == EINPROGRESS
        b.send(b"kept")
        assert await asyncio.wait_for(cb_keep, DEADLINE) == 4
        assert cb_keep.buf[:4] == b"kept"


async def test_rundown_cancels_parked_jobs_and_releases_the_fd(aio: Env, ends: Ends) -> None:
    a, b = socketpair(ends)
    before = open_fds()
    async with AioContext() as ctx:
        cbs = [Aiocb(a.fileno(), bytearray(10)) for _ in range(3)]
        for cb in cbs:
            ctx.aio_read(cb)
        writer = Aiocb(a.fileno(), b"to b")  # completes at once: nothing waits
        ctx.aio_write(writer)
        assert ctx.statistics().parked == 3
    assert [(cb.error, cb.status) for cb in cbs] == [(errno.ECANCELED, -1)] * 3
    assert open_fds() == before  # the bridge's own descriptors are gone
    async with AioContext() as fresh:
        cb = Aiocb(a.fileno(), bytearray(10))
        fresh.aio_read(cb)
        b.send(b"fresh")
        assert await asyncio.wait_for(cb, DEADLINE) == 5
        assert cb.buf[:5] == b"fresh"
    assert b.recv(100) == b"to b"


async def test_app_reader_on_the_same_socket_sees_readiness_too(aio: Env, ends: Ends) -> None:
    """The loop's add_reader on the user's fd and a parked aio_read both work."""
    loop = asyncio.get_running_loop()
    a, b = socketpair(ends)
    ready: list[int] = []
    loop.add_reader(a.fileno(), lambda: ready.append(1))
    try:
        async with AioContext() as ctx:
            cb = Aiocb(a.fileno(), bytearray(10))
            ctx.aio_read(cb)
            b.send(b"both")
            assert await asyncio.wait_for(cb, DEADLINE) == 4
            assert cb.buf[:4] == b"both"
            await aio.until(lambda: bool(ready), DEADLINE)
    finally:
        loop.remove_reader(a.fileno())
    # and the app's reader may take data while the bridge is idle
    got: list[bytes] = []
    a.setblocking(False)
    loop.add_reader(a.fileno(), lambda: got.append(a.recv(100)))
    try:
        b.send(b"app")
        await aio.until(lambda: bool(got), DEADLINE)
    finally:
        loop.remove_reader(a.fileno())
    assert got[0] == b"app"


async def test_no_worker_blocks_on_parked_sockets(aio: Env, ends: Ends) -> None:
    """50 parked reads: no thread is busy and none is started for them."""
    procs = aioposix.sysctl["vfs.aio.num_aio_procs"]
    assert isinstance(procs, int)
    pairs = [socketpair(ends) for _ in range(25)]
    async with AioContext() as ctx:
        cbs = [Aiocb(a.fileno(), bytearray(8)) for a, _ in pairs for _ in range(2)]
        for cb in cbs:
            ctx.aio_read(cb)
        stats = ctx.statistics()
        assert (stats.parked, stats.active, stats.queued, stats.done) == (50, 0, 0, 0)
        assert aioposix.sysctl["vfs.aio.num_aio_procs"] <= procs
        for i, (_, b) in enumerate(pairs):
            b.send(b"%02d" % i)
        await aio.until(lambda: ctx.statistics().done == 25, DEADLINE)
        stats = ctx.statistics()
        assert (stats.parked, stats.active, stats.done) == (25, 0, 25)
        firsts = cbs[::2]  # FIFO: the first read parked on each socket got the data
        assert [bytes(cb.buf[:ctx.aio_return(cb)]) for cb in firsts] == [
            b"%02d" % i for i in range(25)]
        assert aioposix.sysctl["vfs.aio.num_aio_procs"] <= procs
    assert [cb.error for cb in cbs[1::2]] == [errno.ECANCELED] * 25


# -- a FIFO after a privilege drop -------------------------------------------------

_DROPPED = """
import asyncio, os, sys
import aioposix
from aioposix import Aiocb, AioContext
fifo = sys.argv[1]
os.mkfifo(fifo, 0o600)  # root's, and only root's
fr = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
fw = os.open(fifo, os.O_WRONLY)
os.setgid(65534)
os.setuid(65534)
async def main():
    async with AioContext() as ctx:
        os.write(fw, b"1234")
        cb = Aiocb(fr, bytearray(4))
        ctx.aio_read(cb)
        got = await asyncio.wait_for(cb, 10)
        parked = Aiocb(fr, bytearray(2))
        ctx.aio_read(parked)  # nothing there yet: it parks, then the write wakes it
        await asyncio.sleep(0)
        os.write(fw, b"xy")
        more = await asyncio.wait_for(parked, 10)
        w = Aiocb(fw, b"ab")
        ctx.aio_write(w)
        wrote = await asyncio.wait_for(w, 10)
        print(got, bytes(cb.buf).decode(), more, bytes(parked.buf).decode(), wrote,
              os.read(fr, 2).decode())
asyncio.run(main())
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_fifo_after_a_privilege_drop_still_works(tmp_path: Any, loop: str) -> None:
    """The fd works after dropping root (the open file was checked at open), so
    aio_read and aio_write on it must work too, without opening it again."""
    import subprocess
    import sys
    if os.geteuid() != 0:
        pytest.skip("needs root, to drop privileges")
    code = _DROPPED
    if loop == "uvloop":
        code = code.replace("asyncio.run(main())", "import uvloop; uvloop.run(main())")
    os.chmod(tmp_path, 0o755)
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path / "root.fifo")],
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["4", "1234", "2", "xy", "2", "ab"]
