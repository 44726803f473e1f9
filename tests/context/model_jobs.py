"""Drawing and submitting the jobs of tests/context/test_model.py.

Every draw depends only on earlier draws and on lists that earlier draws
decide (the reusable cbs), never on what the library has done meanwhile.
"""

from __future__ import annotations

import mmap
import os
from typing import Any

from hypothesis import strategies as st
from model_machine import DIRECT_BLOCKS, SIZE, MachineBase
from model_state import FileModel, Job, StreamModel

from aioposix import (
    EV_CLEAR,
    EV_ONESHOT,
    LIO_DSYNC,
    LIO_NOP,
    LIO_READ,
    LIO_READV,
    LIO_SYNC,
    LIO_WRITE,
    LIO_WRITEV,
    Aiocb,
    AioContext,
)

INDEX = st.integers(0, 2**16)  # an index into a list whose length depends on the run
TARGETS = ("file", "file", "append", "direct", "socket", "pipe", "fifo", "tty")
KINDS = {"file": ("read", "readv", "write", "writev", "fsync"),
         "append": ("write", "writev", "fsync"),
         "direct": ("read", "write", "fsync")}
NOTIFY = ("none", "none", "thread", "signal", "kevent")
KEVENT_FLAGS = (0, EV_ONESHOT, EV_CLEAR)
OPCODES = {"read": LIO_READ, "readv": LIO_READV, "write": LIO_WRITE, "writev": LIO_WRITEV,
           "sread": LIO_READ, "swrite": LIO_WRITE}


def pick(index: int, items: list[Any]) -> Any:
    """The item at a drawn index (None if there is none)."""
    return items[index % len(items)] if items else None


