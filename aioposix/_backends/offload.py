"""Pool jobs for blocking calls that are not reads or writes (stat, rename, ...).

The daemon pool (``_daemon``) runs Aiocbs: reads, writes and syncs, with
their quotas and per-fd order.  A directory operation or a ``stat`` is none
of those, so it runs here: on a private, bounded pool of worker threads
(at most vfs.aio.max_aio_procs, read when the pool is first used), never
on the loop's default executor, which the program may have sized or
replaced for its own work.

What this means for a caller:
- the call is a job: the loop thread only queues it, a worker makes the
  system call, the result (or the OSError) comes back to the awaiting task;
- cancelling the task while the job is still queued takes the job back: the
  call is never made.  Once a worker has started it, it runs to the end (a
  rename cannot be half undone) and its result is dropped;
- after ``os.fork()`` the child starts with a new, empty pool.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from aioposix._core.running import running_loop
from aioposix._kernel.kernel import KERNEL

P = ParamSpec("P")
T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        workers = max(1, KERNEL.sysctl.get_int("vfs.aio.max_aio_procs"))
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aioposix-job")
    return _pool


async def run_job(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``func(*args, **kwargs)`` as a pool job; cancellable while queued."""
    loop = running_loop()
    return await loop.run_in_executor(_executor(), functools.partial(func, *args, **kwargs))


def wrap(func: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """An async version of ``func`` whose every call is a pool job.

    Like aiofiles' ``wrap``: it also takes ``loop=`` and ``executor=``, which
    are accepted for compatibility and unused (the job runs on aioposix's
    pool, from the running loop); the type of the result is that of
    ``func`` made async.
    """

    @functools.wraps(func)
    async def run(*args: Any, **kwargs: Any) -> T:
        kwargs.pop("loop", None)
        kwargs.pop("executor", None)
        return await run_job(func, *args, **kwargs)

    return run


def _after_fork_in_child() -> None:
    global _pool
    _pool = None  # the parent's workers do not exist here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
