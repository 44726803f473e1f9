"""The readiness bridge: jobs on pollable fds, run from the loop with no thread.

In vfs_aio.c a socket job waits on the socket's queue and ``aio_swake_cb``
moves it to the run queue when the socket becomes ready, so no daemon ever
blocks on a socket.  Here a job on a socket, pipe, FIFO, pty or other
pollable character device is tried at once; if the fd is not ready it
parks on the loop with ``add_reader``/``add_writer`` and runs when the loop
says the fd is ready ("try now, else park", as asyncio's sock_recv does).

Facts of the OS and what they mean for us:
- The user may close the fd while jobs are parked and reuse the number.  So
  a channel never watches the user's number: it holds its own descriptor for
  the same open file (``dup``), and parked jobs complete on the file they
  were submitted on, never on a newcomer with the same number.  Because the
  loop watches our descriptor, not the user's, the application may use the
  same fd through asyncio (add_reader, transports) at the same time: both
  see the readiness, and whoever reads first gets the bytes.
- We may not set O_NONBLOCK on the user's open file (it is shared state).
  Sockets and pipes honour ``RWF_NOWAIT`` with preadv2/pwritev2, which
  gives a non-blocking attempt without touching flags.  FIFOs and ttys do
  not (EOPNOTSUPP); for them the channel opens ``/proc/self/fd/N`` again,
  which makes a new open file description of the same object with its own
  O_NONBLOCK.  A pty master is the exception (opening /dev/ptmx again makes
  a new pty): for it O_NONBLOCK is set just around each attempt.  So is a
  FIFO or tty whose second open is refused (EACCES after a privilege drop:
  the open is checked against the object's permissions, the fd is not).
- One registration per (file, direction) serves every job parked there, of
  every context of the loop: jobs run in FIFO order, and the registration
  is removed when the last job leaves.  Jobs of two contexts never mix up:
  each completes through its own context.

Each context reaches its loop's bridge through a ``BridgePort`` (the backend
contract of ``aioposix._core.contract``), which reports every job through
the context's ``Finish`` callback.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import sys
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from aioposix._core import faults, loopdata, syscalls
from aioposix._core.constants import LIO_READ, LIO_READV
from aioposix._core.contract import Finish
from aioposix._core.errors import error
from aioposix._core.job import PARKED, Aiocb
from aioposix._core.states import ENDED_SHORT, STARTED, TAKEN, TakeBack

if TYPE_CHECKING:
    import asyncio

Key = tuple[int, int, int, bool]  # (st_dev, st_ino, pty number + 1 or 0, is_write)


class Channel:
    """One watched (file, direction): our descriptor and the jobs parked on it."""

    __slots__ = ("closing", "fd", "is_write", "jobs", "key", "live", "mode", "registered")

    def __init__(self, key: Key, fd: int, mode: int) -> None:
        self.key = key
        self.is_write = key[3]
        self.fd = fd  # ours: a dup, or a fresh O_NONBLOCK open of the same object
        self.mode = mode  # NOWAIT, NONBLOCK or TOGGLE: how an attempt avoids blocking
        # FIFO of (cb, its context's Finish, its reap count at parking); stale entries skipped
        self.jobs: deque[tuple[Aiocb, Finish, int]] = deque()
        self.live = 0  # entries still PARKED
        self.registered = False
        self.closing = False  # a close-if-still-idle is scheduled

    def __repr__(self) -> str:
        way = "write" if self.is_write else "read"
        return f"<Channel fd={self.fd} {way} parked={self.live}>"


# How a channel makes a non-blocking attempt without touching the user's flags.
NOWAIT = 0  # preadv2/pwritev2 with RWF_NOWAIT on a dup (sockets, anonymous pipes)
NONBLOCK = 1  # a second open of the same object with O_NONBLOCK (FIFOs, pty slaves, ttys)
TOGGLE = 2  # a dup, with O_NONBLOCK set just around each attempt (pty masters)

_PTMX = os.makedev(5, 2)  # opening /dev/ptmx again would make a new pty, not reach this one
_TIOCGPTN = 0x80045430


def channel_key(fd: int, st: os.stat_result, is_write: bool) -> Key:
    """What identifies the watched object: the inode, and for a pty master its number
    (every master shares the ptmx inode)."""
    extra = 0
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == _PTMX:
        with contextlib.suppress(OSError):
            extra = 1 + int.from_bytes(fcntl.ioctl(fd, _TIOCGPTN, b"\0\0\0\0"), sys.byteorder)
    return (st.st_dev, st.st_ino, extra, is_write)


def attempt_mode(fd: int, st: os.stat_result) -> int:
    if stat.S_ISSOCK(st.st_mode) or _is_pipe(fd, st):
        return NOWAIT
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == _PTMX:
        return TOGGLE
    return NONBLOCK


def _open_channel_fd(fd: int, mode: int, is_write: bool) -> tuple[int, int]:
    """Our descriptor for the channel, and the attempt mode it ends up with."""
    if mode != NONBLOCK:
        return os.dup(fd), mode
    access = os.O_WRONLY if is_write else os.O_RDONLY
    flags = access | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        return os.open(f"/proc/self/fd/{fd}", flags), mode
    except PermissionError:
        # A second open is checked against the object's permissions now: after a
        # privilege drop it may be refused although the fd itself works.  Then
        # the fd's own open file is used, O_NONBLOCK set just around each attempt.
        return os.dup(fd), TOGGLE
    except OSError as exc:
        if exc.errno == errno.ENXIO and is_write:  # a FIFO with no reader
            raise error(errno.EPIPE, "the FIFO has no reader") from None
        raise


def _is_pipe(fd: int, st: os.stat_result) -> bool:
    """An anonymous pipe (pipefs) honours RWF_NOWAIT; a named FIFO does not."""
    if not stat.S_ISFIFO(st.st_mode):
        return False
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
    except OSError:
        return False


def try_once(fd: int, mode: int, cb: Aiocb) -> tuple[int, int] | None:
    """One non-blocking try of ``cb`` on ``fd``: (status, error) when the job is
    over, None when it must wait for readiness."""
    if faults.ARMED and (code := faults.take("bridge")):
        return -1, code
    if mode == TOGGLE:
        return _toggled(fd, cb)
    flags = syscalls.RWF_NOWAIT if mode == NOWAIT else 0
    views = cb._views
    assert views is not None
    try:
        if cb._op in (LIO_READ, LIO_READV):
            return syscalls.read_once(fd, views, -1, flags), 0
        moved = syscalls.write_once(fd, syscalls.remaining(views, cb._progress), -1, flags)
    except BlockingIOError:
        return None
    except OSError as exc:
        return -1, exc.errno or errno.EIO
    cb._progress += moved
    return (cb._progress, 0) if cb._progress >= cb._n else None


def _toggled(fd: int, cb: Aiocb) -> tuple[int, int] | None:
    """A try on a pty master: O_NONBLOCK is set only for the length of the call.
    (The flag belongs to the open file, which the user shares; this is the one
    kind of fd that offers no other way, and the loop thread holds it briefly.)"""
    old = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, old | os.O_NONBLOCK)
    try:
        return try_once(fd, NONBLOCK, cb)
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, old)


class Bridge:
    """Every channel of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._channels: dict[Key, Channel] = {}  # {channel_key(): Channel}

    def submit(self, finish: Finish, jobs: Sequence[Aiocb]) -> None:
        """Run each job now if its fd is ready, else park it until it is; every
        outcome goes to ``finish`` (``cb._stat``: its fd's fstat, taken for the route)."""
        for cb in jobs:
            is_write = cb._op not in (LIO_READ, LIO_READV)
            st = cb._stat
            assert st is not None
            key = channel_key(cb.fildes, st, is_write)
            channel = self._channels.get(key)
            tried = False
            if channel is None:
                channel = self._open(cb, st, key, finish)
                if channel is None:
                    continue  # done at the first try, or refused
                tried = channel.mode == NOWAIT
            cb._state = PARKED
            cb._bridge_key = channel.key  # (the channel's own tuple: a parked job holds no copy)
            channel.jobs.append((cb, finish, cb._gen))
            channel.live += 1
            if channel.live == 1 and not tried:
                self._ready(channel)  # nobody ahead of it: try now
            if channel.live and not channel.registered:
                self._register(channel)

    def _open(self, cb: Aiocb, st: os.stat_result, key: Key, finish: Finish) -> Channel | None:
        """A channel for ``cb``'s (file, direction), or None when ``cb`` is over.

        A socket or pipe is tried first on the user's fd, so that a job whose
        fd is ready needs no dup; such a job has had its first try when its
        channel is made."""
        mode = attempt_mode(cb.fildes, st)
        if mode == NOWAIT:
            result = try_once(cb.fildes, mode, cb)
            if result is not None:
                finish(cb, *result)
                return None
        try:
            fd, mode_now = _open_channel_fd(cb.fildes, mode, key[3])
        except OSError as exc:
            finish(cb, -1, exc.errno or errno.EIO)
            return None
        channel = self._channels[key] = Channel(key, fd, mode_now)
        return channel

    def take_back(self, cb: Aiocb) -> bool:
        """Unpark ``cb``: True if it moved nothing (cancel it), False for a write
        that already moved bytes (it must end short, with them)."""
        self._unpark(cb)
        return not (cb._progress and cb._op not in (LIO_READ, LIO_READV))

    def _unpark(self, cb: Aiocb) -> None:
        """Take ``cb`` out of its channel's count (its queue entry goes stale)."""
        key, cb._bridge_key = cb._bridge_key, None
        channel = self._channels.get(key) if key is not None else None
        if channel is not None:
            channel.live -= 1
            if channel.live == 0:
                self._close(channel)

    def _register(self, channel: Channel) -> None:
        add = self._loop.add_writer if channel.is_write else self._loop.add_reader
        add(channel.fd, self._ready, channel)
        channel.registered = True

    def _ready(self, channel: Channel) -> None:
        """The fd is ready: run parked jobs in order until one would block."""
        jobs = channel.jobs
        while jobs:
            cb, finish, gen = jobs[0]
            if cb._state is not PARKED or cb._gen != gen or cb._bridge_key is not channel.key:
                # taken back (cancelled), and maybe reaped and submitted again since
                jobs.popleft()
                continue
            result = try_once(channel.fd, channel.mode, cb)
            if result is None:
                return  # would block: wait for the next readiness
            jobs.popleft()
            channel.live -= 1
            cb._bridge_key = None
            finish(cb, *result)
        if not channel.closing:
            # Keep the channel until the end of this loop iteration: the task
            # just woken usually submits its next job on the same fd first,
            # which then reuses our descriptor and loop registration.
            channel.closing = True
            self._loop.call_soon(self._close_if_idle, channel)

    def _close_if_idle(self, channel: Channel) -> None:
        channel.closing = False
        if channel.live == 0 and self._channels.get(channel.key) is channel:
            self._close(channel)

    def _close(self, channel: Channel) -> None:
        if channel.fd < 0:
            return
        if channel.registered:
            remove = self._loop.remove_writer if channel.is_write else self._loop.remove_reader
            remove(channel.fd)
            channel.registered = False
        if self._channels.get(channel.key) is channel:
            del self._channels[channel.key]
        channel.jobs.clear()
        os.close(channel.fd)
        channel.fd = -1

    def abandon(self) -> None:
        """The loop is closed: close every channel's descriptor, with no loop call."""
        for channel in list(self._channels.values()):
            channel.registered = False  # the closed loop's registrations died with it
            self._close(channel)

    def __del__(self) -> None:
        for channel in self._channels.values():
            if channel.fd >= 0:
                os.close(channel.fd)
                channel.fd = -1

    def parked(self) -> int:
        return sum(channel.live for channel in self._channels.values())

    def __repr__(self) -> str:
        return f"<Bridge channels={len(self._channels)} parked={self.parked()}>"


class BridgePort:
    """One context's use of its loop's bridge (the backend contract)."""

    __slots__ = ("_finish", "bridge", "submit")

    def __init__(self, bridge: Bridge, finish: Finish) -> None:
        self.bridge = bridge
        self._finish = finish
        # Try each job now and park those that would block: the bridge's own
        # submit with this context's Finish bound (a C partial, no frame of ours).
        self.submit: Callable[[Sequence[Aiocb]], None] = partial(bridge.submit, finish)

    def take_back(self, cb: Aiocb) -> TakeBack:
        if cb._state is not PARKED:
            return STARTED
        if self.bridge.take_back(cb):
            return TAKEN
        self._finish(cb, cb._progress, 0)  # a write that moved bytes ends short, not cancelled
        return ENDED_SHORT

    def abandon(self) -> None:
        self.bridge.abandon()


def bridge_for(loop: asyncio.AbstractEventLoop) -> Bridge:
    bridge: Bridge | None = loopdata.get(loop, "bridge")
    if bridge is None:
        bridge = Bridge(loop)
        loopdata.put(loop, "bridge", bridge)
    return bridge
