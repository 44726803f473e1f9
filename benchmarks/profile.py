"""Where the time of aioposix's natural path goes, per workload: a sampling profile.

Runs one workload (the README's natural API: a new ``Aiocb`` per call, the
module-level ``aioposix.aio_read``/``aio_write``, ``await cb``) under py-spy
and prints, as Markdown:

* the share of samples by layer of aioposix (a sample counts for the
  innermost aioposix module on its stack; the loop's own code, the
  workload's code and the system calls made from them are rows of their own);
* the functions with the most samples of their own (self time), the system
  calls made from a line showing as that line.

Workloads (64 tasks unless said): ``randread`` (cached 4 KiB reads),
``randwrite`` (4 KiB overwrites of a fully written file), ``direct``
(O_DIRECT 4 KiB reads through the kernel path), ``pingpong`` (64-byte
messages over a socketpair, one client, one echo task), ``seekread``
(``await f.seek(off)`` + ``await f.read(4096)`` on ``aioposix.open`` files).

py-spy (``pip install py-spy``) samples the process from outside, so the
figures are not slowed down by the profiler; without it, the run stops with
a note.  Run: ``python benchmarks/profile.py randread [--loop uvloop]
[--seconds 3] [--top 15]``.
"""

from __future__ import annotations

import argparse
import asyncio
import mmap
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import aioposix

BLOCK = 4096
QD = 64
FILE_SIZE = 64 << 20
WORKLOADS = ("randread", "randwrite", "direct", "pingpong", "seekread")


# -- the workloads (run in the child py-spy watches) ------------------------------------


