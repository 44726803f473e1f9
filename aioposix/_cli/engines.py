"""The engines of ``aioposix bench``, each used the way its own users use it.

- ``aioposix``: the module-level calls on the loop's default context, a new
  ``Aiocb`` per op: ``cb = Aiocb(fd, buf, bs, offset)``,
  ``aioposix.aio_read(cb)``, ``await cb``; ``--fsync`` is ``aio_fsync``.
- ``aiofiles``: one ``aiofiles.open`` handle per task, ``seek`` then
  ``read``/``write``; ``--fsync`` is ``os.fsync`` through ``aiofiles.os.wrap``.
- ``caio``: one ``caio.AsyncioContext`` per job, ``read(n, fd, offset)`` /
  ``write(data, fd, offset)`` / ``fsync(fd)``.
- ``py-asyncfiles`` (the module ``asyncfiles``): one ``asyncfiles.open``
  handle per task, ``f.seek(offset)`` (a plain method there) then ``await
  f.read(bs)``/``f.write(data)``; it has no fsync, so ``--fsync`` is
  ``os.fsync`` of a descriptor of the same file through ``run_in_executor``.
- ``sync``: one task of plain ``os.pread``/``os.pwrite`` with no concurrency,
  the ceiling an event loop pays to get near.

Each task issues ops back to back until the deadline; an op's latency runs
from just before the submit to just after the await returns
(``perf_counter_ns``), and only ops that start after the ramp are counted.
Every read, ramp included, is then checked in full by the job's ``Check``
(``_cli_verify``), outside the latency and inside the time the IOPS are
measured over, the same comparison for every engine; its time is added up
(``Meter.verify_ns``; for an engine with threads of its own, aiofiles, that
time includes waits for the GIL).  A write writes the block of its offset,
copied from the job's ``Check`` into the engine's own buffer (or a
``bytes``) inside the write's latency, one copy of ``bs`` bytes for every
engine.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import mmap
import os
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from aioposix._cli.verify import Check
from aioposix._context.calls import aio_fsync, aio_read, aio_write
from aioposix._core.job import Aiocb

ENGINE_NAMES = ("aioposix", "aiofiles", "caio", "py-asyncfiles", "sync")
MODULES = {"py-asyncfiles": "asyncfiles"}  # an engine's module, where it has another name
SYNC_YIELD_EVERY = 1024  # sync ops between yields, so that other jobs' loops are not starved
_O_DIRECT = getattr(os, "O_DIRECT", 0)


@dataclass(frozen=True)
class Workload:
    rw: str  # read, write, randread, randwrite, rw (= readwrite), randrw
    bs: int
    iodepth: int
    size: int  # bytes, a whole number of blocks
    runtime: float  # measured seconds per engine
    direct: bool
    path: str
    seed: int
    loop: str  # the event loop's name: asyncio or uvloop
    numjobs: int = 1  # threads, each with its own loop and iodepth tasks
    rwmixread: int = 50  # percent of reads in the mixed modes
    ramp_time: float = 0.0  # seconds run before the measurement starts
    fsync: int = 0  # an fsync after every this many writes of a job (0: never)

    @property
    def blocks(self) -> int:
        return self.size // self.bs

    @property
    def mixed(self) -> bool:
        return self.rw in ("rw", "randrw")

    @property
    def reads(self) -> bool:
        return self.rw in ("read", "randread") or (self.mixed and self.rwmixread > 0)

    @property
    def writes(self) -> bool:
        return self.rw in ("write", "randwrite") or (self.mixed and self.rwmixread < 100)

    @property
    def flags(self) -> int:
        mode = os.O_RDWR if self.writes else os.O_RDONLY
        return mode | (_O_DIRECT if self.direct else 0)


Picker = Callable[[], tuple[bool, int]]  # the next op: (is a write, offset)


def make_picker(w: Workload, cursor: list[int], seed: int) -> Picker:
    """Where each op goes.  Sequential modes share ``cursor`` between a job's
    tasks, so they walk the file together as fio's do; random modes draw
    block numbers; the mixed modes read ``rwmixread`` percent of the time."""
    bs, blocks, end = w.bs, w.blocks, w.blocks * w.bs
    rng = random.Random(seed)
    coin, share, always = rng.random, w.rwmixread / 100, w.rw in ("write", "randwrite")
    direction: Callable[[], bool] = (lambda: coin() >= share) if w.mixed else (lambda: always)
    if not w.rw.startswith("rand"):
        def sequential() -> tuple[bool, int]:
            offset = cursor[0]
            cursor[0] = (offset + bs) % end
            return direction(), offset
        return sequential
    draw = rng.randrange
    return lambda: (direction(), draw(blocks) * bs)


def make_buffer(w: Workload) -> bytearray | mmap.mmap:
    """A block buffer: page-aligned (an anonymous mmap) for O_DIRECT."""
    return mmap.mmap(-1, w.bs) if w.direct else bytearray(w.bs)


def optional(name: str) -> ModuleType | None:
    """An optional dependency, or None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# -- measuring ------------------------------------------------------------------


