"""The machinery of the state machine of tests/context/test_model.py: its setup and
teardown, running a rule on its loop, seeing jobs finish, and the checks.

Replayable by construction: the rules draw every choice from hypothesis
before they call the library, and pick jobs by drawn indices over lists
whose contents depend only on earlier draws (the jobs in submission order,
the cbs reaped whatever the timing).  What depends on timing (which job is
done, whether a read was served inline) is only checked against the model.
"""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import signal
import socket
import traceback
import tty
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import pytest
import uvloop
from helpers import open_fds
from hypothesis import event
from hypothesis.stateful import RuleBasedStateMachine, invariant
from model_state import ECANCELED, EINPROGRESS, EINVAL, FileModel, Job, StreamModel

import aioposix
from aioposix import (
    EVFILT_AIO,
    SIGEV_KEVENT,
    SIGEV_SIGNAL,
    SIGEV_THREAD,
    Aiocb,
    AioContext,
    Kqueue,
    SigEvent,
)

if TYPE_CHECKING:
    from conftest import Env

SIZE = 128  # the main file never grows: reads past it come back short
APPEND_START = b"start:"
STUCK = 30.0  # seconds a rule may take before it counts as a hang (a slow disk stalls for seconds)
# real-time signals: queued, never merged; a job's is told by its id, so that a
# missing one narrows down to a few jobs
SIGNOS = tuple(range(signal.SIGRTMIN + 3, signal.SIGRTMIN + 11))
DIRECT_BLOCKS = 4


