"""The one error factory: every refusal is an OSError with the POSIX errno.

vfs_aio.c returns a bare errno; here each refusal also says why, in one
style: the system's text for the errno, a colon, the reason
("Invalid argument: negative offset").  OSError maps the errno to its
subclass (EAGAIN gives BlockingIOError, EBADF an OSError with errno EBADF).
"""

from __future__ import annotations

import errno
import os


def error(code: int, why: str) -> OSError:
    """OSError(code) with the system's text for ``code`` and the reason."""
    return OSError(code, f"{os.strerror(code)}: {why}")


def einval(why: str) -> OSError:
    """EINVAL, the most common refusal."""
    return error(errno.EINVAL, why)


def failed(code: int) -> OSError:
    """The error of a job that ran and failed: the errno and its text only."""
    return OSError(code, os.strerror(code))