def make_file(path: str, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // (1 << 20)):
            f.write(random.randbytes(1 << 20))
        f.flush()
        os.fsync(f.fileno())


async def many(task: Callable[[float], Coroutine[Any, Any, None]], seconds: float) -> None:
    stop = time.monotonic() + seconds
    await asyncio.gather(*(task(stop) for _ in range(QD)))


async def blocks(path: str, seconds: float, flags: int, buffer: Callable[[], Any],
                 submit: Callable[[aioposix.Aiocb], None]) -> None:
    """64 tasks, each a new Aiocb per 4 KiB block at a random offset, submitted
    with ``submit`` (aio_read or aio_write) into or from its own ``buffer()``."""
    fd = os.open(path, flags)
    count = FILE_SIZE // BLOCK

    async def task(stop: float) -> None:
        buf, rng = buffer(), random.Random()
        while time.monotonic() < stop:
            cb = aioposix.Aiocb(fd, buf, BLOCK, rng.randrange(count) * BLOCK)
            submit(cb)
            await cb

    try:
        await many(task, seconds)
    finally:
        os.close(fd)


async def randread(path: str, seconds: float) -> None:
    await blocks(path, seconds, os.O_RDONLY, lambda: bytearray(BLOCK), aioposix.aio_read)


async def randwrite(path: str, seconds: float) -> None:
    await blocks(path, seconds, os.O_RDWR, lambda: random.randbytes(BLOCK), aioposix.aio_write)


async def direct(path: str, seconds: float) -> None:
    aioposix.sysctl["vfs.aio.max_buf_aio"] = QD
    await blocks(path, seconds, os.O_RDONLY | os.O_DIRECT,
                 lambda: memoryview(mmap.mmap(-1, BLOCK)), aioposix.aio_read)


async def pingpong(_path: str, seconds: float) -> None:
    a, b = socket.socketpair()
    stop = time.monotonic() + seconds

    async def echo() -> None:
        buf = bytearray(64)
        while True:
            cb = aioposix.Aiocb(a.fileno(), buf, 64)
            aioposix.aio_read(cb)
            n = await cb
            if n == 0:
                return
            out = aioposix.Aiocb(a.fileno(), bytes(buf[:n]), n)
            aioposix.aio_write(out)
            await out

    async def client() -> None:
        message, buf = b"m" * 64, bytearray(64)
        while time.monotonic() < stop:
            out = aioposix.Aiocb(b.fileno(), message, 64)
            aioposix.aio_write(out)
            await out
            got = 0
            while got < 64:
                cb = aioposix.Aiocb(b.fileno(), memoryview(buf)[got:], 64 - got)
                aioposix.aio_read(cb)
                got += await cb
        b.shutdown(socket.SHUT_WR)

    try:
        await asyncio.gather(echo(), client())
    finally:
        a.close()
        b.close()


async def seekread(path: str, seconds: float) -> None:
    blocks = FILE_SIZE // BLOCK

    async def task(stop: float) -> None:
        rng = random.Random()
        async with aioposix.open(path, "rb") as f:
            while time.monotonic() < stop:
                await f.seek(rng.randrange(blocks) * BLOCK)
                await f.read(BLOCK)

    await many(task, seconds)


def child(args: argparse.Namespace) -> None:
    """The profiled process: run the workload on the chosen loop."""
    runs: dict[str, Callable[[str, float], Coroutine[Any, Any, None]]] = {
        "randread": randread, "randwrite": randwrite, "direct": direct,
        "pingpong": pingpong, "seekread": seekread}
    main = runs[args.workload](args.file, args.seconds)
    if args.loop == "uvloop":
        import uvloop
        uvloop.run(main)
    else:
        asyncio.run(main)


# -- the profile ------------------------------------------------------------------------


def layer(frame: str) -> str | None:
    """The aioposix module of a py-spy frame ``name (path:line)``, or None."""
    _, _, where = frame.rpartition(" (")
    path = where.split(":")[0]
    marker = "aioposix" + os.sep
    if marker not in path or "benchmarks" in path:
        return None
    module = path[path.rindex(marker):].removesuffix(".py").replace(os.sep, ".")
    return module


def aggregate(raw: str) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, by layer, by own function) from py-spy's raw (collapsed) output;
    samples of idle threads (the daemons waiting for work) are left out."""
    layers: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any("Condition.wait" in f or "_bootstrap" in f for f in frames):
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        inner = next((m for f in reversed(frames) if (m := layer(f))), None)
        layers[inner or _outside(frames[-1])] += n
    return total, layers, own


def _outside(frame: str) -> str:
    if "asyncio" in frame or "uvloop" in frame or "selectors" in frame:
        return "(the event loop)"
    return "(the workload's own code)"


def render(args: argparse.Namespace, total: int, layers: Counter[str],
           own: Counter[str]) -> str:
    lines = [f"### {args.workload}, {args.loop} ({total} samples, {args.seconds:g} s)", "",
             "| layer | share |", "|---|---|"]
    lines += [f"| `{name}` | {n / total:.1%} |" for name, n in layers.most_common()]
    lines += ["", "| function (self) | share |", "|---|---|"]
    lines += [f"| `{_short(name)}` | {n / total:.1%} |" for name, n in own.most_common(args.top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    name, _, where = frame.rpartition(" (")
    path, _, line = where.rstrip(")").partition(":")
    return f"{name} ({os.path.basename(path)}:{line})"


def profile(args: argparse.Namespace) -> int:
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        print("py-spy is not installed (pip install py-spy): no profile", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.bin")
        make_file(data, FILE_SIZE)
        out = os.path.join(tmp, "profile.raw")
        cmd = [spy, "record", "--nonblocking", "--rate", str(args.rate), "--format", "raw",
               "--output", out,
               "--", sys.executable, os.path.abspath(__file__), args.workload, "--child",
               "--file", data, "--loop", args.loop, "--seconds", str(args.seconds)]
        subprocess.run(cmd, check=True, capture_output=True)
        with open(out) as f:
            total, layers, own = aggregate(f.read())
    if not total:
        print("py-spy recorded no samples", file=sys.stderr)
        return 1
    print(render(args, total, layers, own))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("workload", choices=WORKLOADS)
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rate", type=int, default=1000, help="samples per second")
    p.add_argument("--top", type=int, default=15, help="functions listed by self time")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--file", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    return profile(args)


if __name__ == "__main__":
    sys.exit(main())
