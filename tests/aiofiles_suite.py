"""Run aiofiles' own test suite against aioposix, with only the import changed.

    python tests/aiofiles_suite.py [--sdist PATH] [--keep DIR] [--module NAME]

It fetches aiofiles' source distribution from PyPI (``pip download
--no-deps --no-binary :all: aiofiles``, or ``--sdist``), takes its ``tests/``,
replaces the word ``aiofiles`` by ``aioposix`` in them (``--module aiofiles``
runs them unchanged, as a control), runs them with pytest and
pytest-asyncio in a separate process, and prints one line per test that
failed or was skipped, with the reason, and a summary.  Exit status: 0 when
every test passed or is listed in ``PRIVATE`` below or fails on aiofiles
itself too (run unchanged beside it when aiofiles is installed: some tests
expect not to be root), 1 otherwise, 77 when the sdist or pytest-asyncio is
not available (nothing was run).

``PRIVATE`` lists the tests that read or patch aiofiles' implementation
rather than its interface, each with why it cannot pass on aioposix.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

UNAVAILABLE = 77

# test id (path::name, parameters cut) -> why it is out of reach
PRIVATE = {
    "threadpool/test_concurrency.py::test_slow_file":
        "patches aiofiles.threadpool.sync_open (the builtin open run in a thread) with a "
        "slow one; aioposix never calls it: its open is an io_uring openat (or a pool "
        "job), not the builtin open",
}

INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
addopts = -p no:cacheprovider
"""


def fetch(dest: Path) -> Path | None:
    """The sdist, downloaded into ``dest``; None when PyPI is out of reach."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--retries", "1", "--timeout", "20",
           "--no-deps", "--no-binary", ":all:", _requirement(), "-d", str(dest)]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return None
    found = sorted(dest.glob("aiofiles-*.tar.gz"))
    return found[-1] if found else None


def _requirement() -> str:
    """aiofiles at the installed version (the control runs that one), else the latest."""
    try:
        return f"aiofiles=={importlib.metadata.version('aiofiles')}"
    except importlib.metadata.PackageNotFoundError:
        return "aiofiles"


def extract_tests(sdist: Path, dest: Path, module: str) -> Path:
    """The sdist's tests/ under ``dest``, with ``aiofiles`` changed to ``module``."""
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/tests/" in m.name and m.isfile()]
        tar.extractall(dest, members=members, filter="data")
    tests = next(dest.glob("aiofiles-*/tests"))
    for path in tests.rglob("*.py"):
        text = path.read_text()
        path.write_text(re.sub(r"\baiofiles\b(?=[.\s])", module, text))
    (tests / "pytest.ini").write_text(INI)
    return tests


def run(tests: Path) -> dict[str, tuple[str, str]]:
    """{test id: (outcome, message)}, from pytest's junit report: the outcome is
    "passed", "failed" or "skipped", the message pytest's (empty when passed)."""
    report = tests / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-c", str(tests / "pytest.ini"),
                    "--rootdir", str(tests), f"--junitxml={report}", str(tests)],
                   cwd=tests.parent, capture_output=True)  # its tests expect the sdist's root
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(report).iter("testcase"):
        module, name = case.get("classname", ""), case.get("name", "")
        if module:
            name = f"{module.replace('.', '/')}.py::{name}"
        else:  # a module that failed to import
            name = f"{name.replace('.', '/')}.py"
        found = {child.tag: child.get("message", "") for child in case}
        kind = next((k for k in ("failure", "error", "skipped") if k in found), None)
        outcome = {"failure": "failed", "error": "failed", "skipped": "skipped",
                   None: "passed"}[kind]
        message = found.get(kind, "") if kind else ""
        outcomes[name] = (outcome, " ".join(message.split())[:160])
    return outcomes


def base_id(name: str) -> str:
    return name.split("[", 1)[0]


def summarize(outcomes: dict[str, tuple[str, str]],
              control: dict[str, tuple[str, str]]) -> int:
    """Print the failures and skips with their reasons, and the counts; 1 if a
    failure is neither private nor a failure of aiofiles itself on this machine
    (``control``)."""
    unexpected = 0
    for name, (outcome, message) in sorted(outcomes.items()):
        if outcome == "skipped":
            print(f"SKIPPED {name}  ({message})")
            continue
        if outcome != "failed":
            continue
        why = PRIVATE.get(base_id(name))
        if why is None and control.get(name, ("", ""))[0] == "failed":
            why = "fails on aiofiles itself here"
        unexpected += why is None
        print(f"FAILED {name}  ({why or message})")
    counts = {kind: sum(o == kind for o, _ in outcomes.values())
              for kind in ("passed", "failed", "skipped")}
    print(f"{counts['passed']} passed, {counts['failed']} failed "
          f"({unexpected} unexpected), {counts['skipped']} skipped, of {len(outcomes)}")
    return 1 if unexpected or not outcomes else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help="aiofiles' sdist (default: download it)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument("--module", default="aioposix", help="the module tested")
    args = parser.parse_args(argv)
    try:
        import pytest_asyncio  # noqa: F401
    except ImportError:
        print("skipped: aiofiles' tests need pytest-asyncio, which is not installed")
        return UNAVAILABLE
    with tempfile.TemporaryDirectory() as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        sdist = args.sdist or fetch(work)
        if sdist is None:
            print("skipped: aiofiles' sdist could not be downloaded from PyPI")
            return UNAVAILABLE
        outcomes = run(extract_tests(sdist, work / args.module, args.module))
        control: dict[str, tuple[str, str]] = {}
        if args.module != "aiofiles" and importlib.util.find_spec("aiofiles") is not None:
            control = run(extract_tests(sdist, work / "aiofiles", "aiofiles"))
        return summarize(outcomes, control)

if __name__ == "__main__":
    sys.exit(main())
