"""Small checks and records of the context: its limits, its arguments, its figures."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aioposix._core.errors import einval
from aioposix._core.fdqueue import FdQueue
from aioposix._core.job import KERNEL as IN_KERNEL
from aioposix._core.job import PARKED, QUEUED, RUNNING, WAITING, Aiocb
from aioposix._kernel.kernel import KERNEL


@dataclass(frozen=True, slots=True)
class ContextStatistics:
    """A snapshot of one context's queues and limits."""

    queued: int  # accepted, waiting for a worker or a barrier
    active: int  # running on a worker (or in the kernel)
    done: int  # finished, not yet reaped
    parked: int  # waiting on the readiness of their fd
    buffer_jobs: int  # in the kernel-submitted path
    max_active: int
    max_queued: int
    max_buf: int


def limit(value: int | None, name: str) -> int:
    """A context's limit: as given, or the sysctl ``name``."""
    if value is None:
        return KERNEL.sysctl.get_int(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} limit must be an int")
    if value < 1:
        raise ValueError(f"{name} limit must be at least 1")
    return value


def check_cb(cb: object) -> None:
    """TypeError for anything that is not an Aiocb (docs/contract.md, rule 27)."""
    if not isinstance(cb, Aiocb):
        raise TypeError(f"expected an Aiocb, got {type(cb).__name__}")


def check_timeout(timeout: float | None) -> float | None:
    """A timeout in seconds, or None; EINVAL for anything else."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise einval("timeout must be a number of seconds or None")
    if not timeout >= 0:  # also refuses NaN
        raise einval("negative timeout")
    return float(timeout)


def check_list_length(count: int) -> None:
    """EINVAL past p1003_1b.aio_listio_max entries (aio_suspend, lio_listio)."""
    most = KERNEL.sysctl.get_int("vfs.aio.max_aio_queue_per_proc")
    if count > most:
        raise einval(f"{count} entries is over p1003_1b.aio_listio_max ({most})")


def count_jobs(queues: Iterable[FdQueue], done: int, buffer_jobs: int,
               limits: tuple[int, int, int]) -> ContextStatistics:
    """A context's figures from its fd queues (max_active, max_queued, max_buf)."""
    counts = {state: 0 for state in (WAITING, QUEUED, RUNNING, PARKED, IN_KERNEL)}
    for queue in queues:
        for cb in queue.jobs:
            counts[cb._state] = counts.get(cb._state, 0) + 1
    max_active, max_queued, max_buf = limits
    return ContextStatistics(
        queued=counts[WAITING] + counts[QUEUED], active=counts[RUNNING] + counts[IN_KERNEL],
        done=done, parked=counts[PARKED], buffer_jobs=buffer_jobs,
        max_active=max_active, max_queued=max_queued, max_buf=max_buf)
