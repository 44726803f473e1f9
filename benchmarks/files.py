"""File objects side by side: random 4 KiB reads through many handles, and
sequential 1 MiB reads of a big file, warm (page cache) and cold.

Workloads, on the asyncio default loop and on uvloop, ``--rounds`` rounds
each, the order of the engines reversed every other round:

* ``rand``: ``--qd`` tasks (64), each with its own handle on a cached file,
  read 4 KiB at random offsets:

  - ``aioposix seek+read``: ``f = await aioposix.open(path, "rb")``,
    ``await f.seek(off)``, ``await f.read(4096)``;
  - ``aioposix pread``: the same handle, ``await f.pread(4096, off)``;
  - ``py-asyncfiles seek+read`` (the reference): ``async with
    asyncfiles.open(path, "rb") as f``, ``f.seek(off)`` (a plain method
    there), ``await f.read(4096)``;
  - ``aiofiles seek+read``: ``aiofiles.open``, ``await f.seek(off)``,
    ``await f.read(4096)``;
  - ``caio``: caio's linux_uring asyncio context, ``await ctx.read(4096, fd, off)``;
  - ``os.pread loop``: a synchronous loop, no event loop: the limit.

* ``warm`` and ``cold``: one task reads a ``--seq-size`` file (128 MiB)
  from start to end in ``--seq-bs`` reads (1 MiB), pass after pass, the
  whole file in the page cache (``warm``) or dropped from it with
  ``posix_fadvise(POSIX_FADV_DONTNEED)`` before each pass (``cold``):

  - ``aioposix read``: ``await f.read(bs)`` until EOF;
  - ``aioposix readinto``: ``await f.readinto(buf)``, one bytearray reused;
  - ``py-asyncfiles read`` (the reference) and ``aiofiles read``: ``await f.read(bs)``;
  - ``sync read loop``: the builtin ``open(path, "rb")``, ``f.read(bs)``,
    no event loop: the limit.

Every byte read is compared with what the file holds (``_common.Pattern``
blocks for the random reads; for the sequential ones each read is compared
in full with the bytes expected there, and the time of those comparisons
is left out of GB/s, for every engine alike).  A heartbeat task sleeping
1 ms records its lateness (p99 and worst) while each async engine runs.

Run: ``python benchmarks/files.py [--seconds 2] [--rounds 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any

from _common import (
    CHECK_EVERY,
    Beats,
    Engine,
    MiB,
    Pattern,
    Window,
    Worker,
    Workload,
    _version,
    common_args,
    fmt_ratio,
    heartbeat,
    idle_heartbeat,
    installed,
    loops_available,
    machine,
    machine_line,
    parse_size,
    read_all,
    report,
    run_on,
    run_rounds,
    run_window,
    sample,
    select,
    wrong,
)

import aioposix

Job = tuple[int, bytes, bytes]  # (offset, head, tail)
SEEK, PREAD, REF_RAND = "aioposix seek+read", "aioposix pread", "py-asyncfiles seek+read"
READ, READINTO, REF_SEQ = "aioposix read", "aioposix readinto", "py-asyncfiles read"
RAND_LIMIT, SEQ_LIMIT = "os.pread loop", "sync read loop"
PACKAGES = {"asyncfiles": "py-asyncfiles"}  # a module's package, where it has another name


def drop_cache(fd: int) -> None:
    """Drop the file's pages from the page cache (its data is on disk)."""
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


# -- random reads -----------------------------------------------------------------------


class RandPlan:
    """The cached file, its pattern, and each worker's share of the random offsets."""

    def __init__(self, path: str, pattern: Pattern, args: argparse.Namespace) -> None:
        self.path, self.args = path, args
        rng = random.Random(args.seed)
        blocks = args.size // args.block
        self.jobs: list[Job] = []
        for _ in range(args.offsets):
            i = rng.randrange(blocks)
            head, tail = pattern.expect(i)
            self.jobs.append((i * args.block, head, tail))

    def share(self, worker: int) -> list[Job]:
        return self.jobs[worker::self.args.qd]


Opener = Callable[[str], Any]  # path -> async context manager of a file
ReadAt = Callable[[Any, int, int], Coroutine[Any, Any, bytes]]  # (file, n, offset) -> data