class JobMaker(MachineBase):
    """make_job draws a job; register records one the library accepted."""

    next_id = 0

    def target(self, name: str) -> FileModel | StreamModel:
        if name == "direct":
            return self.direct or self.main  # the same draws when O_DIRECT is refused
        streams = {s.name: s for s in self.streams}
        return streams.get(name) or {"file": self.main, "append": self.append}[name]

    def fresh_cb(self, data: st.DataObject, fd: int) -> Aiocb:
        """A cb to submit: a new one, or one reaped whatever the timing (rule 3)."""
        reuse = data.draw(st.booleans(), label="reuse a reaped cb")
        which = data.draw(INDEX, label="which")
        if reuse and self.reusable:
            cb = self.reusable.pop(which % len(self.reusable))
            cb.fildes, cb.buf, cb.nbytes, cb.offset, cb.iov = fd, None, None, 0, None
            cb.lio_opcode, cb.sigevent, cb.reqprio = LIO_NOP, None, 0
            return cb
        return Aiocb(fd)

    def make_job(self, data: st.DataObject, ctx: AioContext, targets: tuple[str, ...] = TARGETS,
                 stream_reads: bool = True, kind: str | None = None) -> Job:
        name = data.draw(st.sampled_from(targets), label="target")
        target = self.target(name)
        if kind is None:
            kinds = KINDS.get(name, ("sread", "swrite") if stream_reads else ("swrite",))
            kind = data.draw(st.sampled_from(kinds), label="kind")
        if isinstance(target, StreamModel):
            fd = target.rfd if kind == "sread" else target.wfd
        else:
            fd = target.fd
        cb = self.fresh_cb(data, fd)
        JobMaker.next_id += 1
        job = Job(JobMaker.next_id, cb, kind, target, ctx)
        if kind == "fsync":
            job.op = data.draw(st.sampled_from([os.O_SYNC, os.O_DSYNC]), label="op")
            cb.lio_opcode = LIO_SYNC if job.op == os.O_SYNC else LIO_DSYNC
        else:
            cb.lio_opcode = OPCODES[kind]
            if isinstance(target, StreamModel):
                self._stream_params(data, job)
            elif target.unit > 1:
                self._direct_params(data, job, target)
            elif target.append:
                self._append_params(data, job)
            else:
                self._file_params(data, job)
        job.notify = data.draw(st.sampled_from(NOTIFY), label="sigevent")
        flags = data.draw(st.sampled_from(KEVENT_FLAGS), label="kevent flags")
        cb.sigevent = self.sigevent(job, flags)
        return job

    def _file_params(self, data: st.DataObject, job: Job) -> None:
        cb = job.cb
        if job.kind == "read":
            job.off = data.draw(st.integers(0, SIZE + 16), label="offset")
            job.length = data.draw(st.integers(1, 32), label="nbytes")
            job.bufs = [bytearray(job.length)]
            cb.buf, cb.nbytes = job.bufs[0], job.length
        elif job.kind == "readv":
            job.off = data.draw(st.integers(0, SIZE + 8), label="offset")
            sizes = data.draw(st.lists(st.integers(1, 12), min_size=1, max_size=3), label="iov")
            job.bufs = [bytearray(n) for n in sizes]
            job.length = sum(sizes)
            cb.iov = job.bufs
        else:  # write, writev: anywhere in the file, overlapping whatever is in flight
            job.off = data.draw(st.integers(0, SIZE - 1), label="offset")
            job.data = data.draw(st.binary(min_size=1, max_size=min(24, SIZE - job.off)),
                                 label="data")
            job.length = len(job.data)
            self._write_buffers(data, job)
        cb.offset = job.off

    def _write_buffers(self, data: st.DataObject, job: Job) -> None:
        cut = data.draw(st.integers(0, 24), label="iov split") % (len(job.data) + 1)
        if job.kind == "write":
            job.cb.buf, job.cb.nbytes = job.data, job.length
        else:
            job.cb.iov = [job.data[:cut], bytearray(job.data[cut:])]

    def _append_params(self, data: st.DataObject, job: Job) -> None:
        job.data = data.draw(st.binary(min_size=1, max_size=16), label="data")
        job.length = len(job.data)
        job.cb.offset = data.draw(st.integers(0, SIZE), label="offset (ignored)")
        self._write_buffers(data, job)

    def _direct_params(self, data: st.DataObject, job: Job, target: FileModel) -> None:
        """Whole blocks, on an aligned buffer: the kernel-submitted path (rule 17)."""
        blocks = data.draw(st.integers(1, 2), label="blocks")
        start = min(data.draw(st.integers(0, DIRECT_BLOCKS - 1), label="block"),
                    DIRECT_BLOCKS - blocks)
        job.off, job.length = start * target.unit, blocks * target.unit
        buf = mmap.mmap(-1, job.length)  # page-aligned
        if job.kind == "write":
            fills = data.draw(st.lists(st.integers(0, 255), min_size=blocks, max_size=blocks),
                              label="fills")
            job.data = b"".join(bytes([f]) * target.unit for f in fills)
            buf.write(job.data)
        job.bufs = [buf]
        job.cb.buf, job.cb.nbytes, job.cb.offset = buf, job.length, job.off

    def _stream_params(self, data: st.DataObject, job: Job) -> None:
        if job.kind == "sread":
            job.length = data.draw(st.integers(1, 64), label="nbytes")
            job.bufs = [bytearray(job.length)]
            job.cb.buf, job.cb.nbytes = job.bufs[0], job.length
        else:
            job.data = data.draw(st.binary(min_size=1, max_size=64), label="data")
            job.length = len(job.data)
            job.cb.buf, job.cb.nbytes = job.data, job.length

    def register(self, job: Job) -> None:
        """The library accepted the job: it is in flight from now on."""
        job.submitted_at = self.tick()
        self.by_id[job.id] = job
        self.owner[job.cb] = job
        target = job.target
        if job.kind == "fsync" and job.ctx is self.ctx:  # rule 18: the same context's
            job.earlier = [j for j in self.jobs if j.target is target and j.final is None]
        if isinstance(target, StreamModel):
            target.jobs.append(job)
        elif job.kind in ("write", "writev"):
            target.writes.append(job)
        if job.ctx is self.ctx:
            self.jobs.append(job)

    def submit_call(self, ctx: Any, job: Job) -> None:
        """Submit with the call of the job's kind (ctx: a context, or the module)."""
        cb = job.cb
        self.in_submit += 1
        try:
            if job.kind == "fsync":
                ctx.aio_fsync(job.op, cb)
            elif job.kind in ("read", "sread"):
                ctx.aio_read(cb)
            elif job.kind in ("write", "swrite"):
                ctx.aio_write(cb)
            elif job.kind == "readv":
                ctx.aio_readv(cb)
            else:
                ctx.aio_writev(cb)
        finally:
            self.in_submit -= 1
