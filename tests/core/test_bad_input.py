"""Bad inputs (docs/contract.md, rule 2, 3, 4 and 23): one table, one harness.

Each row of ``ROWS`` is (the call, the bad input, the expected errno or
exception type or return value, what must be unchanged after).  ``prepare``
sets up what the bad call needs (a job in flight, a closed Kqueue, a number
just closed...) and returns the bad call; the harness makes the call and
checks the outcome, then the row's own ``after`` checks (the file's data
still there, a job in flight undisturbed, the context still working), and
after the row's cleanup, for every row, that nothing is left behind: both
contexts show no job in any state, vfs.aio.num_queue_count is back where it
was, and the process has the same descriptors and the same threads (other
than the "aiod-*" worker daemons, which live on by design).

A refused submit (``refused=True``; docs/contract.md, rule 2) also leaves
cb.error = the errno, cb.status = -1, no job in the context, the
process-wide count unmoved, and a cb the context does not know (aio_error:
EINVAL).  Two rows fail at completion instead, as POSIX allows (a read of
a directory, a write past the file-size limit): they are awaited, and the
reaped cb satisfies the same checks.

Bad values that involve no loop (sysctl, constructors) have a table of
their own, ``SYNC_ROWS``.  Behaviours that take more than one call (a
limit refused and then a slot freed, a cb resubmitted while in flight, jobs
on a closed and reused fd number) are plain tests at the end.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import os
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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

if TYPE_CHECKING:
    from conftest import Env

DATA = b"0123456789abcdef"
IOV_MAX = os.sysconf("SC_IOV_MAX")
EINVAL, EBADF, EFAULT = errno.EINVAL, errno.EBADF, errno.EFAULT


def other_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if not t.name.startswith("aiod-")}


# -- the harness ---------------------------------------------------------------------


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
    unused_fd: int  # a number no descriptor has
    sock_r: socket.socket
    sock_w: socket.socket
    queue_count: object = None  # vfs.aio.num_queue_count before the row
    cb: Aiocb | None = None  # the row's cb, for the refused-submit checks
    job: Aiocb | None = None  # a job in flight the bad call must not disturb
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
                   max(open_fds()) + 100, sock_r, sock_w, sysctl["vfs.aio.num_queue_count"])

    def use(self, cb: Aiocb) -> Aiocb:
        self.cb = cb
        return cb

    def closed_now(self) -> int:
        """A descriptor number that was open a moment ago, on the row's file."""
        fd = os.open(self.env.tmp / "data.bin", os.O_RDWR)
        os.close(fd)
        return fd

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
After = Callable[[Setup], Any]  # a check after the bad call (maybe a coroutine)


@dataclass(frozen=True)
class Returns:
    value: object


@dataclass(frozen=True)
class Bad:
    prepare: Prepare
    expect: int | tuple[int, ...] | type[BaseException] | Returns
    refused: bool = False  # the row's cb: errno in cb.error, status -1, unknown, nothing queued
    after: tuple[After, ...] = ()


def row(name: str, prepare: Prepare, expect: Any, refused: bool = False,
        after: tuple[After, ...] = ()) -> Any:
    return pytest.param(Bad(prepare, expect, refused, after), id=name)


OPS = ("read", "write", "readv", "writev", "fsync", "fdatasync")
READS, WRITES, SYNCS = ("read", "readv"), ("write", "writev"), ("fsync", "fdatasync")


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


def submit_call(op: str, ctx: AioContext, cb: Aiocb) -> Callable[[], None]:
    calls: dict[str, Callable[[], None]] = {
        "read": lambda: ctx.aio_read(cb), "write": lambda: ctx.aio_write(cb),
        "readv": lambda: ctx.aio_readv(cb), "writev": lambda: ctx.aio_writev(cb),
        "fsync": lambda: ctx.aio_fsync(os.O_SYNC, cb),
        "fdatasync": lambda: ctx.aio_fsync(os.O_DSYNC, cb)}
    return calls[op]


def submit(op: str, make: Callable[[Setup], Aiocb]) -> Prepare:
    """A row whose bad call is one submit of the cb ``make`` builds."""
    return lambda s: submit_call(op, s.ctx, s.use(make(s)))


def submit_on(op: str, fildes: Callable[[Setup], int], **kw: Any) -> Prepare:
    """One submit of a well-formed cb for ``op`` on the descriptor ``fildes`` gives."""
    return submit(op, lambda s: make_cb(op, fildes(s), **kw))