@dataclass
class Meter:
    """Shared by one job's tasks: the clock's marks and what was measured."""

    ramp_end_ns: int  # ops that start before this are not counted
    deadline_ns: int
    fsync_every: int = 0
    latencies: list[int] = field(default_factory=list)  # ns, one per counted op
    reads: int = 0
    writes_counted: int = 0
    writes: int = 0  # every write, ramp included: the --fsync count
    syncs: list[int] = field(default_factory=list)  # ns, one per counted fsync
    reads_all: int = 0  # every read, ramp included: each one is checked
    verify_ns: int = 0  # time spent checking them


@dataclass(frozen=True)
class Ops:
    """One task's ops.  ``read(offset)`` returns an awaitable (the sync
    engine: the result) of what the engine hands back, which goes to
    ``check(result, offset)``: a ``Check``'s ``data`` or ``into(buffer)``."""

    read: Callable[[int], Any]
    check: Callable[[Any, int], None]
    write: Callable[[int], Any]
    sync: Callable[[], Any]


Worker = Callable[[Picker, Meter], Coroutine[Any, Any, None]]


def count(meter: Meter, is_write: bool, t0: int, t1: int) -> None:
    if t0 >= meter.ramp_end_ns:
        meter.latencies.append(t1 - t0)
        if is_write:
            meter.writes_counted += 1
        else:
            meter.reads += 1


async def async_loop(ops: Ops, pick: Picker, meter: Meter) -> None:
    """One task of an async engine: ops back to back until the deadline."""
    clock, deadline, every = time.perf_counter_ns, meter.deadline_ns, meter.fsync_every
    read, check, write, sync = ops.read, ops.check, ops.write, ops.sync
    while True:
        is_write, offset = pick()
        t0 = clock()
        got = await (write(offset) if is_write else read(offset))
        t1 = clock()
        if not is_write:
            meter.reads_all += 1
            check(got, offset)
            meter.verify_ns += clock() - t1
        count(meter, is_write, t0, t1)
        if is_write and every:
            meter.writes += 1
            if meter.writes % every == 0:
                await sync()
                if t1 >= meter.ramp_end_ns:
                    meter.syncs.append(clock() - t1)
        if t1 >= deadline:
            return


async def sync_loop(ops: Ops, pick: Picker, meter: Meter) -> None:
    """The sync engine's only task; it yields once per SYNC_YIELD_EVERY ops."""
    clock, deadline, every = time.perf_counter_ns, meter.deadline_ns, meter.fsync_every
    read, check, write, sync = ops.read, ops.check, ops.write, ops.sync
    while True:
        for _ in range(SYNC_YIELD_EVERY):
            is_write, offset = pick()
            t0 = clock()
            got = write(offset) if is_write else read(offset)
            t1 = clock()
            if not is_write:
                meter.reads_all += 1
                check(got, offset)
                meter.verify_ns += clock() - t1
            count(meter, is_write, t0, t1)
            if is_write and every:
                meter.writes += 1
                if meter.writes % every == 0:
                    sync()
                    if t1 >= meter.ramp_end_ns:
                        meter.syncs.append(clock() - t1)
            if t1 >= deadline:
                return
        await asyncio.sleep(0)


