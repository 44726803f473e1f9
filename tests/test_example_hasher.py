"""examples/hasher.py: both engines give hashlib's sha256 for every file of a tree."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Env

CHUNK = 4096  # small, so several files span many reads


def load_hasher() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "examples" / "hasher.py"
    spec = importlib.util.spec_from_file_location("hasher_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


hasher = load_hasher()

SIZES = [0, 1, 100, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 10 * CHUNK + 7, 200_000]


def make_tree(root: Path) -> dict[str, str]:
    """Files of many sizes (empty, under, at and over a chunk) in nested dirs."""
    expected: dict[str, str] = {}
    for i, size in enumerate(SIZES * 3):
        folder = root / f"d{i % 4}" / ("deep" if i % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"f{i}.bin"
        data = os.urandom(size)
        path.write_bytes(data)
        expected[str(path)] = hashlib.sha256(data).hexdigest()
    return expected


@pytest.mark.parametrize("engine", ["aioposix", "aiofiles"])
def test_main_prints_hashlib_digests(tmp_path: Path, engine: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    expected = make_tree(tmp_path)
    assert hasher.main(["--engine", engine, "--chunk", str(CHUNK), "--window", "5",
                        str(tmp_path)]) == 0
    out = capsys.readouterr().out
    got = dict(reversed(line.split("  ", 1)) for line in out.splitlines())
    assert got == expected


def test_engines_agree_with_default_chunk(tmp_path: Path) -> None:
    import asyncio

    expected = make_tree(tmp_path)
    for engine in ("aioposix", "aiofiles"):
        assert asyncio.run(hasher.hash_tree(str(tmp_path), engine)) == expected


def test_empty_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert hasher.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""


async def test_hash_tree_on_every_backend(aio: Env) -> None:
    """The aioposix engine under the fixture's loops and backends (inline, pool, io_uring)."""
    expected = make_tree(aio.tmp)
    got = await hasher.hash_tree(str(aio.tmp), "aioposix", chunk=CHUNK, window=7)
    assert got == expected


async def test_hash_tree_window_of_one(aio: Env) -> None:
    expected = make_tree(aio.tmp)
    assert await hasher.hash_tree(str(aio.tmp), "aioposix", chunk=1000, window=1) == expected


def test_bench_reports_both_engines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_tree(tmp_path)
    assert hasher.main(["--bench", "--rounds", "1", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"tree: {len(SIZES) * 3} files")
    assert any(line.strip().startswith("aioposix:") for line in lines)
    assert any(line.strip().startswith("aiofiles:") for line in lines)
    assert lines[-1].startswith("aioposix / aiofiles: ")
