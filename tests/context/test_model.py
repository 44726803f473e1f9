"""The contract of docs/contract.md, model-checked with random call sequences.

A hypothesis state machine drives an AioContext on an event loop of the
test's kind, under each backend variant of the ``aio`` fixture (the default
io_uring+inline setting included), with random sequences of:

- submits (aio_read, aio_readv, aio_write, aio_writev, aio_fsync with O_SYNC
  and O_DSYNC, lio_listio with LIO_WAIT/LIO_NOWAIT and LIO_SYNC/LIO_DSYNC
  entries) on a regular file (writes overlapping anything in flight), an
  O_APPEND file, an O_DIRECT file (whole blocks on an aligned buffer), a
  socket pair, a pipe, a FIFO and a pty (written on its master, read on its
  slave tty, in raw mode), each job with its own sigevent
  (SIGEV_THREAD, SIGEV_SIGNAL with a real signal handler, SIGEV_KEVENT on a
  Kqueue) and the cb sometimes reused;
- aio_error, aio_return, ``await cb``, aio_suspend, aio_waitcomplete,
  aio_cancel, the Kqueue's events, an aio_fsync barrier, context rundown;
- refused submits (EBADF, EINVAL, EFAULT; EAGAIN past max_queued), the
  module-level calls on the loop's default context, and jobs of a second
  thread on its own loop.

Every answer is checked against the model (tests/context/model_state.py): a byte
holds the last write ordered before the read or one of the writes not
ordered among themselves; O_APPEND writes land in submission order; streams
deliver in order with nothing lost; each finished job notifies exactly once.

Replayable: every choice is a hypothesis draw made before the library is
called, jobs are picked by drawn indices over deterministic lists (see
tests/context/model_machine.py); what depends on timing is only checked.
HYPOTHESIS_PROFILE=long runs far more examples, not derandomized.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from helpers import MakeFile, run_on
from helpers import loop_errors as catch_loop_errors
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule, run_state_machine_as_test
from model_jobs import INDEX, pick
from model_machine import DIRECT_BLOCKS, SIGNOS, open_direct
from model_rules import MoreRules, all_done
from model_state import ECANCELED, EINPROGRESS, EINVAL, FileModel, Job

import aioposix
from aioposix import (
    AIO_ALLDONE,
    AIO_CANCELED,
    AIO_NOTCANCELED,
    EV_CLEAR,
    EV_ONESHOT,
    LIO_NOP,
    LIO_NOWAIT,
    LIO_WAIT,
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

# CI: the same examples every run (derandomize: a rerun replays them), no shrinking,
# so that a failure is reported at once with its steps, well inside the test
# timeout.  HYPOTHESIS_PROFILE=long: random examples, far more, shrunk.
settings.register_profile("long", max_examples=600, stateful_step_count=80, deadline=None,
                          suppress_health_check=list(HealthCheck), database=None,
                          print_blob=True)
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
RUN = settings.get_profile("long") if LONG else settings(
    max_examples=40, stateful_step_count=40, deadline=None, derandomize=True, database=None,
    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
    print_blob=True)


@dataclass(eq=False)
class Batch:
    """An lio_listio(LIO_NOWAIT) with a SIGEV_THREAD sigevent."""

    jobs: list[Job]
    fired: int = 0
    all_done_when_fired: bool = True


class ModelMachine(MoreRules):
    # -- submits ----------------------------------------------------------------------

    @rule(data=st.data())
    def submit(self, data: st.DataObject) -> None:
        job = self.make_job(data, self.ctx)
        self.detail = f"({job}{' reused' if job.cb in self.owner else ''})"

        async def go() -> None:
            self.submit_call(self.ctx, job)
            self.register(job)
            assert job.cb.error in (EINPROGRESS, 0), job.cb.error
            # (a read served by aio_read's fast path owes its event like any other,
            # also to a rundown: test_rundown_keeps_the_event_of_a_fast_read)
            event(f"submit: {job.kind} on {job.target.name}"
                  f"{', done inside the call' if job.cb.error == 0 else ''}")

        self.run(go())

    @rule(data=st.data(), mode=st.sampled_from([LIO_WAIT, LIO_NOWAIT]), notify=st.booleans())
    def lio_listio(self, data: st.DataObject, mode: int, notify: bool) -> None:
        jobs: list[Job] = []
        nops: list[Aiocb] = []
        entries: list[Aiocb | None] = []
        for _ in range(data.draw(st.integers(0, 5), label="entries")):
            if data.draw(st.integers(0, 5), label="nop") == 0:
                cb = Aiocb(self.main.fd, bytearray(4), lio_opcode=LIO_NOP)
                nops.append(cb)
                entries.append(data.draw(st.sampled_from([cb, None]), label="nop or None"))
                continue
            # a LIO_WAIT list must finish: no stream read, which may wait forever
            job = self.make_job(data, self.ctx, stream_reads=mode == LIO_NOWAIT)
            jobs.append(job)
            entries.append(job.cb)
        for job in jobs:
            self.register(job)
        self.detail = f"({'WAIT' if mode == LIO_WAIT else 'NOWAIT'} {jobs})"
        batch = Batch(jobs)
        sigevent = None
        if notify and mode == LIO_NOWAIT:
            sigevent = SigEvent(SIGEV_THREAD, function=self._lio_fired, value=batch)
            self.batches.append(batch)

        async def go() -> None:
            if mode == LIO_WAIT:
                await self.ctx.lio_listio(mode, entries, sigevent)
            else:  # queued and returned without a suspension: no notification meanwhile
                self.in_submit += 1
                try:
                    await self.ctx.lio_listio(mode, entries, sigevent)
                finally:
                    self.in_submit -= 1
            for cb in nops:  # LIO_NOP entries are checked, then skipped: never known
                assert not self.known(cb)
            if mode == LIO_WAIT:  # rule 13: every entry is done, none reaped
                for job in jobs:
                    assert self.poll(job) != EINPROGRESS

        self.run(go())

    def _lio_fired(self, batch: object) -> None:
        assert isinstance(batch, Batch)
        batch.fired += 1
        for job in batch.jobs:
            if job.final is None and self.owner.get(job.cb) is job and \
                    job.cb.error == EINPROGRESS:
                batch.all_done_when_fired = False
                self.problems.append(f"lio sigevent fired with {job} in progress")

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def resubmit_in_flight_is_einval(self, data: st.DataObject) -> None:
        """Rule 3: a cb not yet reaped belongs to its context."""
        job = pick(data.draw(INDEX, label="job"), self.jobs)
        if job is None or not self.live(job):
            return
        self.detail = f"({job})"

        async def go() -> None:
            before = self.poll(job)
            with pytest.raises(OSError) as info:
                self.submit_call(self.ctx, job)
            assert info.value.errno == EINVAL
            after = self.ctx.aio_error(job.cb)
            assert after == job.cb.error and (after == before or before == EINPROGRESS)

        self.run(go())

    # -- status and reaping ------------------------------------------------------------

    @precondition(lambda self: bool(self.jobs))
    @rule(index=INDEX)
    def aio_error(self, index: int) -> None:
        picked: Job | None = pick(index, self.jobs)
        if picked is None:
            return
        job = picked
        self.detail = f"({job})"

        async def go() -> None:
            if self.live(job):
                self.poll(job)
            elif self.owner.get(job.cb) is job:  # reaped, not reused since
                self._unknown(self.ctx, job.cb)

        self.run(go())

    @precondition(lambda self: bool(self.jobs))
    @rule(index=INDEX)
    def aio_return(self, index: int) -> None:
        """Rule 7: the count once done, EINVAL before; once only."""
        job = pick(index, self.jobs)
        if job is None or not self.live(job):
            return
        self.detail = f"({job})"

        async def go() -> None:
            if self.poll(job) == EINPROGRESS:
                with pytest.raises(OSError) as info:
                    self.ctx.aio_return(job.cb)
                assert info.value.errno == EINVAL
                assert self.ctx.aio_error(job.cb) in (EINPROGRESS, job.cb.error)
                return
            assert self.ctx.aio_return(job.cb) == job.status
            self.reaped(job)
            self._unknown(self.ctx, job.cb)

        self.run(go())

    @precondition(lambda self: bool(self.jobs))
    @rule(index=INDEX, timeout=st.sampled_from([0.001, 0.01, 10.0]))
    def await_cb(self, index: int, timeout: float) -> None:
        """Rule 8: await reaps; a cancelled await cancels a queued job, else it
        finishes and reaps itself.  Afterwards the job is reaped, whatever the
        timing: its cb may be reused."""
        job = pick(index, self.jobs)
        if job is None or job.settled:
            return
        self.detail = f"({job})"
        if job.kind == "sread":
            timeout = min(timeout, 0.01)  # it may never complete

        async def go() -> None:
            if not self.live(job):  # reaped by a call: awaiting it is EINVAL
                with pytest.raises(OSError) as info:
                    await job.cb
                assert info.value.errno == EINVAL
                self.settle(job)
                return
            try:
                async with asyncio.timeout(timeout):
                    status = await job.cb
            except TimeoutError:
                await self.until(lambda: not self.known(job.cb), what="reaped after cancel")
                self.observe(job, job.cb.error, job.cb.status)
            except OSError as exc:
                assert exc.errno == job.cb.error
                self.observe(job, job.cb.error, job.cb.status)
            else:
                assert job.cb.error == 0
                self.observe(job, 0, status)
            assert not self.known(job.cb)
            self.reaped(job)
            self.settle(job)

        self.run(go())

    @rule(indices=st.lists(INDEX, max_size=4), timeout=st.sampled_from([0, 0, 0.001, 0.01]))
    def aio_suspend(self, indices: list[int], timeout: float) -> None:
        """Rule 9."""
        choices: list[Aiocb | None] = [j.cb for j in self.jobs] + self.reusable + [None]
        cbs = [pick(i, choices) for i in indices]

        async def go() -> None:
            mine = [job for cb in cbs if cb is not None
                    and (job := self.owner.get(cb)) is not None and self.live(job)]
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
                assert any(self.poll(j) != EINPROGRESS for j in mine), "returned, nothing done"

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

    @rule(index=INDEX)
    def unknown_cb(self, index: int) -> None:
        """Rules 6, 7, 12: a cb never submitted or already reaped is unknown."""
        cb = pick(index, self.reusable)
        if cb is None:
            return

        async def go() -> None:
            self._unknown(self.ctx, cb)
            assert self.ctx.aio_cancel(self.main.fd, cb) == AIO_ALLDONE

        self.run(go())

    @precondition(lambda self: bool(self.jobs))
    @rule(index=INDEX)
    def other_context_leaves_it_alone(self, index: int) -> None:
        """Rules 6 and 12: another context does not know the cb and cannot touch it."""
        job = pick(index, self.jobs)
        if job is None or not self.live(job):
            return
        self.detail = f"({job})"

        async def go() -> None:
            before = self.poll(job)
            self._unknown(self.other, job.cb)
            assert self.other.aio_cancel(job.cb.fildes, job.cb) == AIO_ALLDONE
            assert self.other.aio_cancel(job.cb.fildes) == AIO_ALLDONE
            await self.other.aio_suspend([job.cb], 0)  # none known to it: at once
            after = self.poll(job)
            assert after == before or before == EINPROGRESS

        self.run(go())

    @precondition(lambda self: any(j.notify == "kevent" for j in self.by_id.values()))
    @rule(wait=st.booleans())
    def kevents(self, wait: bool) -> None:
        """Rule 19: each EVFILT_AIO event is a finished job with its udata; reap by it."""
        self.run(self._kevents(0.01 if wait else 0))

    async def _kevents(self, timeout: float) -> None:
        await self.collect_events(timeout)

    # -- cancelling ----------------------------------------------------------------------

    def _cancel_outcome(self, targets: list[Job], result: int, before: dict[Job, int]) -> None:
        """Rule 12: the answer agrees with what happened to each matching job."""
        in_flight = [j for j in targets if before[j] == EINPROGRESS]
        after = {j: self.ctx.aio_error(j.cb) for j in targets}
        for job in targets:
            if job not in in_flight:
                assert after[job] == before[job], f"cancel changed a finished {job}"
        if not in_flight:
            assert result == AIO_ALLDONE, f"nothing in flight, aio_cancel said {result}"
        elif all(after[j] == ECANCELED for j in in_flight):
            assert result == AIO_CANCELED, f"all cancelled, aio_cancel said {result}"
        else:
            assert result == AIO_NOTCANCELED, f"some not cancelled, aio_cancel said {result}"
        for job in in_flight:
            err = after[job]
            assert err == ECANCELED or result == AIO_NOTCANCELED, (
                f"cancel left {job} with {err} but said {result}")
            if err != EINPROGRESS:
                self.observe(job, err, job.cb.status)

    @rule(which=st.integers(0, 8))
    def aio_cancel_fd(self, which: int) -> None:
        fds = [m.fd for m in self.files] + [fd for s in self.streams for fd in (s.rfd, s.wfd)]
        fd = pick(which, fds)

        async def go() -> None:
            targets = [j for j in self.unreaped() if j.cb.fildes == fd]
            for job in targets:
                job.cancel_tried = True
            before = {j: self.poll(j) for j in targets}
            self._cancel_outcome(targets, self.ctx.aio_cancel(fd), before)

        self.run(go())

    @precondition(lambda self: bool(self.jobs))
    @rule(index=INDEX, wrong_fd=st.booleans())
    def aio_cancel_cb(self, index: int, wrong_fd: bool) -> None:
        job = pick(index, self.jobs)
        if job is None or not self.live(job):
            return
        self.detail = f"({job})"

        async def go() -> None:
            before = {job: self.poll(job)}
            if wrong_fd:  # the cb is not on that fd: nothing matches
                fd = self.append.fd if job.cb.fildes != self.append.fd else self.main.fd
                assert self.ctx.aio_cancel(fd, job.cb) == AIO_ALLDONE
                assert self.poll(job) == before[job] or before[job] == EINPROGRESS
                return
            job.cancel_tried = True
            self._cancel_outcome([job], self.ctx.aio_cancel(job.cb.fildes, job.cb), before)

        self.run(go())

    # -- barriers and lifetime ---------------------------------------------------------

    @rule(data=st.data(), via_lio=st.booleans(), reap=st.booleans())
    def fsync_barrier(self, data: st.DataObject, via_lio: bool, reap: bool) -> None:
        """Rule 18: once an fsync (aio_fsync, or a LIO_SYNC/LIO_DSYNC entry) is done,
        every earlier job on its fd is: the file holds the last write before it,
        or one of those not ordered among themselves (O_APPEND: all, in order)."""
        job = self.make_job(data, self.ctx, ("file", "append", "direct"), kind="fsync")
        self.detail = f"({job}{' lio' if via_lio else ''})"

        async def go() -> None:
            self.register(job)  # first: its earlier jobs are those registered before it
            if via_lio:
                await self.ctx.lio_listio(LIO_NOWAIT, [job.cb])
            else:
                self.submit_call(self.ctx, job)
            while self.poll(job) == EINPROGRESS:
                await self.ctx.aio_suspend([job.cb], 10)
            target = job.target
            assert isinstance(target, FileModel)
            if all(w.final is not None for w in target.writes):
                self.check_file(target, f"after {job}")
            if reap:  # done, whatever the timing: reaping it is deterministic
                assert self.ctx.aio_return(job.cb) == 0
                self.reaped(job)
                self.settle(job)

        self.run(go())

    @precondition(lambda self: len(self.jobs) >= 4)  # a decided fact: the jobs submitted
    @rule()
    def close_and_start_a_fresh_context(self) -> None:
        """Rule 25: rundown cancels what has not started, frees everything."""
        self.run(self.close_context())
        self.jobs = []
        self.ctx = AioContext()

@pytest.mark.timeout(0 if LONG else 300)
def test_model(aio: Env) -> None:
    machine = type(f"Model_{aio.backend}_{aio.loop}", (ModelMachine,), {"ENV": aio})
    run_state_machine_as_test(machine, settings=RUN)


def test_the_model_has_o_direct(tmp_path: Any) -> None:
    """The model's O_DIRECT jobs run only where the tests' filesystem takes O_DIRECT."""
    got = open_direct(str(tmp_path / "direct.bin"), DIRECT_BLOCKS)
    if isinstance(got, str):
        pytest.skip(f"the model runs without O_DIRECT jobs: {got}")
    os.close(got[0])
    assert got[1] > 0


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


async def test_signals_once_each(aio: Env, new_file: MakeFile) -> None:
    """Rule 19: each job with a SIGEV_SIGNAL sigevent sends its signal once, to a
    handler of the running loop (real-time signals: queued, never merged)."""
    fd = new_file(bytes(64 * 40))
    loop = asyncio.get_running_loop()
    got = dict.fromkeys(SIGNOS, 0)

    def count(signo: int) -> None:
        got[signo] += 1

    for signo in SIGNOS:
        loop.add_signal_handler(signo, count, signo)
    try:
        async with AioContext() as ctx:
            cbs = []
            for i in range(40):
                sev = SigEvent(SIGEV_SIGNAL, signo=SIGNOS[i % len(SIGNOS)])
                cb = Aiocb(fd, bytearray(64), offset=64 * i, sigevent=sev)
                if i % 2:
                    cb.buf = bytes([i]) * 64
                    ctx.aio_write(cb)
                else:
                    ctx.aio_read(cb)
                cbs.append(cb)
            for cb in cbs:
                assert await cb == 64
            want = dict.fromkeys(SIGNOS, 40 // len(SIGNOS))
            await aio.until(lambda: got == want)
            await asyncio.sleep(0.01)
            assert got == want  # and no more
    finally:
        for signo in SIGNOS:
            loop.remove_signal_handler(signo)


@pytest.mark.backends("inline", "io_uring+inline")  # page-cache hits served inline
@pytest.mark.parametrize("flags", [0, EV_ONESHOT, EV_CLEAR], ids=["level", "oneshot", "clear"])
async def test_rundown_keeps_the_event_of_a_fast_read(
        aio: Env, new_file: MakeFile, flags: int) -> None:
    """Rule 25: a finished job that aclose() frees unreaped still delivers its
    EVFILT_AIO event once to a Kqueue that outlives the context, also when aio_read
    served it inline on its fast path (a bytearray, a context already in use)."""
    fd = new_file(b"cached!!")
    assert os.pread(fd, 8, 0) == b"cached!!"  # in the page cache
    kq = Kqueue()
    try:
        async with AioContext() as ctx:
            first = Aiocb(fd, bytearray(8))
            ctx.aio_read(first)  # binds the context to the loop: the next read is fast
            assert await first == 8
            sev = SigEvent(SIGEV_KEVENT, kqueue=kq, value="fast", kevent_flags=flags)
            cb = Aiocb(fd, bytearray(8), sigevent=sev)
            ctx.aio_read(cb)
            assert ctx.aio_error(cb) == 0  # done inside the call
            await asyncio.sleep(0)  # its notification is delivered
        events = await kq.control(None, 8, 0)
        assert [(ev.ident, ev.udata, ev.data) for ev in events] == [(cb, "fast", 0)]
    finally:
        kq.close()


@pytest.mark.parametrize("flags", [0, EV_ONESHOT], ids=["level", "oneshot"])
async def test_rundown_on_another_thread_keeps_the_event(
        aio: Env, new_file: MakeFile, flags: int) -> None:
    """Rules 19 and 25: a context on another thread's loop runs down with a finished
    job unreaped; its EVFILT_AIO event reaches our Kqueue once, even if we collect
    as soon as that rundown is over."""
    fd = new_file()
    kq = Kqueue()
    assert await kq.control(None, 0, 0) == []  # its home: this loop
    finished, go, closed = threading.Event(), threading.Event(), threading.Event()
    cb = Aiocb(fd, b"x", sigevent=SigEvent(SIGEV_KEVENT, kqueue=kq, value="owed",
                                           kevent_flags=flags))

    async def other() -> int:
        ctx = AioContext()
        ctx.aio_write(cb)
        await all_done(ctx, [cb])
        finished.set()
        go.wait(10)
        await ctx.aclose()  # frees it unreaped: its event is owed once
        closed.set()
        return 0

    thread = threading.Thread(target=run_on, args=(aio.loop, other()))
    thread.start()
    try:
        await aio.until(finished.is_set)
        await asyncio.sleep(0.05)  # the job's own event has reached this loop
        go.set()
        assert closed.wait(10)  # the rundown is over on its thread
        events = await kq.control(None, 8, 0)
        events += await kq.control(None, 8, 0.1)
        assert [(ev.ident, ev.udata) for ev in events] == [(cb, "owed")]
    finally:
        go.set()
        await aio.until(lambda: not thread.is_alive())
        kq.close()


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
