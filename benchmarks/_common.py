"""What the benchmark scripts share: the machine description, the measured
window and its heartbeat (the loop's worst stall), running on a loop by name,
and small report and JSON helpers.

The scripts run as ``python benchmarks/X.py``, so this folder is on sys.path
and they import it as ``from _common import ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aioposix

MiB = 1 << 20
HEARTBEAT = 0.001  # seconds between heartbeats
CHECK_EVERY = 16  # ops between clock checks (Window.tick) in a worker


def parse_size(text: str) -> int:
    """``4096``, ``64K``, ``256M``, ``1G`` (also ``1GiB``, ``1gb``) -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


# -- the machine ------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPUs, CPU model, kernel, and the versions of Python and the engines."""
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
                            "python": platform.python_version(),
                            "aioposix": aioposix.__version__}
    for mod in ("uvloop", "caio"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    return info


def machine_line() -> str:
    """``machine: N CPUs, Linux ..., Python ...; io_uring: ...``, the start of a header."""
    return (f"machine: {os.cpu_count()} CPUs, Linux {platform.release()}, Python "
            f"{platform.python_version()}; io_uring: {aioposix.sysctl['vfs.aio.io_uring']}")


def executor_note() -> str:
    """What ``run_in_executor(None, ...)`` runs on: the default executor's size."""
    return f"default executor ({min(32, (os.cpu_count() or 1) + 4)} threads)"


def rss() -> int:
    """This process's resident set size, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# -- the measured window ----------------------------------------------------------------


class Window:
    """Warm-up, then a measured window, then stop; driven by the workers' clocks.

    The workers (not a timer task) check the clock every few ops, so an engine
    that never yields to the loop still ends on time and is still measured
    right (its heartbeat stall then shows how long it held the loop).
    """

    WARMUP, MEASURE, STOP = 0, 1, 2

    def __init__(self, warmup: float, seconds: float) -> None:
        now = time.perf_counter()
        self.t_measure = now + warmup
        self.t_stop = self.t_measure + seconds
        self.phase = self.WARMUP
        self.ops = self.start_ops = self.end_ops = 0
        self.start_t = self.end_t = self.start_cpu = self.end_cpu = 0.0

    def tick(self) -> bool:
        """Note the time; False once the window is over."""
        phase = self.phase
        if phase == self.STOP:
            return False
        now = time.perf_counter()
        if phase == self.WARMUP:
            if now >= self.t_measure:
                self.phase = self.MEASURE
                self.start_ops, self.start_t = self.ops, now
                self.start_cpu = time.process_time()
        elif now >= self.t_stop:
            self.phase = self.STOP
            self.end_ops, self.end_t = self.ops, now
            self.end_cpu = time.process_time()
            return False
        return True

    @property
    def ops_per_s(self) -> float:
        elapsed = self.end_t - self.start_t
        return (self.end_ops - self.start_ops) / elapsed if elapsed > 0 else 0.0

    @property
    def cpu_us_per_op(self) -> float:
        """Process CPU time (every thread, io_uring's SQPOLL thread too) per op."""
        ops = self.end_ops - self.start_ops
        return (self.end_cpu - self.start_cpu) / ops * 1e6 if ops else 0.0


async def heartbeat(window: Window, stats: dict[str, float]) -> None:
    """Sleep HEARTBEAT in a loop; record in ``stats`` the worst lateness (ms) and
    the number of the beats that overlap the measured window (a beat held off
    past its end still counts: an engine that never yields shows the whole
    window as its stall)."""
    worst = 0.0
    beats = 0
    sleep = asyncio.sleep
    clock = time.perf_counter
    while True:
        t0 = clock()
        await sleep(HEARTBEAT)
        t1 = clock()
        if window.phase != Window.WARMUP and t1 >= window.start_t and (
                window.phase == Window.MEASURE or t0 <= window.end_t):
            beats += 1
            worst = max(worst, t1 - t0 - HEARTBEAT)
            stats["worst_stall_ms"] = worst * 1e3
            stats["beats"] = beats
        if window.phase == Window.STOP:
            return


Worker = Callable[[int], Coroutine[Any, Any, None]]


async def run_window(make_worker: Callable[[Window], Worker], workers: int, warmup: float,
                     seconds: float, slack: float, name: str = "worker"
                     ) -> tuple[Window, dict[str, float]]:
    """Run ``workers`` workers and the heartbeat through one window (``slack``
    seconds past its end at the most); clean up.  Returns the window and the
    heartbeat's stats (``worst_stall_ms``, ``beats``)."""
    window = Window(warmup, seconds)
    stats: dict[str, float] = {"worst_stall_ms": 0.0, "beats": 0}
    worker = make_worker(window)
    # The heartbeat goes first and is asleep before any worker runs.
    beat = asyncio.create_task(heartbeat(window, stats), name=f"{name}-heartbeat")
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(worker(i), name=f"{name}-{i}") for i in range(workers)]
    everything = [*tasks, beat]
    try:
        await asyncio.wait_for(asyncio.gather(*everything), warmup + seconds + slack)
    finally:
        for task in everything:
            task.cancel()
        await asyncio.gather(*everything, return_exceptions=True)
    return window, stats


async def run_workers(make_worker: Callable[[Window], Worker], args: Any
                      ) -> tuple[Window, float]:
    """``run_window`` for the scripts with ``--iodepth``, ``--warmup`` and
    ``--seconds``: ``args.iodepth`` workers, a minute of slack; returns the
    window and its worst stall in ms."""
    window, stats = await run_window(make_worker, args.iodepth, args.warmup, args.seconds, 60)
    return window, stats["worst_stall_ms"]


# -- loops ------------------------------------------------------------------------------


def run_on(loop_name: str, main: Coroutine[Any, Any, Any]) -> Any:
    """Run ``main`` on a fresh loop: uvloop, or else the asyncio default loop."""
    if loop_name == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


# -- reports ----------------------------------------------------------------------------


def fmt_ratio(a: float, b: float | None) -> str:
    """``a / b`` as ``1.23x``, or ``-`` when there is no ``b``."""
    return f"{a / b:.2f}x" if b else "-"


def write_json(path: str, doc: Any, newline: bool = False) -> None:
    """``doc`` as indented JSON in ``path`` (with a final newline if asked)."""
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        if newline:
            f.write("\n")