def _with_sigevent(op: str, make_sev: Callable[[Setup], Any]) -> Prepare:
    return submit(op, lambda s: make_cb(op, s.fd, sigevent=make_sev(s)))


def _fsync_op(op: int) -> Prepare:
    """aio_fsync with ``op`` other than O_SYNC or O_DSYNC."""
    def prepare(s: Setup) -> Callable[[], None]:
        cb = s.use(Aiocb(s.fd))
        return lambda: s.ctx.aio_fsync(op, cb)

    return prepare


def _closed_kqueue(s: Setup) -> Kqueue:
    kq = s.kqueue()
    kq.close()
    return kq


# -- what must be unchanged after -----------------------------------------------------


def data_unchanged(s: Setup) -> None:
    """The file the rows share still holds DATA, nothing more."""
    assert os.pread(s.fd, len(DATA) + 1, 0) == DATA


def nothing_queued(s: Setup) -> None:
    """No job in the context, and the process-wide count where it was."""
    assert load(s.ctx) == (0, 0, 0, 0, 0)
    assert sysctl["vfs.aio.num_queue_count"] == s.queue_count


def cb_unknown(s: Setup) -> None:
    """The row's cb is not a job of the context."""
    assert s.cb is not None
    with pytest.raises(OSError) as info:
        s.ctx.aio_error(s.cb)
    assert info.value.errno == EINVAL


async def job_undisturbed(s: Setup) -> None:
    """The job in flight is still in flight, and completes when its data comes."""
    assert s.job is not None
    assert s.ctx.aio_error(s.job) == errno.EINPROGRESS
    s.sock_w.send(b"ping")
    assert await asyncio.wait_for(s.job, 10) == 4
    assert s.job.buf == b"ping"


async def context_still_works(s: Setup) -> None:
    ok = Aiocb(s.fd, bytearray(4))
    s.ctx.aio_read(ok)
    assert await ok == 4
    assert ok.buf == DATA[:4]


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


def _suspend_with_job_parked(timeout: float) -> Prepare:
    """aio_suspend on a job in flight, with a bad timeout."""

    def prepare(s: Setup) -> Callable[[], Awaitable[None]]:
        s.job = _parked_read(s, s.ctx)
        return lambda: s.ctx.aio_suspend([s.job], timeout)

    return prepare


def _fails_at_completion(make: Callable[[Setup], Aiocb], write: bool) -> Prepare:
    def prepare(s: Setup) -> Callable[[], Aiocb]:
        cb = s.use(make(s))
        (s.ctx.aio_write if write else s.ctx.aio_read)(cb)  # accepted: the kernel says no later
        return lambda: cb  # awaited by the harness

    return prepare


def _accepted(op: str, **kw: Any) -> Prepare:
    """A submit that must be accepted: the call awaits the job."""

    def prepare(s: Setup) -> Callable[[], Awaitable[int]]:
        cb = make_cb(op, s.fd, **kw)

        async def call() -> int:
            submit_call(op, s.ctx, cb)()
            return await cb

        return call

    return prepare


def _too_many_lio_entries(s: Setup) -> Callable[[], Awaitable[None]]:
    limit = sysctl["p1003_1b.aio_listio_max"]
    assert isinstance(limit, int)
    cb = s.use(Aiocb(s.fd, bytearray(4), lio_opcode=LIO_READ))
    return lambda: s.ctx.lio_listio(LIO_WAIT, [cb] + [None] * limit)


def _too_many_suspend_entries(s: Setup) -> Callable[[], Awaitable[None]]:
    limit = sysctl["p1003_1b.aio_listio_max"]
    assert isinstance(limit, int)
    return lambda: s.ctx.aio_suspend([None] * (limit + 1), 0)


def _lio_bad_entry(mode: int, opcode: int, fildes: Callable[[Setup], int],
                   entry_errno: int) -> Prepare:
    """lio_listio with one bad entry: EIO, the entry holds its errno and is no job."""

    def prepare(s: Setup) -> Callable[[], Awaitable[None]]:
        cb = s.use(Aiocb(fildes(s), bytearray(8), lio_opcode=opcode))

        async def bad() -> None:
            try:
                await s.ctx.lio_listio(mode, [cb])
            finally:
                assert cb.error == entry_errno
                assert cb.status == -1

        return bad

    return prepare


