"""FdQueue: one context's jobs in flight on one fd number, and our dups of it.

vfs_aio.c keeps a job's ``struct file`` reference (fhold) for as long as the
job lives; here that reference is a dup of the fd, shared by the jobs of a
burst on the same file.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aioposix._core.job import Aiocb


class FdQueue:
    """One context's jobs in flight on one fd number, and the descriptors they use.

    Jobs that leave the inline path run on our own dup of the fd, so a user
    who closes the fd and gets the number back for another file never sees
    their data.  Jobs on the same file share one dup (one dup per burst, not
    per job): a new job reuses it when fstat of the fd still names the same
    file (st_dev, st_ino); otherwise it gets a dup of its own.
    """

    __slots__ = ("current", "jobs", "refs")

    def __init__(self) -> None:
        self.jobs: dict[Aiocb, None] = {}  # {cb: None} in submission order
        self.refs: dict[int, int] = {}  # {our dup: jobs using it}
        self.current: tuple[int, int, int] = (-1, 0, 0)  # (dup, st_dev, st_ino) to share

    def descriptor(self, fd: int, st: os.stat_result) -> int:
        dup, dev, ino = self.current
        if dup < 0 or (dev, ino) != (st.st_dev, st.st_ino):
            dup = os.dup(fd)
            self.current = (dup, st.st_dev, st.st_ino)
        self.refs[dup] = self.refs.get(dup, 0) + 1
        return dup

    def unref(self, dup: int) -> None:
        left = self.refs[dup] - 1
        if left:
            self.refs[dup] = left
            return
        del self.refs[dup]
        os.close(dup)
        if self.current[0] == dup:
            self.current = (-1, 0, 0)

    def __repr__(self) -> str:
        return f"<FdQueue jobs={len(self.jobs)} dups={len(self.refs)}>"
