"""The mutation check: does the test suite catch one-line faults in the library?

Each mutant in ``scripts/mutations.toml`` names a file of the package, an exact
piece of one line in it (``find``, which must occur exactly once), what to put
there instead (``replace``), optional environment variables (``env``), and the
test files that should notice.  For each mutant the script copies the
repository into a temporary directory (the working tree is never touched),
applies the mutation to the copy, and runs those test files there with
pytest, stopping at the first failure, under a timeout.

A mutant is *caught* when the tests fail (or hang until the timeout), and
*survives* when they pass.  An entry with ``expect = "pass"`` is a
disturbance the suite must neutralize instead (an environment variable the
fixture clears): it counts as caught (*neutralized*) when the tests pass.
A mutant whose ``find`` text is no longer in the file is reported as not
applying: the code moved on, and the list needs an update.  The score is
caught / applied.  See docs/testing.md.

Usage::

    python scripts/mutate.py                 # every mutant
    python scripts/mutate.py --check         # only check that each mutation applies
    python scripts/mutate.py ring-progress fsync-barrier --timeout 300
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("aioposix", "tests", "docs", "examples", "benchmarks", "pyproject.toml", "README.md")
GOOD = ("caught", "timeout", "neutralized")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    why: str
    env: dict[str, str] = field(default_factory=dict)
    expect: str = "fail"  # "pass": a disturbance the suite must neutralize, not notice


@dataclass
class Outcome:
    mutant: Mutant
    verdict: str  # caught, survived, timeout, not-applied, error
    detail: str = ""
    seconds: float = 0.0


def load(path: Path) -> list[Mutant]:
    with open(path, "rb") as f:
        table = tomllib.load(f)
    return [Mutant(name=m["name"], file=m.get("file", ""), find=m.get("find", ""),
                   replace=m.get("replace", ""), tests=tuple(m["tests"]), why=m["why"],
                   env=dict(m.get("env", {})), expect=m.get("expect", "fail"))
            for m in table["mutant"]]


def copy_repo(source: Path, dest: Path) -> None:
    for name in COPIED:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=IGNORED)
        elif src.exists():
            shutil.copy2(src, dest / name)


def apply(copy: Path, mutant: Mutant) -> tuple[str | None, str | None]:
    """Mutate the copy: (the file's text before, to put back; or None), and None
    or why the mutation does not apply."""
    if not mutant.file:
        return None, None  # an environment-only mutant
    target = copy / mutant.file
    if not target.exists():
        return None, f"{mutant.file} does not exist"
    text = target.read_text()
    count = text.count(mutant.find)
    if count == 0:
        return None, "mutation does not apply (line not found)"
    if count > 1:
        return None, f"mutation does not apply (ambiguous: found {count} times)"
    target.write_text(text.replace(mutant.find, mutant.replace))
    return text, None


def restore(copy: Path, mutant: Mutant, original: str | None) -> None:
    if original is not None:
        (copy / mutant.file).write_text(original)


def environment(copy: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AIOPOSIX_BACKEND"}
    env["PYTHONPATH"] = str(copy)  # the copy's package, ahead of an installed one
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def check_import(copy: Path) -> None:
    """The tests in the copy must import the copy's package, not the working tree's."""
    out = subprocess.run([sys.executable, "-c", "import aioposix; print(aioposix.__file__)"],
                         cwd=copy, env=environment(copy, {}), capture_output=True, text=True,
                         check=True).stdout.strip()
    if not Path(out).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"the copy imports aioposix from {out}, not from {copy}")


def last_failure(output: str) -> str:
    for line in reversed(output.splitlines()):
        if line.startswith(("FAILED", "ERROR")):
            return line[:160]
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


def run_tests(copy: Path, tests: tuple[str, ...], env: dict[str, str],
              timeout: float) -> tuple[int | None, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "--no-header", "-p", "no:cacheprovider",
           *tests]
    try:
        done = subprocess.run(cmd, cwd=copy, env=environment(copy, env), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"no result within {timeout:.0f} s"
    return done.returncode, done.stdout + done.stderr


def run_one(copy: Path, mutant: Mutant, timeout: float) -> Outcome:
    original, why_not = apply(copy, mutant)
    if why_not is not None:
        return Outcome(mutant, "not-applied", why_not)
    start = time.monotonic()
    try:
        code, output = run_tests(copy, mutant.tests, mutant.env, timeout)
    finally:
        restore(copy, mutant, original)
    seconds = time.monotonic() - start
    if code is None:
        return Outcome(mutant, "timeout", output, seconds)
    if mutant.expect == "pass":
        if code == 0:
            return Outcome(mutant, "neutralized", "", seconds)
        return Outcome(mutant, "survived", f"the tests failed: {last_failure(output)}", seconds)
    if code == 0:
        return Outcome(mutant, "survived", "", seconds)
    if code == 1:
        return Outcome(mutant, "caught", last_failure(output), seconds)
    return Outcome(mutant, "error", f"pytest exit code {code}: {last_failure(output)}", seconds)


def report(outcomes: list[Outcome]) -> int:
    applied = [o for o in outcomes if o.verdict != "not-applied"]
    caught = [o for o in applied if o.verdict in GOOD]
    print(f"\nscore: {len(caught)}/{len(applied)} caught"
          + (f" ({len(outcomes) - len(applied)} not applied)" if len(applied) < len(outcomes)
             else ""))
    for o in outcomes:
        if o.verdict not in GOOD:
            print(f"  {o.verdict}: {o.mutant.name} ({o.mutant.file}) {o.detail}".rstrip())
            print(f"      {o.mutant.why}")
    return 0 if len(caught) == len(applied) == len(outcomes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--mutations", type=Path, default=ROOT / "scripts" / "mutations.toml")
    parser.add_argument("--source", type=Path, default=ROOT, help="the repository to copy")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant")
    parser.add_argument("--check", action="store_true",
                        help="only check that every mutation applies")
    args = parser.parse_args(argv)
    mutants = load(args.mutations)
    if args.names:
        unknown = set(args.names) - {m.name for m in mutants}
        if unknown:
            parser.error(f"unknown mutants: {', '.join(sorted(unknown))}")
        mutants = [m for m in mutants if m.name in args.names]
    source = args.source.resolve()
    with tempfile.TemporaryDirectory(prefix="aioposix-mutants-") as tmp:
        copy = Path(tmp) / "repo"
        copy_repo(source, copy)
        outcomes: list[Outcome] = []
        if args.check:
            for mutant in mutants:
                original, why_not = apply(copy, mutant)
                restore(copy, mutant, original)
                outcomes.append(Outcome(mutant, "not-applied" if why_not else "applies",
                                        why_not or ""))
                print(f"{outcomes[-1].verdict:12} {mutant.name} {why_not or ''}".rstrip())
            return 0 if all(o.verdict == "applies" for o in outcomes) else 1
        check_import(copy)
        for i, mutant in enumerate(mutants, 1):
            outcome = run_one(copy, mutant, args.timeout)
            outcomes.append(outcome)
            print(f"[{i}/{len(mutants)}] {outcome.verdict:11} {mutant.name} "
                  f"({outcome.seconds:.0f} s) {outcome.detail}".rstrip(), flush=True)
    return report(outcomes)


if __name__ == "__main__":
    sys.exit(main())
