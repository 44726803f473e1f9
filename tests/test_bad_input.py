"""Bad inputs, one table: each gets its exact errno (or exception type) and leaves no trace.

Every row runs the same harness: ``prepare`` sets up whatever the bad call
needs (a job in flight, a closed Kqueue...) and returns the bad call; the
call must raise the expected error (or return the expected value).  After
it, and again after the row's own cleanup, nothing is left behind: the
context shows no job in any state, vfs.aio.num_queue_count is back where it
was, and the process has the same descriptors and the same threads (other
than the "aiod-*" worker daemons, which live on by design).

A refused submit (docs/contract.md, rule 2) also leaves cb.error = the errno, cb.status
= -1, and a cb the context does not know (aio_error: EINVAL).  Two rows fail
at completion instead, as POSIX allows (a read of a directory, a write past
the file-size limit): they are awaited.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from helpers import open_fds

import aioposix
from aioposix import (
    AIO_ALLDONE,
    AIO_CANCELED,
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EVFILT_AIO,
    EVFILT_LIO,
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
    KEvent,
    Kqueue,
    SigEvent,
    sysctl,
)
from aioposix._core.constants import IOV_MAX

if TYPE_CHECKING:
    from conftest import Env

DATA = b"0123456789abcdef"


def other_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if not t.name.startswith("aiod-")}


@dataclass
class Setup:
    """What a row may use; everything is closed by ``close``."""

    env: Env
    ctx: AioContext
    other: AioContext  # a second context, for the rows about ownership
    fd: int  # O_RDWR, holds DATA
    rdonly: int
    wronly: int
    opath: int
    dirfd: int
    closed_fd: int  # a number no descriptor has
    sock_r: socket.socket
    sock_w: socket.socket
    cb: Aiocb | None = None  # the row's cb, for the refused-submit checks
    kqueues: list[Kqueue] = field(default_factory=list)
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    def make(cls, env: Env) -> Setup:
        fd = env.file(DATA)
        path = env.tmp / "data.bin"
        sock_r, sock_w = socket.socketpair()
        opened = [os.open(path, flags) for flags in (os.O_RDONLY, os.O_WRONLY, os.O_PATH)]
        dirfd = os.open(env.tmp, os.O_RDONLY | os.O_DIRECTORY)
        return cls(env, AioContext(), AioContext(), fd, *opened, dirfd,
                   max(open_fds()) + 100, sock_r, sock_w)

    def use(self, cb: Aiocb) -> Aiocb:
        self.cb = cb
        return cb

    def kqueue(self) -> Kqueue:
        kq = Kqueue()
        self.kqueues.append(kq)
        return kq

    async def close(self) -> None:
        try:
            for cleanup in self.cleanups:
                await cleanup()
            await self.ctx.aclose()
            await self.other.aclose()
        finally:
            for kq in self.kqueues:
                kq.close()
            for fd in (self.fd, self.rdonly, self.wronly, self.opath, self.dirfd):
                os.close(fd)
            self.sock_r.close()
            self.sock_w.close()


Prepare = Callable[[Setup], Any]  # returns the bad call (maybe after awaiting a setup)


@dataclass(frozen=True)
class Returns:
    value: object


@dataclass(frozen=True)
class Bad:
    prepare: Prepare
    expect: int | tuple[int, ...] | type[BaseException] | Returns
    submit: bool = False  # a refused submit: check cb.error/status and the cb is unknown


def row(name: str, prepare: Prepare, expect: Any, submit: bool = False) -> Any:
    return pytest.param(Bad(prepare, expect, submit), id=name)


def submit(op: str, make: Callable[[Setup], Aiocb]) -> Prepare:
    """A row whose bad call is one submit of the cb ``make`` builds."""

    def prepare(s: Setup) -> Callable[[], None]:
        cb = s.use(make(s))
        ctx = s.ctx
        calls: dict[str, Callable[[], None]] = {
            "read": lambda: ctx.aio_read(cb), "write": lambda: ctx.aio_write(cb),
            "readv": lambda: ctx.aio_readv(cb), "writev": lambda: ctx.aio_writev(cb),
            "fsync": lambda: ctx.aio_fsync(os.O_SYNC, cb)}
        return calls[op]

    return prepare


def with_sigevent(make_sev: Callable[[Setup], SigEvent]) -> Prepare:
    return submit("read", lambda s: Aiocb(s.fd, bytearray(4), sigevent=make_sev(s)))


def _closed_kqueue(s: Setup) -> Kqueue:
    kq = s.kqueue()
    kq.close()
    return kq


# -- rows whose setup needs a job in flight or done ----------------------------------


async def _return_twice(s: Setup) -> Callable[[], int]:
    cb = Aiocb(s.fd, bytearray(4))
    s.ctx.aio_read(cb)
    await s.ctx.aio_suspend([cb], 10)
    assert s.ctx.aio_return(cb) == 4
    return lambda: s.ctx.aio_return(cb)


def _parked_read(s: Setup, ctx: AioContext) -> Aiocb:
    """A read on an empty socket: in flight until data comes or it is cancelled."""
    cb = Aiocb(s.sock_r.fileno(), bytearray(4))
    ctx.aio_read(cb)
    assert ctx.aio_error(cb) == errno.EINPROGRESS

    async def cancel() -> None:
        if ctx.closed or cb.status != -1 or cb.error not in (errno.EINPROGRESS, 0):
            return
        try:
            pending = ctx.aio_error(cb) == errno.EINPROGRESS
        except OSError:  # already reaped by the row
            return
        if pending:
            assert ctx.aio_cancel(s.sock_r.fileno(), cb) == AIO_CANCELED
        await ctx.aio_suspend([cb], 10)
        ctx.aio_return(cb)

    s.cleanups.append(cancel)
    return cb


async def _return_before_done(s: Setup) -> Callable[[], int]:
    cb = _parked_read(s, s.ctx)

    def bad() -> int:
        try:
            return s.ctx.aio_return(cb)
        finally:  # the refusal did not touch the job
            assert s.ctx.aio_error(cb) == errno.EINPROGRESS

    return bad


async def _resubmit_in_flight(s: Setup) -> Callable[[], None]:
    cb = _parked_read(s, s.ctx)

    def bad() -> None:
        try:
            s.ctx.aio_read(cb)
        finally:
            assert s.ctx.aio_error(cb) == cb.error == errno.EINPROGRESS

    return bad


async def _cancel_other_contexts_cb(s: Setup) -> Callable[[], Awaitable[int]]:
    """AIO_ALLDONE, and the job (another context's) goes on to complete normally."""
    cb = Aiocb(s.sock_r.fileno(), bytearray(4))
    s.other.aio_read(cb)

    async def bad() -> int:
        fd = s.sock_r.fileno()
        result = s.ctx.aio_cancel(fd, cb)
        assert s.ctx.aio_cancel(fd) == AIO_ALLDONE  # by fd: this context has nothing there
        assert s.other.aio_error(cb) == errno.EINPROGRESS
        s.sock_w.send(b"ping")
        assert await asyncio.wait_for(cb, 10) == 4
        assert cb.buf == b"ping"
        return result

    return bad


async def _fails_at_completion(s: Setup, cb: Aiocb, write: bool) -> Callable[[], Aiocb]:
    (s.ctx.aio_write if write else s.ctx.aio_read)(cb)  # accepted: the kernel says no later
    return lambda: cb  # awaited by the harness


def _too_many_lio_entries(s: Setup) -> Callable[[], Awaitable[None]]:
    limit = sysctl["p1003_1b.aio_listio_max"]
    assert isinstance(limit, int)
    cb = s.use(Aiocb(s.fd, bytearray(4), lio_opcode=LIO_READ))
    return lambda: s.ctx.lio_listio(LIO_WAIT, [cb] + [None] * limit)


def _too_many_suspend_entries(s: Setup) -> Callable[[], Awaitable[None]]:
    limit = sysctl["p1003_1b.aio_listio_max"]
    assert isinstance(limit, int)
    return lambda: s.ctx.aio_suspend([None] * (limit + 1), 0)


def _lio_bad_entry(opcode: int, fildes: Callable[[Setup], int], entry_errno: int) -> Prepare:
    """lio_listio(LIO_WAIT) with one bad entry: EIO, and the entry holds its errno."""

    def prepare(s: Setup) -> Callable[[], Awaitable[None]]:
        cb = Aiocb(fildes(s), bytearray(4), lio_opcode=opcode)

        async def bad() -> None:
            try:
                await s.ctx.lio_listio(LIO_WAIT, [cb])
            finally:
                assert cb.error == entry_errno
                assert cb.status == -1

        return bad

    return prepare


def _lio_bad_sigevent(s: Setup) -> Callable[[], Awaitable[None]]:
    cb = Aiocb(s.fd, b"XXXX", lio_opcode=LIO_WRITE)
    sev = SigEvent(SIGEV_SIGNAL, signo=0)

    async def bad() -> None:
        try:
            await s.ctx.lio_listio(LIO_NOWAIT, [cb], sev)
        finally:  # refused before any entry was queued: the entry and the file untouched
            assert os.pread(s.fd, 16, 0) == DATA
            assert (cb.error, cb.status) == (0, -1)
            with pytest.raises(OSError) as info:
                s.ctx.aio_error(cb)
            assert info.value.errno == EINVAL

    return bad


def _changelist(kfilter: int) -> Prepare:
    def prepare(s: Setup) -> Callable[[], Awaitable[list[KEvent]]]:
        kq = s.kqueue()
        return lambda: kq.control([KEvent(object(), kfilter, EV_ADD)], 0, 0)

    return prepare


async def _closed_context(s: Setup) -> Callable[[], None]:
    ctx = AioContext()
    await ctx.aclose()
    return lambda: ctx.aio_read(Aiocb(s.fd, bytearray(4)))


EINVAL, EBADF, EFAULT = errno.EINVAL, errno.EBADF, errno.EFAULT
RO_VIEW = memoryview(bytearray(8)).toreadonly()

ASYNC_ROWS = [
    # EBADF: not an open descriptor, or not open the right way
    row("read-closed-fd", submit("read", lambda s: Aiocb(s.closed_fd, bytearray(4))),
        EBADF, True),
    row("write-fd-minus-1", submit("write", lambda s: Aiocb(-1, b"abcd")), EBADF, True),
    row("fsync-fd-minus-1", submit("fsync", lambda s: Aiocb(-1)), EBADF, True),
    row("write-on-o-rdonly", submit("write", lambda s: Aiocb(s.rdonly, b"abcd")),
        EBADF, True),
    row("read-on-o-wronly", submit("read", lambda s: Aiocb(s.wronly, bytearray(4))),
        EBADF, True),
    row("readv-on-o-wronly",
        submit("readv", lambda s: Aiocb(s.wronly, iov=[bytearray(4)])), EBADF, True),
    row("read-o-path-fd", submit("read", lambda s: Aiocb(s.opath, bytearray(4))),
        EBADF, True),
    row("fsync-o-path-fd", submit("fsync", lambda s: Aiocb(s.opath)), EBADF, True),
    row("aio-cancel-closed-fd", lambda s: lambda: s.ctx.aio_cancel(s.closed_fd), EBADF),
    row("aio-cancel-fd-minus-1", lambda s: lambda: s.ctx.aio_cancel(-1), EBADF),
    row("lio-nop-entry-closed-fd", _lio_bad_entry(LIO_NOP, lambda s: s.closed_fd, EBADF),
        errno.EIO),
    row("sigevent-closed-kqueue",
        with_sigevent(lambda s: SigEvent(SIGEV_KEVENT, kqueue=_closed_kqueue(s))), EBADF, True),
    # EINVAL: counts, offsets, opcodes, priorities
    row("read-negative-nbytes",
        submit("read", lambda s: Aiocb(s.fd, bytearray(4), -1)), EINVAL, True),
    row("write-negative-nbytes",
        submit("write", lambda s: Aiocb(s.fd, b"abcd", -1)), EINVAL, True),
    row("read-offset-minus-1",
        submit("read", lambda s: Aiocb(s.fd, bytearray(4), None, -1)), EINVAL, True),
    row("write-offset-2**63",
        submit("write", lambda s: Aiocb(s.fd, b"abcd", None, 2**63)), EINVAL, True),
    row("read-offset-str",
        submit("read", lambda s: Aiocb(s.fd, bytearray(4), None, "0")), EINVAL, True),
    row("write-offset-float",
        submit("write", lambda s: Aiocb(s.fd, b"abcd", None, 1.0)), EINVAL, True),
    row("read-nbytes-float",
        submit("read", lambda s: Aiocb(s.fd, bytearray(4), 1.5)), EINVAL, True),
    row("write-negative-reqprio",
        submit("write", lambda s: Aiocb(s.fd, b"abcd", reqprio=-1)), EINVAL, True),
    row("fsync-op-0", lambda s: (lambda cb: lambda: s.ctx.aio_fsync(0, cb))(s.use(Aiocb(s.fd))),
        EINVAL, True),
    row("readv-iov-not-a-sequence",
        submit("readv", lambda s: Aiocb(s.fd, iov=5)), EINVAL, True),  # type: ignore[arg-type]
    row("writev-iov-none", submit("writev", lambda s: Aiocb(s.fd)), EINVAL, True),
    row("writev-iov-max-plus-1",
        submit("writev", lambda s: Aiocb(s.fd, iov=[b"x"] * (IOV_MAX + 1))), EINVAL, True),
    row("lio-unknown-opcode", _lio_bad_entry(99, lambda s: s.fd, EINVAL), errno.EIO),
    row("lio-mode-7", lambda s: lambda: s.ctx.lio_listio(7, []), EINVAL),
    row("lio-too-many-entries", _too_many_lio_entries, EINVAL),
    row("lio-nowait-bad-sigevent", _lio_bad_sigevent, EINVAL),
    row("aio-suspend-negative-timeout", lambda s: lambda: s.ctx.aio_suspend([], -1), EINVAL),
    row("aio-suspend-nan-timeout",
        lambda s: lambda: s.ctx.aio_suspend([], float("nan")), EINVAL),
    row("aio-suspend-too-many-entries", _too_many_suspend_entries, EINVAL),
    row("aio-waitcomplete-negative-timeout",
        lambda s: lambda: s.ctx.aio_waitcomplete(-0.5), EINVAL),
    row("aio-return-twice", _return_twice, EINVAL),
    row("aio-return-before-done", _return_before_done, EINVAL),
    row("aio-error-never-submitted",
        lambda s: lambda: s.ctx.aio_error(Aiocb(s.fd, bytearray(4))), EINVAL),
    row("aio-return-never-submitted",
        lambda s: lambda: s.ctx.aio_return(Aiocb(s.fd, bytearray(4))), EINVAL),
    row("resubmit-in-flight", _resubmit_in_flight, EINVAL),
    # EINVAL: the sigevent
    row("signal-0", with_sigevent(lambda s: SigEvent(SIGEV_SIGNAL, signo=0)), EINVAL, True),
    row("signal-minus-1", with_sigevent(lambda s: SigEvent(SIGEV_SIGNAL, signo=-1)),
        EINVAL, True),
    row("signal-65", with_sigevent(lambda s: SigEvent(SIGEV_SIGNAL, signo=65)), EINVAL, True),
    row("kevent-without-kqueue", with_sigevent(lambda s: SigEvent(SIGEV_KEVENT)), EINVAL, True),
    row("kevent-flags-ev-add",
        with_sigevent(lambda s: SigEvent(SIGEV_KEVENT, kqueue=s.kqueue(), kevent_flags=EV_ADD)),
        EINVAL, True),
    row("kevent-flags-ev-delete",
        with_sigevent(lambda s: SigEvent(SIGEV_KEVENT, kqueue=s.kqueue(),
                                         kevent_flags=EV_CLEAR | EV_DELETE)), EINVAL, True),
    row("unknown-sigev-notify", with_sigevent(lambda s: SigEvent(99)), EINVAL, True),
    row("sigev-thread-without-function", with_sigevent(lambda s: SigEvent(SIGEV_THREAD)),
        EINVAL, True),
    row("sigevent-not-a-sigevent",
        submit("read", lambda s: Aiocb(s.fd, bytearray(4), sigevent="x")),  # type: ignore
        EINVAL, True),
    # EFAULT: the buffer cannot take the transfer
    row("read-nbytes-over-buffer",
        submit("read", lambda s: Aiocb(s.fd, bytearray(4), 5)), EFAULT, True),
    row("write-nbytes-over-buffer",
        submit("write", lambda s: Aiocb(s.fd, b"abcd", 5)), EFAULT, True),
    row("read-into-bytes", submit("read", lambda s: Aiocb(s.fd, b"abcd")), EFAULT, True),
    row("read-into-read-only-memoryview",
        submit("read", lambda s: Aiocb(s.fd, RO_VIEW)), EFAULT, True),
    row("read-into-strided-memoryview",
        submit("read", lambda s: Aiocb(s.fd, memoryview(bytearray(8))[::2])), EFAULT, True),
    row("readv-read-only-iov-entry",
        submit("readv", lambda s: Aiocb(s.fd, iov=[bytearray(4), b"abcd"])), EFAULT, True),
    row("write-buffer-is-an-int",
        submit("write", lambda s: Aiocb(s.fd, 1234, 4)), EFAULT, True),
    # Kqueue
    row("kqueue-negative-max-events",
        lambda s: (lambda kq: lambda: kq.control(None, -1, 0))(s.kqueue()), EINVAL),
    row("kqueue-closed-control",
        lambda s: (lambda kq: lambda: kq.control(None, 1, 0))(_closed_kqueue(s)), EBADF),
    row("kqueue-evfilt-aio-in-changelist", _changelist(EVFILT_AIO), errno.EPERM),
    row("kqueue-evfilt-lio-in-changelist", _changelist(EVFILT_LIO), errno.EPERM),
    # ownership and lifetime
    row("cancel-other-contexts-cb", _cancel_other_contexts_cb, Returns(AIO_ALLDONE)),
    row("call-on-closed-context", _closed_context, RuntimeError),
    # refused by the kernel when the job runs, not at submit
    row("read-directory-fails-eisdir",
        lambda s: _fails_at_completion(s, Aiocb(s.dirfd, bytearray(8)), False), errno.EISDIR),
    row("write-at-2**62-fails-efbig",
        lambda s: _fails_at_completion(s, Aiocb(s.fd, b"abcd", None, 2**62), True),
        (errno.EFBIG, errno.EINVAL)),
]


def load(ctx: AioContext) -> tuple[int, int, int, int, int]:
    s = ctx.statistics()
    return (s.queued, s.active, s.done, s.parked, s.buffer_jobs)


async def _call(bad: Callable[[], Any]) -> Any:
    result = bad()
    if inspect.isawaitable(result):
        result = await result
    return result


@pytest.mark.parametrize("case", ASYNC_ROWS)
async def test_bad_input(aio: Env, case: Bad) -> None:
    fds, threads = open_fds(), other_threads()
    count = sysctl["vfs.aio.num_queue_count"]
    s = Setup.make(aio)
    try:
        prepared = case.prepare(s)
        bad = await prepared if inspect.isawaitable(prepared) else prepared
        if isinstance(case.expect, Returns):
            assert await _call(bad) == case.expect.value
        elif isinstance(case.expect, type):
            with pytest.raises(case.expect):
                await _call(bad)
        else:
            codes = case.expect if isinstance(case.expect, tuple) else (case.expect,)
            with pytest.raises(OSError) as info:
                await _call(bad)
            assert info.value.errno in codes, info.value
            if case.submit:  # rule 2: the errno in the cb, nothing queued, the cb unknown
                assert s.cb is not None
                assert (s.cb.error, s.cb.status) == (info.value.errno, -1)
                assert load(s.ctx) == (0, 0, 0, 0, 0)
                assert sysctl["vfs.aio.num_queue_count"] == count
                with pytest.raises(OSError) as unknown:
                    s.ctx.aio_error(s.cb)
                assert unknown.value.errno == EINVAL
    finally:
        await s.close()
    assert load(s.ctx) == load(s.other) == (0, 0, 0, 0, 0)
    assert sysctl["vfs.aio.num_queue_count"] == count
    assert open_fds() == fds
    assert other_threads() == threads


# -- bad values where no loop is involved: sysctl, constructors -------------------------------


def _set(name: str, value: object) -> Callable[[], None]:
    def bad() -> None:
        before = sysctl.get(name)
        try:
            sysctl[name] = value  # type: ignore[assignment]
        finally:
            if name in sysctl:
                assert sysctl[name] == before  # a refused value changes nothing

    return bad


def _delete(name: str) -> Callable[[], None]:
    def bad() -> None:
        del sysctl[name]

    return bad


SYNC_ROWS = [
    pytest.param(_set("vfs.aio.max_aio_procs", 0), ValueError, id="sysctl-max-aio-procs-0"),
    pytest.param(_set("vfs.aio.max_aio_queue", -1), ValueError, id="sysctl-minus-1"),
    pytest.param(_set("vfs.aio.max_aio_per_proc", "x"), TypeError, id="sysctl-str"),
    pytest.param(_set("vfs.aio.max_aio_queue_per_proc", 1.5), TypeError, id="sysctl-float"),
    pytest.param(_set("vfs.aio.target_aio_procs", True), TypeError, id="sysctl-bool"),
    pytest.param(_set("vfs.aio.aiod_lifetime", float("nan")), ValueError, id="sysctl-nan"),
    pytest.param(_set("vfs.aio.backend", "fast"), ValueError, id="sysctl-unknown-backend"),
    pytest.param(_set("vfs.aio.no_such_knob", 1), KeyError, id="sysctl-unknown-name"),
    pytest.param(_set("vfs.aio.num_queue_count", 0), PermissionError,
                 id="sysctl-write-counter"),
    pytest.param(_set("p1003_1b.aio_listio_max", 8), PermissionError,
                 id="sysctl-write-aio-listio-max"),
    pytest.param(_delete("vfs.aio.max_aio_procs"), PermissionError, id="sysctl-delete"),
    pytest.param(lambda: AioContext(max_active=0), ValueError, id="context-max-active-0"),
    pytest.param(lambda: AioContext(max_queued=-1), ValueError, id="context-max-queued-minus-1"),
    pytest.param(lambda: AioContext(max_buf=1.5), TypeError,  # type: ignore[arg-type]
                 id="context-max-buf-float"),
    pytest.param(lambda: AioContext(max_active=True), TypeError, id="context-max-active-bool"),
    pytest.param(lambda: SigEvent(True), TypeError, id="sigevent-notify-bool"),
    pytest.param(lambda: SigEvent("1"), TypeError, id="sigevent-notify-str"),  # type: ignore
]


@pytest.fixture
def clean_sysctl() -> Iterator[None]:
    aioposix.sysctl.reset()  # type: ignore[attr-defined]
    yield
    aioposix.sysctl.reset()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("bad", "exc"), SYNC_ROWS)
def test_bad_value(clean_sysctl: None, bad: Callable[[], object],
                   exc: type[BaseException]) -> None:
    fds, threads = open_fds(), other_threads()
    count = sysctl["vfs.aio.num_queue_count"]
    with pytest.raises(exc):
        bad()
    assert sysctl["vfs.aio.num_queue_count"] == count
    assert open_fds() == fds
    assert other_threads() == threads