async def seek_read(f: Any, n: int, off: int) -> bytes:
    await f.seek(off)
    data: bytes = await f.read(n)
    return data


async def pread_at(f: Any, n: int, off: int) -> bytes:
    data: bytes = await f.pread(n, off)
    return data


async def plain_seek_read(f: Any, n: int, off: int) -> bytes:
    f.seek(off)  # py-asyncfiles: seek is a plain method
    data: bytes = await f.read(n)
    return data


def rand_bench(name: str, opener: Callable[[], Opener], read_at: ReadAt
               ) -> Callable[[RandPlan], Coroutine[Any, Any, dict[str, Any]]]:
    """An engine of ``rand``: a handle per worker, ``read_at`` per op."""
    async def bench(plan: RandPlan) -> dict[str, Any]:
        block, open_file = plan.args.block, opener()

        def make(window: Window) -> Worker:
            async def worker(i: int) -> None:
                mine = plan.share(i)
                async with open_file(plan.path) as f:
                    k = 0
                    while True:
                        for off, head, tail in mine:
                            data = await read_at(f, block, off)
                            if not (len(data) == block and data.startswith(head)
                                    and data.endswith(tail)):
                                raise wrong(name, off)
                            window.ops += 1
                            k += 1
                            if k == CHECK_EVERY:
                                k = 0
                                if not window.tick():
                                    return
            return worker

        args = plan.args
        window, beats = await run_window(make, args.qd, args.warmup, args.seconds, 60, name)
        return sample(window, beats)
    return bench


def aioposix_opener() -> Opener:
    return lambda path: aioposix.open(path, "rb")


def asyncfiles_opener() -> Opener:
    import asyncfiles

    return lambda path: asyncfiles.open(path, "rb")


def aiofiles_opener() -> Opener:
    import aiofiles

    return lambda path: aiofiles.open(path, "rb")


async def bench_caio(plan: RandPlan) -> dict[str, Any]:
    from caio.linux_uring_asyncio import AsyncioContext

    block, args = plan.args.block, plan.args
    ctx = AsyncioContext(max_requests=max(args.qd, 64), loop=asyncio.get_running_loop())
    fds: list[int] = []
    try:
        def make(window: Window) -> Worker:
            async def worker(i: int) -> None:
                mine = plan.share(i)
                fd = os.open(plan.path, os.O_RDONLY)
                fds.append(fd)
                read = ctx.read
                k = 0
                while True:
                    for off, head, tail in mine:
                        data = await read(block, fd, off)
                        if not (len(data) == block and data.startswith(head)
                                and data.endswith(tail)):
                            raise wrong("caio", off)
                        window.ops += 1
                        k += 1
                        if k == CHECK_EVERY:
                            k = 0
                            if not window.tick():
                                return
            return worker

        window, beats = await run_window(make, args.qd, args.warmup, args.seconds, 60, "caio")
        return sample(window, beats)
    finally:
        ctx.close()
        for fd in fds:
            os.close(fd)


def rand_limit(plan: RandPlan) -> dict[str, Any]:
    block, args = plan.args.block, plan.args
    fd = os.open(plan.path, os.O_RDONLY)
    try:
        window = Window(args.warmup, args.seconds)
        pread = os.pread
        k = 0
        while True:
            for off, head, tail in plan.jobs:
                data = pread(fd, block, off)
                if not (len(data) == block and data.startswith(head) and data.endswith(tail)):
                    raise wrong(RAND_LIMIT, off)
                window.ops += 1
                k += 1
                if k == CHECK_EVERY:
                    k = 0
                    if not window.tick():
                        return sample(window, None)
    finally:
        os.close(fd)


# -- sequential reads -------------------------------------------------------------------


class SeqWindow(Window):
    """A Window that also keeps the seconds spent comparing data, so that
    GB/s leaves them out (``verify`` is added to by the readers)."""

    def __init__(self, warmup: float, seconds: float) -> None:
        super().__init__(warmup, seconds)
        self.verify = self.start_verify = self.end_verify = 0.0

    def tick(self) -> bool:
        phase = self.phase
        going = super().tick()
        if phase != self.phase:
            if self.phase == self.MEASURE:
                self.start_verify = self.verify
            else:
                self.end_verify = self.verify
        return going

    def gbps(self) -> float:
        seconds = self.elapsed - (self.end_verify - self.start_verify)
        return (self.end_bytes - self.start_bytes) / seconds / 1e9 if seconds > 0 else 0.0


