"""A child of tests/context/test_durability.py: writes and fsyncs blocks until it is killed.

    python fsync_writer.py PATH LOOP BACKEND INLINE SEED

LOOP is ``asyncio`` or ``uvloop``; BACKEND and INLINE are the values of the
sysctls vfs.aio.backend and vfs.aio.inline.  The child writes generations of
self-describing 4 KiB blocks (``block()``) at random block indices of PATH
with ``aio_write``, then ``aio_fsync``s the file, and tells its parent on
stdout, one line per step (each line is one ``write`` to the pipe, so it
arrives whole or not at all):

- ``READY <backend in use>`` once the file is open;
- ``W <generation> <index> ...`` before the writes of a generation are
  submitted (what may be on disk from now on);
- ``A <generation>`` once the fsync submitted after those writes has
  completed (what must be on disk from now on).

It never stops by itself: it runs until SIGKILL.  Any surprise (a write that
is not 4096 bytes, a write still in flight when the fsync after it has
completed) ends it with a message on stderr and exit status 3.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import random
import struct
import sys

BLOCK = 4096
NBLOCKS = 256  # the file: 1 MiB
PER_GENERATION = 16  # most blocks written by one generation
_MAGIC = b"AIOPXBLK"
_HEADER = struct.Struct("<8sQII")  # magic, seed, index, generation
_DIGEST = 32  # sha256 of everything before it


def block(seed: int, index: int, generation: int) -> bytes:
    """The one block a run of ``seed`` writes at ``index`` in ``generation``."""
    head = _HEADER.pack(_MAGIC, seed, index, generation)
    filler = random.Random(f"{seed}:{index}:{generation}").randbytes(
        BLOCK - len(head) - _DIGEST)
    body = head + filler
    return body + hashlib.sha256(body).digest()


def generation_of(data: bytes) -> int:
    """The generation a block claims in its header (meaningful only if it checks out)."""
    return int(_HEADER.unpack_from(data)[3])


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def _fail(why: str) -> None:
    os.write(2, f"fsync_writer: {why}\n".encode())
    os._exit(3)


async def _write_forever(path: str, seed: int) -> None:
    import aioposix

    rng = random.Random(seed)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    _say(f"READY {aioposix.sysctl['vfs.aio.backend_active']}")
    generation = 0
    while True:
        generation += 1
        indices = rng.sample(range(NBLOCKS), rng.randint(1, PER_GENERATION))
        _say(f"W {generation} " + " ".join(map(str, indices)))
        writes = [aioposix.Aiocb(fd, block(seed, i, generation), offset=i * BLOCK)
                  for i in indices]
        for cb in writes:
            aioposix.aio_write(cb)
        sync = aioposix.Aiocb(fd)
        aioposix.aio_fsync(os.O_SYNC, sync)  # submitted behind the writes, not after them
        if await sync != 0:
            _fail(f"aio_fsync returned {sync.status}")
        for cb in writes:
            if (err := aioposix.aio_error(cb)) == errno.EINPROGRESS:
                _fail(f"generation {generation}: the fsync completed before a write it follows")
            if err:
                _fail(f"generation {generation}: a write failed: {os.strerror(err)}")
        _say(f"A {generation}")
        for cb in writes:
            if (n := await cb) != BLOCK:
                _fail(f"a write moved {n} bytes, not {BLOCK}")


def main() -> None:
    path, loop, backend, inline, seed = sys.argv[1:]
    import aioposix

    aioposix.sysctl["vfs.aio.backend"] = backend
    aioposix.sysctl["vfs.aio.inline"] = int(inline)
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_write_forever(path, int(seed)))
    else:
        asyncio.run(_write_forever(path, int(seed)))


if __name__ == "__main__":
    main()
