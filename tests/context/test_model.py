"""The contract of docs/contract.md, model-checked with random call sequences.

A hypothesis state machine drives one AioContext on one event loop with
random sequences of submits (aio_read, aio_write, aio_readv, aio_writev and
aio_fsync on a regular file; aio_read and aio_write on an AF_UNIX socket
pair), aio_cancel, aio_error, aio_return, aio_suspend, aio_waitcomplete,
``await cb``, lio_listio and context close, and checks every answer against
a small reference model:

- per job: submitted and unresolved (the library may have finished it, we
  have not seen it yet), resolved (we saw its final errno: it never changes
  again), reaped (unknown to the context: aio_error/aio_return say EINVAL);
- the file's expected bytes, updated when a write is seen to complete with
  0 (a job seen to end ECANCELED never lands); writes never overlap an
  unresolved write, so the file is exact whenever nothing is unresolved,
  and a read that no unresolved write overlapped must return model bytes;
- the socket stream: what the reads got, in submission order, is a prefix
  of what the writes sent, in submission order;
- counts: statistics() and vfs.aio.num_queue_count against the unreaped jobs;
- aio_cancel's answer from the jobs' states just before and after the call;
- fsync (rule 18): when it completes, every earlier job on its fd is done;
- an lio_listio(LIO_NOWAIT) sigevent fires exactly once, after every entry.

One TestCase per loop x backend.  HYPOTHESIS_PROFILE=long runs far more.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import socket
import tempfile
import traceback
import unittest
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import uvloop
from helpers import BACKENDS, open_fds
from helpers import loop_errors as catch_loop_errors
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import aioposix
from aioposix import (
    AIO_ALLDONE,
    AIO_CANCELED,
    AIO_NOTCANCELED,
    LIO_NOP,
    LIO_NOWAIT,
    LIO_READ,
    LIO_READV,
    LIO_SYNC,
    LIO_WAIT,
    LIO_WRITE,
    LIO_WRITEV,
    SIGEV_THREAD,
    Aiocb,
    AioContext,
    SigEvent,
)
from aioposix._backends.ring import probe as uring_probe

if TYPE_CHECKING:
    from conftest import Env

SLOT = 16  # writes stay inside one slot, and never overlap an unresolved write
SLOTS = 10
SIZE = SLOT * SLOTS  # the file never grows: reads past it come back short
INITIAL = bytes(range(SIZE))
EINPROGRESS, ECANCELED, EINVAL = errno.EINPROGRESS, errno.ECANCELED, errno.EINVAL
FILE_KINDS = ("read", "readv", "write", "writev", "fsync")
OPCODES = {"read": LIO_READ, "readv": LIO_READV, "write": LIO_WRITE, "writev": LIO_WRITEV,
           "fsync": LIO_SYNC, "sread": LIO_READ, "swrite": LIO_WRITE}

# 6 combinations x 100 = 600 examples in CI (about 15 s); HYPOTHESIS_PROFILE=long: 15 times more
settings.register_profile("long", max_examples=1500, stateful_step_count=80, deadline=None,
                          suppress_health_check=list(HealthCheck))
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
RUN = settings.get_profile("long") if LONG else settings(
    max_examples=100, stateful_step_count=50, deadline=None,
    suppress_health_check=list(HealthCheck))


STUCK = 5.0  # seconds a rule may take before it counts as a hang
INDEX = st.integers(0, 2**16)  # an index into a list whose length depends on the run


def pick(data: st.DataObject, items: list[Any]) -> Any:
    """One of ``items`` (None if empty), always drawing the same way."""
    index = data.draw(INDEX, label="index")
    return items[index % len(items)] if items else None


@dataclass(eq=False)
class Job:
    """The model of one submission of a cb."""

    cb: Aiocb
    kind: str  # read, readv, write, writev, fsync (file); sread, swrite (socket)
    fd: int
    off: int = 0
    length: int = 0  # nbytes (for readv/writev: the iov total)
    data: bytes = b""  # what a write sends
    bufs: list[bytearray] = field(default_factory=list)  # where a read lands
    seq: int = 0
    tainted: bool = False  # a read that an unresolved write overlapped
    earlier: list[Job] = field(default_factory=list)  # fsync: jobs before it on the fd
    final: int | None = None  # the errno, once seen done
    status: int | None = None
    got: bytes = b""  # what a socket read received
    op: int = 0  # fsync: os.O_SYNC or os.O_DSYNC
    reaped: bool = False

    def overlaps(self, off: int, length: int) -> bool:
        return self.off < off + length and off < self.off + self.length


@dataclass(eq=False)
class Batch:
    """An lio_listio(LIO_NOWAIT) with a SIGEV_THREAD sigevent."""

    jobs: list[Job]
    fired: int = 0
    all_done_when_fired: bool = True


class ModelMachine(RuleBasedStateMachine):
    LOOP = "asyncio"
    BACKEND = "inline"

    def __init__(self) -> None:
        super().__init__()
        self.fds_before = open_fds()
        aioposix.sysctl.reset()  # type: ignore[attr-defined]
        backend, inline = BACKENDS[self.BACKEND]
        aioposix.sysctl["vfs.aio.backend"] = backend
        aioposix.sysctl["vfs.aio.inline"] = inline
        self.base_count = aioposix.sysctl["vfs.aio.num_queue_count"]
        self.loop = uvloop.new_event_loop() if self.LOOP == "uvloop" else asyncio.new_event_loop()
        self.loop_errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(self._loop_error)
        self.tmp = tempfile.mkdtemp(prefix="aioposix-model-")
        path = os.path.join(self.tmp, "data.bin")
        with open(path, "wb") as f:
            f.write(INITIAL)
        self.fd = os.open(path, os.O_RDWR)
        self.sw, self.sr = socket.socketpair()  # writes go on sw, reads on sr
        self.ctx = AioContext()
        self.other = AioContext()  # never submits: only asked about our cbs
        self.model = bytearray(INITIAL)
        self.jobs: list[Job] = []  # this context's submissions, reaped ones included
        self.sock_jobs: list[Job] = []  # every socket job, across contexts
        self.idle: list[Aiocb] = [Aiocb(self.fd, bytearray(4))]  # never submitted, or reaped
        self.batches: list[Batch] = []
        self.seq = 0
        self.problems: list[str] = []  # found inside callbacks, reported by an invariant
        self.trace: list[str] = []  # the rules run, for the messages of failed checks
        self.detail = ""
        self.used: set[Aiocb] = set()  # cbs submitted at least once

    def _loop_error(self, _loop: object, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        where = "".join(traceback.format_exception(exc)) if exc is not None else ""
        self.loop_errors.append(f"{context.get('message')}: {where}")

    # -- running ---------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run one rule's calls; a call stuck for STUCK seconds fails the rule
        (pytest-timeout cannot interrupt uvloop)."""
        self.trace.append(coro.__qualname__.split(".")[1] + self.detail)
        self.detail = ""
        return self.loop.run_until_complete(self._bounded(coro))

    async def _bounded(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            async with asyncio.timeout(STUCK):
                return await coro
        except TimeoutError:
            jobs = [(j.seq, j.kind, j.cb.state.value, j.cb.error) for j in self.unreaped()]
            raise AssertionError(f"stuck for {STUCK} s with jobs {jobs}; "
                                 f"loop errors: {self.loop_errors}") from None

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = self.loop.time() + timeout
        while not predicate():
            assert self.loop.time() < deadline, f"condition not met within {timeout} s"
            await asyncio.sleep(0.001)

    def teardown(self) -> None:
        try:
            if not self.loop.is_closed():
                self.run(self._close_context())
                self.run(self.other.aclose())
                self._check_stream(final=True)
                assert not self.loop_errors, self.loop_errors
        finally:
            os.close(self.fd)
            self.sw.close()
            self.sr.close()
            if not self.loop.is_closed():
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.close()
            aioposix.sysctl.reset()  # type: ignore[attr-defined]
            shutil.rmtree(self.tmp, ignore_errors=True)
        leaked = open_fds() - self.fds_before
        assert not leaked, f"descriptors left open: {sorted(leaked)}"

    # -- the model ------------------------------------------------------------------

    def unreaped(self) -> list[Job]:
        return [j for j in self.jobs if not j.reaped]

    def unresolved_writes(self) -> list[Job]:
        return [j for j in self.jobs
                if j.final is None and j.kind in ("write", "writev")]

    def free_slots(self, reserved: tuple[Job, ...] = ()) -> list[int]:
        busy = {j.off // SLOT for j in (*self.unresolved_writes(), *reserved)
                if j.kind in ("write", "writev")}
        return [s for s in range(SLOTS) if s not in busy]

    def known(self, cb: Aiocb) -> bool:
        try:
            self.ctx.aio_error(cb)
        except OSError as exc:
            assert exc.errno == EINVAL
            return False
        return True

    def fresh_cb(self, data: st.DataObject, fd: int) -> Aiocb:
        """A cb to submit: a new one, or one already reaped (rule 3: it may be reused)."""
        reuse = data.draw(st.booleans(), label="reuse a reaped cb")
        which = data.draw(INDEX, label="which")
        if reuse and self.idle:
            cb = self.idle.pop(which % len(self.idle))
            cb.fildes, cb.buf, cb.nbytes, cb.offset, cb.iov = fd, None, None, 0, None
            cb.lio_opcode, cb.sigevent, cb.reqprio = LIO_NOP, None, 0
            return cb
        return Aiocb(fd)

    def make_job(self, data: st.DataObject, kind: str,
                 reserved: tuple[Job, ...] = ()) -> Job | None:
        """A job to submit (None: a write with no free slot).  The draws never
        depend on the library's timing, so hypothesis can replay them."""
        fd = self.sw.fileno() if kind == "swrite" else (
            self.sr.fileno() if kind == "sread" else self.fd)
        cb = self.fresh_cb(data, fd)
        job = Job(cb, kind, fd)
        if kind == "read":
            job.off = data.draw(st.integers(0, SIZE + 32), label="offset")
            job.length = data.draw(st.integers(1, 40), label="nbytes")
            job.bufs = [bytearray(job.length)]
            cb.buf, cb.nbytes, cb.offset = job.bufs[0], job.length, job.off
        elif kind == "readv":
            job.off = data.draw(st.integers(0, SIZE + 16), label="offset")
            sizes = data.draw(st.lists(st.integers(1, 16), min_size=1, max_size=3), label="iov")
            job.bufs = [bytearray(n) for n in sizes]
            job.length = sum(sizes)
            cb.iov, cb.offset = job.bufs, job.off
        elif kind in ("write", "writev"):
            slot = data.draw(INDEX, label="slot")
            inner = data.draw(st.integers(0, SLOT - 1), label="inner offset")
            job.data = data.draw(st.binary(min_size=1, max_size=SLOT - inner), label="data")
            cut = data.draw(st.integers(0, SLOT), label="iov split") % (len(job.data) + 1)
            free = self.free_slots(reserved)
            if not free:
                self.idle.append(cb)
                return None
            job.off = free[slot % len(free)] * SLOT + inner
            job.length = len(job.data)
            cb.offset = job.off
            if kind == "write":
                cb.buf, cb.nbytes = job.data, job.length
            else:
                cb.iov = [job.data[:cut], bytearray(job.data[cut:])]
        elif kind == "sread":
            job.length = data.draw(st.integers(1, 64), label="nbytes")
            job.bufs = [bytearray(job.length)]
            cb.buf, cb.nbytes = job.bufs[0], job.length
        elif kind == "swrite":
            job.data = data.draw(st.binary(min_size=1, max_size=64), label="data")
            job.length = len(job.data)
            cb.buf, cb.nbytes = job.data, job.length
        cb.lio_opcode = OPCODES[kind]
        return job

    def register(self, job: Job) -> None:
        """The job was accepted: it is in flight from now on."""
        self.seq += 1
        job.seq = self.seq
        if job.kind in ("write", "writev"):
            for other in self.jobs:
                if other.kind in ("read", "readv") and other.final is None and other.overlaps(
                        job.off, job.length):
                    other.tainted = True
        elif job.kind in ("read", "readv"):
            job.tainted = any(w.overlaps(job.off, job.length) for w in self.unresolved_writes())
        elif job.kind == "fsync":
            job.earlier = [j for j in self.jobs if j.fd == self.fd and j.final is None]
        if job.kind in ("sread", "swrite"):
            self.sock_jobs.append(job)
        self.jobs.append(job)

    def observe(self, job: Job, err: int, status: int) -> None:
        """We saw the job done with ``err``/``status``: check it and update the model."""
        assert err != EINPROGRESS, f"{job.kind} seen done but EINPROGRESS"
        if job.final is not None:
            assert (err, status) == (job.final, job.status), (
                f"{job.kind}: outcome changed from {(job.final, job.status)} to {(err, status)}")
            return
        assert err in (0, ECANCELED), f"{job.kind} failed with {errno.errorcode.get(err, err)}"
        job.final, job.status = err, status
        if err == ECANCELED:
            assert status == -1, f"cancelled {job.kind} has status {status}"
            return
        if job.kind in ("write", "writev", "swrite"):
            assert status == job.length, f"{job.kind} of {job.length} moved {status}"
            if job.kind != "swrite":
                self.model[job.off:job.off + job.length] = job.data
        elif job.kind in ("read", "readv"):
            want = max(0, min(job.length, SIZE - job.off))
            assert status == want, f"{job.kind} at {job.off} of {job.length}: {status} != {want}"
            got = b"".join(job.bufs)[:status]
            if not job.tainted:
                assert got == self.model[job.off:job.off + status], (
                    f"{job.kind} at {job.off} read {got!r}, "
                    f"model {bytes(self.model[job.off:job.off + status])!r}")
        elif job.kind == "sread":
            assert 1 <= status <= job.length, f"socket read of {job.length} got {status}"
            job.got = bytes(job.bufs[0][:status])
        elif job.kind == "fsync":
            assert status == 0, f"fsync status {status}"
            for before in job.earlier:  # rule 18
                if before.final is None:
                    assert before.cb.error != EINPROGRESS, (
                        f"fsync completed before the earlier {before.kind} (seq {before.seq})")
                    self.observe(before, before.cb.error, before.cb.status)

    def reaped(self, job: Job) -> None:
        job.reaped = True
        self.idle.append(job.cb)

    def poll(self, job: Job) -> int:
        """aio_error, checked against the model."""
        err = self.ctx.aio_error(job.cb)
        assert err == job.cb.error
        if err != EINPROGRESS:
            self.observe(job, err, job.cb.status)
        else:
            assert job.final is None, f"{job.kind} was done, now EINPROGRESS"
        return err

    def job_of(self, cb: Aiocb) -> Job:
        mine = [j for j in self.unreaped() if j.cb is cb]
        assert len(mine) == 1, f"{cb!r} is not one unreaped job of the model"
        return mine[0]

    def _check_stream(self, final: bool = False) -> None:
        """Socket reads, in submission order, got a prefix of what the writes sent."""
        sent = b"".join(j.data[:j.status] if j.final == 0 and j.status is not None else
                        (b"" if j.final == ECANCELED else j.data)
                        for j in self.sock_jobs if j.kind == "swrite")
        got = b""
        for j in (j for j in self.sock_jobs if j.kind == "sread"):
            if j.final is None:
                break
            got += j.got
        assert sent.startswith(got), f"socket reads got {got!r}, writes sent {sent!r}"
        if final:  # everything resolved: what is left in the socket is the rest
            self.sr.setblocking(False)
            rest = b""
            try:
                while chunk := self.sr.recv(65536):
                    rest += chunk
            except BlockingIOError:
                pass
            assert got + rest == sent, f"stream {got!r} + {rest!r} != sent {sent!r}"

    async def _close_context(self) -> None:
        """aclose(): every job ends (ECANCELED if it had not started), and is freed."""
        ctx = self.ctx
        before = [(j.kind, j.cb.state.value, j.cb.error) for j in self.unreaped()]
        await ctx.aclose()
        assert ctx.closed
        for job in self.unreaped():
            assert job.cb.error != EINPROGRESS
            self.observe(job, job.cb.error, job.cb.status)
            self.reaped(job)
        stats = ctx.statistics()
        assert (stats.queued, stats.active, stats.done, stats.parked) == (0, 0, 0, 0)
        count = aioposix.sysctl["vfs.aio.num_queue_count"]
        assert count == self.base_count, (
            f"num_queue_count {count} (was {self.base_count}) after closing on {before}")
        assert os.pread(self.fd, SIZE + 64, 0) == self.model, "file differs from the model"
        await self.until(lambda: all(b.fired for b in self.batches))
        for batch in self.batches:
            assert batch.fired == 1, f"an lio sigevent fired {batch.fired} times"
            assert batch.all_done_when_fired, "an lio sigevent fired before its entries were done"
        self.batches = []
        if self.idle:
            with pytest.raises(RuntimeError):
                ctx.aio_error(self.idle[0])

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def counts_match_the_model(self) -> None:
        assert not self.loop_errors, self.loop_errors
        unreaped = self.unreaped()
        stats = self.ctx.statistics()
        assert stats.queued + stats.active + stats.done + stats.parked == len(unreaped), (
            f"{stats} for {len(unreaped)} unreaped jobs; steps {self.trace[-12:]}")
        assert stats.done >= sum(1 for j in unreaped if j.final is not None)
        assert stats.buffer_jobs == 0
        count = aioposix.sysctl["vfs.aio.num_queue_count"]
        assert count == self.base_count + len(unreaped), (
            f"num_queue_count {count} for {len(unreaped)} unreaped jobs")
        assert not self.problems, self.problems
        assert not self.loop_errors, self.loop_errors

    @invariant()
    def socket_stream_in_order(self) -> None:
        self._check_stream()

    # -- submits ----------------------------------------------------------------------

    def _submit(self, job: Job) -> None:
        ctx, cb = self.ctx, job.cb
        if job.kind in ("read", "sread"):
            ctx.aio_read(cb)
        elif job.kind in ("write", "swrite"):
            ctx.aio_write(cb)
        elif job.kind == "readv":
            ctx.aio_readv(cb)
        elif job.kind == "writev":
            ctx.aio_writev(cb)
        else:
            ctx.aio_fsync(job.op, cb)

    async def _submit_one(self, job: Job) -> None:
        self._submit(job)
        self.register(job)
        assert job.cb.error in (EINPROGRESS, 0), job.cb.error

    @rule(data=st.data(), kind=st.sampled_from(["read", "readv", "sread", "swrite", "fsync",
                                                "write", "writev"]),
          op=st.sampled_from([os.O_SYNC, os.O_DSYNC]))
    def submit(self, data: st.DataObject, kind: str, op: int) -> None:
        job = self.make_job(data, kind)
        if job is not None:
            job.op = op
            reused = " reused cb" if job.cb in self.used else ""
            self.detail = f"({job.kind} #{self.seq + 1}{reused})"
            self.used.add(job.cb)
            self.run(self._submit_one(job))

    @rule(data=st.data())
    def resubmit_in_flight_is_einval(self, data: st.DataObject) -> None:
        """Rule 3: a cb not yet reaped belongs to its context."""
        job = pick(data, self.unreaped())
        if job is None:
            return
        self.detail = f"({job.kind} #{job.seq})"

        async def go() -> None:
            before = self.poll(job)
            with pytest.raises(OSError) as info:
                self._submit(job)
            assert info.value.errno == EINVAL
            assert self.ctx.aio_error(job.cb) == job.cb.error == before

        self.run(go())

    # -- lio_listio -------------------------------------------------------------------

    @rule(data=st.data(), mode=st.sampled_from([LIO_WAIT, LIO_NOWAIT]),
          notify=st.booleans())
    def lio_listio(self, data: st.DataObject, mode: int, notify: bool) -> None:
        kinds = ["read", "readv", "fsync", "swrite", "nop"]
        if mode == LIO_NOWAIT:
            kinds.append("sread")
        jobs: list[Job] = []
        nops: list[Aiocb] = []
        entries: list[Aiocb | None] = []
        for _ in range(data.draw(st.integers(0, 5), label="entries")):
            kind = data.draw(st.sampled_from([*kinds, "write", "writev"]), label="kind")
            if kind == "nop":
                cb = Aiocb(self.fd, bytearray(4), lio_opcode=LIO_NOP)
                nops.append(cb)
                entries.append(data.draw(st.sampled_from([cb, None]), label="nop or None"))
                continue
            job = self.make_job(data, kind, tuple(jobs))
            if job is None:
                continue
            jobs.append(job)
            entries.append(job.cb)
        for job in jobs:  # every draw is made: from here on the batch is submitted
            self.register(job)
        self.detail = f"({'WAIT' if mode == LIO_WAIT else 'NOWAIT'} " + " ".join(
            f"{j.kind}#{j.seq}{'r' if j.cb in self.used else ''}" for j in jobs) + ")"
        self.used.update(j.cb for j in jobs)
        batch = Batch(jobs)
        sigevent = None
        if notify and mode == LIO_NOWAIT:
            sigevent = SigEvent(SIGEV_THREAD, function=self._lio_fired, value=batch)
            self.batches.append(batch)

        async def go() -> None:
            await self.ctx.lio_listio(mode, entries, sigevent)
            for cb in nops:  # LIO_NOP entries are checked, then skipped: never known
                assert not self.known(cb)
                self.idle.append(cb)
            if mode == LIO_WAIT:  # rule 13: every entry is done, none reaped
                for job in jobs:
                    assert self.poll(job) != EINPROGRESS

        self.run(go())

    def _lio_fired(self, batch: object) -> None:
        assert isinstance(batch, Batch)
        batch.fired += 1
        for job in batch.jobs:
            if job.final is None and job.cb.error == EINPROGRESS:
                batch.all_done_when_fired = False
                self.problems.append(f"lio sigevent fired with {job.kind} in progress")

    # -- status and reaping ------------------------------------------------------------

    @rule(data=st.data())
    def aio_error(self, data: st.DataObject) -> None:
        job = pick(data, self.unreaped())
        if job is None:
            return
        self.detail = f"({job.kind} #{job.seq})"
        self.run(self._async(lambda: self.poll(job)))

    async def _async(self, fn: Callable[[], object]) -> object:
        return fn()

    @rule(data=st.data())
    def aio_return(self, data: st.DataObject) -> None:
        """Rule 7: the count once done, EINVAL before; once only."""
        job = pick(data, self.unreaped())
        if job is None:
            return
        self.detail = f"({job.kind} #{job.seq})"

        def go() -> None:
            err = self.poll(job)
            if err == EINPROGRESS:
                with pytest.raises(OSError) as info:
                    self.ctx.aio_return(job.cb)
                assert info.value.errno == EINVAL
                assert self.ctx.aio_error(job.cb) == EINPROGRESS  # still there
                return
            assert self.ctx.aio_return(job.cb) == job.status
            self.reaped(job)
            for call in (self.ctx.aio_return, self.ctx.aio_error):
                with pytest.raises(OSError) as info:
                    call(job.cb)
                assert info.value.errno == EINVAL

        self.run(self._async(go))

    @rule(data=st.data())
    def unknown_cb(self, data: st.DataObject) -> None:
        """Rule 6/7/12: a cb never submitted or already reaped is unknown."""
        cb = pick(data, self.idle)
        if cb is None:
            return

        def go() -> None:
            for call in (self.ctx.aio_error, self.ctx.aio_return):
                with pytest.raises(OSError) as info:
                    call(cb)
                assert info.value.errno == EINVAL
            assert self.ctx.aio_cancel(self.fd, cb) == AIO_ALLDONE

        self.run(self._async(go))

    @rule(data=st.data())
    def other_context_leaves_it_alone(self, data: st.DataObject) -> None:
        """Rules 6 and 12: another context does not know the cb and cannot touch it."""
        job = pick(data, self.unreaped())
        if job is None:
            return
        self.detail = f"({job.kind} #{job.seq})"

        async def go() -> None:
            before = self.poll(job)
            for call in (self.other.aio_error, self.other.aio_return):
                with pytest.raises(OSError) as info:
                    call(job.cb)
                assert info.value.errno == EINVAL
            assert self.other.aio_cancel(job.fd, job.cb) == AIO_ALLDONE
            assert self.other.aio_cancel(job.fd) == AIO_ALLDONE
            await self.other.aio_suspend([job.cb], 0)  # none known to it: at once
            after = self.poll(job)
            # untouched: the same answer, unless it was in flight and has finished since
            assert after == before or before == EINPROGRESS

        self.run(go())

    @rule(data=st.data(), timeout=st.sampled_from([0.001, 0.01, 10.0]))
    def await_cb(self, data: st.DataObject, timeout: float) -> None:
        """Rule 8: await reaps; a cancelled await cancels a queued job, else it
        finishes and reaps itself."""
        job = pick(data, self.unreaped())
        if job is None:
            return
        self.detail = f"({job.kind} #{job.seq})"
        if job.kind == "sread":
            timeout = min(timeout, 0.01)  # it may never complete

        async def go() -> None:
            try:
                async with asyncio.timeout(timeout):
                    status = await job.cb
            except TimeoutError:
                await self.until(lambda: not self.known(job.cb))
                self.observe(job, job.cb.error, job.cb.status)
            except OSError as exc:
                assert exc.errno == job.cb.error
                self.observe(job, job.cb.error, job.cb.status)
            else:
                assert job.cb.error == 0
                self.observe(job, 0, status)
            assert not self.known(job.cb)
            self.reaped(job)

        self.run(go())

    @rule(data=st.data(), timeout=st.sampled_from([0, 0, 0.001, 0.01]))
    def aio_suspend(self, data: st.DataObject, timeout: float) -> None:
        """Rule 9."""
        choices: list[Aiocb | None] = [j.cb for j in self.unreaped()] + self.idle + [None]
        cbs = [choices[i % len(choices)]
               for i in data.draw(st.lists(INDEX, max_size=4), label="cbs")]
        mine = [j for j in self.unreaped() if j.cb in cbs]

        async def go() -> None:
            before = {j: self.poll(j) for j in mine}
            any_done = any(err != EINPROGRESS for err in before.values())
            try:
                await self.ctx.aio_suspend(cbs, timeout)
            except OSError as exc:
                assert exc.errno == errno.EAGAIN
                assert mine and not any_done, "aio_suspend timed out with a job done"
                return
            if timeout == 0:
                assert not mine or any_done, "aio_suspend(0) returned with nothing done"
            if mine:
                after = [self.poll(j) for j in mine]
                assert any(err != EINPROGRESS for err in after), "returned, nothing done"

        self.run(go())

    @rule(steps=st.integers(1, 3), timeout=st.sampled_from([0, 0.005]))
    def aio_waitcomplete(self, steps: int, timeout: float) -> None:
        """Rule 10: each step yields a finished job already reaped; ends when empty."""

        async def go() -> None:
            it = self.ctx.aio_waitcomplete(timeout)
            for _ in range(steps):
                done_before = [j for j in self.unreaped() if j.cb.error != EINPROGRESS]
                try:
                    cb = await it.__anext__()
                except StopAsyncIteration:
                    assert not self.unreaped(), "aio_waitcomplete ended with jobs unreaped"
                    return
                except OSError as exc:
                    assert exc.errno == errno.EAGAIN
                    assert self.unreaped(), "aio_waitcomplete timed out with nothing to wait"
                    assert not done_before, "aio_waitcomplete timed out with a job done"
                    return
                job = self.job_of(cb)
                assert not self.known(cb), "aio_waitcomplete yielded a job not reaped"
                self.observe(job, cb.error, cb.status)
                self.reaped(job)

        self.run(go())

    # -- cancelling ----------------------------------------------------------------------

    def _cancel_outcome(self, targets: list[Job], result: int, before: dict[Job, int]) -> None:
        """Rule 12: the answer agrees with what happened to each matching job."""
        in_flight = [j for j in targets if before[j] == EINPROGRESS]
        after = {j: self.ctx.aio_error(j.cb) for j in targets}
        for job in targets:
            if job not in in_flight:
                assert after[job] == before[job], f"cancel changed a finished {job.kind}"
        if not in_flight:
            assert result == AIO_ALLDONE, f"nothing in flight, aio_cancel said {result}"
        elif all(after[j] == ECANCELED for j in in_flight):
            assert result == AIO_CANCELED, f"all cancelled, aio_cancel said {result}"
        else:
            assert result == AIO_NOTCANCELED, f"some not cancelled, aio_cancel said {result}"
        for job in in_flight:
            err = after[job]
            # a job that was running is not cancelled: still in flight, or finished
            # since (0, or an I/O error), like a socket write that had moved bytes
            assert err == ECANCELED or result == AIO_NOTCANCELED, (
                f"cancel left a {job.kind} with {err} but said {result}")
            if err != EINPROGRESS:
                self.observe(job, err, job.cb.status)

    @rule(which=st.sampled_from(["file", "sread", "swrite"]))
    def aio_cancel_fd(self, which: str) -> None:
        fd = {"file": self.fd, "sread": self.sr.fileno(), "swrite": self.sw.fileno()}[which]
        targets = [j for j in self.unreaped() if j.fd == fd]

        def go() -> None:
            before = {j: self.poll(j) for j in targets}
            self._cancel_outcome(targets, self.ctx.aio_cancel(fd), before)

        self.run(self._async(go))

    @rule(data=st.data(), wrong_fd=st.booleans())
    def aio_cancel_cb(self, data: st.DataObject, wrong_fd: bool) -> None:
        job = pick(data, self.unreaped())
        if job is None:
            return
        self.detail = f"({job.kind} #{job.seq})"

        def go() -> None:
            before = {job: self.poll(job)}
            if wrong_fd:  # the cb is not on that fd: nothing matches
                fd = self.sr.fileno() if job.fd == self.fd else self.fd
                assert self.ctx.aio_cancel(fd, job.cb) == AIO_ALLDONE
                after = self.poll(job)  # untouched; it may have finished meanwhile
                assert after == before[job] or before[job] == EINPROGRESS
                return
            self._cancel_outcome([job], self.ctx.aio_cancel(job.fd, job.cb), before)

        self.run(self._async(go))

    # -- lifetime ----------------------------------------------------------------------------

    @rule()
    def close_and_start_a_fresh_context(self) -> None:
        """Rule 25: rundown cancels what has not started, frees everything."""
        self.run(self._close_context())
        self.jobs = []
        self.ctx = AioContext()


def make(loop: str, backend: str) -> type[unittest.TestCase]:
    machine = type(f"Model_{backend}_{loop}", (ModelMachine,),
                   {"LOOP": loop, "BACKEND": backend})
    case = machine.TestCase
    case.settings = RUN
    if LONG:
        case.pytestmark = [pytest.mark.timeout(0)]  # type: ignore[attr-defined]
    if backend == "io_uring" and (reason := uring_probe()) is not None:
        case = unittest.skip(f"io_uring is not usable here: {reason}")(case)
    return case


uvloop.new_event_loop().close()  # uvloop's process-wide descriptors, before any count

TestModel_inline_asyncio = make("asyncio", "inline")
TestModel_inline_uvloop = make("uvloop", "inline")
TestModel_pool_asyncio = make("asyncio", "pool")
TestModel_pool_uvloop = make("uvloop", "pool")
TestModel_io_uring_asyncio = make("asyncio", "io_uring")
TestModel_io_uring_uvloop = make("uvloop", "io_uring")


# -- what the model found, as plain tests ------------------------------------------------------
# A cancelled job leaves an entry behind in the queue it was taken from (the readiness
# bridge's channel, the pool's per-context queue), and the entries are told apart only by
# the cb's state.  Reaped and submitted again (rule 3 allows it), the cb is picked up
# through the stale entry: ahead of its turn, on the wrong socket, or by the wrong context.


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reaches the running loop's exception handler during the test."""
    with catch_loop_errors() as errors:
        yield errors


async def test_reused_parked_read_keeps_its_place_in_line(aio: Env) -> None:
    """Rule 16: reads on a socket complete in submission order, a reused cb included."""
    r, w = socket.socketpair()
    try:
        async with AioContext() as ctx:
            a, b = Aiocb(r.fileno(), bytearray(4)), Aiocb(r.fileno(), bytearray(4))
            ctx.aio_read(a)
            ctx.aio_read(b)
            assert ctx.aio_cancel(r.fileno(), a) == AIO_CANCELED
            assert ctx.aio_return(a) == -1
            a.buf = bytearray(4)
            ctx.aio_read(a)  # now submitted after b
            w.send(b"firstSECOND")
            assert await asyncio.wait_for(b, 10) == 4
            assert await asyncio.wait_for(a, 10) == 4
            assert (bytes(b.buf), bytes(a.buf)) == (b"firs", b"tSEC")
    finally:
        r.close()
        w.close()


async def test_reused_parked_read_never_reads_the_socket_it_left(aio: Env) -> None:
    """Rules 4 and 25: a job reads only its own fd, and rundown releases every descriptor."""
    r, w = socket.socketpair()
    r2, w2 = socket.socketpair()
    try:
        async with AioContext() as ctx:
            a, b = Aiocb(r.fileno(), bytearray(4)), Aiocb(r.fileno(), bytearray(4))
            ctx.aio_read(a)
            ctx.aio_read(b)
            assert ctx.aio_cancel(r.fileno(), a) == AIO_CANCELED
            assert ctx.aio_return(a) == -1
            a.fildes, a.buf = r2.fileno(), bytearray(4)
            ctx.aio_read(a)  # a read on r2, where nothing is ever sent
            w.send(b"for-b-only")
            assert await asyncio.wait_for(b, 10) == 4
            assert bytes(b.buf) == b"for-"
            assert ctx.aio_error(a) == EINPROGRESS  # r2 has no data: a must still wait
            assert ctx.aio_cancel(r2.fileno(), a) == AIO_CANCELED
            assert ctx.aio_return(a) == -1
            assert r.recv(16) == b"b-only"  # nobody else took r's bytes
    finally:
        for s in (r, w, r2, w2):
            s.close()


@pytest.mark.backends("inline", "pool")  # file jobs on the pool: its queue holds them
async def test_cb_cancelled_in_one_context_runs_for_the_next(
        aio: Env, loop_errors: list[dict[str, Any]]) -> None:
    """Rules 3 and 12: after reaping, a cb may go to another context, and only that one
    completes it."""
    fd = aio.file(b"data")
    try:
        a, b = AioContext(max_active=1), AioContext(max_active=1)
        big_a = Aiocb(fd, bytes(32 << 20), None, 1 << 20)
        a.aio_write(big_a)  # holds a's only pool slot for a while
        x = Aiocb(fd, bytearray(4))
        a.aio_read(x)  # so x waits in a's pool queue
        cancelled = a.aio_cancel(fd, x)
        big_b = Aiocb(fd, bytes(96 << 20), None, 64 << 20)
        b.aio_write(big_b)
        if cancelled == AIO_CANCELED:
            assert a.aio_return(x) == -1
            x.buf = bytearray(4)
            b.aio_read(x)  # reaped: it may be reused, here by another context
        await asyncio.wait_for(big_a, 20)
        if cancelled == AIO_CANCELED:
            assert await asyncio.wait_for(x, 20) == 4
            assert bytes(x.buf) == b"data"
        await asyncio.wait_for(big_b, 20)
        await a.aclose()
        await b.aclose()
        assert not loop_errors, loop_errors
        assert aioposix.sysctl["vfs.aio.num_queue_count"] == 0
    finally:
        os.close(fd)
