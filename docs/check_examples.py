"""Run every ```python block of docs/*.md as a program; report the ones that fail.

Each block runs in its own interpreter (this one), in a temporary directory,
with warnings turned into errors and a 60-second limit.  Blocks fenced as
```text are not run.

    python docs/check_examples.py [page.md ...]
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[tuple[int, str]]:
    text = page.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def run(code: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "example.py"
        script.write_text(code)
        return subprocess.run([sys.executable, "-W", "error", str(script)], cwd=tmp,
                              capture_output=True, text=True, timeout=60)


def main(argv: list[str]) -> int:
    pages = [Path(a) for a in argv] or sorted(DOCS.glob("*.md"))
    failed = total = 0
    for page in pages:
        for line, code in blocks(page):
            total += 1
            result = run(code)
            status = "ok" if result.returncode == 0 else "FAILED"
            print(f"{status:6} {page.name}:{line}")
            if result.returncode:
                failed += 1
                print(result.stdout + result.stderr)
    print(f"{total - failed}/{total} examples ran")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
