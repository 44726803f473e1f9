"""Every byte ``aioposix bench`` reads, compared with what the file holds.

The file holds a pattern that depends on ``bs`` only:
block ``i``, the ``bs`` bytes at offset ``o = i * bs``, starts with a stamp,
``o`` as 8 little-endian bytes (fewer, and ``o`` modulo their range, when
``bs`` is smaller: 4, 2 or 1), and the rest is one of up to 251 random
fills, fill ``i % fills`` (as many as fit in 1 MiB, at least one).  So a
block's content is a function of its offset, and a read from the wrong
place, a short read, stale or zeroed pages or a flipped byte all differ
from it.  ``lay_out`` writes the pattern into the file before the engines
run; a write in the workloads writes the block of its offset
(``Check.block``), so that the file holds the pattern throughout and later
reads still verify.

Each job has a ``Check``: every read an engine completes, ramp included, is
handed to it as the engine returns it (``data``: the bytes; ``into``: a
buffer and the byte count) and compared in full: the stamp is packed into
the job's own copy of the block's fill (``struct.pack_into``), and one
``bytearray`` comparison (a memcmp) of ``bs`` bytes follows.  The
comparison is the same for every engine.  A difference raises
``Mismatch``, which names the engine, the offset and the first byte that
differs.  A check of a 4 KiB read costs a few hundred nanoseconds; the
output says how long the checks took in each run.
"""

from __future__ import annotations

import mmap
import os
import random
import struct
from collections.abc import Callable

FILLS = 251  # a prime, so that no stride through the file meets one fill only
FILL_BYTES = 1 << 20 # at most this many bytes of fills, unless one block is larger
STAMPS = {8: "<Q", 4: "<I", 2: "<H", 1: "<B"}  # a block's offset at its start, by size
CHUNK = 1 << 20  # bytes per write and per read while the pattern is laid out

Buffer = bytes | bytearray | memoryview | mmap.mmap  # what a read hands back


class Mismatch(Exception):
    """A read returned other bytes than the file holds: the run fails."""


