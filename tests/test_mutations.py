"""The mutation check's list still fits the code: every one-line mutation of
``scripts/mutations.toml`` applies to the current tree (``scripts/mutate.py
--check``; the full mutation run is by hand, see docs/testing.md), and each
names test files that exist."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_mutation_applies() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "mutate.py"), "--check"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_mutation_names_test_files_that_exist() -> None:
    mutants = tomllib.loads((ROOT / "scripts" / "mutations.toml").read_text())["mutant"]
    assert mutants
    for mutant in mutants:
        assert mutant["tests"], mutant["name"]
        missing = [name for name in mutant["tests"] if not (ROOT / name).is_file()]
        assert not missing, f"{mutant['name']}: {missing}"
