"""Which backend runs file jobs that cannot finish inline: chosen in one place.

``vfs.aio.backend`` is ``auto``, ``threads`` or ``io_uring``; the
environment variable AIOPOSIX_BACKEND, when set, overrides it (a bad value
is reported once and ignored).  ``auto`` means io_uring where the kernel
allows it: on this project's benchmarks (benchmarks/RESULTS.md) it beats
the daemon pool for buffered writes and uncached reads, and page-cache hits
are served inline before either is asked.  When io_uring is requested but
missing or forbidden (ENOSYS, EPERM from seccomp, kernel.io_uring_disabled),
the pool serves everything and one warning says why; ``vfs.aio.io_uring``
shows the reason.  O_DIRECT files and block devices use io_uring whenever
it is available, whatever the backend.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

CHOICES = ("auto", "threads", "io_uring")
_WARNED: set[str] = set()  # the warnings already given in this process


def _warn_once(text: str) -> None:
    if text not in _WARNED:
        _WARNED.add(text)
        warnings.warn(text, RuntimeWarning, stacklevel=4)


def requested(setting: str) -> str:
    """The backend asked for: the environment variable wins over the sysctl."""
    env = os.environ.get("AIOPOSIX_BACKEND")
    if env is None:
        return setting
    if env in CHOICES:
        return env
    _warn_once(f"aioposix: AIOPOSIX_BACKEND={env!r} is not one of {', '.join(CHOICES)}; "
               f"using vfs.aio.backend={setting!r}")
    return setting


def active(setting: str, ring_probe: Callable[[], str | None]) -> str:
    """The backend that file jobs use now: 'threads' or 'io_uring'.

    ``ring_probe`` says why io_uring cannot be used here (None: it can).
    """
    wanted = requested(setting)
    if wanted == "threads":
        return "threads"
    reason = ring_probe()
    if reason is None:
        return "io_uring"
    if wanted == "io_uring":
        _warn_once(f"aioposix: io_uring unavailable ({reason}); using the thread pool")
    return "threads"
