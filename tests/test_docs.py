"""Every Python example in README.md and docs/ runs as written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import check_examples  # noqa: E402

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = [(page, line, code) for page in PAGES for line, code in check_examples.blocks(page)]


@pytest.mark.parametrize(("page", "line", "code"), EXAMPLES,
                         ids=[f"{p.name}:{line}" for p, line, _ in EXAMPLES])
def test_example_runs(page: Path, line: int, code: str) -> None:
    result = check_examples.run(code)
    assert result.returncode == 0, f"{page.name}:{line} failed:\n{result.stderr[-2000:]}"
