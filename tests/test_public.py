"""The public facade (docs/index.md: the public facade): every name is exported."""

from __future__ import annotations

import inspect
from collections.abc import MutableMapping

import pytest

import aioposix
import aioposix.os.path

CLASSES = ("Aiocb", "SigEvent", "AioContext", "ContextStatistics", "Kqueue", "KEvent",
           "AsyncFile")
FUNCTIONS = ("current_context", "aio_read", "aio_write", "aio_readv", "aio_writev",
             "aio_fsync", "aio_error", "aio_return", "aio_cancel", "aio_suspend", "lio_listio",
             "aio_waitcomplete", "pread", "pwrite", "open")
ASYNC_FUNCTIONS = ("aio_suspend", "lio_listio", "pread", "pwrite")
CONSTANTS = (
    "LIO_NOP", "LIO_READ", "LIO_WRITE", "LIO_READV", "LIO_WRITEV", "LIO_SYNC", "LIO_DSYNC",
    "LIO_WAIT", "LIO_NOWAIT", "AIO_CANCELED", "AIO_NOTCANCELED", "AIO_ALLDONE",
    "AIO_LISTIO_MAX", "SIGEV_NONE", "SIGEV_SIGNAL", "SIGEV_THREAD", "SIGEV_KEVENT",
    "EVFILT_AIO", "EVFILT_LIO", "EVFILT_READ", "EVFILT_WRITE", "EVFILT_USER", "EV_ADD",
    "EV_DELETE", "EV_ENABLE", "EV_DISABLE", "EV_ONESHOT", "EV_CLEAR", "EV_DISPATCH",
    "EV_EOF", "EV_ERROR", "NOTE_TRIGGER",
)
STREAMS = ("stdin", "stdout", "stderr", "stdin_bytes", "stdout_bytes", "stderr_bytes")
SPEC_NAMES = (*CLASSES, *FUNCTIONS, *CONSTANTS, *STREAMS, "sysctl")
# aiofiles' submodules: attributes of the package, not in __all__ (a star import
# must not shadow the stdlib's os and tempfile)
SUBMODULES = ("os", "tempfile", "threadpool")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_spec_name_is_exported(name: str) -> None:
    assert hasattr(aioposix, name)
    assert name in aioposix.__all__


def test_every_all_name_exists_once() -> None:
    assert len(aioposix.__all__) == len(set(aioposix.__all__))
    missing = [name for name in aioposix.__all__ if not hasattr(aioposix, name)]
    assert missing == []
    namespace: dict[str, object] = {}
    exec("from aioposix import *", namespace)
    assert set(aioposix.__all__) <= set(namespace)


def test_aiofiles_names_are_there() -> None:
    import aiofiles  # type: ignore[import-untyped]

    for name in aiofiles.__all__:
        assert hasattr(aioposix, name), name
    for name in SUBMODULES:
        assert inspect.ismodule(getattr(aioposix, name)), name
        assert name not in aioposix.__all__
    assert inspect.ismodule(aioposix.os.path)


def test_the_facade_defines_nothing_itself() -> None:
    """STYLE rule 1: classes and functions live in private modules."""
    for name in aioposix.__all__:
        obj = getattr(aioposix, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__.startswith("aioposix._"), name


def test_kinds_of_the_public_names() -> None:
    for name in CLASSES:
        assert inspect.isclass(getattr(aioposix, name)), name
    for name in FUNCTIONS:
        assert callable(getattr(aioposix, name)), name
    for name in ASYNC_FUNCTIONS:
        assert inspect.iscoroutinefunction(getattr(aioposix, name)), name
    for name in CONSTANTS:
        value = getattr(aioposix, name)
        assert isinstance(value, int) and not isinstance(value, bool), name
    assert isinstance(aioposix.sysctl, MutableMapping)


@pytest.mark.parametrize("group", [
    ("LIO_NOP", "LIO_READ", "LIO_WRITE", "LIO_READV", "LIO_WRITEV", "LIO_SYNC", "LIO_DSYNC"),
    ("LIO_WAIT", "LIO_NOWAIT"),
    ("AIO_CANCELED", "AIO_NOTCANCELED", "AIO_ALLDONE"),
    ("SIGEV_NONE", "SIGEV_SIGNAL", "SIGEV_THREAD", "SIGEV_KEVENT"),
    ("EVFILT_AIO", "EVFILT_LIO", "EVFILT_READ", "EVFILT_WRITE", "EVFILT_USER"),
])
def test_constants_of_one_kind_are_distinct(group: tuple[str, ...]) -> None:
    values = [getattr(aioposix, name) for name in group]
    assert len(set(values)) == len(values)


def test_kevent_flags_are_distinct_bits() -> None:
    flags = [getattr(aioposix, name) for name in (
        "EV_ADD", "EV_DELETE", "EV_ENABLE", "EV_DISABLE", "EV_ONESHOT", "EV_CLEAR",
        "EV_DISPATCH", "EV_EOF", "EV_ERROR")]
    for flag in flags:
        assert flag > 0 and flag & (flag - 1) == 0, hex(flag)
    assert len(set(flags)) == len(flags)


def test_module_calls_match_the_context_methods() -> None:
    """Module-level aio_* take the same parameters as the AioContext methods."""
    for name in FUNCTIONS:
        method = getattr(aioposix.AioContext, name, None)
        if method is None:
            continue
        module_params = list(inspect.signature(getattr(aioposix, name)).parameters)
        method_params = list(inspect.signature(method).parameters)[1:]  # without self
        assert module_params == method_params, name
