"""The package's layout keeps its promises (docs/architecture.md).

- every module starts with a docstring, and none is much over 500 lines;
- imports point one way, down the layers: the facade and the public
  submodules, then the file layer and the command line, then the context,
  then notification and the backends, then routing, then the kernel, then
  the core; and there is no import cycle at all, counting imports made only
  for type checking.

These are facts a reader of the tree relies on, checked on the source.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import aioposix

PACKAGE = Path(aioposix.__file__).parent
MOST_LINES = 520

# lowest first; a module may import its own layer and those below it
LAYERS = [
    ("aioposix._core",),
    ("aioposix._kernel",),
    ("aioposix._routing",),
    ("aioposix._backends", "aioposix._notify"),
    ("aioposix._context",),
    ("aioposix._file", "aioposix._cli"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(name: str) -> int:
    for level, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return level
    return len(LAYERS)  # the facade and the public submodules


def imports(name: str) -> set[str]:
    """Every module of the package that ``name`` imports, TYPE_CHECKING included."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.add("relative import")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in MODULES and m != name} | (
        {"relative import"} & found)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_has_a_docstring_and_a_reasonable_size(name: str) -> None:
    text = MODULES[name].read_text()
    assert ast.get_docstring(ast.parse(text)), f"{name} has no docstring"
    assert text.count("\n") <= MOST_LINES, f"{name} has {text.count(chr(10))} lines"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down_the_layers(name: str) -> None:
    deps = imports(name)
    assert "relative import" not in deps, f"{name} uses a relative import"
    upward = sorted(d for d in deps if layer(d) > layer(name) and not _is_package_of(d, name))
    assert not upward, f"{name} (layer {layer(name)}) imports {upward} from above"


def _is_package_of(dep: str, name: str) -> bool:
    return name.startswith(dep + ".")  # importing a submodule runs its package first


def test_no_import_cycle_even_for_type_checking() -> None:
    graph = {name: imports(name) - {"relative import"} for name in MODULES}
    seen: dict[str, int] = {}  # 1: on the current path, 2: finished
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for dep in sorted(graph[node]):
            if _is_package_of(dep, node):
                continue
            if seen.get(dep) == 1 and not cycle:
                cycle.extend([*path[path.index(dep):], dep])
            elif dep not in seen:
                visit(dep, [*path, dep])
        seen[node] = 2

    for start in sorted(graph):
        if start not in seen:
            visit(start, [start])
    assert not cycle, " -> ".join(cycle)
