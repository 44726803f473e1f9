"""Every Python example in README.md and docs/ runs as written, and prints what
its page shows (docs/check_examples.py says how a page shows an output)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import check_examples  # noqa: E402

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = [example for page in PAGES for example in check_examples.examples(page)]
SHOWN = [example for example in EXAMPLES if example.shown is not None]


def _id(example: check_examples.Example) -> str:
    return f"{example.page.name}:{example.line}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[_id(e) for e in EXAMPLES])
def test_example_runs_and_prints_what_the_page_shows(example: check_examples.Example) -> None:
    problems, result = check_examples.check(example)
    assert not problems, f"{_id(example)}:\n" + "\n".join(problems)
    if example.shown is not None:
        assert len(result.stdout.splitlines()) == len(example.shown)
    else:  # an example that prints must show what it prints
        assert not result.stdout, f"{_id(example)} prints but does not show:\n{result.stdout}"


def test_the_readme_shows_the_output_of_its_examples() -> None:
    """The convention is in use: the README's examples show what they print."""
    readme = [e for e in SHOWN if e.page.name == "README.md"]
    assert [e.shown for e in readme] == [
        ("hello, world", "b'world'"), ("12", "5 bytearray(b'world')"), ("1305600000",)]


@pytest.mark.parametrize(("shown", "printed", "same"), [
    ("5 bytearray(b'world')", "5 bytearray(b'world')", True),
    ("5 bytearray(b'world')", "5 bytearray(b'worlds')", False),
    ("5 bytearray(b'world')", "4 bytearray(b'worl')", False),
    ("<AioContext queued=... active=...>", "<AioContext queued=0 active=2>", True),
    ("<AioContext queued=... active=...>", "<AioContext queued=0 done=2>", False),
    ("1305600000", "1305600000  ", True),
    ("a.b", "axb", False),  # only "..." is a wildcard, never a regular expression
])
def test_shown_lines_match_exactly_but_for_the_ellipsis(shown: str, printed: str,
                                                        same: bool) -> None:
    assert check_examples.matches(shown, printed) is same


def test_an_example_showing_the_output_of_only_some_prints_is_refused() -> None:
    shown, problem = check_examples.shown_in_comments(
        'import sys\nprint("a")  # a\nprint("b")\nprint("c", file=sys.stderr)\n')
    assert shown is None and "not of those on lines [3]" in problem


def test_an_output_block_after_the_code_is_the_whole_stdout(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text('```python\nprint("x", 1)\nprint(2)\n```\n\n```output\nx ...\n2\n```\n'
                    '```python\nprint(3)\n```\nprose\n```output\nnot this one\n```\n')
    first, second = check_examples.examples(page)
    assert first.shown == ("x ...", "2")
    assert second.shown is None  # prose between: not its output
    assert check_examples.check(first)[0] == []
    wrong = check_examples.Example(page, 1, first.code, ("x 1",))
    assert check_examples.check(wrong)[0]
