"""Helpers for testing code that uses aioposix (and aioposix itself).

``inject_fault`` makes the next jobs of a backend fail with an errno, to
test how a program copes with EIO from a disk, ENOSPC, or a worker that
raises, without mocking the operating system::

    from aioposix.testing import inject_fault

    with inject_fault(errno.EIO, count=2, path="pool"):
        ...   # the next two jobs the worker daemons pick fail with EIO

``path`` is one of "pool" (worker daemons), "io_uring" (the ring),
"bridge" (sockets, pipes, ttys), "inline" (page-cache attempts made by the
general submit path) or "any".  The failed jobs never touch their file.
With ``raise_in_worker=True`` a pool job makes its worker raise instead;
the worker must survive it and the job ends with EIO.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aioposix._core.faults import PATHS, WorkerFault, arm, disarm

__all__ = ["WorkerFault", "inject_fault"]


@contextmanager
def inject_fault(code: int, count: int = 1, path: str = "any",
                 raise_in_worker: bool = False) -> Iterator[None]:
    """Within the block, the next ``count`` jobs on ``path`` fail with ``code``."""
    if path not in (*PATHS, "any"):
        raise ValueError(f"path must be one of {', '.join((*PATHS, 'any'))}")
    if count < 0:
        raise ValueError("count must be >= 0")
    arm(path, code, count, raise_in_worker)
    try:
        yield
    finally:
        disarm(path)