# -- engines --------------------------------------------------------------------


class Skip(Exception):
    """The engine cannot run this workload here (the message says why)."""


class Session(ABC):
    """One engine of one job, opened on the workload's file in the job's loop."""

    tasks: int  # tasks to run at once: the iodepth, or 1

    @abstractmethod
    async def worker(self) -> Worker:
        """Per-task state (handles, buffers), made before the clock starts."""

    @abstractmethod
    async def close(self) -> None: ...


class AioposixSession(Session):
    """The natural API: a new Aiocb per op, the module-level calls, ``await cb``."""

    def __init__(self, w: Workload, check: Check) -> None:
        self.w, self.check, self.tasks = w, check, w.iodepth
        self.fd = os.open(w.path, w.flags)

    async def worker(self) -> Worker:
        fd, bs, block = self.fd, self.w.bs, self.check.block
        rbuf, wbuf = make_buffer(self.w), make_buffer(self.w)

        def read(offset: int) -> Aiocb:
            cb = Aiocb(fd, rbuf, bs, offset)
            aio_read(cb)
            return cb

        def write(offset: int) -> Aiocb:
            wbuf[:] = block(offset)
            cb = Aiocb(fd, wbuf, bs, offset)
            aio_write(cb)
            return cb

        def sync() -> Aiocb:
            cb = Aiocb(fd)
            aio_fsync(os.O_SYNC, cb)
            return cb
        ops = Ops(read, self.check.into(rbuf), write, sync)
        return lambda pick, meter: async_loop(ops, pick, meter)

    async def close(self) -> None:
        os.close(self.fd)


class AiofilesSession(Session):
    def __init__(self, w: Workload, check: Check, aiofiles: ModuleType) -> None:
        if w.direct:
            raise Skip("aiofiles goes through Python's buffered files, which cannot do O_DIRECT")
        self.w, self.check, self.tasks = w, check, w.iodepth
        self.mode = "r+b" if w.writes else "rb"
        self.open = aiofiles.open
        self.fsync = importlib.import_module("aiofiles.os").wrap(os.fsync)
        self.files: list[Any] = []

    async def worker(self) -> Worker:
        f = await self.open(self.w.path, self.mode)
        self.files.append(f)
        bs, block, fsync = self.w.bs, self.check.block, self.fsync

        async def read(offset: int) -> bytes:
            await f.seek(offset)
            data: bytes = await f.read(bs)
            return data

        async def write(offset: int) -> None:
            await f.seek(offset)
            await f.write(bytes(block(offset)))

        async def sync() -> None:
            await f.flush()
            await fsync(f.fileno())
        ops = Ops(read, self.check.data, write, sync)
        return lambda pick, meter: async_loop(ops, pick, meter)

    async def close(self) -> None:
        while self.files:
            await self.files.pop().close()


class CaioSession(Session):
    def __init__(self, w: Workload, check: Check, caio: ModuleType) -> None:
        if w.direct:
            # its reads go into buffers it allocates, its writes come from bytes
            # objects: nothing aligns them, so O_DIRECT refuses some and not others
            raise Skip("caio's buffers are not aligned for O_DIRECT (some reads fail "
                       "with EINVAL, others not)")
        self.w, self.check, self.tasks = w, check, w.iodepth
        self.ctx = caio.AsyncioContext(max_requests=w.iodepth, loop=asyncio.get_running_loop())
        try:
            self.fd = os.open(w.path, w.flags)
        except BaseException:
            self.ctx.close()
            raise

    async def probe(self) -> None:
        """One read: caio must be able to read this file at all (and read it right)."""
        try:
            data: bytes = await self.ctx.read(self.w.bs, self.fd, 0)
        except (OSError, SystemError) as exc:
            await self.close()
            raise Skip(f"caio cannot read this file ({exc})") from None
        try:
            self.check.once(data, 0)
        except BaseException:
            await self.close()
            raise

    async def worker(self) -> Worker:
        ctx, fd, bs, block = self.ctx, self.fd, self.w.bs, self.check.block

        def read(offset: int) -> Awaitable[bytes]:
            return ctx.read(bs, fd, offset)  # type: ignore[no-any-return]

        def write(offset: int) -> Awaitable[int]:
            return ctx.write(bytes(block(offset)), fd, offset)  # type: ignore[no-any-return]

        def sync() -> Awaitable[None]:
            return ctx.fsync(fd)  # type: ignore[no-any-return]
        ops = Ops(read, self.check.data, write, sync)
        return lambda pick, meter: async_loop(ops, pick, meter)

    async def close(self) -> None:
        try:
            self.ctx.close()
        finally:
            os.close(self.fd)


