"""Run every ```python block of README.md and docs/*.md as a program, and
compare what it prints with what the page shows.

Each block runs in its own interpreter (this one), in a temporary directory,
with warnings turned into errors and a 60-second limit, and must exit with
status 0.  Blocks fenced otherwise (```text, ...) are not run.

An example shows its output in one of two ways; what it writes to stdout
must then be exactly that, line for line:

- a comment at the end of a ``print(...)`` call (on the line the call ends
  on) is the line that call prints, as in the README's quick start::

      print(await r, r.buf)             # 5 bytearray(b'world')

  An example that shows the output of one of its ``print`` calls must show
  that of every call that writes to stdout (no ``file=`` argument), each
  printing one line, in the order of the source;
- a block fenced as ```output right after the code block (nothing but blank
  lines between) holds the whole of stdout.

In a shown line, ``...`` stands for any text (a number, an address, a path:
whatever may differ from run to run); the rest must match exactly, but for
trailing whitespace.  An example that shows no output is only run.

    python docs/check_examples.py [page.md ...]
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tempfile
import tokenize
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass(frozen=True)
class Example:
    page: Path
    line: int  # of the opening fence
    code: str
    shown: tuple[str, ...] | None  # the stdout lines the page shows; None: not shown
    problem: str = ""  # why the shown output cannot be checked, if it cannot


def fences(text: str) -> list[tuple[str, int, int, str]]:
    """Every fenced block: (info string, line of the opening fence, line of the
    closing fence, body)."""
    found: list[tuple[str, int, int, str]] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```"),
                   len(lines))
        found.append((opening.group(1), i + 1, end + 1, "".join(lines[i + 1:end])))
        i = end + 1
    return found


def _stdout_prints(tree: ast.AST) -> list[ast.Call]:
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id == "print" and not any(k.arg == "file" for k in node.keywords)]
    return sorted(calls, key=lambda c: (c.lineno, c.col_offset))


def _comments(code: str) -> dict[int, str]:
    """Line number -> the text of the comment on that line."""
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    return {tok.start[0]: tok.string.lstrip("#").strip()
            for tok in tokens if tok.type == tokenize.COMMENT}


def shown_in_comments(code: str) -> tuple[tuple[str, ...] | None, str]:
    """The output shown by comments on print calls, and a problem if any."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return None, f"does not parse: {exc}"
    comments = _comments(code)
    prints = _stdout_prints(tree)
    shown = [comments.get(call.end_lineno or call.lineno) for call in prints]
    if not any(line is not None for line in shown):
        return None, ""
    if any(line is None for line in shown):
        missing = [call.lineno for call, line in zip(prints, shown, strict=True) if line is None]
        return None, (f"shows the output of some print calls, not of those on lines "
                      f"{missing} of the block")
    return tuple(line for line in shown if line is not None), ""


def examples(page: Path) -> list[Example]:
    blocks = fences(page.read_text())
    lines = page.read_text().splitlines()
    found: list[Example] = []
    for k, (info, start, end, body) in enumerate(blocks):
        if info != "python":
            continue
        after = blocks[k + 1] if k + 1 < len(blocks) else None
        between = lines[end:after[1] - 1] if after is not None else []
        if after is not None and after[0] == "output" and not any(s.strip() for s in between):
            found.append(Example(page, start, body, tuple(after[3].splitlines())))
            continue
        shown, problem = shown_in_comments(body)
        found.append(Example(page, start, body, shown, problem))
    return found


def blocks(page: Path) -> list[tuple[int, str]]:
    """(line, code) of every example of ``page``."""
    return [(e.line, e.code) for e in examples(page)]


def run(code: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "example.py"
        script.write_text(code)
        return subprocess.run([sys.executable, "-W", "error", str(script)], cwd=tmp,
                              capture_output=True, text=True, timeout=60)


def matches(shown: str, printed: str) -> bool:
    """``printed`` is the line ``shown``, where ``...`` stands for any text."""
    pattern = ".*".join(re.escape(part) for part in shown.rstrip().split("..."))
    return re.fullmatch(pattern, printed.rstrip(), re.S) is not None


def output_differences(shown: tuple[str, ...], stdout: str) -> list[str]:
    printed = stdout.splitlines()
    pairs = enumerate(zip(shown, printed, strict=False))
    problems = [f"line {i + 1}: the page shows {want!r}, the example printed {got!r}"
                for i, (want, got) in pairs if not matches(want, got)]
    if len(printed) != len(shown):
        problems.append(f"the page shows {len(shown)} lines, the example printed "
                        f"{len(printed)}: {printed!r}")
    return problems


def check(example: Example) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """What is wrong with ``example`` (nothing: an empty list), and its run."""
    result = run(example.code)
    problems = [example.problem] if example.problem else []
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}:\n{result.stderr[-2000:]}")
    elif example.shown is not None:
        problems += output_differences(example.shown, result.stdout)
    return problems, result


def main(argv: list[str]) -> int:
    pages = [Path(a) for a in argv] or [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    failed = total = compared = 0
    for page in pages:
        for example in examples(page):
            total += 1
            compared += example.shown is not None
            problems, _ = check(example)
            kind = "output checked" if example.shown is not None else "ran"
            print(f"{'FAILED' if problems else 'ok':6} {page.name}:{example.line} ({kind})")
            for problem in problems:
                print(f"    {problem}")
            failed += bool(problems)
    print(f"{total - failed}/{total} examples passed ({compared} with their output compared)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