def initial_bytes(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def open_direct(path: str, size: int) -> tuple[int, int] | str:
    """An O_DIRECT fd on a new file of ``size`` blocks and its block size, or why not."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT)
    except OSError as exc:
        return f"the filesystem refuses O_DIRECT: {exc}"
    block = os.fstat(fd).st_blksize or 4096
    buf = mmap.mmap(-1, block * size)
    try:
        buf.write(bytes([0xD0]) * (block * size))
        if os.pwrite(fd, buf, 0) != block * size:
            raise OSError(errno.EIO, "short O_DIRECT write")
    except OSError as exc:
        os.close(fd)
        return f"an O_DIRECT write fails here: {exc}"
    finally:
        buf.close()
    return fd, block


class MachineBase(RuleBasedStateMachine):
    """Setup, teardown and the shared model operations; the rules are in the subclass."""

    ENV: Env  # set by the test on a subclass made for it
    examples = 0

    def __init__(self) -> None:
        super().__init__()
        self.fds_before = open_fds()
        env = self.ENV
        self.env = env
        self.base_count = int(aioposix.sysctl["vfs.aio.num_queue_count"])
        self.loop = uvloop.new_event_loop() if env.loop == "uvloop" else asyncio.new_event_loop()
        self.loop_errors: list[str] = []
        self.loop.set_exception_handler(self._loop_error)
        self.signals = dict.fromkeys(SIGNOS, 0)
        for signo in SIGNOS:
            self.loop.add_signal_handler(signo, self._on_signal, signo)
        MachineBase.examples += 1
        self.tmp = env.tmp / f"model{MachineBase.examples}"
        self.tmp.mkdir()
        self.files: list[FileModel] = []
        self.streams: list[StreamModel] = []
        self._open_files()
        self._open_streams()
        self.kq = Kqueue()
        self.ctx = AioContext()
        self.other = AioContext()  # never submits: only asked about our cbs
        self.jobs: list[Job] = []  # this context's submissions, in order, reaped ones too
        self.by_id: dict[int, Job] = {}  # every job, by the value its sigevent carries
        self.owner: dict[Aiocb, Job] = {}  # each cb's latest submission
        self.reusable: list[Aiocb] = [Aiocb(self.main.fd, bytearray(4))]  # reaped, whatever
        self.batches: list[Any] = []
        self.clock = 0
        self.in_submit = 0
        self.problems: list[str] = []  # found inside callbacks, reported by an invariant
        self.trace: list[str] = []
        self.detail = ""
        self.closed = False
        self.run(self._home_kqueue())

    async def _home_kqueue(self) -> None:
        """The Kqueue lives on this loop (events from other threads hop here)."""
        assert await self.kq.control(None, 0, 0) == []

    def _open_files(self) -> None:
        path = str(self.tmp / "data.bin")
        with open(path, "wb") as f:
            f.write(initial_bytes(SIZE))
        self.main = FileModel("file", path, os.open(path, os.O_RDWR), initial_bytes(SIZE))
        path = str(self.tmp / "append.log")
        with open(path, "wb") as f:
            f.write(APPEND_START)
        self.append = FileModel("append", path, os.open(path, os.O_RDWR | os.O_APPEND),
                                APPEND_START, append=True)
        self.files = [self.main, self.append]
        self.direct: FileModel | None = None
        path = str(self.tmp / "direct.bin")
        got = open_direct(path, DIRECT_BLOCKS)
        self.direct_refused = got if isinstance(got, str) else ""
        if not isinstance(got, str):
            fd, block = got
            self.direct = FileModel("direct", path, fd, bytes([0xD0]) * (block * DIRECT_BLOCKS),
                                    unit=block)
            self.files.append(self.direct)

    def _open_streams(self) -> None:
        self.sock_w, self.sock_r = socket.socketpair()
        r, w = os.pipe()
        fifo = str(self.tmp / "fifo")
        os.mkfifo(fifo)
        fr = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        fw = os.open(fifo, os.O_WRONLY)
        os.set_blocking(fr, True)
        master, slave = os.openpty()
        tty.setraw(slave)  # bytes pass unchanged: no echo, no line editing, no signals
        self.streams = [StreamModel("socket", self.sock_r.fileno(), self.sock_w.fileno()),
                        StreamModel("pipe", r, w), StreamModel("fifo", fr, fw),
                        StreamModel("tty", slave, master)]

    def _loop_error(self, _loop: object, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        where = "".join(traceback.format_exception(exc)) if exc is not None else ""
        self.loop_errors.append(f"{context.get('message')}: {where}")

    def _on_signal(self, signo: int) -> None:
        self.signals[signo] += 1

    # -- running ---------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run one rule's calls on the machine's loop, bounded by STUCK seconds."""
        names = getattr(coro, "__qualname__", "rule").split(".")
        self.trace.append(names[min(1, len(names) - 1)] + self.detail)
        self.detail = ""
        return self.loop.run_until_complete(self._bounded(coro))

    async def _bounded(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            async with asyncio.timeout(STUCK):
                return await coro
        except TimeoutError:
            raise AssertionError(self.stuck(f"stuck for {STUCK} s")) from None

    def stuck(self, what: str) -> str:
        """What a hang leaves to see: every unreaped job and each context's counts."""
        jobs = [(j.id, j.kind, j.target.name, j.notify, j.cb.state.value, j.cb.error)
                for j in self.jobs if not j.reaped]
        contexts = {"ours": self.ctx, "other": self.other}
        default = aioposix.current_context()
        contexts["default"] = default
        counts = {name: ctx.statistics() for name, ctx in contexts.items() if not ctx.closed}
        return (f"{self.env.backend}/{self.env.loop}: {what} in {self.trace[-1]} with jobs "
                f"{jobs}; contexts {counts}; loop errors: {self.loop_errors}; "
                f"steps {self.trace[-15:]}")

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0,
                    what: str = "condition") -> None:
        deadline = self.loop.time() + timeout
        while not predicate():
            assert self.loop.time() < deadline, f"{what} not met within {timeout} s"
            await asyncio.sleep(0.001)

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def teardown(self) -> None:
        try:
            if not self.closed:
                self.run(self.close_context())
                self.run(self.other.aclose())
                self.run(self.final_events())
                for stream in self.streams:
                    stream.check(stream.drain())
                assert not self.loop_errors, self.loop_errors
                assert not self.problems, self.problems
        finally:
            self._release()
        leaked = open_fds() - self.fds_before
        assert not leaked, f"descriptors left open: {sorted(leaked)}"
        count = aioposix.sysctl["vfs.aio.num_queue_count"]  # with the loop closed too
        assert count == self.base_count, (
            f"num_queue_count {count} (was {self.base_count}) once the loop is closed; "
            f"steps {self.trace[-15:]}")

    def _release(self) -> None:
        for model in self.files:
            os.close(model.fd)
        self.sock_w.close()
        self.sock_r.close()
        for stream in self.streams[1:]:
            os.close(stream.rfd)
            os.close(stream.wfd)
        self.kq.close()
        if not self.loop.is_closed():
            for signo in SIGNOS:
                self.loop.remove_signal_handler(signo)
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    # -- seeing jobs finish --------------------------------------------------------

    def observe(self, job: Job, err: int, status: int) -> None:
        """We saw the job done with ``err``/``status``: check it, update the model."""
        assert err != EINPROGRESS, f"{job} seen done but EINPROGRESS"
        if job.final is not None:
            assert (err, status) == (job.final, job.status), (
                f"{job}: outcome changed from {(job.final, job.status)} to {(err, status)}")
            return
        assert err in (0, ECANCELED), f"{job} failed with {errno.errorcode.get(err, err)}"
        job.final, job.status, job.seen_at = err, status, self.tick()
        event(f"done: {job.kind} on {job.target.name}, {errno.errorcode.get(err, 'ok')}")
        if err == ECANCELED:
            assert status == -1, f"cancelled {job} has status {status}"
            return
        check = getattr(self, f"_done_{job.kind}")
        check(job, status)

    def _done_write(self, job: Job, status: int) -> None:
        assert status == job.length, f"{job} moved {status}"

    _done_writev = _done_write

    def _done_swrite(self, job: Job, status: int) -> None:
        # a stream write ends short only when cancelled after moving bytes (rule 12)
        assert status == job.length or (job.cancel_tried and 0 < status < job.length), (
            f"{job} moved {status}")

    def _done_read(self, job: Job, status: int) -> None:
        target = job.target
        assert isinstance(target, FileModel)
        want = max(0, min(job.length, target.size - job.off))
        assert status == want, f"{job}: {status} bytes, not {want}"
        got = b"".join(bytes(b) for b in job.bufs)[:status]
        target.check_range(got, job.off, job.submitted_at, repr(job))

    _done_readv = _done_read

    def _done_sread(self, job: Job, status: int) -> None:
        assert 1 <= status <= job.length, f"{job} got {status}"
        job.got = bytes(job.bufs[0][:status])

    def _done_fsync(self, job: Job, status: int) -> None:
        assert status == 0, f"{job} status {status}"
        for before in job.earlier:  # rule 18
            if before.final is None:
                assert self.owner.get(before.cb) is before and before.cb.error != EINPROGRESS, (
                    f"{job} completed before the earlier {before}")
                self.observe(before, before.cb.error, before.cb.status)

    def poll(self, job: Job) -> int:
        """aio_error of an unreaped job of the current context, checked."""
        err = self.ctx.aio_error(job.cb)
        assert err == job.cb.error
        if err != EINPROGRESS:
            self.observe(job, err, job.cb.status)
        else:
            assert job.final is None, f"{job} was done, now EINPROGRESS"
        return err

    def reaped(self, job: Job, exact_kevent: bool = False) -> None:
        """A call of ours reaped the job (whether it had to depends on timing)."""
        job.reaped = True
        if job.notify == "kevent" and not exact_kevent and not job.kevents:
            job.kevent_exact = False  # its event may have gone with it

    def settle(self, job: Job) -> None:
        """The job is reaped now whatever the timing: its cb may be reused."""
        assert job.reaped
        if not job.settled:
            job.settled = True
            self.reusable.append(job.cb)

    def unreaped(self) -> list[Job]:
        return [j for j in self.jobs if not j.reaped]

    def live(self, job: Job) -> bool:
        """The job is this context's, unreaped, and still owns its cb."""
        return not job.reaped and self.owner.get(job.cb) is job and job.ctx is self.ctx

    def job_of(self, cb: Aiocb) -> Job:
        job = self.owner.get(cb)
        assert job is not None and self.live(job), f"{cb!r} is not an unreaped job of ours"
        return job

    def _unknown(self, ctx: AioContext, cb: Aiocb) -> None:
        """Rules 6 and 7: aio_error and aio_return say EINVAL for a cb ctx does not know."""
        for call in (ctx.aio_error, ctx.aio_return):
            with pytest.raises(OSError) as info:
                call(cb)
            assert info.value.errno == EINVAL

    def known(self, cb: Aiocb) -> bool:
        try:
            self.ctx.aio_error(cb)
        except OSError as exc:
            assert exc.errno == EINVAL
            return False
        return True

    # -- sigevents -----------------------------------------------------------------

    def sigevent(self, job: Job, kevent_flags: int) -> SigEvent | None:
        if job.notify == "thread":
            return SigEvent(SIGEV_THREAD, function=self._fired, value=job.id)
        if job.notify == "signal":
            job.signo = SIGNOS[job.id % len(SIGNOS)]
            return SigEvent(SIGEV_SIGNAL, signo=job.signo)
        if job.notify == "kevent":
            return SigEvent(SIGEV_KEVENT, kqueue=self.kq, value=job.id, kevent_flags=kevent_flags)
        return None

    def _fired(self, value: object) -> None:
        """A job's SIGEV_THREAD function: once, on the loop thread, after the job is done."""
        job = self.by_id[value]  # type: ignore[index]
        job.calls += 1
        if self.in_submit:
            self.problems.append(f"{job}: its sigevent ran inside a submit call (rule 21)")
        if job.calls > 1:
            self.problems.append(f"{job}: its sigevent ran {job.calls} times")
        if self.owner.get(job.cb) is job and job.cb.error == EINPROGRESS:
            self.problems.append(f"{job}: its sigevent ran while it was in flight")

    async def collect_events(self, timeout: float = 0) -> int:
        """Take every EVFILT_AIO event the Kqueue has: each is a finished job of
        ours with its udata, seen once; reap the live ones (by the event's ident)."""
        seen = 0
        while events := await self.kq.control(None, 64, timeout):
            timeout = 0
            for ev in events:
                seen += 1
                self._event(ev)
        return seen

    def _event(self, ev: Any) -> None:
        assert ev.filter == EVFILT_AIO, ev
        job = self.by_id.get(ev.udata)
        assert job is not None and job.notify == "kevent", f"an event of no kevent job: {ev}"
        assert ev.ident is job.cb, f"{job}: its event has ident {ev.ident!r}"
        job.kevents += 1
        event("EVFILT_AIO event")
        assert job.kevents == 1, f"{job}: {job.kevents} events"
        if self.live(job):
            err = self.poll(job)
            assert err != EINPROGRESS, f"{job}: an event while in flight"
            assert self.ctx.aio_return(job.cb) == job.status
            self.reaped(job, exact_kevent=True)
        else:
            # reaped by a rundown (its event is owed once, rule 25) or, on another
            # thread's context, finished there
            assert job.reaped, f"{job}: an event for a job we never reaped"
            assert job.kevent_exact, f"{job}: an event after it was reaped by a call"
        assert ev.data == job.final, f"{job}: event data {ev.data}, errno {job.final}"

    async def final_events(self) -> None:
        """Every kevent job is reaped: each got its one event, or (reaped by a call
        before its event was taken) at most one."""
        owed = [j for j in self.by_id.values() if j.notify == "kevent" and j.kevent_exact]
        await self.collect_events()
        deadline = self.loop.time() + 10
        while any(j.kevents == 0 for j in owed) and self.loop.time() < deadline:
            await self.collect_events(0.05)
        missing = [j for j in owed if j.kevents != 1]
        assert not missing, (
            f"jobs without their one EVFILT_AIO event: "
            f"{[(j, j.final, j.cb.sigevent, j.cb) for j in missing]}; {self.kq!r}; "
            f"steps {self.trace[-15:]}")
        await self.collect_events()

    async def await_events(self, jobs: list[Job]) -> None:
        """The jobs' events arrive (from any thread), one each."""
        deadline = self.loop.time() + 10
        while any(j.kevents == 0 for j in jobs) and self.loop.time() < deadline:
            await self.collect_events(0.05)
        missing = [j for j in jobs if j.kevents != 1]
        assert not missing, (
            f"jobs without their one EVFILT_AIO event: "
            f"{[(j, j.final, j.cb.sigevent, j.cb) for j in missing]}; {self.kq!r}")

    # -- closing -------------------------------------------------------------------

    async def close_context(self) -> None:
        """aclose(): every job ends (ECANCELED if it had not started) and is freed;
        the files hold what the model allows; every notification fires once."""
        ctx = self.ctx
        await ctx.aclose()
        assert ctx.closed
        for job in self.jobs:
            if not job.reaped and self.owner.get(job.cb) is job:
                assert job.cb.error != EINPROGRESS, f"{job} in flight after aclose"
                self.observe(job, job.cb.error, job.cb.status)
                job.reaped = True  # by the rundown: a kevent is still owed once
            if job.reaped:
                self.settle(job)
        # the events the rundown owes are posted by now: take them before a cb is
        # reused (a new job's knote on the same cb would take the old one's place)
        await self.collect_events()
        stats = ctx.statistics()
        assert (stats.queued, stats.active, stats.done, stats.parked) == (0, 0, 0, 0), stats
        assert stats.buffer_jobs == 0, stats
        count = aioposix.sysctl["vfs.aio.num_queue_count"]
        assert count == self.base_count, f"num_queue_count {count} (was {self.base_count})"
        self.check_files()
        await self.until(lambda: all(b.fired for b in self.batches), what="lio sigevents")
        for batch in self.batches:
            assert batch.fired == 1, f"an lio sigevent fired {batch.fired} times"
            assert batch.all_done_when_fired, "an lio sigevent fired before its entries"
        self.batches = []
        await self.check_notifications()
        with pytest.raises(RuntimeError):  # a closed context answers nothing
            ctx.aio_error(Aiocb(self.main.fd))

    async def check_notifications(self) -> None:
        """Every finished SIGEV_THREAD job was called once, every SIGEV_SIGNAL
        job sent its signal once."""
        jobs = list(self.by_id.values())
        threads = [j for j in jobs if j.notify == "thread" and j.final is not None]
        want = self.signals_due()
        # uvloop closes its signal self-pipe whenever the loop stops (each rule runs
        # the loop until its calls are done): a signal that arrives just then
        # reaches no handler (uvloop's Loop._pause_signals).  There, a signal is
        # checked never to come twice or for nothing; test_signals_once_each checks
        # that each comes, on a loop that keeps running.
        exact = self.env.loop != "uvloop"
        try:
            await self.until(lambda: all(j.calls for j in threads) and (not exact or all(
                self.signals[s] >= n for s, n in want.items())), what="notifications")
        except AssertionError:
            short = {s: [j for j in jobs if j.signo == s and j.final is not None]
                     for s, n in want.items() if self.signals[s] < n}
            raise AssertionError(
                f"SIGEV_THREAD not called for {[j for j in threads if not j.calls]}; "
                f"signals short (received, jobs): "
                f"{[(self.signals[s], short[s]) for s in short]}; "
                f"steps {self.trace[-15:]}") from None
        assert all(j.calls == 1 for j in threads), [j for j in threads if j.calls != 1]
        await asyncio.sleep(0.001)  # one more turn: no extra signal is on its way
        assert self.signals == want or (self.env.loop == "uvloop" and all(
            self.signals[s] <= n for s, n in want.items())), (
            f"signals {self.signals}, jobs {want}")
        event(f"notified: {len(threads)} SIGEV_THREAD, {sum(want.values())} SIGEV_SIGNAL")

    def signals_due(self, finished: bool = True) -> dict[int, int]:
        due = dict.fromkeys(SIGNOS, 0)
        for j in self.by_id.values():
            if j.notify == "signal" and (j.final is not None or not finished):
                due[j.signo] += 1
        return due

    def check_files(self) -> None:
        for model in self.files:
            self.check_file(model, "after the rundown")

    def check_file(self, model: FileModel, what: str) -> None:
        with open(model.path, "rb") as f:
            content = f.read()
        if model.append:
            assert content == model.expected_append(), (
                f"{what}: O_APPEND file {content!r}, submission order says "
                f"{model.expected_append()!r}")
        else:
            model.check_all(content, what)

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def counts_match_the_model(self) -> None:
        assert not self.loop_errors, self.loop_errors
        assert not self.problems, self.problems
        unreaped = self.unreaped()
        stats = self.ctx.statistics()
        assert stats.queued + stats.active + stats.done + stats.parked == len(unreaped), (
            f"{stats} for {len(unreaped)} unreaped jobs; steps {self.trace[-12:]}")
        assert stats.done >= sum(1 for j in unreaped if j.final is not None)
        direct = sum(1 for j in unreaped if j.final is None and j.target is self.direct)
        assert 0 <= stats.buffer_jobs <= min(direct, stats.max_buf), stats
        if stats.buffer_jobs:
            event("kernel-submitted O_DIRECT jobs in flight")
        count = aioposix.sysctl["vfs.aio.num_queue_count"]
        assert count == self.base_count + len(unreaped), (
            f"num_queue_count {count} for {len(unreaped)} unreaped jobs")
        sent = self.signals_due(finished=False)
        assert all(self.signals[s] <= n for s, n in sent.items()), (
            f"signals {self.signals} for SIGEV_SIGNAL jobs {sent}")

    @invariant()
    def streams_in_order(self) -> None:
        for stream in self.streams:
            stream.check()