def _lio_bad_mode(mode: int) -> Prepare:
    def prepare(s: Setup) -> Callable[[], Awaitable[None]]:
        cb = s.use(Aiocb(s.fd, b"XXXX", lio_opcode=LIO_WRITE))
        return lambda: s.ctx.lio_listio(mode, [cb])

    return prepare


def _lio_bad_sigevent(make_sev: Callable[[Setup], SigEvent]) -> Prepare:
    def prepare(s: Setup) -> Callable[[], Awaitable[None]]:
        cb = s.use(Aiocb(s.fd, b"XXXX", lio_opcode=LIO_WRITE))
        sev = make_sev(s)

        async def bad() -> None:
            try:
                await s.ctx.lio_listio(LIO_NOWAIT, [cb], sev)
            finally:  # refused before any entry was queued: the entry untouched
                assert (cb.error, cb.status) == (0, -1)

        return bad

    return prepare


def _changelist(kfilter: int) -> Prepare:
    def prepare(s: Setup) -> Callable[[], Awaitable[list[KEvent]]]:
        kq = s.kqueue()
        return lambda: kq.control([KEvent(object(), kfilter, EV_ADD)], 0, 0)

    return prepare


CLOSED_CONTEXT_CALLS: dict[str, Callable[[AioContext, int], Any]] = {
    "aio_read": lambda c, fd: c.aio_read(make_cb("read", fd)),
    "aio_write": lambda c, fd: c.aio_write(make_cb("write", fd)),
    "aio_readv": lambda c, fd: c.aio_readv(make_cb("readv", fd)),
    "aio_writev": lambda c, fd: c.aio_writev(make_cb("writev", fd)),
    "aio_fsync": lambda c, fd: c.aio_fsync(os.O_SYNC, Aiocb(fd)),
    "aio_error": lambda c, fd: c.aio_error(make_cb("read", fd)),
    "aio_return": lambda c, fd: c.aio_return(make_cb("read", fd)),
    "aio_cancel": lambda c, fd: c.aio_cancel(fd),
    "aio_suspend": lambda c, fd: c.aio_suspend([make_cb("read", fd)], 1),
    "lio_listio": lambda c, fd: c.lio_listio(LIO_WAIT, [make_cb("read", fd,
                                                                lio_opcode=LIO_READ)]),
    "aio_waitcomplete": lambda c, fd: c.aio_waitcomplete(1).__anext__(),
}


def _on_closed_context(name: str) -> Prepare:
    async def prepare(s: Setup) -> Callable[[], Any]:
        ctx = AioContext()
        await ctx.aclose()
        assert ctx.closed
        return lambda: CLOSED_CONTEXT_CALLS[name](ctx, s.fd)

    return prepare


# -- the table ------------------------------------------------------------------------

# sigevents refused at submit (rule 2): (id, make, errno)
SIGEVENTS: list[tuple[str, Callable[[Setup], Any], int]] = [
    ("signal-0", lambda s: SigEvent(SIGEV_SIGNAL, signo=0), EINVAL),
    ("signal-minus-1", lambda s: SigEvent(SIGEV_SIGNAL, signo=-1), EINVAL),
    ("signal-65", lambda s: SigEvent(SIGEV_SIGNAL, signo=65), EINVAL),
    ("unknown-notify-99", lambda s: SigEvent(99), EINVAL),
    ("unknown-notify-666", lambda s: SigEvent(666), EINVAL),
    ("thread-without-function", lambda s: SigEvent(SIGEV_THREAD), EINVAL),
    ("kevent-without-kqueue", lambda s: SigEvent(SIGEV_KEVENT), EINVAL),
    ("kevent-closed-kqueue", lambda s: SigEvent(SIGEV_KEVENT, kqueue=_closed_kqueue(s)), EBADF),
    ("kevent-flags-ev-add",
     lambda s: SigEvent(SIGEV_KEVENT, kqueue=s.kqueue(), kevent_flags=EV_ADD), EINVAL),
    ("kevent-flags-ev-clear-and-ev-add",
     lambda s: SigEvent(SIGEV_KEVENT, kqueue=s.kqueue(), kevent_flags=EV_CLEAR | EV_ADD),
     EINVAL),
    ("kevent-flags-ev-clear-and-ev-delete",
     lambda s: SigEvent(SIGEV_KEVENT, kqueue=s.kqueue(), kevent_flags=EV_CLEAR | EV_DELETE),
     EINVAL),
    ("not-a-sigevent", lambda s: "x", EINVAL),
]

