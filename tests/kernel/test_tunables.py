"""aioposix.sysctl (docs/contract.md, rule 22): names, defaults, checks, and what contexts copy."""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from aioposix import Aiocb, AioContext, sysctl

if TYPE_CHECKING:
    from conftest import Env

# FreeBSD's defaults (the SYSCTL block of vfs_aio.c), by name.
DEFAULTS: dict[str, int | float] = {
    "vfs.aio.max_aio_procs": 32,
    "vfs.aio.target_aio_procs": 4,
    "vfs.aio.max_aio_queue": 1024,
    "vfs.aio.max_aio_per_proc": 32,
    "vfs.aio.max_aio_queue_per_proc": 256,
    "vfs.aio.max_buf_aio": 16,
    "vfs.aio.aiod_lifetime": 30,
    "vfs.aio.aiod_timeout": 10,
}
COUNTERS = ("vfs.aio.num_aio_procs", "vfs.aio.num_queue_count", "vfs.aio.num_buf_aio",
            "p1003_1b.aio_listio_max")
COUNTS = ("vfs.aio.max_aio_procs", "vfs.aio.target_aio_procs", "vfs.aio.max_aio_queue",
          "vfs.aio.max_aio_per_proc", "vfs.aio.max_aio_queue_per_proc", "vfs.aio.max_buf_aio")
LIMITS = tuple(name for name in COUNTS if name != "vfs.aio.target_aio_procs")  # 0 is no limit
SECONDS = ("vfs.aio.aiod_lifetime", "vfs.aio.aiod_timeout")


@pytest.fixture(autouse=True)
def defaults() -> Iterator[None]:
    sysctl.reset()  # type: ignore[attr-defined]
    yield
    sysctl.reset()  # type: ignore[attr-defined]


def test_every_tunable_has_freebsds_default() -> None:
    for name, value in DEFAULTS.items():
        assert sysctl[name] == value, name
        assert isinstance(sysctl[name], int if name in COUNTS else int | float), name


def test_counters_are_listed_and_are_non_negative_ints() -> None:
    names = set(sysctl)
    assert set(DEFAULTS) | set(COUNTERS) <= names
    assert len(sysctl) == len(names)
    for name in COUNTERS:
        assert name in sysctl
        value = sysctl[name]
        assert isinstance(value, int) and not isinstance(value, bool), name
        assert value >= 0, name
    assert dict(sysctl.items())["vfs.aio.max_aio_queue"] == 1024


def test_reset_restores_the_defaults() -> None:
    sysctl["vfs.aio.max_aio_procs"] = 5
    sysctl["vfs.aio.aiod_lifetime"] = 0.5
    sysctl.reset()  # type: ignore[attr-defined]
    assert sysctl["vfs.aio.max_aio_procs"] == 32
    assert sysctl["vfs.aio.aiod_lifetime"] == 30


def test_aio_listio_max_follows_max_aio_queue_per_proc() -> None:
    assert sysctl["p1003_1b.aio_listio_max"] == sysctl["vfs.aio.max_aio_queue_per_proc"] == 256
    sysctl["vfs.aio.max_aio_queue_per_proc"] = 77
    assert sysctl["p1003_1b.aio_listio_max"] == 77
    sysctl["vfs.aio.max_aio_queue_per_proc"] = 4096
    assert sysctl["p1003_1b.aio_listio_max"] == 4096


@pytest.mark.parametrize("name", COUNTERS)
def test_writing_a_counter_is_permission_error(name: str) -> None:
    before = sysctl[name]
    with pytest.raises(PermissionError):
        sysctl[name] = 7
    assert sysctl[name] == before


def test_unknown_name_is_key_error() -> None:
    with pytest.raises(KeyError):
        sysctl["vfs.aio.no_such_knob"]
    with pytest.raises(KeyError):
        sysctl["vfs.aio.no_such_knob"] = 1
    assert "vfs.aio.no_such_knob" not in sysctl
    assert sysctl.get("vfs.aio.no_such_knob") is None


@pytest.mark.parametrize("value", [-1, "x", 1.5, True, None, "8"])
@pytest.mark.parametrize("name", COUNTS)
def test_bad_count_is_refused_and_the_value_kept(name: str, value: Any) -> None:
    before = sysctl[name]
    with pytest.raises((ValueError, TypeError)):
        sysctl[name] = value
    assert sysctl[name] == before


