"""``aioposix bench``: a fio-shaped workload runner, aioposix beside its peers.

One workload (rw, bs, iodepth, numjobs, size, runtime, ...) runs on one
file, laid out with the check pattern and read once into the page cache,
with each engine in turn (``_cli_engines`` says how each is used).  An
engine runs ``numjobs`` jobs at once, each a thread with its own event loop
and ``iodepth`` tasks (the sync engine: one task); the jobs open their
sessions, meet at a barrier, run ``ramp_time`` seconds uncounted and then
``runtime`` seconds counted, and their figures are summed (``_cli_report``).
Every byte every engine reads is compared with what the file holds
(``_cli_verify``); a read that differs fails that engine, and the run exits
with status 1 and a message naming the engine, the offset and the byte.

``READY_HOOKS`` is a test hook: each is called with the workload (its path
filled in) once the file is laid out and cached, before the first engine
runs; the tests corrupt the file there to see the check catch it.

The aioposix engine uses the loop's default context, which copies its
quotas from ``aioposix.sysctl`` when it is made: a workload deeper than
those quotas raises them for the run, with a note on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from aioposix._cli.engines import Meter, Session, Skip, Workload, make_picker, open_session
from aioposix._cli.report import (
    Progress,
    Result,
    describe_workload,
    json_text,
    make_progress,
    normal_text,
    plot,
    set_ratios,
    summarize,
)
from aioposix._cli.verify import Check, Foreign, Pattern, lay_out
from aioposix._kernel.kernel import KERNEL

RW_MODES = ("read", "write", "randread", "randwrite", "rw", "readwrite", "randrw")
DEFAULT_RUNTIME = 4.0  # seconds per engine: the four defaults take about 20 s in all
BARRIER_TIMEOUT = 60.0  # seconds the jobs of an engine wait for each other to be ready
_O_DIRECT = getattr(os, "O_DIRECT", 0)

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
READY_HOOKS: list[Callable[[Workload], None]] = []  # a test hook: see the module docstring


class UsageError(Exception):
    """A bad command line or setting: printed to stderr, exit status 2.
    (Defined here because the runner finds some of them: a missing uvloop, a
    filesystem without O_DIRECT.)"""


@dataclass(frozen=True)
class Outputs:
    """Where the results go."""

    format: str = "normal"  # normal or json
    output: str | None = None  # a file for them instead of stdout
    plot: str | None = None  # the PNG chart's path
    percentiles: tuple[float, ...] = ()  # the clat percentiles to report


# -- one job ----------------------------------------------------------------------


@dataclass
class Outcome:
    """What one job of an engine came back with."""

    meter: Meter | None = None
    seconds: float = 0.0
    skipped: str | None = None
    error: str | None = None
    verified_bytes: int = 0  # bytes read, compared with the file's and found equal


async def drive(session: Session, w: Workload, meters: list[Meter],
                job: int) -> tuple[Meter, float]:
    """Run the session's tasks until the deadline: (the meter, measured seconds)."""
    workers = [await session.worker() for _ in range(session.tasks)]
    start = time.perf_counter_ns()
    ramp_end = start + int(w.ramp_time * 1e9)
    meter = Meter(ramp_end, ramp_end + int(w.runtime * 1e9), w.fsync)
    meters.append(meter)  # the progress bar reads it from the main thread
    cursor = [0]  # the job's tasks walk sequential modes together
    seed = w.seed + job * len(workers)
    tasks = [asyncio.create_task(worker(make_picker(w, cursor, seed + i), meter))
             for i, worker in enumerate(workers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return meter, max(time.perf_counter_ns() - ramp_end, 1) / 1e9


async def run_job(name: str, w: Workload, pattern: Pattern, index: int,
                  barrier: threading.Barrier, meters: list[Meter]) -> Outcome:
    check = Check(name, pattern)  # this job's own: it stamps its copies in place
    try:
        session = await open_session(name, w, check)
    except Skip as why:
        barrier.abort()
        return Outcome(skipped=str(why))
    try:
        barrier.wait(BARRIER_TIMEOUT)  # every job ready before any clock starts
        meter, seconds = await drive(session, w, meters, index)
        return Outcome(meter, seconds, verified_bytes=check.verified_bytes)
    finally:
        await session.close()


def job_thread(name: str, w: Workload, pattern: Pattern, index: int, factory: LoopFactory,
               barrier: threading.Barrier, meters: list[Meter], out: list[Outcome]) -> None:
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            out[index] = runner.run(run_job(name, w, pattern, index, barrier, meters))
    except threading.BrokenBarrierError:
        out[index] = Outcome(error="another job of this engine did not start")
    except Exception as exc:  # the report says which engine failed and why
        barrier.abort()
        out[index] = Outcome(error=f"{type(exc).__name__}: {exc}")


# -- one engine -------------------------------------------------------------------


def run_engine(name: str, w: Workload, pattern: Pattern, factory: LoopFactory,
               progress: Progress, percentiles: Sequence[float]) -> Result:
    """``numjobs`` jobs of engine ``name`` at once, their figures summed."""
    barrier = threading.Barrier(w.numjobs)
    meters: list[Meter] = []
    outcomes = [Outcome(error="the job did not finish")] * w.numjobs
    threads = [threading.Thread(target=job_thread, name=f"bench-{name}-{i}", daemon=True,
                                args=(name, w, pattern, i, factory, barrier, meters,
                                      outcomes))
               for i in range(w.numjobs)]
    progress.start(name)
    span, start = w.ramp_time + w.runtime, time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.1)
            progress.update((time.perf_counter() - start) / span,
                            sum(len(m.latencies) for m in list(meters)))
    progress.stop()
    return combine(name, w, outcomes, percentiles)


def combine(name: str, w: Workload, outcomes: list[Outcome],
            percentiles: Sequence[float]) -> Result:
    skipped = next((o.skipped for o in outcomes if o.skipped), None)
    if skipped:
        return Result(name, skipped=skipped)
    failed = [o.error for o in outcomes if o.error]
    real = [e for e in failed if not e.startswith("another job")]
    if failed:
        return Result(name, error=(real or failed)[0])
    jobs = [(o.meter, o.seconds) for o in outcomes if o.meter is not None]
    result = summarize(name, w, jobs, percentiles)
    result.verified_bytes = sum(o.verified_bytes for o in outcomes)
    if result.read_bytes:
        result.verified = result.verified_bytes == result.read_bytes
    return result


def loop_factory(name: str) -> LoopFactory:
    if name == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        raise UsageError("--loop uvloop: uvloop is not installed") from None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


@contextlib.contextmanager
def room(w: Workload) -> Iterator[None]:
    """Quotas for numjobs x iodepth jobs in flight (the default contexts copy
    them when they are made), put back afterwards."""
    need = {"vfs.aio.max_aio_queue_per_proc": w.iodepth, "vfs.aio.max_buf_aio": w.iodepth,
            "vfs.aio.max_aio_queue": w.iodepth * w.numjobs}
    old = {name: KERNEL.sysctl.get_int(name) for name in need}
    try:
        for name, value in need.items():
            if old[name] < value:
                KERNEL.sysctl[name] = value
                note(f"{name} raised to {value} for this run (iodepth {w.iodepth}, "
                     f"numjobs {w.numjobs})")
        yield
    finally:
        for name, value in old.items():
            KERNEL.sysctl[name] = value


# -- the file ---------------------------------------------------------------------


@contextlib.contextmanager
def bench_file(path: str | None, pattern: Pattern, blocks: int,
               overwrite: bool = False) -> Iterator[str]:
    """The file to run on: its first ``blocks`` blocks hold the check pattern,
    and are in the page cache (``lay_out`` read or wrote each); a temporary
    file (removed afterwards) when no path is given.  A named file is extended
    if shorter; one that holds other data there is written over only with
    ``overwrite`` (--overwrite=1), else UsageError says why."""
    size = blocks * pattern.bs
    if path is None:
        fd, tmp = tempfile.mkstemp(prefix="aioposix-bench-")
        os.close(fd)
        try:
            lay_out(tmp, pattern, blocks)
            yield tmp
        finally:
            os.unlink(tmp)
        return
    try:
        written = lay_out(path, pattern, blocks, overwrite)
    except Foreign:
        raise UsageError(
            f"{path} holds data other than the bench's check pattern in its first {size:,} "
            f"bytes: every byte read is checked against the pattern, so the file must hold "
            f"it; pass --overwrite=1 to write it there, or name a new file") from None
    if written:
        note(f"{path}: the check pattern written over {written:,} of its first {size:,} bytes "
             f"(block offsets stamped, --bs {pattern.bs})")
    yield path


def check_direct(path: str) -> None:
    if not _O_DIRECT:
        raise UsageError("--direct=1: O_DIRECT does not exist on this platform")
    try:
        os.close(os.open(path, os.O_RDONLY | _O_DIRECT))
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        raise UsageError(f"--direct=1: the filesystem of {path} does not support O_DIRECT") \
            from None


# -- the run ----------------------------------------------------------------------


def note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def report(w: Workload, results: list[Result], out: Outputs) -> int:
    """Print and write the results: the exit status (1 if an engine failed)."""
    set_ratios(results)
    text = json_text(w, results) if out.format == "json" else normal_text(w, results)
    if out.output:
        with open(out.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    for r in results:
        if r.skipped:
            note(f"{r.engine} skipped: {r.skipped}")
    if out.plot:
        why = plot(out.plot, describe_workload(w), results)
        if why:
            note(why)
    failed = [r for r in results if r.error or r.verified is False]
    for r in failed:
        why = r.error or (f"{r.verified_bytes:,} of the {r.read_bytes:,} bytes read "
                          f"were verified")
        print(f"error: {r.engine}: {why}", file=sys.stderr)
    return 1 if failed else 0


def bench(w: Workload, engines: Sequence[str], factory: LoopFactory, file: str | None,
          out: Outputs, overwrite: bool = False) -> int:
    """Run ``w`` with each engine on ``file`` (None: a temporary file) and
    report: the exit status.  ``w.path`` is filled in once the file exists;
    ``overwrite``: a named file holding other data may be written over."""
    pattern = Pattern(w.bs)
    with bench_file(file, pattern, w.blocks, overwrite) as path:
        w = replace(w, path=path)
        if w.direct:
            check_direct(path)
        for hook in READY_HOOKS:
            hook(w)
        progress = make_progress(sys.stdout.isatty() and sys.stderr.isatty())
        try:
            with room(w) if "aioposix" in engines else contextlib.nullcontext():
                results = [run_engine(name, w, pattern, factory, progress, out.percentiles)
                           for name in engines]
        finally:
            progress.close()
    return report(w, results, out)
