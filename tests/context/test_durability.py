"""Durability across a kill -9: what a completed aio_fsync acknowledged is kept.

An aio_fsync completes after every job submitted before it on its fd
(docs/index.md, "A job's life"), so once it has completed those writes are in
the file, whatever happens to the process next.

A child process (``programs/fsync_writer.py``, on the loop and backend of the
test's parameters) writes generations of self-describing 4 KiB blocks with
``aio_write`` and ``aio_fsync``s them, telling the parent on a pipe which
blocks it is about to write and which generations a completed fsync
acknowledged.  The parent kills it with SIGKILL after a random delay, then
reads the file back and checks that:

- every block acknowledged by a completed fsync is there, exactly (or a
  later generation the child wrote at that index, also exactly);
- no block is torn or foreign: each block of the file is all zero (never
  written) or, byte for byte, a block the child wrote at that offset.

What this can honestly check: SIGKILL ends the process, not the machine, so
the page cache survives it and "on disk" here means "in the file as read back
after the child died".  It shows that a completed aio_fsync covers every
write submitted before it (none still in flight, none lost in our queues),
and that no write is left half done or lands at the wrong offset; it does not
show that the device kept the data across a power cut.

The random delays and the child's seeds (which blocks each generation
writes) come from one seed, printed by each test; set AIOPOSIX_TEST_SEED to
run them again (how far a child gets in a given delay still varies).
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import BACKENDS
from programs.fsync_writer import BLOCK, NBLOCKS, block, generation_of

from aioposix._backends.ring import probe as uring_probe

WRITER = Path(__file__).parents[1] / "programs" / "fsync_writer.py"
KILLS = 5  # children killed per loop and backend
MAX_DELAY = 0.15  # seconds between the child's READY and the kill (it acks ~700 fsyncs/s)
DEADLINE = 20.0  # seconds any one wait on the child may take


def _seed() -> int:
    env = os.environ.get("AIOPOSIX_TEST_SEED")
    return int(env) if env else random.SystemRandom().randrange(2**32)


@dataclass
class Log:
    """What the child said on its pipe."""

    backend: str = ""  # the backend the child reported in use
    written: dict[int, set[int]] = field(default_factory=dict)  # {index: generations}
    acked: dict[int, int] = field(default_factory=dict)  # {index: latest acked generation}
    generations: dict[int, list[int]] = field(default_factory=dict)  # {gen: its indices}
    acks: int = 0  # completed fsyncs

    def take(self, line: str) -> None:
        kind, *rest = line.split()
        if kind == "READY":
            self.backend = rest[0]
            return
        gen = int(rest[0])
        if kind == "W":
            self.generations[gen] = [int(i) for i in rest[1:]]
            for i in self.generations[gen]:
                self.written.setdefault(i, set()).add(gen)
        elif kind == "A":
            self.acks += 1
            for i in self.generations[gen]:
                self.acked[i] = max(self.acked.get(i, 0), gen)


class Pipe:
    """The child's stdout, read in whole lines, every wait bounded."""

    def __init__(self, fd: int, log: Log) -> None:
        self.fd, self.log, self.rest, self.eof = fd, log, b"", False

    def read_until(self, deadline: float, stop: bool = False) -> None:
        """Take lines until ``deadline`` (or EOF); with ``stop``, until the first line."""
        while not self.eof and (timeout := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                continue
            chunk = os.read(self.fd, 1 << 16)
            self.eof = not chunk
            *lines, self.rest = (self.rest + chunk).split(b"\n")
            for line in lines:
                self.log.take(line.decode())
            if stop and self.log.backend:
                return


def kill_at_random(path: Path, loop: str, backend: str, seed: int, delay: float) -> Log:
    """Run a writer child on ``path``, SIGKILL it ``delay`` s after it is ready;
    what it said before it died."""
    setting, inline = BACKENDS[backend]
    env = {**os.environ, "AIOPOSIX_BACKEND": setting}
    log = Log()
    with open(path.with_suffix(".stderr"), "w+") as errors:
        child = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), loop, setting, str(inline), str(seed)],
            stdout=subprocess.PIPE, stderr=errors, env=env)
        try:
            assert child.stdout is not None
            pipe = Pipe(child.stdout.fileno(), log)
            pipe.read_until(time.monotonic() + DEADLINE, stop=True)
            assert log.backend, "the child never said READY"
            pipe.read_until(time.monotonic() + delay)  # the random moment
            child.send_signal(signal.SIGKILL)
            pipe.read_until(time.monotonic() + DEADLINE)  # what it said before it died
            assert pipe.eof, "the child's pipe stayed open after SIGKILL"
            code = child.wait(timeout=DEADLINE)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=DEADLINE)
            assert child.stdout is not None
            child.stdout.close()
        errors.seek(0)
        assert code == -signal.SIGKILL, f"the child ended by itself ({code}): {errors.read()}"
    expected = "io_uring" if setting == "auto" else setting  # auto means io_uring here
    assert log.backend == expected, f"the child ran on {log.backend}, not {expected}"
    return log


def check_file(path: Path, seed: int, log: Log) -> None:
    """Every acknowledged block is there exactly; every block is zero or one the child wrote."""
    data = path.read_bytes()
    assert len(data) % BLOCK == 0, f"the file is {len(data)} bytes: a torn block at its end"
    assert len(data) <= NBLOCKS * BLOCK
    for i in range(NBLOCKS):
        got = data[i * BLOCK:(i + 1) * BLOCK]
        acked = log.acked.get(i, 0)
        if not got.strip(b"\0"):
            assert not acked, f"block {i}, acknowledged in generation {acked}, is missing"
            continue
        gen = generation_of(got)
        assert gen in log.written.get(i, set()) and got == block(seed, i, gen), (
            f"block {i} is torn or foreign (it claims generation {gen}; the child wrote "
            f"{sorted(log.written.get(i, set()))} there)")
        assert gen >= acked, f"block {i} is generation {gen}, older than the acked {acked}"


def _backend(name: str) -> object:
    marks = []
    if name == "io_uring" and (reason := uring_probe()) is not None:
        marks.append(pytest.mark.skip(reason=f"io_uring is not usable here: {reason}"))
    return pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("backend", [_backend(name) for name in BACKENDS])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_fsynced_blocks_survive_sigkill(loop: str, backend: str, tmp_path: Path) -> None:
    seed = _seed()
    print(f"replay with AIOPOSIX_TEST_SEED={seed}")
    rng = random.Random(f"{seed}:{loop}:{backend}")
    acked = 0
    for run in range(KILLS):
        child_seed, delay = rng.randrange(2**32), rng.uniform(0, MAX_DELAY)
        path = tmp_path / f"run{run}.bin"
        log = kill_at_random(path, loop, backend, child_seed, delay)
        print(f"run {run}: killed after {delay:.3f} s, {log.acks} fsyncs acknowledged, "
              f"{len(log.acked)} blocks to keep")
        check_file(path, child_seed, log)
        acked += len(log.acked)
    assert acked, "no fsync completed before any of the kills: nothing was checked"