class AsyncfilesSession(Session):
    """py-asyncfiles: a handle per task, ``f.seek(offset)``, ``await f.read(bs)``."""

    def __init__(self, w: Workload, check: Check, asyncfiles: ModuleType) -> None:
        if w.direct:
            raise Skip("py-asyncfiles opens the file itself, without O_DIRECT")
        self.w, self.check, self.tasks = w, check, w.iodepth
        self.mode = "r+b" if w.writes else "rb"
        self.open = asyncfiles.open
        self.files: list[Any] = []
        self.sync_fd = os.open(w.path, os.O_RDONLY)  # for --fsync: it has none of its own

    async def worker(self) -> Worker:
        f = self.open(self.w.path, self.mode)
        await f.__aenter__()
        self.files.append(f)
        bs, block = self.w.bs, self.check.block
        loop, fd = asyncio.get_running_loop(), self.sync_fd

        async def read(offset: int) -> bytes:
            f.seek(offset)
            data: bytes = await f.read(bs)
            return data

        async def write(offset: int) -> None:
            f.seek(offset)
            await f.write(bytes(block(offset)))

        def sync() -> Awaitable[None]:
            return loop.run_in_executor(None, os.fsync, fd)
        ops = Ops(read, self.check.data, write, sync)
        return lambda pick, meter: async_loop(ops, pick, meter)

    async def close(self) -> None:
        try:
            while self.files:
                await self.files.pop().__aexit__(None, None, None)
        finally:
            os.close(self.sync_fd)


class SyncSession(Session):
    def __init__(self, w: Workload, check: Check) -> None:
        self.w, self.check, self.tasks = w, check, 1
        self.fd = os.open(w.path, w.flags)
        self.rbuf, self.wbuf = make_buffer(w), make_buffer(w)

    async def worker(self) -> Worker:
        fd, rbuf, wbuf, block = self.fd, self.rbuf, self.wbuf, self.check.block

        def write(offset: int) -> int:
            wbuf[:] = block(offset)
            return os.pwrite(fd, wbuf, offset)
        if self.w.direct:  # into the aligned buffer
            ops = Ops(functools.partial(os.preadv, fd, [rbuf]), self.check.into(rbuf), write,
                      functools.partial(os.fsync, fd))
        else:
            ops = Ops(functools.partial(os.pread, fd, self.w.bs), self.check.data, write,
                      functools.partial(os.fsync, fd))
        return lambda pick, meter: sync_loop(ops, pick, meter)

    async def close(self) -> None:
        os.close(self.fd)


async def open_session(name: str, w: Workload, check: Check) -> Session:
    """The engine ``name`` opened on the file; Skip if it cannot run here."""
    if name == "aioposix":
        return AioposixSession(w, check)
    if name == "sync":
        return SyncSession(w, check)
    module = optional(MODULES.get(name, name))
    if module is None:
        raise Skip(f"{name} is not installed (pip install {name})")
    if name == "aiofiles":
        return AiofilesSession(w, check, module)
    if name == "py-asyncfiles":
        return AsyncfilesSession(w, check, module)
    session = CaioSession(w, check, module)
    await session.probe()
    return session