RO_VIEW = memoryview(bytearray(8)).toreadonly()
UNTOUCHED = (data_unchanged,)
UNQUEUED = (nothing_queued, cb_unknown)
UNKNOWN_AND_UNTOUCHED = (*UNQUEUED, data_unchanged)

ROWS = [
    # EBADF: not an open descriptor, or not open the right way
    *[row(f"{op}-closed-fd", submit_on(op, Setup.closed_now), EBADF, True) for op in OPS],
    *[row(f"{op}-fd-minus-1", submit_on(op, lambda s: -1), EBADF, True) for op in OPS],
    row("read-unused-fd-number",
        submit("read", lambda s: Aiocb(s.unused_fd, bytearray(4))), EBADF, True),
    *[row(f"{op}-on-o-rdonly", submit_on(op, lambda s: s.rdonly), EBADF, True, UNTOUCHED)
      for op in WRITES],
    *[row(f"{op}-on-o-wronly", submit_on(op, lambda s: s.wronly), EBADF, True)
      for op in READS],
    row("read-o-path-fd", submit_on("read", lambda s: s.opath), EBADF, True),
    row("fsync-o-path-fd", submit_on("fsync", lambda s: s.opath), EBADF, True),
    row("aio-cancel-unused-fd-number", lambda s: lambda: s.ctx.aio_cancel(s.unused_fd), EBADF),
    row("aio-cancel-fd-minus-1", lambda s: lambda: s.ctx.aio_cancel(-1), EBADF),
    row("lio-wait-nop-entry-unused-fd-number",
        _lio_bad_entry(LIO_WAIT, LIO_NOP, lambda s: s.unused_fd, EBADF), errno.EIO,
        after=UNQUEUED),
    # rule 5: a LIO_NOP entry is checked like any other
    *[row(f"lio-nowait-{name}-entry-fd-minus-1",
          _lio_bad_entry(LIO_NOWAIT, opcode, lambda s: -1, EBADF), errno.EIO,
          after=UNQUEUED)
      for name, opcode in (("write", LIO_WRITE), ("read", LIO_READ), ("nop", LIO_NOP))],
    # EINVAL: counts, offsets, opcodes, priorities
    row("read-negative-nbytes",
        submit("read", lambda s: Aiocb(s.fd, bytearray(4), -1)), EINVAL, True),
    row("write-negative-nbytes",
        submit("write", lambda s: Aiocb(s.fd, b"abcd", -1)), EINVAL, True, UNTOUCHED),
    *[row(f"{op}-offset-minus-1", submit_on(op, lambda s: s.fd, offset=-1), EINVAL, True,
          UNTOUCHED) for op in READS + WRITES],
    row("write-offset-2**63",
        submit("write", lambda s: Aiocb(s.fd, b"abcd", None, 2**63)), EINVAL, True, UNTOUCHED),
    row("read-offset-str",
        submit("read", lambda s: Aiocb(s.fd, bytearray(4), None, "0")), EINVAL, True),
    row("write-offset-float",
        submit("write", lambda s: Aiocb(s.fd, b"abcd", None, 1.0)), EINVAL, True, UNTOUCHED),
    row("read-nbytes-float",
        submit("read", lambda s: Aiocb(s.fd, bytearray(4), 1.5)), EINVAL, True),
    *[row(f"{op}-negative-reqprio", submit_on(op, lambda s: s.fd, reqprio=-1), EINVAL, True,
          UNTOUCHED) for op in READS + WRITES],
    *[row(f"fsync-op-{op}", _fsync_op(op), EINVAL, True) for op in (0, 666)],
    row("readv-iov-not-a-sequence",
        submit("readv", lambda s: Aiocb(s.fd, iov=5)), EINVAL, True),  # type: ignore[arg-type]
    row("writev-iov-none", submit("writev", lambda s: Aiocb(s.fd)), EINVAL, True, UNTOUCHED),
    *[row(f"{op}-iov-max-plus-1", submit(op, lambda s: Aiocb(
        s.fd, iov=[bytearray(1) for _ in range(IOV_MAX + 1)])), EINVAL, True, UNTOUCHED)
      for op in ("readv", "writev")],
    row("lio-wait-opcode-99", _lio_bad_entry(LIO_WAIT, 99, lambda s: s.fd, EINVAL), errno.EIO,
        after=UNKNOWN_AND_UNTOUCHED),
    *[row(f"lio-{name}-opcode-666", _lio_bad_entry(mode, 666, lambda s: s.fd, EINVAL),
          errno.EIO, after=UNKNOWN_AND_UNTOUCHED)
      for name, mode in (("nowait", LIO_NOWAIT), ("wait", LIO_WAIT))],
    row("lio-mode-7-no-entries", lambda s: lambda: s.ctx.lio_listio(7, []), EINVAL,
        after=(nothing_queued,)),
    *[row(f"lio-mode-{mode}", _lio_bad_mode(mode), EINVAL, after=UNKNOWN_AND_UNTOUCHED)
      for mode in (7, -1)],
    row("lio-too-many-entries", _too_many_lio_entries, EINVAL, after=UNQUEUED),
    row("aio-suspend-negative-timeout", lambda s: lambda: s.ctx.aio_suspend([], -1), EINVAL),
    row("aio-suspend-nan-timeout",
        lambda s: lambda: s.ctx.aio_suspend([], float("nan")), EINVAL),
    *[row(f"aio-suspend-timeout-{timeout}-job-parked", _suspend_with_job_parked(timeout),
          EINVAL, after=(job_undisturbed,)) for timeout in (-1, -0.001, float("nan"))],
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
    # the sigevent: every bad one, on every kind of submit and on lio_listio
    *[row(f"{op}-sigevent-{name}", _with_sigevent(op, make), code, True, UNTOUCHED)
      for name, make, code in SIGEVENTS for op in ("read", "write", "fsync")],
    *[row(f"lio-nowait-sigevent-{name}", _lio_bad_sigevent(make), code,
          after=UNKNOWN_AND_UNTOUCHED) for name, make, code in SIGEVENTS],
    # EFAULT: the buffer cannot take the transfer
    row("read-nbytes-over-buffer",
        submit("read", lambda s: Aiocb(s.fd, bytearray(4), 5)), EFAULT, True),
    row("write-nbytes-over-buffer",
        submit("write", lambda s: Aiocb(s.fd, b"abcd", 5)), EFAULT, True, UNTOUCHED),
    row("read-nbytes-8-over-buffer-of-9",
        submit("read", lambda s: Aiocb(s.fd, bytearray(8), 9)), EFAULT, True),
    row("write-nbytes-8-over-buffer-of-9",
        submit("write", lambda s: Aiocb(s.fd, b"abcdefgh", 9)), EFAULT, True, UNTOUCHED),
    row("read-into-bytes", submit("read", lambda s: Aiocb(s.fd, b"abcd")), EFAULT, True),
    row("read-into-read-only-memoryview",
        submit("read", lambda s: Aiocb(s.fd, RO_VIEW)), EFAULT, True),
    row("read-into-strided-memoryview",
        submit("read", lambda s: Aiocb(s.fd, memoryview(bytearray(8))[::2])), EFAULT, True),
    row("readv-read-only-last-iov-entry",
        submit("readv", lambda s: Aiocb(s.fd, iov=[bytearray(4), b"abcd"])), EFAULT, True),
    row("readv-read-only-middle-iov-entry",
        submit("readv", lambda s: Aiocb(s.fd, iov=[bytearray(4), b"read-only", bytearray(4)])),
        EFAULT, True),
    row("write-buffer-is-an-int",
        submit("write", lambda s: Aiocb(s.fd, 1234, 4)), EFAULT, True, UNTOUCHED),
    # Kqueue
    row("kqueue-negative-max-events",
        lambda s: (lambda kq: lambda: kq.control(None, -1, 0))(s.kqueue()), EINVAL),
    row("kqueue-closed-control",
        lambda s: (lambda kq: lambda: kq.control(None, 1, 0))(_closed_kqueue(s)), EBADF),
    row("kqueue-evfilt-aio-in-changelist", _changelist(EVFILT_AIO), errno.EPERM),
    row("kqueue-evfilt-lio-in-changelist", _changelist(EVFILT_LIO), errno.EPERM),
    # ownership and lifetime
    row("cancel-other-contexts-cb", _cancel_other_contexts_cb, Returns(AIO_ALLDONE)),
    *[row(f"closed-context-{name}", _on_closed_context(name), RuntimeError,
          after=(nothing_queued,)) for name in CLOSED_CONTEXT_CALLS],
    # not bad: fsync ignores reqprio (it has no priority to check)
    *[row(f"{op}-ignores-negative-reqprio", _accepted(op, reqprio=-1), Returns(0))
      for op in SYNCS],
    # refused by the kernel when the job runs, not at submit
    row("read-directory-fails-eisdir",
        _fails_at_completion(lambda s: Aiocb(s.dirfd, bytearray(8)), False), errno.EISDIR,
        True, (context_still_works,)),
    row("write-at-2**62-fails-efbig",
        _fails_at_completion(lambda s: Aiocb(s.fd, b"abcd", None, 2**62), True),
        (errno.EFBIG, errno.EINVAL), True, UNTOUCHED),
]


