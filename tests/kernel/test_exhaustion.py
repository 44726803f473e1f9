"""Out of descriptors: jobs fail one by one with EMFILE, and everything recovers.

Jobs that leave the inline path run on the library's own dup of the fd, pipe
reads park on a dup of their own, and a loop's io_uring ring is made on first
use (docs/index.md, "A job's life"; docs/sockets.md).  Each of these needs a
free descriptor.  With RLIMIT_NOFILE lowered and the table filled, a job that
cannot get one is either refused at submit (OSError EMFILE, nothing queued)
or completes with error EMFILE; it never half exists.  A job that got what it
needs completes normally.  Once descriptors are back, the same context (and
the same control blocks) work again, and no descriptor or queue slot
(``vfs.aio.num_queue_count``) is left held.

The limit is lowered in this process and restored on the way out of
``fds_exhausted``, whatever happens inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import MakeFile, open_fds, rand, run_on

from aioposix import LIO_READ, LIO_SYNC, LIO_WAIT, LIO_WRITE, Aiocb, AioContext, JobState, sysctl
from aioposix._backends.ring import probe as uring_probe

if TYPE_CHECKING:
    from conftest import Env

BLOCK = 4096
FILES = 5
# what a ring holds: its fd, the mmaps' dups of it, its eventfd
RING_FDS = {"anon_inode:[eventfd]", "anon_inode:[io_uring]"}
HEADROOM = 64  # the lowered limit: the highest fd open now, plus this many


@contextlib.contextmanager
def fds_exhausted(free: int) -> Iterator[None]:
    """Every descriptor the (lowered) RLIMIT_NOFILE allows is taken, but ``free``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(open_fds()) + HEADROOM, hard), hard))
    held: list[int] = []
    try:
        while True:
            try:
                held.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            except OSError as exc:
                assert exc.errno == errno.EMFILE, exc
                break
        assert len(held) >= free
        for _ in range(free):
            os.close(held.pop())
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def in_flight(ctx: AioContext) -> int:
    s = ctx.statistics()
    return s.queued + s.active + s.done + s.parked + s.buffer_jobs


def queue_count() -> int:
    return int(sysctl["vfs.aio.num_queue_count"])


def submit(call: Callable[[Aiocb], None], cb: Aiocb) -> bool:
    """Submit; False if refused, which must be with EMFILE and leave nothing held.

    (Nothing here asks the context for its statistics: that would take in
    the jobs the workers finished meanwhile, and give their descriptors back
    before the next submit.)
    """
    slots = queue_count()
    try:
        call(cb)
    except OSError as exc:
        assert exc.errno == errno.EMFILE, exc
        assert cb.error == errno.EMFILE and cb.state is JobState.IDLE, cb
        assert queue_count() == slots, "a refused job kept its queue slot"
        return False
    return True


async def outcome(cb: Aiocb, accepted: bool) -> int:
    """The job's byte count, or -1 if it was refused or failed (with EMFILE only)."""
    if not accepted:
        return -1
    try:
        return await asyncio.wait_for(cb, 10)
    except OSError as exc:
        assert exc.errno == errno.EMFILE, exc
        return -1


async def settled(ctx: AioContext, fds: set[int], slots: int) -> None:
    """Deadline-bounded: nothing of ``ctx`` in flight, the descriptors and slots of before."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (in_flight(ctx), open_fds(), queue_count()) != (0, fds, slots):
        assert loop.time() < deadline, (
            f"left held: {ctx.statistics()}, fds {sorted(open_fds() - fds)}, "
            f"num_queue_count {queue_count()} (was {slots})")
        await asyncio.sleep(0.001)


# -- file jobs: our dup of the fd --------------------------------------------


@dataclass
class FileJobs:
    """A read of block 0, a write of block 1 and an fsync on one file."""

    fd: int
    old: bytes  # the file as it was made
    new: bytes  # what the write puts in block 1

    def __post_init__(self) -> None:
        self.read = Aiocb(self.fd, bytearray(BLOCK), lio_opcode=LIO_READ)
        self.write = Aiocb(self.fd, self.new, offset=BLOCK, lio_opcode=LIO_WRITE)
        self.sync = Aiocb(self.fd, lio_opcode=LIO_SYNC)
        self.jobs = [self.read, self.write, self.sync]

    def next_write(self) -> None:
        """The file is what the last round left; the next write puts something new."""
        self.old = self.old[:BLOCK] + os.pread(self.fd, BLOCK, BLOCK)
        self.new = self.write.buf = self.new[::-1]

    async def check(self, accepted: list[bool]) -> list[int]:
        """Each job's outcome; what a user can see of it is what it says."""
        read, write, sync = [await outcome(cb, ok)
                             for cb, ok in zip(self.jobs, accepted, strict=True)]
        if read >= 0:
            assert read == BLOCK and self.read.buf == self.old[:BLOCK]
        block1 = os.pread(self.fd, BLOCK, BLOCK)
        assert block1 == (self.new if write >= 0 else self.old[BLOCK:]), "a failed write landed"
        assert write in (-1, BLOCK) and sync in (-1, 0)
        return [read, write, sync]


