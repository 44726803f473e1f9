"""A concurrent file hasher: the sha256 of every file under a directory.

Two engines run the same program:

- ``aioposix``: one AioContext; many files are open at once and each has one
  read of ``--chunk`` bytes in flight.  New reads go in as lio_listio
  batches (LIO_NOWAIT: one hand-off per batch), and completions are harvested
  with aio_waitcomplete, in the order they finish, already reaped.
- ``aiofiles``: the same window of files, each hashed by a task doing
  ``aiofiles.open(path, "rb")`` and ``await f.read(chunk)`` in a loop.

Usage::

    python examples/hasher.py DIR                   # sha256sum-style output
    python examples/hasher.py --engine aiofiles DIR
    python examples/hasher.py --bench DIR           # files/s and MiB/s, both engines

``--bench`` first reads the tree once with each engine (so it is in the page
cache), then times ``--rounds`` runs of each and reports the best.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aioposix
from aioposix import LIO_NOWAIT, LIO_READ, Aiocb, AioContext

CHUNK = 256 * 1024
WINDOW = 64  # files open (and reads in flight) at once


def walk(root: str) -> Iterator[str]:
    """Every regular file under ``root``, in a stable order (symlinks not followed)."""
    for top, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


# -- aioposix: lio_listio batches, aio_waitcomplete harvest ---------------------------


@dataclass(eq=False)
class _File:
    path: str
    fd: int
    size: int
    buf: bytearray
    offset: int = 0
    sha: Any = field(default_factory=hashlib.sha256)

    def next_read(self) -> Aiocb:
        n = min(len(self.buf), self.size - self.offset)
        return Aiocb(self.fd, self.buf, n, self.offset, lio_opcode=LIO_READ)


class _Hasher:
    """The aioposix engine: a window of open files, one read in flight for each."""

    def __init__(self, ctx: AioContext, paths: Iterator[str], chunk: int, window: int) -> None:
        self.ctx = ctx
        self.paths = paths
        self.chunk = chunk
        self.window = window
        self.open: dict[str, _File] = {}  # {path: file being read}
        self.reading: dict[Aiocb, _File] = {}  # {cb in flight: its file}
        self.want: list[_File] = []  # files whose next read is not yet submitted
        self.digests: dict[str, str] = {}

    def close_all(self) -> None:
        for f in self.open.values():
            os.close(f.fd)
        self.open.clear()

    def _admit_files(self) -> None:
        """Open files until the window is full; empty files are done at once."""
        while len(self.open) < self.window:
            path = next(self.paths, None)
            if path is None:
                return
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            size = os.fstat(fd).st_size
            if size == 0:
                os.close(fd)
                self.digests[path] = hashlib.sha256().hexdigest()
                continue
            f = self.open[path] = _File(path, fd, size, bytearray(min(self.chunk, size)))
            self.want.append(f)

    async def _submit(self) -> None:
        """Queue the next read of every file that wants one, as one lio_listio batch."""
        self._admit_files()
        files, self.want = self.want, []
        batch = []
        for f in files:
            cb = f.next_read()
            self.reading[cb] = f
            batch.append(cb)
        if batch:
            await self.ctx.lio_listio(LIO_NOWAIT, batch)

    def _done(self, cb: Aiocb) -> None:
        """One read finished (already reaped): hash it, then want the next or finish."""
        f = self.reading.pop(cb)
        if cb.error:
            raise OSError(cb.error, f"{os.strerror(cb.error)}: {f.path}")
        f.sha.update(memoryview(f.buf)[:cb.status])
        f.offset += cb.status
        if cb.status and f.offset < f.size:
            self.want.append(f)
            return
        os.close(f.fd)
        del self.open[f.path]
        self.digests[f.path] = f.sha.hexdigest()

    async def run(self) -> dict[str, str]:
        await self._submit()
        # Refill in batches: once a quarter of the window is free (files
        # finished, or waiting for their next read), or nothing is in flight.
        refill_at = max(1, self.window // 4)
        while self.reading:
            async for cb in self.ctx.aio_waitcomplete(timeout=60):
                self._done(cb)
                if self.window - len(self.reading) >= refill_at or not self.reading:
                    await self._submit()
        return self.digests


async def hash_tree_aioposix(root: str, chunk: int = CHUNK,
                             window: int = WINDOW) -> dict[str, str]:
    """{path: sha256 hex digest} of every file under ``root``, with aioposix."""
    async with AioContext(max_queued=max(window, 1)) as ctx:
        hasher = _Hasher(ctx, walk(root), chunk, window)
        try:
            return await hasher.run()
        finally:
            hasher.close_all()


# -- aiofiles: the same program, one task per open file ------------------------------


async def hash_tree_aiofiles(root: str, chunk: int = CHUNK,
                             window: int = WINDOW) -> dict[str, str]:
    """{path: sha256 hex digest} of every file under ``root``, with aiofiles."""
    import aiofiles

    digests: dict[str, str] = {}
    paths = walk(root)

    async def worker() -> None:
        for path in paths:  # the workers share one iterator: each path is taken once
            sha = hashlib.sha256()
            async with aiofiles.open(path, "rb") as f:
                while data := await f.read(chunk):
                    sha.update(data)
            digests[path] = sha.hexdigest()

    await asyncio.gather(*(worker() for _ in range(window)))
    return digests


ENGINES = {"aioposix": hash_tree_aioposix, "aiofiles": hash_tree_aiofiles}


async def hash_tree(root: str, engine: str = "aioposix", chunk: int = CHUNK,
                    window: int = WINDOW) -> dict[str, str]:
    return await ENGINES[engine](root, chunk, window)


# -- the command -----------------------------------------------------------------------


def _bench(root: str, chunk: int, window: int, rounds: int) -> None:
    files = list(walk(root))
    total = sum(os.path.getsize(p) for p in files)
    results: dict[str, float] = {}
    reference: dict[str, str] | None = None
    for engine in ENGINES:
        digests = asyncio.run(hash_tree(root, engine, chunk, window))  # warm-up: page cache
        if reference is None:
            reference = digests
        elif digests != reference:
            raise SystemExit(f"{engine} disagrees with the first engine")
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            asyncio.run(hash_tree(root, engine, chunk, window))
            best = min(best, time.perf_counter() - start)
        results[engine] = best
    mib = total / (1 << 20)
    print(f"tree: {len(files)} files, {mib:.1f} MiB; chunk {chunk} B, window {window}, "
          f"best of {rounds}; backend {aioposix.sysctl['vfs.aio.backend_active']}")
    for engine, secs in results.items():
        print(f"{engine:>9}: {len(files) / secs:10.0f} files/s {mib / secs:9.1f} MiB/s "
              f"({secs * 1000:.1f} ms)")
    print(f"aioposix / aiofiles: {results['aiofiles'] / results['aioposix']:.2f}x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="the directory to hash")
    parser.add_argument("--engine", choices=sorted(ENGINES), default="aioposix")
    parser.add_argument("--chunk", type=int, default=CHUNK, help="bytes per read")
    parser.add_argument("--window", type=int, default=WINDOW, help="files open at once")
    parser.add_argument("--bench", action="store_true", help="time both engines")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per engine")
    args = parser.parse_args(argv)
    listio_max = aioposix.sysctl["p1003_1b.aio_listio_max"]
    if args.chunk < 1 or not 1 <= args.window <= listio_max:
        parser.error(f"--chunk must be at least 1, --window between 1 and {listio_max}")
    if args.bench:
        _bench(args.root, args.chunk, args.window, args.rounds)
        return 0
    digests = asyncio.run(hash_tree(args.root, args.engine, args.chunk, args.window))
    for path in sorted(digests):
        print(f"{digests[path]}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
