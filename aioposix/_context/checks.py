"""Small checks and records of the context: its limits, its arguments, its figures."""

from __future__ import annotations

from dataclasses import dataclass

from aioposix._core.errors import einval
from aioposix._core.job import Aiocb
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