def load(ctx: AioContext) -> tuple[int, int, int, int, int]:
    s = ctx.statistics()
    return (s.queued, s.active, s.done, s.parked, s.buffer_jobs)


async def _call(bad: Callable[[], Any]) -> Any:
    result = bad()
    if inspect.isawaitable(result):
        result = await result
    return result


async def _check_outcome(case: Bad, s: Setup, bad: Callable[[], Any], count: object) -> None:
    if isinstance(case.expect, Returns):
        assert await _call(bad) == case.expect.value
        return
    if isinstance(case.expect, type):
        with pytest.raises(case.expect):
            await _call(bad)
        return
    codes = case.expect if isinstance(case.expect, tuple) else (case.expect,)
    with pytest.raises(OSError) as info:
        await _call(bad)
    assert info.value.errno in codes, info.value
    if case.refused:  # rule 2: the errno in the cb, nothing queued, the cb unknown
        assert s.cb is not None
        assert (s.cb.error, s.cb.status) == (info.value.errno, -1)
        assert load(s.ctx) == (0, 0, 0, 0, 0)
        assert sysctl["vfs.aio.num_queue_count"] == count
        cb_unknown(s)


@pytest.mark.parametrize("case", ROWS)
async def test_bad_input(aio: Env, case: Bad) -> None:
    fds, threads = open_fds(), other_threads()
    count = sysctl["vfs.aio.num_queue_count"]
    s = Setup.make(aio)
    try:
        prepared = case.prepare(s)
        bad = await prepared if inspect.isawaitable(prepared) else prepared
        await _check_outcome(case, s, bad, count)
        for check in case.after:
            if inspect.isawaitable(done := check(s)):
                await done
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