@pytest.mark.parametrize("name", LIMITS)
def test_zero_limit_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        sysctl[name] = 0
    assert sysctl[name] == DEFAULTS[name]


@pytest.mark.parametrize("value", [-1, -0.5, "x", True, None, math.nan])
@pytest.mark.parametrize("name", SECONDS)
def test_bad_duration_is_refused_and_the_value_kept(name: str, value: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        sysctl[name] = value
    assert sysctl[name] == DEFAULTS[name]


def test_zero_aiod_lifetime_is_refused() -> None:
    with pytest.raises(ValueError):
        sysctl["vfs.aio.aiod_lifetime"] = 0


@pytest.mark.parametrize(("name", "value"), [
    ("vfs.aio.max_aio_procs", 8),
    ("vfs.aio.target_aio_procs", 0),  # keep no idle worker
    ("vfs.aio.max_aio_queue", 1),
    ("vfs.aio.max_aio_per_proc", 1),
    ("vfs.aio.max_aio_queue_per_proc", 100000),
    ("vfs.aio.max_buf_aio", 2),
    ("vfs.aio.aiod_lifetime", 0.25),
    ("vfs.aio.aiod_lifetime", 2),
    ("vfs.aio.aiod_timeout", 0),  # do not wait for running jobs
    ("vfs.aio.aiod_timeout", 1.5),
])
def test_good_value_is_stored(name: str, value: int | float) -> None:
    sysctl[name] = value
    assert sysctl[name] == value


# -- contexts copy the per-context limits --------------------------------------------------


def test_context_copies_the_limits_when_it_is_created() -> None:
    sysctl["vfs.aio.max_aio_per_proc"] = 7
    sysctl["vfs.aio.max_aio_queue_per_proc"] = 9
    sysctl["vfs.aio.max_buf_aio"] = 3
    ctx = AioContext()
    stats = ctx.statistics()
    assert (stats.max_active, stats.max_queued, stats.max_buf) == (7, 9, 3)
    sysctl["vfs.aio.max_aio_per_proc"] = 70
    sysctl["vfs.aio.max_aio_queue_per_proc"] = 90
    sysctl["vfs.aio.max_buf_aio"] = 30
    stats = ctx.statistics()
    assert (stats.max_active, stats.max_queued, stats.max_buf) == (7, 9, 3)
    stats = AioContext().statistics()
    assert (stats.max_active, stats.max_queued, stats.max_buf) == (70, 90, 30)


def test_constructor_arguments_override_the_sysctls() -> None:
    stats = AioContext(max_active=2, max_queued=5, max_buf=1).statistics()
    assert (stats.max_active, stats.max_queued, stats.max_buf) == (2, 5, 1)
    stats = AioContext(max_queued=12).statistics()
    assert (stats.max_active, stats.max_queued, stats.max_buf) == (32, 12, 16)


@pytest.mark.parametrize("value", [0, -1, "x", 1.5, True])
@pytest.mark.parametrize("arg", ["max_active", "max_queued", "max_buf"])
def test_bad_constructor_limit_is_refused(arg: str, value: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        AioContext(**{arg: value})


async def test_context_keeps_the_queue_limit_it_copied(aio: Env) -> None:
    sysctl["vfs.aio.max_aio_queue_per_proc"] = 2
    fd = aio.file(b"abcd")
    try:
        async with AioContext() as ctx:
            sysctl["vfs.aio.max_aio_queue_per_proc"] = 256  # too late for ctx
            cbs = [Aiocb(fd, bytearray(1), None, i) for i in range(3)]
            ctx.aio_read(cbs[0])
            ctx.aio_read(cbs[1])
            with pytest.raises(BlockingIOError) as info:
                ctx.aio_read(cbs[2])
            assert info.value.errno == errno.EAGAIN
            assert [await cb for cb in cbs[:2]] == [1, 1]
            ctx.aio_read(cbs[2])
            assert await cbs[2] == 1
            assert b"".join(cb.buf for cb in cbs) == b"abc"
    finally:
        os.close(fd)


@pytest.mark.parametrize("value", [math.inf, 3600.5, 1e300])
def test_aiod_timeout_is_bounded(value: float) -> None:
    """A rundown never waits forever: aiod_timeout past an hour is refused."""
    before = sysctl["vfs.aio.aiod_timeout"]
    with pytest.raises(ValueError):
        sysctl["vfs.aio.aiod_timeout"] = value
    assert sysctl["vfs.aio.aiod_timeout"] == before
