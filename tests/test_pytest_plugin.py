"""aioposix's pytest plugin (docs/pytest-plugin.md) in a user's own test run.

Each test writes a small test module that uses the fixtures ``aioposix_context``,
``aioposix_sysctl`` and ``aioposix_fault``, runs pytest on it in a separate
process (pytester), and reads the outcomes: under pytest-asyncio (``-p asyncio``;
this project's own configuration turns it off) and under AnyIO's plugin on the
asyncio loop and on uvloop, each with the file backend left to its default and
with ``AIOPOSIX_BACKEND=threads`` (and a user test checks that the backend in
use is the one the run's id names).  The plugin is found through its ``pytest11``
entry point: nothing in the user's files names it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

import aioposix

pytest_plugins = ("pytester",)

# One user test module, with ``{mark}`` before each async test and ``{header}``
# where the plugin's own settings go (AnyIO's test backend).
USER_TESTS = '''
import errno
import os

import pytest

import aioposix
{header}

PARKED = []
SYSCTL = {{}}


{mark}
async def test_context_reads(aioposix_context, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"hello, world")
    fd = os.open(path, os.O_RDONLY)
    try:
        cb = aioposix.Aiocb(fd, bytearray(5), offset=7)
        aioposix_context.aio_read(cb)
        assert await cb == 5
        assert cb.buf == bytearray(b"world")
        assert aioposix_context is not aioposix.current_context()
    finally:
        os.close(fd)


{mark}
async def test_context_left_busy(aioposix_context):
    r, w = os.pipe()
    cb = aioposix.Aiocb(r, bytearray(4))
    aioposix_context.aio_read(cb)  # nothing in the pipe: parked
    assert aioposix_context.aio_error(cb) == errno.EINPROGRESS
    PARKED.append((cb, r, w))


def test_context_was_run_down():
    cb, r, w = PARKED[0]
    assert (cb.error, cb.status) == (errno.ECANCELED, -1)
    os.write(w, b"left")
    assert os.read(r, 4) == b"left"  # the cancelled read took nothing
    os.close(r)
    os.close(w)


{mark}
async def test_fault_seen(aioposix_fault, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"abc")
    aioposix_fault(errno.EIO, count=100)
    async with aioposix.open(path, "rb") as f:
        with pytest.raises(OSError) as info:
            await f.read()
    assert info.value.errno == errno.EIO
    assert path.read_bytes() == b"abc"


{mark}
async def test_fault_gone_after_the_test(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"abc")
    async with aioposix.open(path, "rb") as f:
        assert await f.read() == b"abc"


def test_sysctl_set(aioposix_sysctl):
    SYSCTL["before"] = aioposix_sysctl["vfs.aio.max_aio_per_proc"]
    aioposix_sysctl["vfs.aio.max_aio_per_proc"] = 3
    assert aioposix.sysctl["vfs.aio.max_aio_per_proc"] == 3
    assert aioposix.AioContext().max_active == 3


def test_sysctl_back():
    assert aioposix.sysctl["vfs.aio.max_aio_per_proc"] == SYSCTL["before"] != 3


def test_backend_is_the_one_the_run_names():
    assert aioposix.sysctl["vfs.aio.backend_active"] == os.environ["EXPECTED_BACKEND"]
'''

USER_PASSED = 8
USER_NAMES = ("test_context_reads", "test_context_left_busy", "test_context_was_run_down",
              "test_fault_seen", "test_fault_gone_after_the_test", "test_sysctl_set",
              "test_sysctl_back", "test_backend_is_the_one_the_run_names")

ANYIO_HEADER = '''

@pytest.fixture
def anyio_backend():
    return {backend!r}
'''

# pytest-asyncio asks for its loop scope to be set; warnings are errors in the user's run
ASYNCIO_INI = """[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""
ANYIO_INI = """[pytest]
filterwarnings = error
"""

RUNS = {
    # name: (pytest's -p options, the mark, the header, the ini)
    "pytest-asyncio": (["-p", "asyncio", "-p", "no:anyio"], "@pytest.mark.asyncio", "",
                       ASYNCIO_INI),
    "anyio-asyncio": (["-p", "no:asyncio"], "@pytest.mark.anyio",
                      ANYIO_HEADER.format(backend="asyncio"), ANYIO_INI),
    "anyio-uvloop": (["-p", "no:asyncio"], "@pytest.mark.anyio",
                     ANYIO_HEADER.format(backend=("asyncio", {"use_uvloop": True})), ANYIO_INI),
    # both plugins on, as where both are installed: AnyIO's tests still get the fixture
    "anyio-with-pytest-asyncio": (["-p", "asyncio"], "@pytest.mark.anyio",
                                  ANYIO_HEADER.format(backend="asyncio"), ASYNCIO_INI),
}


def run_user_tests(pytester: pytest.Pytester, source: str, ini: str,
                   options: list[str]) -> pytest.RunResult:
    pytester.makeini(ini)
    pytester.makepyfile(test_user=source)
    return pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider", *options,
                                         timeout=120)


def test_entry_point_names_the_plugin() -> None:
    found = {e.name: e.value for e in entry_points(group="pytest11")}
    assert found.get("aioposix") == "aioposix.pytest_plugin"


@pytest.mark.parametrize("backend", ["default", "threads"])
@pytest.mark.parametrize("run", list(RUNS))
def test_fixtures_in_a_user_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                run: str, backend: str) -> None:
    if backend == "default":
        monkeypatch.delenv("AIOPOSIX_BACKEND", raising=False)
        # the default setting: io_uring where it works here
        works = aioposix.sysctl["vfs.aio.io_uring"] == "available"
        monkeypatch.setenv("EXPECTED_BACKEND", "io_uring" if works else "threads")
    else:
        monkeypatch.setenv("AIOPOSIX_BACKEND", backend)
        monkeypatch.setenv("EXPECTED_BACKEND", backend)
    options, mark, header, ini = RUNS[run]
    if "asyncio" in options:
        pytest.importorskip("pytest_asyncio")
    source = USER_TESTS.format(mark=mark, header=header)
    result = run_user_tests(pytester, source, ini, options)
    result.assert_outcomes(passed=USER_PASSED)
    result.stdout.fnmatch_lines_random([f"*::{name} PASSED*" for name in USER_NAMES])


NO_PLUGIN_TESTS = '''
def test_context(aioposix_context):
    pass

def test_sysctl(aioposix_sysctl):
    pass

def test_fault(aioposix_fault):
    pass

def test_plain():
    pass
'''


def test_disabled_with_no_aioposix(pytester: pytest.Pytester) -> None:
    result = run_user_tests(pytester, NO_PLUGIN_TESTS, ANYIO_INI,
                            ["-p", "no:asyncio", "-p", "no:aioposix"])
    result.assert_outcomes(passed=1, errors=3)
    result.stdout.fnmatch_lines_random([f"*fixture '{name}' not found*" for name in (
        "aioposix_context", "aioposix_sysctl", "aioposix_fault")])


TRIO_TEST = '''
import pytest

@pytest.fixture
def anyio_backend():
    return "trio"

@pytest.mark.anyio
async def test_context_under_trio(aioposix_context):
    pass
'''


def test_context_fixture_under_trio_names_the_cause(pytester: pytest.Pytester) -> None:
    pytest.importorskip("trio")
    pytester.makeini(ANYIO_INI)
    pytester.makepyfile(test_user=TRIO_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio",
                                           timeout=120)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*RuntimeError: aioposix needs an asyncio event loop; "
        "AnyIO's trio backend is not supported*"])
