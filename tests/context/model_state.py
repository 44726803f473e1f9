"""The reference model of tests/context/test_model.py: jobs, files and streams.

Nothing here calls the library; it only records what was submitted and
seen, and says what the contract (docs/contract.md) allows.

Time is the model's own clock: a counter bumped at every submission and at
every first sight of a finished job.  A write ``w`` *happens before* a job
``x`` when ``w`` was seen finished before ``x`` was submitted (``w.seen_at <
x.submitted_at``): then ``x`` certainly started after ``w`` had landed.  An
aio_fsync barrier orders jobs this way (rule 18: once the fsync is seen done,
every earlier job on its fd is done, and is seen so).  Writes not ordered so
may land in either order: a byte then holds one of their bytes.
"""

from __future__ import annotations

import errno
import os
import select
import time
from dataclasses import dataclass, field
from typing import Any

from aioposix import Aiocb, AioContext

EINPROGRESS, ECANCELED, EINVAL = errno.EINPROGRESS, errno.ECANCELED, errno.EINVAL
NEVER = 1 << 62  # a clock value later than any


@dataclass(eq=False)
class Job:
    """The model of one submission of a cb."""

    id: int
    cb: Aiocb
    kind: str  # read, readv, write, writev, fsync (files); sread, swrite (streams)
    target: FileModel | StreamModel
    ctx: AioContext
    off: int = 0  # bytes
    length: int = 0  # bytes: nbytes, or the iov total
    data: bytes = b""  # what a write sends
    bufs: list[Any] = field(default_factory=list)  # where a read lands
    op: int = 0  # fsync: os.O_SYNC or os.O_DSYNC
    notify: str = "none"  # the sigevent: none, thread, signal, kevent
    signo: int = 0  # SIGEV_SIGNAL: its signal
    submitted_at: int = 0
    seen_at: int = NEVER  # the clock when first seen finished
    final: int | None = None  # the errno, once seen finished
    status: int | None = None
    reaped: bool = False  # known reaped (by a call of ours, or by the rundown)
    settled: bool = False  # reaped whatever the timing: its cb may be reused
    earlier: list[Job] = field(default_factory=list)  # fsync: jobs before it on the fd
    calls: int = 0  # SIGEV_THREAD calls seen
    kevents: int = 0  # EVFILT_AIO events seen
    kevent_exact: bool = True  # reaped only after its event, or by a rundown: exactly one
    got: bytes = b""  # what a stream read received
    cancel_tried: bool = False

    def covers(self, unit: int, size: int) -> bool:
        """Whether this write covers the file unit ``unit`` (of ``size`` bytes)."""
        return self.off <= unit * size < self.off + self.length

    def unit_byte(self, unit: int, size: int) -> int:
        return self.data[unit * size - self.off]

    def __repr__(self) -> str:
        return f"<{self.kind}#{self.id} {self.target.name} off={self.off} n={self.length}>"


class FileModel:
    """A regular file and every write ever submitted on it.

    Bytes are modelled in units of ``unit`` bytes (1, or the block size of an
    O_DIRECT file, whose writes fill each block with one byte value): a unit
    holds one set of possible byte values.
    """

    def __init__(self, name: str, path: str, fd: int, initial: bytes, unit: int = 1,
                 append: bool = False) -> None:
        self.name, self.path, self.fd = name, path, fd
        self.initial = initial
        self.unit = unit
        self.size = len(initial)
        self.append = append
        self.writes: list[Job] = []

    def allowed(self, unit: int, before: int) -> set[int]:
        """What the unit may hold for a job submitted at ``before`` and seen done
        now: the last of the writes that happen before it (several, when they
        are not ordered among themselves), else the initial byte, and the byte
        of any write that may have landed meanwhile."""
        covering = [w for w in self.writes if w.covers(unit, self.unit) and w.final in (None, 0)]
        landed = [w for w in covering if w.final == 0 and w.seen_at < before]
        latest = max((w.submitted_at for w in landed), default=-1)
        values = {w.unit_byte(unit, self.unit) for w in landed if w.seen_at > latest}
        if not values:
            values = {self.initial[unit * self.unit]}
        values |= {w.unit_byte(unit, self.unit) for w in covering if w not in landed}
        return values

    def check_range(self, got: bytes, off: int, before: int, what: str) -> None:
        """``got``, read at ``off`` by a job submitted at ``before``, is what the model allows."""
        unit = self.unit
        for u in range(off // unit, (off + len(got) + unit - 1) // unit):
            lo, hi = max(u * unit, off), min((u + 1) * unit, off + len(got))
            seen = set(got[lo - off:hi - off])
            allowed = self.allowed(u, before)
            assert seen <= allowed, (
                f"{what}: {self.name} bytes {lo}..{hi} hold {sorted(seen)[:8]}, "
                f"the model allows {sorted(allowed)}")

    def check_all(self, content: bytes, what: str) -> None:
        """The whole file, every write on it resolved."""
        open_ = [w for w in self.writes if w.final is None]
        assert not open_, f"{what}: {self.name} checked with writes unresolved: {open_}"
        assert len(content) == self.size, f"{what}: {self.name} is {len(content)} bytes"
        self.check_range(content, 0, NEVER, what)

    def expected_append(self) -> bytes:
        """An O_APPEND file: what landed, in submission order (rule 15)."""
        return self.initial + b"".join(w.data for w in self.writes if w.final == 0)


class StreamModel:
    """A pipe, FIFO, socket pair or pty: reads on ``rfd``, writes on ``wfd``."""

    def __init__(self, name: str, rfd: int, wfd: int) -> None:
        self.name, self.rfd, self.wfd = name, rfd, wfd
        self.jobs: list[Job] = []  # every read and write on it, in submission order

    def sent(self) -> bytes:
        """What the writes put in, in submission order: all of a write not yet
        resolved (it may still move it), what a finished one moved."""
        return b"".join(
            j.data if j.final is None else (j.data[:j.status] if j.final == 0 and j.status
                                            else b"")
            for j in self.jobs if j.kind == "swrite")

    def received(self) -> bytes:
        """What the reads got, in submission order, up to the first unresolved one."""
        got = b""
        for j in (j for j in self.jobs if j.kind == "sread"):
            if j.final is None:
                break
            got += j.got
        return got

    def check(self, rest: bytes | None = None) -> None:
        """Reads got a prefix of what the writes sent (rule 16: in order, none
        lost); with ``rest`` (what is left in the stream, everything resolved),
        exactly what they sent."""
        sent, got = self.sent(), self.received()
        assert sent.startswith(got), f"{self.name}: reads got {got!r}, writes sent {sent!r}"
        if rest is not None:
            assert got + rest == sent, f"{self.name}: {got!r} + {rest!r} != sent {sent!r}"

    def drain(self, settle: float = 2.0) -> bytes:
        """What is left to read once every job is resolved.  A pty hands what its
        master wrote to the slave's side a moment later (a kernel worker moves
        it), so reading goes on for up to ``settle`` seconds while less than the
        writes sent and the reads did not get has arrived."""
        want = len(self.sent()) - len(self.received())
        deadline = time.monotonic() + settle
        os.set_blocking(self.rfd, False)
        rest = b""
        try:
            while True:
                try:
                    chunk = os.read(self.rfd, 65536)
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if len(rest) >= want or left <= 0:
                        break
                    select.select([self.rfd], [], [], min(left, 0.05))
                    continue
                if not chunk:
                    break
                rest += chunk
        finally:
            os.set_blocking(self.rfd, True)
        return rest