class SeqPlan:
    """The sequential file and the bytes expected of each of its reads."""

    def __init__(self, path: str, args: argparse.Namespace) -> None:
        self.path, self.args, self.cold = path, args, False
        with open(path, "rb") as f:
            self.expect = [f.read(args.seq_bs) for _ in range(-(-args.seq_size // args.seq_bs))]

    def check(self, window: SeqWindow, engine: str, k: int, data: Any, n: int) -> None:
        t0 = time.perf_counter()
        ok = n == len(self.expect[k]) and data == self.expect[k]
        window.verify += time.perf_counter() - t0
        if not ok:
            raise wrong(engine, k * self.args.seq_bs)

    def prepare(self) -> None:
        """Before a pass: a cold pass starts with none of the file cached."""
        if self.cold:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                drop_cache(fd)
            finally:
                os.close(fd)


SeqPass = Callable[[SeqPlan, SeqWindow, str], Coroutine[Any, Any, bool]]  # False: window over


async def seq_read(f: Any, plan: SeqPlan, window: SeqWindow, engine: str) -> bool:
    """One pass of ``await f.read(bs)`` to EOF; False once the window is over."""
    bs, k = plan.args.seq_bs, 0
    while data := await f.read(bs):
        plan.check(window, engine, k, data, len(data))
        window.bytes += len(data)
        k += 1
        if not window.tick():
            return False
    if k != len(plan.expect):
        raise wrong(engine, k * bs)
    return True


def seq_bench(name: str, opener: Callable[[], Opener], into: bool = False
              ) -> Callable[[SeqPlan], Coroutine[Any, Any, dict[str, Any]]]:
    async def bench(plan: SeqPlan) -> dict[str, Any]:
        args, open_file = plan.args, opener()
        buf = bytearray(args.seq_bs)
        view = memoryview(buf)
        windows: list[SeqWindow] = []

        def make(window: Window) -> Worker:
            assert isinstance(window, SeqWindow)
            windows.append(window)

            async def worker(i: int) -> None:
                while True:
                    plan.prepare()
                    async with open_file(plan.path) as f:
                        going = await (seq_readinto(f, buf, view, plan, window, name) if into
                                       else seq_read(f, plan, window, name))
                    if not going:
                        return
            return worker

        window, beats = await run_seq_window(make, args.warmup, args.seconds, name)
        return sample(window, beats, value=window.gbps())
    return bench


async def seq_readinto(f: Any, buf: bytearray, view: memoryview, plan: SeqPlan,
                       window: SeqWindow, engine: str) -> bool:
    k = 0
    while n := await f.readinto(buf):
        plan.check(window, engine, k, view[:n] if n != len(buf) else buf, n)
        window.bytes += n
        k += 1
        if not window.tick():
            return False
    if k != len(plan.expect):
        raise wrong(engine, k * plan.args.seq_bs)
    return True


async def run_seq_window(make: Callable[[Window], Worker], warmup: float, seconds: float,
                         name: str) -> tuple[SeqWindow, Beats]:
    """``run_window`` with one worker and a SeqWindow."""
    window = SeqWindow(warmup, seconds)
    beats = Beats()
    beat = asyncio.create_task(heartbeat(window, beats), name=f"{name}-heartbeat")
    await asyncio.sleep(0)
    task = asyncio.create_task(make(window)(0), name=name)
    try:
        await asyncio.wait_for(asyncio.gather(task, beat), warmup + seconds + 120)
    finally:
        for t in (task, beat):
            t.cancel()
        await asyncio.gather(task, beat, return_exceptions=True)
    return window, beats


def seq_limit(plan: SeqPlan) -> dict[str, Any]:
    args = plan.args
    window = SeqWindow(args.warmup, args.seconds)
    while True:
        plan.prepare()
        with open(plan.path, "rb") as f:
            k = 0
            while data := f.read(args.seq_bs):
                plan.check(window, SEQ_LIMIT, k, data, len(data))
                window.bytes += len(data)
                k += 1
                if not window.tick():
                    return sample(window, None, value=window.gbps())


# -- the table --------------------------------------------------------------------------


Bench = Callable[[Any], Coroutine[Any, Any, dict[str, Any]]]
RAND: list[tuple[str, Bench, str, str, str | None]] = [
    # (engine, bench, role, note, module it needs)
    (SEEK, rand_bench(SEEK, aioposix_opener, seek_read), "natural",
     "aioposix.open, await f.seek(off), await f.read(n)", None),
    (PREAD, rand_bench(PREAD, aioposix_opener, pread_at), "natural",
     "aioposix.open, await f.pread(n, off)", None),
    (REF_RAND, rand_bench(REF_RAND, asyncfiles_opener, plain_seek_read), "ref",
     "asyncfiles.open, f.seek(off), await f.read(n)", "asyncfiles"),
    ("aiofiles seek+read", rand_bench("aiofiles seek+read", aiofiles_opener, seek_read), "peer",
     "aiofiles.open, await f.seek(off), await f.read(n)", "aiofiles"),
    ("caio", bench_caio, "peer", "linux_uring_asyncio, await ctx.read(n, fd, off)", "caio"),
]
SEQ: list[tuple[str, Bench, str, str, str | None]] = [
    (READ, seq_bench(READ, aioposix_opener), "natural", "aioposix.open, await f.read(bs)", None),
    (READINTO, seq_bench(READINTO, aioposix_opener, into=True), "natural",
     "aioposix.open, await f.readinto(buf), one bytearray", None),
    (REF_SEQ, seq_bench(REF_SEQ, asyncfiles_opener), "ref", "asyncfiles.open, await f.read(bs)",
     "asyncfiles"),
    ("aiofiles read", seq_bench("aiofiles read", aiofiles_opener), "peer",
     "aiofiles.open, await f.read(bs)", "aiofiles"),
]


def engines_of(workload: str, plan: Any, table: list[tuple[str, Bench, str, str, str | None]],
               limit: Engine, loops: list[str], before: Callable[[], None]) -> list[Engine]:
    out = [limit]
    for loop in loops:
        for name, bench, role, note, module in table:
            if module and not installed(module):
                out.append(Engine(workload, name, loop, None, note,
                                  f"not installed (pip install {PACKAGES.get(module, module)})",
                                  role))
                continue

            def run(bench: Bench = bench, loop: str = loop) -> dict[str, Any]:
                before()
                return dict(run_on(loop, bench(plan)))

            out.append(Engine(workload, name, loop, run, note, role=role))
    return out


def rand_engines(plan: RandPlan, workload: str, loops: list[str]) -> list[Engine]:
    limit = Engine(workload, RAND_LIMIT, "-", lambda: rand_limit(plan),
                   "synchronous os.pread, no event loop", role="limit")
    return engines_of(workload, plan, RAND, limit, loops, lambda: read_all(plan.path))


def seq_engines(plan: SeqPlan, workload: str, loops: list[str]) -> list[Engine]:
    def before() -> None:
        if not plan.cold:
            read_all(plan.path)

    def limit_run() -> dict[str, Any]:
        before()
        return seq_limit(plan)

    limit = Engine(workload, SEQ_LIMIT, "-", limit_run,
                   'builtin open(path, "rb"), f.read(bs), no event loop', role="limit")
    return engines_of(workload, plan, SEQ, limit, loops, before)


# -- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--workloads", nargs="+", choices=("rand", "warm", "cold"),
                   default=["rand", "warm", "cold"])
    p.add_argument("--size", type=parse_size, default="256M", help="random reads: file size")
    p.add_argument("--block", type=int, default=4096, help="random reads: bytes per read")
    p.add_argument("--qd", type=int, default=64, help="random reads: tasks, a handle each")
    p.add_argument("--offsets", type=int, default=1 << 16, help="random offsets precomputed")
    p.add_argument("--seq-size", type=parse_size, default="128M",
                   help="sequential reads: file size")
    p.add_argument("--seq-bs", type=parse_size, default="1M", help="sequential: bytes per read")
    p.add_argument("--seconds", type=float, default=2.0, help="measured seconds per round")
    p.add_argument("--warmup", type=float, default=0.3, help="warm-up seconds per round")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dir", default=None, help="where the files go (default: $TMPDIR)")
    common_args(p)
    args = p.parse_args(argv)
    if min(args.size, args.block, args.qd, args.seq_size, args.seq_bs) < 1 or args.seconds <= 0:
        p.error("sizes, --qd and --seconds must be positive")
    return args


def workloads(args: argparse.Namespace) -> dict[str, Workload]:
    seq = f"{args.seq_bs // MiB or args.seq_bs} {'MiB' if args.seq_bs >= MiB else 'B'}"
    rand = Workload(
        f"cached {args.block // 1024} KiB randread, {args.qd} handles", "ops/s", True,
        REF_RAND, RAND_LIMIT,
        f"{args.size // MiB} MiB file in the page cache, a handle per task; every block read "
        f"is compared", targets={SEEK: [("vs_ref", ">=", 1.2), ("hb_p99_ms", "<=", 2.0)],
                                 PREAD: [("vs_ref", ">=", 1.2), ("hb_p99_ms", "<=", 2.0)]})
    out = {"rand": rand}
    for kind in ("warm", "cold"):
        out[kind] = Workload(
            f"{kind} sequential {seq} reads, {args.seq_size // MiB} MiB", "GB/s", True,
            REF_SEQ, SEQ_LIMIT,
            f"one task reads the file to its end, pass after pass; {kind}: "
            + ("in the page cache" if kind == "warm" else "dropped from the page cache "
               "(POSIX_FADV_DONTNEED) before each pass")
            + "; every byte compared, the comparisons' time left out",
            targets={READ: [("vs_limit", ">=", 0.9)], READINTO: [("vs_limit", ">=", 0.9)]})
    return out


def print_targets(rows: list[dict[str, Any]]) -> None:
    print("\ntargets:")
    for r in rows:
        if "target" in r:
            state = {True: "met", False: "NOT met", None: "no figure"}[r.get("met")]
            print(f"  {r['loop']:8} {r['workload'][:44]:44} {r['engine']:20} {r['target']:40} "
                  f"{state} (vs ref {fmt_ratio(r.get('vs_ref'))}, "
                  f"vs limit {fmt_ratio(r.get('vs_limit'))})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    info["py-asyncfiles"] = _version("asyncfiles")
    print(machine_line(info) + f"; py-asyncfiles {info['py-asyncfiles']}")
    loops = loops_available(args.loops)
    ws = workloads(args)
    table: list[Engine] = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="files-") as tmp:
        rand_plan = seq_plan = None
        if "rand" in args.workloads:
            path = os.path.join(tmp, "rand")
            blocks = args.size // args.block
            pattern = Pattern(blocks, args.block)
            pattern.write_file(path, blocks)
            rand_plan = RandPlan(path, pattern, args)
            table += rand_engines(rand_plan, ws["rand"].name, loops)
        for kind in ("warm", "cold"):
            if kind not in args.workloads:
                continue
            path = os.path.join(tmp, "seq")
            if seq_plan is None:
                blocks = -(-args.seq_size // 4096)
                Pattern(blocks).write_file(path, blocks)
                seq_plan = SeqPlan(path, args)
            plan = seq_plan if kind == "warm" else cold_copy(seq_plan)
            table += seq_engines(plan, ws[kind].name, loops)
        idle = {loop: run_on(loop, idle_heartbeat()) for loop in loops}
        table = select(table, args.only)
        orders = run_rounds(table, args.rounds)
    chosen = [ws[k] for k in ("rand", "warm", "cold") if k in args.workloads]
    doc = report("files", "File objects: random 4 KiB and sequential 1 MiB reads", info, args,
                 chosen, table, orders, idle)
    print_targets(doc["rows"])
    return 0


def cold_copy(plan: SeqPlan) -> SeqPlan:
    """The same file and expectations, dropped from the cache before each pass."""
    cold = SeqPlan.__new__(SeqPlan)
    cold.path, cold.args, cold.expect, cold.cold = plan.path, plan.args, plan.expect, True
    return cold


if __name__ == "__main__":
    sys.exit(main())
