"""aioposix's pytest plugin: fixtures for testing code built on aioposix.

Installing aioposix registers this module with pytest (a ``pytest11`` entry
point named ``aioposix``), so the fixtures below are there in every test
run, with no import and no ``conftest.py`` line.  They work under
pytest-asyncio (strict or auto mode) and under AnyIO's pytest plugin on its
asyncio backend (the default loop or uvloop); see ``docs/pytest-plugin.md``.
Under AnyIO's trio backend ``aioposix_context`` fails at set-up with a
RuntimeError that says aioposix needs an asyncio event loop.

- ``aioposix_context``: a fresh ``AioContext`` made on the test's event loop
  and run down (``aclose``) when the test ends: jobs still queued or parked
  are cancelled (ECANCELED), so a test never shares queues, quotas or
  leftover jobs with another.
- ``aioposix_sysctl``: ``aioposix.sysctl``, put back as the process started
  when the test ends, whatever the test set.
- ``aioposix_fault``: ``arm(errno, count=1, path="any")`` makes the next jobs
  fail with that errno until the test ends (``aioposix.testing.inject_fault``
  for a whole test).

Disable it with ``-p no:aioposix``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol, TypeVar, cast

import pytest

from aioposix._context.context import AioContext
from aioposix._core.running import running_loop
from aioposix._kernel.kernel import KERNEL
from aioposix._kernel.tunables import Sysctl
from aioposix.testing import inject_fault

__all__ = ["Arm", "aioposix_context", "aioposix_fault", "aioposix_sysctl"]

F = TypeVar("F", bound=Callable[..., Any])


def _async_fixture(func: F) -> F:
    """An async fixture both plugins run: pytest-asyncio needs its own
    decorator in strict mode (its default), and AnyIO's plugin runs fixtures
    so decorated too; without pytest-asyncio, pytest's own decorator is the
    one AnyIO's plugin looks for."""
    try:
        import pytest_asyncio
    except ImportError:
        return cast(F, pytest.fixture(func))
    return cast(F, pytest_asyncio.fixture(func))


@_async_fixture
async def aioposix_context() -> AsyncIterator[AioContext]:
    """A fresh AioContext on the test's loop, run down when the test ends.

    Its limits are copied from ``aioposix.sysctl`` when it is made.  Jobs the
    test left queued or parked end with ECANCELED at teardown.
    """
    running_loop()  # under trio: a RuntimeError that names the cause, at set-up
    async with AioContext() as ctx:
        yield ctx


@pytest.fixture
def aioposix_sysctl() -> Iterator[Sysctl]:
    """``aioposix.sysctl``, reset to the values the process started with
    (the defaults and any persistent settings) when the test ends."""
    try:
        yield KERNEL.sysctl
    finally:
        KERNEL.sysctl.reset()


class Arm(Protocol):
    """The ``aioposix_fault`` fixture: arm a fault until the test ends."""

    def __call__(self, code: int, count: int = 1, path: str = "any",
                 raise_in_worker: bool = False) -> None: ...


@pytest.fixture
def aioposix_fault() -> Iterator[Arm]:
    """``arm(code, count=1, path="any", raise_in_worker=False)``: the next
    ``count`` jobs on ``path`` fail with ``code``; disarmed when the test ends.

    ``path`` is one of "pool", "io_uring", "bridge", "inline" or "any", as for
    ``aioposix.testing.inject_fault``; arming a path again replaces its fault.
    """
    with contextlib.ExitStack() as stack:

        def arm(code: int, count: int = 1, path: str = "any",
                raise_in_worker: bool = False) -> None:
            stack.enter_context(inject_fault(code, count, path, raise_in_worker))
        yield arm
