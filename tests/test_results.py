"""The benchmark figures shown are the committed ones: README.md's table and the
tables of benchmarks/RESULTS.md are what ``benchmarks/report.py`` renders from
``benchmarks/results/*.json``, and the README shows every row RESULTS.md has."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def between(text: str, begin: str, end: str) -> str:
    return text.split(begin, 1)[1].split(end, 1)[0]


def rows(table: str) -> list[str]:
    """The data rows of the markdown tables in ``table`` (no header or rule lines)."""
    return [line for line in table.splitlines()
            if line.startswith("|") and not line.startswith(("|---", "| workload |", "| loop |"))]


def test_readme_and_results_md_are_rendered_from_the_json() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_readme_shows_every_row_of_results_md() -> None:
    readme = rows(between(README.read_text(), "<!-- results:begin -->", "<!-- results:end -->"))
    results = rows(between(RESULTS.read_text(), "<!-- tables:begin -->", "<!-- tables:end -->"))
    assert results and len(readme) == len(results)
    assert sum("**miss**" in row for row in readme) == sum("**miss**" in row for row in results)


def test_every_readme_cell_is_filled() -> None:
    for line in README.read_text().splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = line.strip().strip("|").split("|")
            assert all(cell.strip() for cell in cells), line
