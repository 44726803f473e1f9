"""Fault injection for tests: make the next jobs of a backend fail.

The public face is ``aioposix.testing.inject_fault``.  A backend asks
``take(path)`` just before it would make the job's system call; when a
fault is armed for that path the job fails with the armed errno instead,
and the file is not touched.  Nothing here mocks the OS: the job still goes
through the real queues, workers, ring and bridge, and only the final
syscall is replaced by the failure.  With no fault armed, the cost on a
backend's path is one truthiness test of a dict.
"""

from __future__ import annotations

import threading

PATHS = ("pool", "io_uring", "bridge", "inline")


class WorkerFault(Exception):
    """Raised inside a worker daemon by ``inject_fault(..., raise_in_worker=True)``."""


ARMED: dict[str, list[int]] = {}  # {path: [errno, jobs left, raise_in_worker]}
_LOCK = threading.Lock()


def arm(path: str, code: int, count: int, raise_in_worker: bool) -> None:
    with _LOCK:
        ARMED[path] = [code, count, int(raise_in_worker)]


def disarm(path: str) -> None:
    with _LOCK:
        ARMED.pop(path, None)


def take(path: str) -> int:
    """0, or the errno this job must fail with (raises WorkerFault when so armed)."""
    with _LOCK:
        entry = ARMED.get(path) or ARMED.get("any")
        if entry is None or entry[1] <= 0:
            return 0
        entry[1] -= 1
        code, _, raise_it = entry
    if raise_it and path == "pool":
        raise WorkerFault(f"injected fault in a worker daemon (errno {code})")
    return code