class Pattern:
    """What the file holds at each block offset, for one block size."""

    def __init__(self, bs: int) -> None:
        self.bs = bs
        self.stamp_size = next(size for size in STAMPS if size <= bs)
        self.stamper = struct.Struct(STAMPS[self.stamp_size])
        self.mask = (1 << 8 * self.stamp_size) - 1
        rng = random.Random(bs)
        count = max(1, min(FILLS, FILL_BYTES // bs))
        self.fills = tuple(rng.randbytes(bs - self.stamp_size) for _ in range(count))

    def stamp(self, offset: int) -> bytes:
        return self.stamper.pack(offset & self.mask)

    def block(self, offset: int) -> bytes:
        """The ``bs`` bytes the file holds at ``offset`` (a multiple of bs)."""
        return self.stamp(offset) + self.fills[offset // self.bs % len(self.fills)]

    def blocks(self, offset: int, count: int) -> bytes:
        bs = self.bs
        return b"".join(self.block(offset + k * bs) for k in range(count))


class Foreign(Exception):
    """The named file holds other data than the pattern where it would go."""


def lay_out(path: str, pattern: Pattern, blocks: int, overwrite: bool = True) -> int:
    """The pattern in the first ``blocks`` blocks of ``path`` (made if missing),
    on disk: each chunk is read, and written only where it differs, so that a
    file that holds the pattern already is only read (into the page cache).
    Without ``overwrite``, a chunk within the file that holds other data
    raises ``Foreign`` before anything is written (the chunks past the file's
    end, which are only new bytes, come after every chunk within it).  The
    bytes written."""
    per = max(1, CHUNK // pattern.bs)
    written = 0
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for first in range(0, blocks, per):
            offset = first * pattern.bs
            want = pattern.blocks(offset, min(per, blocks - first))
            have = os.pread(fd, len(want), offset)
            if have == want:
                continue
            if not overwrite and have != want[:len(have)]:
                raise Foreign(path)
            os.pwrite(fd, want, offset)
            written += len(want)
        if written:
            os.fdatasync(fd)
    finally:
        os.close(fd)
    return written


def first_difference(have: bytes, want: bytes) -> int:
    """The index of the first byte that differs (both of the same length)."""
    lo, hi = 0, len(want)
    while hi - lo > 64:  # halve by slices: one memcmp each, no per-byte loop over the block
        mid = (lo + hi) // 2
        if have[lo:mid] != want[lo:mid]:
            hi = mid
        else:
            lo = mid
    return next(i for i in range(lo, hi) if have[i] != want[i])


class Check:
    """One job's check of its reads, and the blocks its writes write.  Not
    shared between threads: ``block`` and the checks stamp this job's own
    copies of the fills in place.  The checks are closures over what they
    use, with no attribute look-up per read."""

    def __init__(self, engine: str, pattern: Pattern) -> None:
        self.engine, self.pattern = engine, pattern
        self.expected = [bytearray(pattern.stamp_size) + fill for fill in pattern.fills]
        self.done = [0]  # bytes compared and found equal
        self.data = self._data()

    @property
    def verified_bytes(self) -> int:
        return self.done[0]

    def block(self, offset: int) -> bytearray:
        """The block at ``offset``, in this job's scratch: copy it before the next call."""
        p = self.pattern
        expected = self.expected[offset // p.bs % len(self.expected)]
        p.stamper.pack_into(expected, 0, offset & p.mask)
        return expected

    def _data(self) -> Callable[[Buffer, int], None]:
        """``data(got, offset)``: a read that returned its bytes (``bytes``, or
        any buffer of exactly them)."""
        expected, count, done, mismatch = self.expected, len(self.expected), self.done, \
            self.mismatch
        bs, mask, pack = self.pattern.bs, self.pattern.mask, self.pattern.stamper.pack_into

        def data(got: Buffer, offset: int) -> None:
            block = expected[offset // bs % count]
            pack(block, 0, offset & mask)
            if block != got:
                raise mismatch(got, len(got), offset)
            done[0] += bs
        return data

    def into(self, buf: Buffer) -> Callable[[int, int], None]:
        """``check(n, offset)``: a read into ``buf`` that returned its byte count."""
        expected, count, done, mismatch = self.expected, len(self.expected), self.done, \
            self.mismatch
        bs, mask, pack = self.pattern.bs, self.pattern.mask, self.pattern.stamper.pack_into

        def read_into(n: int, offset: int) -> None:
            block = expected[offset // bs % count]
            pack(block, 0, offset & mask)
            if n != bs or block != buf:
                raise mismatch(buf, n, offset)
            done[0] += bs
        return read_into

    def once(self, got: bytes, offset: int) -> None:
        """A read outside the workload (a probe): checked, not counted."""
        if got != self.pattern.block(offset):
            raise self.mismatch(got, len(got), offset)

    def mismatch(self, got: Buffer, n: int, offset: int) -> Mismatch:
        with memoryview(got) as view:
            have = bytes(view[:n])
        return Mismatch(describe(self.engine, self.pattern, have, offset))


def describe(engine: str, pattern: Pattern, have: bytes, offset: int) -> str:
    """What a read at ``offset`` returned (``have``) that the file does not hold."""
    want = pattern.block(offset)
    bs = pattern.bs
    parts = [f"{engine} read wrong data at offset {offset} (block {offset // bs}, bs {bs})"]
    if len(have) != bs:
        parts.append(f"a short read: {len(have)} bytes of {bs}")
    same = min(len(have), bs)
    if have[:same] != want[:same]:
        k = first_difference(have[:same], want[:same])
        wrong = sum(a != b for a, b in zip(have[:same], want[:same], strict=True))
        parts.append(f"byte {k} (file offset {offset + k}) is 0x{have[k]:02x} where the "
                     f"file holds 0x{want[k]:02x}; {wrong} of {same} bytes differ")
        size = pattern.stamp_size
        if size == 8 and k < size:
            stamped = int.from_bytes(have[:size], "little")
            parts.append(f"its stamp is that of offset {stamped}")
    return ": ".join(parts[:1]) + ": " + "; ".join(parts[1:])