# -- plain tests: behaviours that take more than one call --------------------------------------

Submit = Callable[[AioContext, Aiocb], None]



def submitter(op: str) -> Submit:
    return lambda ctx, cb: submit_call(op, ctx, cb)()


@pytest.fixture
async def ctx(aio: Env) -> AsyncIterator[AioContext]:
    async with AioContext() as context:
        yield context


@pytest.fixture
def fd(aio: Env) -> Iterator[int]:
    descriptor = aio.file(DATA)
    yield descriptor
    os.close(descriptor)


def jobs_in(ctx: AioContext) -> tuple[int, int, int]:
    """The context's jobs by state (queued, running and done together: workers move
    jobs between those on their own)."""
    stats = ctx.statistics()
    return (stats.queued + stats.active + stats.done, stats.parked, stats.buffer_jobs)


def assert_nothing_queued(ctx: AioContext, cb: Aiocb, queue_count: int,
                          jobs: tuple[int, int, int] = (0, 0, 0)) -> None:
    assert jobs_in(ctx) == jobs
    assert sysctl["vfs.aio.num_queue_count"] == queue_count
    with pytest.raises(OSError) as info:
        ctx.aio_error(cb)
    assert info.value.errno == errno.EINVAL


def assert_refused(ctx: AioContext, submit: Submit, cb: Aiocb, code: int) -> None:
    """``submit(ctx, cb)`` fails with ``code`` and leaves no trace."""
    before, jobs = sysctl["vfs.aio.num_queue_count"], jobs_in(ctx)
    with pytest.raises(OSError) as info:
        submit(ctx, cb)
    assert info.value.errno == code
    assert cb.error == code
    assert cb.status == -1
    assert_nothing_queued(ctx, cb, before, jobs)


async def test_iovcnt_of_exactly_iov_max_is_accepted(ctx: AioContext, fd: int) -> None:
    iov = [bytearray(1) for _ in range(os.sysconf("SC_IOV_MAX"))]
    cb = Aiocb(fd, iov=iov)
    ctx.aio_readv(cb)
    assert await cb == 16
    assert b"".join(iov[:16]) == b"0123456789abcdef"


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
            assert_refused(ctx, submitter("read"), cb, errno.EAGAIN)
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