Submitter = Callable[[AioContext, list[FileJobs]], Awaitable[list[list[bool]]]]


async def one_by_one(ctx: AioContext, files: list[FileJobs]) -> list[list[bool]]:
    """aio_read, aio_write, aio_fsync on each file; which of them were accepted."""
    def fsync(cb: Aiocb) -> None:
        ctx.aio_fsync(os.O_SYNC, cb)

    return [[submit(ctx.aio_read, f.read), submit(ctx.aio_write, f.write),
             submit(fsync, f.sync)] for f in files]


async def in_one_list(ctx: AioContext, files: list[FileJobs]) -> list[list[bool]]:
    """The same jobs in one lio_listio(LIO_WAIT): EIO if, and only if, an entry failed."""
    entries = [cb for f in files for cb in f.jobs]
    slots = queue_count()
    try:
        await asyncio.wait_for(ctx.lio_listio(LIO_WAIT, entries), 10)
        failed = False
    except OSError as exc:
        assert exc.errno == errno.EIO, exc
        failed = True
    refused = [cb for cb in entries if cb.state is JobState.IDLE]
    assert all(cb.error == errno.EMFILE for cb in refused), refused
    assert queue_count() == slots + len(entries) - len(refused)
    assert failed == any(cb.error for cb in entries)
    return [[cb.state is not JobState.IDLE for cb in f.jobs] for f in files]


async def emfile_then_recovery(aio: Env, new_file: MakeFile, run: Submitter) -> None:
    data = [rand(2 * BLOCK, i) for i in range(FILES)]
    files = [FileJobs(new_file(d), d, rand(BLOCK, 100 + i)) for i, d in enumerate(data)]
    ctx = AioContext()
    warm = Aiocb(files[0].fd)  # the ring (io_uring) and the workers exist before fds run out
    ctx.aio_fsync(os.O_SYNC, warm)
    assert await asyncio.wait_for(warm, 10) == 0
    fds, slots = open_fds(), queue_count()
    with fds_exhausted(free=2):  # two files get their dup, the others cannot
        accepted = await run(ctx, files)
        results = [await f.check(ok) for f, ok in zip(files, accepted, strict=True)]
    print(f"{aio.backend}: accepted {accepted}, results {results}")
    assert -1 not in results[0] + results[1], results  # the first two files had descriptors
    assert all(-1 in r for r in results[2:]), results  # an fsync always needs our dup
    await settled(ctx, fds, slots)
    for f in files:  # the same context and the same cbs: all of them succeed now
        f.next_write()
    accepted = await run(ctx, files)
    results = [await f.check(ok) for f, ok in zip(files, accepted, strict=True)]
    assert results == [[BLOCK, BLOCK, 0]] * FILES
    await settled(ctx, fds, slots)
    await asyncio.wait_for(ctx.aclose(), 10)


async def test_file_jobs_get_emfile_one_by_one_then_recover(aio: Env,
                                                            new_file: MakeFile) -> None:
    await emfile_then_recovery(aio, new_file, one_by_one)


async def test_lio_entries_get_emfile_one_by_one_then_recover(aio: Env,
                                                              new_file: MakeFile) -> None:
    await emfile_then_recovery(aio, new_file, in_one_list)


# -- the bridge: a parked pipe read holds a dup of its own ---------------------


async def test_pipe_reads_get_emfile_one_by_one_then_recover(aio: Env) -> None:
    pipes = [os.pipe() for _ in range(4)]
    try:
        await _pipe_reads(pipes)
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


