"""Kqueue and KEvent: kqueue(2) on asyncio futures.

Shaped like ``select.kqueue``/``select.kevent``.  A Kqueue holds knotes
keyed by (ident, filter); an active knote waits in the ready list until
``control`` (or ``async for``) collects it.  What each flag does on
collection follows kqueue(2):

- EV_ONESHOT: the knote is deleted once delivered;
- EV_CLEAR: its state is reset once delivered (it fires again only on a new
  trigger);
- EV_DISPATCH: it is disabled once delivered, until EV_ENABLE;
- none of them: level-triggered, it stays active while its condition holds.

Filters:
- EVFILT_AIO and EVFILT_LIO exist only through a SigEvent(SIGEV_KEVENT);
  a changelist that tries to add one gets EPERM, as in vfs_aio.c, where the
  knote is attached by the kernel (EV_FLAG1).  An EVFILT_AIO knote's
  condition is "the job is done and not reaped": without EV_ONESHOT or
  EV_CLEAR it is reported again until aio_return frees the job, as FreeBSD
  does.  An EVFILT_LIO knote fires once per batch.
- EVFILT_USER: EV_ADD, NOTE_TRIGGER and the NOTE_FF* fflags operations.
- EVFILT_READ/EVFILT_WRITE on a descriptor: watched through the loop's
  readers and writers; ``data`` is the byte count FIONREAD reports for
  reads (0 where the OS does not say), and EV_EOF is set when a readable fd
  has nothing to read (the peer closed).  While a knote waits to be
  collected its reader is paused, so an unread event never spins the loop.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import select
import termios
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aioposix._core.constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_DISABLE,
    EV_DISPATCH,
    EV_ENABLE,
    EV_EOF,
    EV_ERROR,
    EV_ONESHOT,
    EV_RECEIPT,
    EVFILT_AIO,
    EVFILT_LIO,
    EVFILT_READ,
    EVFILT_USER,
    EVFILT_WRITE,
    NOTE_FFAND,
    NOTE_FFCOPY,
    NOTE_FFCTRLMASK,
    NOTE_FFLAGSMASK,
    NOTE_FFOR,
    NOTE_TRIGGER,
)
from aioposix._core.errors import error
from aioposix._core.sleepers import Sleepers
from aioposix._notify.kevent import KEvent, Key, Knote, knote_key

_running_loop = asyncio._get_running_loop

_FILTERS = (EVFILT_READ, EVFILT_WRITE, EVFILT_AIO, EVFILT_LIO, EVFILT_USER)


class Kqueue:
    """A kernel event queue on asyncio futures.

    Events come from jobs of any loop or thread; the queue is waited on
    (control(), async iteration) from one loop at a time, its home loop.
    An event posted from elsewhere is handed to the home loop's thread with
    call_soon_threadsafe, so the queue's state is only ever changed there.
    """

    def __init__(self) -> None:
        self._knotes: dict[Key, Knote] = {}  # {(ident key, filter): knote}
        self._ready: OrderedDict[Key, Knote] = OrderedDict()  # active knotes, in order
        self._waiters = Sleepers()  # tasks in control()
        self._asleep = self._waiters.waiting  # (the same list: a C-level test per post)
        # EV_ONESHOT AIO/LIO events, which need no knote: [(event, reap count or -1)]
        self._oneshots: deque[tuple[KEvent, int]] = deque()
        # (cb, reap count) of events a rundown elsewhere owes, until its hop runs
        self._owed: set[tuple[object, int]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._epoll: select.epoll | None = None  # fd knotes, see _watch
        self._watched: dict[int, Knote] = {}  # {our dup: its knote}

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the queue: its knotes go, its waiters return, later events are dropped."""
        if self._closed:
            return
        for knote in list(self._knotes.values()):
            self._unwatch(knote)
        self._close_epoll()
        self._knotes.clear()
        self._ready.clear()
        self._oneshots.clear()
        self._closed = True
        self._wake()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Kqueue {state} knotes={len(self._knotes)} ready={len(self._ready)}>"

    # -- the AIO side (called by the notification layer) -------------------

    def _post(self, loop: asyncio.AbstractEventLoop, ident: object, kfilter: int, flags: int,
              data: int, udata: object, gen: int = 0) -> None:
        """A job or batch finished: attach its knote, already triggered.  The
        caller runs on ``loop``, which may be another than the queue's own."""
        home = self._loop
        if home is not None and home is not loop:
            self._hop(home, self._post_here, ident, kfilter, flags, data, udata, gen)
            return
        self._post_here(ident, kfilter, flags, data, udata, gen)

    def _keep_once(self, cb: object, gen: int) -> None:
        """A rundown freed this finished job: an event of it not yet collected is
        still reported, once (any thread; ordered after the job's own post)."""
        # recorded at once, from any thread (a set's add is one atomic call): a
        # collect on the home loop that runs before the hop below still sees that
        # the event is owed, although the rundown reaps the job right after this
        self._owed.add((cb, gen))  # (the cb itself: its id could be reused once it is freed)
        home = self._loop
        if home is not None and _running_loop() is not home:
            self._hop(home, self._keep_once_here, cb, gen)
            return
        self._keep_once_here(cb, gen)

    def _hop(self, home: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> None:
        try:
            home.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the home loop is closed: nobody waits there any more
            if self._loop is home:
                self._loop = None
            fn(*args)

    def _keep_once_here(self, cb: object, gen: int) -> None:
        self._owed.discard((cb, gen))
        knote = self._knotes.get(knote_key(cb, EVFILT_AIO))
        if knote is not None and knote.gen == gen:
            knote.final = True
        for i, (event, event_gen) in enumerate(self._oneshots):
            if event.ident is cb and event_gen == gen:
                self._oneshots[i] = (event, -1)

    def _post_here(self, ident: object, kfilter: int, flags: int, data: int, udata: object,
                   gen: int) -> None:
        if self._closed:
            return  # the job still completed; its event has nowhere to go
        if flags & EV_ONESHOT:
            # delivered once and gone: no knote to keep, just the event (and, for a
            # job, the reap count that tells whether it is still there to report)
            event = KEvent(ident, kfilter, flags | EV_ADD | EV_EOF, 0, data, udata)
            self._oneshots.append((event, gen if kfilter == EVFILT_AIO else -1))
            if self._asleep:
                self._waiters.wake()
            return
        key = knote_key(ident, kfilter)
        knote = Knote(key, ident, kfilter, flags, udata)
        knote.data = data
        knote.gen = gen
        self._knotes[key] = knote
        self._activate(knote)

    # -- control ------------------------------------------------------------

    async def control(self, changelist: Iterable[KEvent] | None, max_events: int,
                      timeout: float | None = None) -> list[KEvent]:
        """Apply ``changelist``, then return up to ``max_events`` events.

        Waits up to ``timeout`` seconds (None: forever; 0: poll) and
        returns [] when it passes.  A bad change becomes an EV_ERROR event
        while there is room in the result, else raises its OSError.
        """
        self._check_open()
        if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 0:
            raise error(errno.EINVAL, "max_events must be an int >= 0")
        if timeout is not None and not timeout >= 0:
            raise error(errno.EINVAL, "negative timeout")
        loop = self._home()
        events = self._apply(changelist or (), max_events)
        if events or max_events == 0:
            return events + self._collect(max_events - len(events))
        deadline = None if timeout is None else loop.time() + timeout
        while not self._closed:
            events = self._collect(max_events)  # stale knotes may yield nothing
            if events:
                return events
            if not await self._sleep(loop, deadline):
                return []
        return []

    def __aiter__(self) -> AsyncIterator[KEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[KEvent]:
        while not self._closed:
            for event in await self.control(None, 64):
                yield event

    def _loop_now(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _home(self) -> asyncio.AbstractEventLoop:
        """The running loop, made the queue's home (RuntimeError while another waits)."""
        running = asyncio.get_running_loop()
        home = self._loop
        if home is running:
            return running
        if home is not None and not home.is_closed():
            if self._waiters:
                raise RuntimeError("this Kqueue is being waited on from another event loop; "
                                   "wait on it from one loop at a time")
            if self._epoll is not None:
                raise RuntimeError("this Kqueue watches descriptors through another event "
                                   "loop; use it from that loop")
        if self._epoll is not None:  # its old loop is closed: watch from the new one
            running.add_reader(self._epoll.fileno(), self._fds_ready)
        self._loop = running
        return running

    def _check_open(self) -> None:
        if self._closed:
            raise error(errno.EBADF, "the Kqueue is closed")

    async def _sleep(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> bool:
        return await self._waiters.sleep(loop, deadline)

    def _wake(self) -> None:
        self._waiters.wake()

    # -- changes ------------------------------------------------------------

    def _apply(self, changes: Iterable[KEvent], room: int) -> list[KEvent]:
        errors: list[KEvent] = []
        for change in changes:
            try:
                self._change(change)
                if change.flags & EV_RECEIPT:
                    raise OSError(0, "receipt")
            except OSError as exc:
                if len(errors) >= room:
                    if exc.errno:
                        raise
                    continue
                errors.append(KEvent(change.ident, change.filter, change.flags | EV_ERROR,
                                     0, exc.errno or 0, change.udata))
        return errors

    def _change(self, change: KEvent) -> None:
        if not isinstance(change, KEvent):
            raise error(errno.EINVAL, "changelist entries must be KEvent")
        kfilter, flags = change.filter, change.flags
        if kfilter not in _FILTERS:
            raise error(errno.EINVAL, f"unknown filter {kfilter}")
        if kfilter in (EVFILT_AIO, EVFILT_LIO) and flags & EV_ADD:
            raise error(errno.EPERM, "EVFILT_AIO/EVFILT_LIO knotes come only from a sigevent")
        key = knote_key(change.ident, kfilter)
        knote = self._knotes.get(key)
        if flags & EV_ADD:
            knote = self._add(key, change, knote)
        elif knote is None:
            raise error(errno.ENOENT, "no such knote")
        if flags & EV_DELETE:
            self._delete(knote)
            return
        self._modify(knote, change)

    def _add(self, key: Key, change: KEvent, knote: Knote | None) -> Knote:
        if change.filter in (EVFILT_READ, EVFILT_WRITE):
            _check_fd(change.ident)
        if knote is None:
            knote = Knote(key, change.ident, change.filter, change.flags, change.udata)
            self._knotes[key] = knote
        else:
            knote.flags = change.flags & (EV_ONESHOT | EV_CLEAR | EV_DISPATCH)
            knote.udata = change.udata
        if not change.flags & EV_DISABLE:
            knote.enabled = True
        self._watch(knote)
        return knote

    def _modify(self, knote: Knote, change: KEvent) -> None:
        flags = change.flags
        if flags & EV_DISABLE:
            knote.enabled = False
            self._unwatch(knote)
            self._ready.pop(knote.key, None)
        elif flags & EV_ENABLE:
            knote.enabled = True
            if knote.active:
                self._activate(knote)
            else:
                self._watch(knote)
        if knote.filter == EVFILT_USER:
            self._user_fflags(knote, change.fflags)

    def _user_fflags(self, knote: Knote, fflags: int) -> None:
        op, value = fflags & NOTE_FFCTRLMASK, fflags & NOTE_FFLAGSMASK
        if op == NOTE_FFAND:
            knote.fflags &= value
        elif op == NOTE_FFOR:
            knote.fflags |= value
        elif op == NOTE_FFCOPY:
            knote.fflags = value
        if fflags & NOTE_TRIGGER:
            self._activate(knote)

    def _delete(self, knote: Knote) -> None:
        self._unwatch(knote)
        self._knotes.pop(knote.key, None)
        self._ready.pop(knote.key, None)

    # -- activation and collection -------------------------------------------

    def _activate(self, knote: Knote) -> None:
        knote.active = True
        if knote.enabled and self._knotes.get(knote.key) is knote:
            self._ready[knote.key] = knote
            self._wake()

    def _collect(self, max_events: int) -> list[KEvent]:
        """One scan: each ready knote is reported at most once per call."""
        events: list[KEvent] = []
        oneshots = self._oneshots
        while oneshots and len(events) < max_events:
            quick, gen = oneshots.popleft()
            # a reaped job's event went with it, unless a rundown freed the job
            if gen < 0 or quick.ident._gen == gen or self._owed_now(quick.ident, gen):
                events.append(quick)
        again: list[Knote] = []  # level-triggered knotes still active after delivery
        while self._ready and len(events) < max_events:
            _, knote = self._ready.popitem(last=False)
            event = self._deliver(knote, again)
            if event is not None:
                events.append(event)
        for knote in again:
            self._ready[knote.key] = knote
        return events

    def _deliver(self, knote: Knote, again: list[Knote]) -> KEvent | None:
        if knote.filter == EVFILT_AIO and knote.ident._gen != knote.gen:
            # the job was reaped: its knote went with it, unless a rundown freed
            # the job before its event was ever reported (then it is, once)
            owed = (knote.final or (bool(self._owed) and self._owed_now(knote.ident, knote.gen))
                    ) and not knote.delivered
            self._delete(knote)
            return self._event(knote) if owed else None
        event = self._event(knote)
        knote.delivered = True
        if knote.flags & EV_ONESHOT or knote.filter == EVFILT_LIO:
            self._delete(knote)
        elif knote.flags & EV_DISPATCH:
            knote.enabled = False
            knote.active = knote.filter == EVFILT_AIO and not knote.flags & EV_CLEAR
        elif knote.flags & EV_CLEAR:
            knote.active = False  # the user fflags stay, as in filt_usertouch
            self._rewatch(knote)
        else:
            self._relevel(knote, again)
        return event

    def _owed_now(self, ident: object, gen: int) -> bool:
        """A rundown on another thread owes this event; its hop has not run yet."""
        if (ident, gen) in self._owed:
            self._owed.discard((ident, gen))
            return True
        return False

    def _event(self, knote: Knote) -> KEvent:
        flags = knote.flags | EV_ADD
        data = knote.data
        if knote.filter in (EVFILT_AIO, EVFILT_LIO):
            flags |= EV_EOF
        elif knote.filter == EVFILT_READ:
            data = _readable_bytes(knote.ident)
            if _peer_gone(knote.ident):
                flags |= EV_EOF
        return KEvent(knote.ident, knote.filter, flags, knote.fflags, data, knote.udata)

    def _relevel(self, knote: Knote, again: list[Knote]) -> None:
        """Level-triggered: an AIO or user knote stays active; an fd is asked again."""
        if knote.filter in (EVFILT_READ, EVFILT_WRITE):
            knote.active = False
            self._rewatch(knote)
        elif knote.filter in (EVFILT_AIO, EVFILT_USER):
            again.append(knote)

    # -- descriptors through a private epoll ------------------------------------
    #
    # Each fd knote watches its own dup of the fd in this queue's epoll, and the
    # loop watches only the epoll fd.  So two Kqueues, or a Kqueue and the
    # application's own add_reader, never replace each other's registration.
    # Level-triggered knotes use EPOLLONESHOT and are re-armed after each
    # delivery (an unread event cannot spin the loop); EV_CLEAR knotes use
    # EPOLLET and fire again only on new readiness, as kqueue(2) says.

    def _watch(self, knote: Knote) -> None:
        if knote.filter not in (EVFILT_READ, EVFILT_WRITE) or not knote.enabled:
            return
        epoll = self._epoll_now()
        if knote.watching:
            epoll.modify(knote.dup, _mask(knote))
            return
        knote.dup = os.dup(knote.ident)
        self._watched[knote.dup] = knote
        epoll.register(knote.dup, _mask(knote))
        knote.watching = True

    def _rewatch(self, knote: Knote) -> None:
        fd_knote = knote.filter in (EVFILT_READ, EVFILT_WRITE)
        edge_armed = knote.flags & EV_CLEAR and knote.watching  # EPOLLET stays armed
        if fd_knote and not edge_armed and self._knotes.get(knote.key) is knote:
            self._watch(knote)

    def _unwatch(self, knote: Knote) -> None:
        if not knote.watching or self._epoll is None:
            return
        self._epoll.unregister(knote.dup)
        del self._watched[knote.dup]
        os.close(knote.dup)
        knote.watching = False
        knote.dup = -1

    def _epoll_now(self) -> select.epoll:
        if self._epoll is None:
            self._epoll = select.epoll()
            self._loop_now().add_reader(self._epoll.fileno(), self._fds_ready)
        return self._epoll

    def _fds_ready(self) -> None:
        assert self._epoll is not None
        for dup, _ in self._epoll.poll(0):
            knote = self._watched.get(dup)
            if knote is not None:
                self._activate(knote)

    def _close_epoll(self) -> None:
        if self._epoll is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()
        self._epoll = None


def _mask(knote: Knote) -> int:
    events = select.EPOLLIN | select.EPOLLRDHUP if knote.filter == EVFILT_READ else (
        select.EPOLLOUT)
    return events | (select.EPOLLET if knote.flags & EV_CLEAR else select.EPOLLONESHOT)



def _check_fd(ident: object) -> None:
    if type(ident) is not int or ident < 0:
        raise error(errno.EBADF, f"{ident!r} is not a file descriptor")
    try:
        os.fstat(ident)
    except OSError:
        raise error(errno.EBADF, f"fd {ident} is not open") from None


def _peer_gone(fd: int) -> bool:
    """The writing side has shut down (data may still be pending): kqueue's EV_EOF."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLRDHUP)
    try:
        return any(ev & (select.POLLRDHUP | select.POLLHUP) for _, ev in poller.poll(0))
    except OSError:
        return False


def _readable_bytes(fd: int) -> int:
    try:
        buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int.from_bytes(buf, "little")
