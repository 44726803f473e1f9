"""More rules of the state machine of tests/context/test_model.py: refused submits, a
queue limit, the module-level calls, and a second thread on its own loop.

Each is self-contained: whatever it submits is finished (or refused) and freed
before it returns, so the model of the main context is untouched.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from helpers import run_on
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import rule
from model_jobs import JobMaker
from model_state import ECANCELED, EINPROGRESS, Job

import aioposix
from aioposix import (
    AIO_ALLDONE,
    LIO_NOP,
    LIO_NOWAIT,
    LIO_WAIT,
    SIGEV_KEVENT,
    SIGEV_SIGNAL,
    Aiocb,
    AioContext,
    Kqueue,
    SigEvent,
)

FILE_TARGETS = ("file", "file", "direct")  # what another context may share with ours


@dataclass
class ThreadRun:
    """What the second thread did."""

    ctx: AioContext | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    go: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = None


class MoreRules(JobMaker):
    # -- refused submits --------------------------------------------------------------

    @rule(how=st.sampled_from(["closed fd", "read-only fd", "bad offset", "read-only buffer",
                               "fsync op", "signal number", "closed kqueue"]),
          reused=st.booleans())
    def refused_submit(self, how: str, reused: bool) -> None:
        """Rule 2: refused at submit with the errno; cb.error is it, cb.status -1,
        nothing queued."""
        cb = self.reusable[-1] if reused and self.reusable else Aiocb(self.main.fd)

        async def go() -> None:
            call, code, cleanup = self._bad_job(how, cb)
            count = aioposix.sysctl["vfs.aio.num_queue_count"]
            stats = self.ctx.statistics()
            try:
                with pytest.raises(OSError) as info:
                    call()
            finally:
                cleanup()
            assert info.value.errno == code, (how, info.value)
            assert (cb.error, cb.status) == (code, -1)
            after = self.ctx.statistics()
            assert (after.queued + after.active + after.done + after.parked) == (
                stats.queued + stats.active + stats.done + stats.parked)
            assert aioposix.sysctl["vfs.aio.num_queue_count"] == count
            self._unknown(self.ctx, cb)

        self.run(go())

    def _bad_job(self, how: str, cb: Aiocb) -> tuple[Callable[[], None], int, Callable[[], None]]:
        cb.fildes, cb.buf, cb.nbytes, cb.offset, cb.iov = self.main.fd, bytearray(4), 4, 0, None
        cb.sigevent, cb.lio_opcode, cb.reqprio = None, LIO_NOP, 0
        ctx, cleanup = self.ctx, (lambda: None)
        if how == "closed fd":
            fd = os.open(self.main.path, os.O_RDONLY)
            os.close(fd)
            cb.fildes = fd
            return (lambda: ctx.aio_read(cb)), errno.EBADF, cleanup
        if how == "read-only fd":
            fd = os.open(self.main.path, os.O_RDONLY)
            cb.fildes = fd
            return (lambda: ctx.aio_write(cb)), errno.EBADF, (lambda: os.close(fd))
        if how == "bad offset":
            cb.offset = -1
            return (lambda: ctx.aio_write(cb)), errno.EINVAL, cleanup
        if how == "read-only buffer":
            cb.buf = b"read-only"
            cb.nbytes = len(cb.buf)
            return (lambda: ctx.aio_read(cb)), errno.EFAULT, cleanup
        if how == "fsync op":
            return (lambda: ctx.aio_fsync(0, cb)), errno.EINVAL, cleanup
        if how == "signal number":
            cb.sigevent = SigEvent(SIGEV_SIGNAL, signo=0)
            return (lambda: ctx.aio_read(cb)), errno.EINVAL, cleanup
        closed = Kqueue()
        closed.close()
        cb.sigevent = SigEvent(SIGEV_KEVENT, kqueue=closed)
        return (lambda: ctx.aio_read(cb)), errno.EBADF, cleanup

    @rule(limit=st.integers(1, 3), via_lio=st.booleans())
    def queue_limit(self, limit: int, via_lio: bool) -> None:
        """Rule 23: past max_queued a submit is EAGAIN, and the queue is unchanged."""
        self.run(self._queue_limit(limit, via_lio))

    async def _queue_limit(self, limit: int, via_lio: bool) -> None:
        r, w = os.pipe()  # nothing is ever written: the reads stay parked
        try:
            async with AioContext(max_queued=limit) as ctx:
                parked = [Aiocb(r, bytearray(4)) for _ in range(limit)]
                for cb in parked:
                    ctx.aio_read(cb)
                count = aioposix.sysctl["vfs.aio.num_queue_count"]
                extra = [Aiocb(r, bytearray(4), lio_opcode=aioposix.LIO_READ) for _ in range(2)]
                with pytest.raises(BlockingIOError) as info:
                    if via_lio:
                        await ctx.lio_listio(LIO_NOWAIT, extra)
                    else:
                        ctx.aio_read(extra[0])
                assert info.value.errno == errno.EAGAIN
                event("EAGAIN past max_queued")
                for cb in extra[:2 if via_lio else 1]:
                    assert (cb.error, cb.status) == (errno.EAGAIN, -1)
                    self._unknown(ctx, cb)
                stats = ctx.statistics()
                assert (stats.queued, stats.active, stats.done, stats.parked) == (0, 0, 0, limit)
                assert aioposix.sysctl["vfs.aio.num_queue_count"] == count
            assert [(cb.error, cb.status) for cb in parked] == [(ECANCELED, -1)] * limit
        finally:
            os.close(r)
            os.close(w)

    # -- the module-level calls and a second thread ---------------------------------

    @rule(data=st.data(), via_lio=st.booleans())
    def module_level_calls(self, data: st.DataObject, via_lio: bool) -> None:
        """The aioposix.* calls act on the loop's default context, like its methods."""
        jobs = [self.make_job(data, self.other, FILE_TARGETS)
                for _ in range(data.draw(st.integers(1, 3), label="jobs"))]
        for job in jobs:
            if job.notify == "kevent":
                job.notify, job.cb.sigevent = "none", None  # reaped here, before its event
        self.run(self._module_level(jobs, via_lio))

    async def _module_level(self, jobs: list[Job], via_lio: bool) -> None:
        ctx = aioposix.current_context()
        for job in jobs:
            job.ctx = ctx
        if via_lio:
            for job in jobs:
                self.register(job)
            await aioposix.lio_listio(LIO_WAIT, [j.cb for j in jobs])
        else:
            for job in jobs:
                self.submit_call(aioposix, job)
                self.register(job)
        for job in jobs:
            while aioposix.aio_error(job.cb) == EINPROGRESS:
                try:
                    await aioposix.aio_suspend([job.cb], 25)
                except OSError as exc:
                    assert exc.errno == errno.EAGAIN, exc
                    raise AssertionError(self.stuck(f"job {job.id} not done in 25 s")) from None
            self.observe(job, aioposix.aio_error(job.cb), job.cb.status)
            assert aioposix.aio_return(job.cb) == job.status
            job.reaped = True
            self.settle(job)
        for job in jobs:
            assert aioposix.aio_cancel(job.cb.fildes, job.cb) == AIO_ALLDONE
        async for cb in aioposix.aio_waitcomplete(0):
            raise AssertionError(f"the default context still had {cb!r}")
        stats = ctx.statistics()
        assert (stats.queued, stats.active, stats.done, stats.parked) == (0, 0, 0, 0)

    @rule(data=st.data())
    def second_thread(self, data: st.DataObject) -> None:
        """Rules 19 and 27: a thread with its own loop and context writes and reads
        a file; its jobs post their events to our Kqueue; its context refuses
        calls from this thread."""
        writes = [self._thread_job(data, "write") for _ in range(
            data.draw(st.integers(1, 3), label="writes"))]
        reads = [self._thread_job(data, "read") for _ in range(
            data.draw(st.integers(0, 2), label="reads"))]
        self.run(self._second_thread(writes, reads))

    def _thread_job(self, data: st.DataObject, kind: str) -> Job:
        job = self.make_job(data, self.other, ("file",), kind=kind)
        if kind == "write":  # SIGEV_KEVENT, never reaped by a call: exactly one event
            job.notify = "kevent"
            flags = data.draw(st.sampled_from([0, aioposix.EV_ONESHOT]), label="flags")
            job.cb.sigevent = self.sigevent(job, flags)
        else:
            job.notify, job.cb.sigevent = "none", None
        return job

    async def _second_thread(self, writes: list[Job], reads: list[Job]) -> None:
        box = ThreadRun()
        thread = threading.Thread(target=self._thread_main, args=(box, writes, reads),
                                  name="model-second-loop")
        thread.start()
        try:
            await self.until(box.ready.is_set, what="the second thread's start")
            if box.ctx is not None:
                probe = Aiocb(self.main.fd, bytearray(1))
                with pytest.raises(RuntimeError):
                    box.ctx.aio_read(probe)  # rule 27: another loop's context
                assert probe.state is aioposix.JobState.IDLE
        finally:
            box.go.set()
            await self.until(lambda: not thread.is_alive(), 30, "the second thread's end")
        if box.failure is not None:
            raise box.failure
        # let the thread's last hops (its rundown's, rule 25) reach the Kqueue before
        # collecting: test_rundown_on_another_thread_keeps_the_event shows the race
        await asyncio.sleep(0.01)
        for job in writes:
            self.register(job)
        for job in writes:
            self.observe(job, job.cb.error, job.cb.status)
            job.reaped = True  # by its context's rundown: its event is owed once
        for job in reads:
            self.register(job)
            self.observe(job, job.cb.error, job.cb.status)
            job.reaped = True
        await self.await_events(writes)  # posted on that thread, hopped to this loop
        event("a second thread's jobs posted their events")

    def _thread_main(self, box: ThreadRun, writes: list[Job], reads: list[Job]) -> None:
        try:
            run_on(self.env.loop, self._thread_loop(box, writes, reads))
        except BaseException as exc:
            box.failure = exc
        finally:
            box.ready.set()

    async def _thread_loop(self, box: ThreadRun, writes: list[Job], reads: list[Job]) -> None:
        async with AioContext() as ctx:
            for job in writes + reads:
                job.ctx = ctx
            box.ctx = ctx
            box.ready.set()
            for job in writes:
                ctx.aio_write(job.cb)
            await all_done(ctx, [j.cb for j in writes])  # then the reads see every write
            for job in reads:
                ctx.aio_read(job.cb)
            await all_done(ctx, [j.cb for j in reads])
            for job in reads:
                ctx.aio_return(job.cb)
            deadline = asyncio.get_running_loop().time() + 10
            while not box.go.is_set() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.001)
        # the writes were left unreaped: the rundown freed them


async def all_done(ctx: AioContext, cbs: list[Aiocb]) -> None:
    """Wait (deadline-bounded by the caller) until every cb is done, reaping none."""
    for cb in cbs:
        while ctx.aio_error(cb) == EINPROGRESS:
            await ctx.aio_suspend([cb], 10)