async def _pipe_reads(pipes: list[tuple[int, int]]) -> None:
    ctx = AioContext()
    fds, slots = open_fds(), queue_count()
    cbs = [Aiocb(r, bytearray(8)) for r, _ in pipes]
    with fds_exhausted(free=1):  # the first read parks on its dup, the others cannot
        accepted = [submit(ctx.aio_read, cb) for cb in cbs]
        for n, (_, w) in enumerate(pipes):
            os.write(w, b"ABCD"[n:n + 1] * 8)
        results = [await outcome(cb, ok) for cb, ok in zip(cbs, accepted, strict=True)]
    assert results == [8, -1, -1, -1], results
    assert cbs[0].buf == b"AAAAAAAA"
    await settled(ctx, fds, slots)
    for cb, (_, w) in zip(cbs, pipes, strict=True):  # the refused ones took no byte
        os.write(w, b"again...")
        ctx.aio_read(cb)
    got = [await asyncio.wait_for(cb, 10) for cb in cbs]
    assert got == [8] * 4
    assert [bytes(cb.buf) for cb in cbs] == [b"again...", b"BBBBBBBB", b"CCCCCCCC", b"DDDDDDDD"]
    await settled(ctx, fds, slots)
    await asyncio.wait_for(ctx.aclose(), 10)


# -- the ring: a fresh loop's io_uring cannot be made -------------------------


@pytest.fixture
def uring_only() -> Iterator[None]:
    """File jobs through io_uring, none inline; no descriptor left behind."""
    if (reason := uring_probe()) is not None:  # (asked now: it needs a descriptor)
        pytest.skip(f"io_uring is not usable here: {reason}")
    sysctl.reset()  # type: ignore[attr-defined]
    sysctl["vfs.aio.backend"], sysctl["vfs.aio.inline"] = "io_uring", 0
    before = open_fds()
    yield
    sysctl.reset()  # type: ignore[attr-defined]
    assert open_fds() == before


@pytest.mark.parametrize("free", range(7), ids=lambda n: f"free{n}")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_ring_that_cannot_be_made_leaves_nothing(loop: str, free: int, tmp_path: Path,
                                                 uring_only: None) -> None:
    """``free`` descriptors left when a fresh loop's first job needs the ring
    (its fd, the dups its mmaps hold, its eventfd) and the job's dup: the
    first job is refused or fails with EMFILE, or completes; nothing is left
    behind, and once descriptors are back an aio_fsync on the same fd and the
    same cb again complete."""
    path = tmp_path / "ring.bin"
    path.write_bytes(rand(BLOCK))
    fd = os.open(path, os.O_RDWR)
    try:
        first = run_on(loop, _first_job_of_a_loop(fd, free))
    finally:
        os.close(fd)
    if free == 0:
        assert first == -1, "a job ran with no descriptor of its own"


async def _first_job_of_a_loop(fd: int, free: int) -> int:
    ctx = AioContext()
    fds, slots = open_fds(), queue_count()
    cb = Aiocb(fd, bytearray(BLOCK))
    with fds_exhausted(free):
        first = await outcome(cb, submit(ctx.aio_read, cb))
    print(f"{free} descriptors free: the first job gave {first}")
    if first >= 0:
        assert first == BLOCK and cb.buf == rand(BLOCK)
    await settled_but_ring(ctx, fds, slots)
    sync = Aiocb(fd)  # nothing of the first job is left for it to wait behind
    ctx.aio_fsync(os.O_SYNC, sync)
    assert await asyncio.wait_for(sync, 10) == 0
    cb.buf[:] = bytes(BLOCK)
    ctx.aio_read(cb)  # the same cb again
    assert await asyncio.wait_for(cb, 10) == BLOCK and cb.buf == rand(BLOCK)
    await asyncio.wait_for(ctx.aclose(), 10)
    return first


def extra_fds(fds: set[int]) -> list[str]:
    """What the descriptors opened since ``fds`` are, sorted."""
    return sorted(os.readlink(f"/proc/self/fd/{fd}") for fd in open_fds() - fds)


async def settled_but_ring(ctx: AioContext, fds: set[int], slots: int) -> None:
    """``settled``, except for the ring the first job may have made: the context
    holds it (its fd and its eventfd) until it is closed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (in_flight(ctx) or queue_count() != slots or not fds <= open_fds()
           or not set(extra_fds(fds)) <= RING_FDS):
        assert loop.time() < deadline, (
            f"left held: {ctx.statistics()}, fds {extra_fds(fds)}, "
            f"num_queue_count {queue_count()} (was {slots})")
        await asyncio.sleep(0.001)
