"""``aioposix bench`` verifies every byte every engine reads.

Real files, real reads: a normal run reports as many verified bytes as
bytes read, in every workload, and writes leave the check pattern in the
file.  A file corrupted after it is laid out (``bench.READY_HOOKS``, the
runner's test hook) fails each engine that reads the damage, with a message
that names the engine, the offset and the byte, and the run exits 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import o_direct_works

import aioposix
from aioposix._cli import bench
from aioposix._cli.engines import Workload
from aioposix._cli.main import main
from aioposix._cli.verify import Check, Mismatch, Pattern

TINY = ["--size", "4m", "--runtime", "0.2"]
ENGINES = ("aioposix", "aiofiles", "caio", "py-asyncfiles", "sync")
BS = 4096
BLOCKS = (4 << 20) // BS


@pytest.fixture(autouse=True)
def _fresh_sysctl() -> Any:
    aioposix.sysctl.reset()
    yield
    aioposix.sysctl.reset()


def run(capsys: pytest.CaptureFixture[str], *args: str,
        status: int = 0) -> tuple[dict[str, dict[str, Any]], dict[str, Any], str]:
    """``aioposix bench --output-format=json``: (results by engine, document, stderr)."""
    capsys.readouterr()
    assert main(["bench", *TINY, "--output-format=json", *args]) == status
    captured = capsys.readouterr()
    doc: dict[str, Any] = json.loads(captured.out)
    return {r["engine"]: r for r in doc["results"]}, doc, captured.err


def ran(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The engines that ran (an optional one may be missing here)."""
    return {name: r for name, r in results.items() if not r["skipped"]}


def assert_every_byte_verified(result: dict[str, Any], bs: int = BS, ramp: bool = False) -> None:
    assert result["error"] is None, result["error"]
    assert result["read_ops"] > 0
    assert result["verified"] is True
    assert result["verified_bytes"] == result["read_bytes"]
    if ramp:  # the ramp's reads are verified too, and not counted in read_ops
        assert result["read_bytes"] > result["read_ops"] * bs
    else:
        assert result["read_bytes"] == result["read_ops"] * bs
    assert result["verify_ns"] > 0


def flipped(offset: int, count: int = 1) -> bytes:
    """The pattern's ``count`` bytes at ``offset``, every bit flipped."""
    start = offset // BS * BS
    return bytes(b ^ 0xFF for b in Pattern(BS).block(start)[offset - start:][:count])


def corrupt(offset: int, data: bytes) -> Callable[[Workload], None]:
    """A READY_HOOKS hook: ``data`` written at ``offset`` of the laid-out file."""
    def hook(w: Workload) -> None:
        fd = os.open(w.path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, offset)
            os.fdatasync(fd)
        finally:
            os.close(fd)
    return hook


# -- a normal run verifies every byte -----------------------------------------------


@pytest.mark.parametrize("rw", ["read", "randread", "rw", "randrw"])
def test_every_engine_verifies_every_byte_it_reads(capsys: pytest.CaptureFixture[str],
                                                   rw: str) -> None:
    results, doc, _ = run(capsys, "--rw", rw, "--iodepth", "8")
    assert "every byte of every read" in doc["verification"]
    assert {"aioposix", "sync"} <= set(ran(results))
    for result in ran(results).values():
        assert_every_byte_verified(result)


def test_rwmixread_numjobs_and_ramp_are_verified(capsys: pytest.CaptureFixture[str]) -> None:
    results, _, _ = run(capsys, "--rw", "randrw", "--rwmixread", "30", "--numjobs", "3",
                        "--iodepth", "4", "--ramp_time", "0.1", "--bs", "8k")
    for result in ran(results).values():
        assert result["jobs"] == 3 and result["write_ops"] > 0
        assert_every_byte_verified(result, bs=8192, ramp=True)


def test_pure_writes_read_nothing_to_verify(capsys: pytest.CaptureFixture[str]) -> None:
    results, _, _ = run(capsys, "--rw", "randwrite", "--ioengine", "aioposix,sync")
    for result in results.values():
        assert result["error"] is None and result["write_ops"] > 0
        assert result["read_bytes"] == result["verified_bytes"] == 0
        assert result["verified"] is None


def test_direct_reads_are_verified(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not hasattr(os, "O_DIRECT") or not o_direct_works(tmp_path):
        pytest.skip(f"O_DIRECT is not supported on the filesystem of {tmp_path}")
    results, _, _ = run(capsys, "--direct=1", "--rw", "randrw", "--ioengine", "aioposix,sync",
                        "--filename", str(tmp_path / "data"))
    for result in results.values():
        assert_every_byte_verified(result)


def test_small_blocks_are_verified(capsys: pytest.CaptureFixture[str]) -> None:
    results, _, _ = run(capsys, "--bs", "6", "--size", "60k", "--rw", "randrw",
                        "--ioengine", "aioposix,sync")
    for result in results.values():
        assert_every_byte_verified(result, bs=6)


def test_normal_output_says_what_was_verified() -> None:
    done = bench_cli("--ioengine", "sync")
    line = next(x for x in done.splitlines() if x.startswith("  verify: "))
    verified, _, read = line.removeprefix("  verify: ").partition(" of ")
    assert int(verified.replace(",", "")) == int(read.split()[0].replace(",", "")) > 0
    assert "ns a read" in line


def bench_cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "aioposix", "bench", *TINY, *args],
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- the file holds the pattern -----------------------------------------------------


def test_writes_leave_the_pattern_in_the_file(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "data"
    results, _, err = run(capsys, "--rw", "randrw", "--filename", str(path))
    assert "check pattern written over 4,194,304 of its first 4,194,304 bytes" in err
    assert all(r["write_ops"] > 0 for r in ran(results).values())
    assert path.read_bytes() == Pattern(BS).blocks(0, BLOCKS)
    _, _, err = run(capsys, "--rw", "read", "--filename", str(path), "--ioengine", "sync")
    assert "check pattern" not in err  # it holds the pattern: nothing to write


def test_a_named_file_with_other_data_is_left_alone(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "data"
    data = Pattern(BS).blocks(0, BLOCKS)[: 3 << 20] + bytes(1000)
    path.write_bytes(data)
    capsys.readouterr()
    assert main(["bench", *TINY, "--rw", "read", "--filename", str(path),
                 "--ioengine", "sync"]) == 2
    err = capsys.readouterr().err
    assert f"{path} holds data other than the bench's check pattern" in err
    assert "--overwrite=1" in err
    assert path.read_bytes() == data  # not a byte of it written


def test_overwrite_lays_a_named_file_out_where_it_differs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "data"
    path.write_bytes(Pattern(BS).blocks(0, BLOCKS)[: 3 << 20] + bytes(1000))
    _, _, err = run(capsys, "--rw", "read", "--filename", str(path), "--ioengine", "sync",
                    "--overwrite=1")
    assert "check pattern written over 1,048,576 of its first 4,194,304 bytes" in err
    assert path.read_bytes() == Pattern(BS).blocks(0, BLOCKS)


def test_a_shorter_file_holding_the_pattern_is_extended(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "data"
    path.write_bytes(Pattern(BS).blocks(0, BLOCKS)[: 1 << 20])
    results, _, _ = run(capsys, "--rw", "randread", "--filename", str(path), "--ioengine", "sync")
    assert_every_byte_verified(results["sync"])
    assert path.read_bytes() == Pattern(BS).blocks(0, BLOCKS)


# -- a corrupted read fails the run ---------------------------------------------------


def test_a_corrupted_byte_fails_every_engine(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    offset = 5 * BS
    good = Pattern(BS).block(offset)[100]
    monkeypatch.setattr(bench, "READY_HOOKS", [corrupt(offset + 100, bytes([good ^ 0xFF]))])
    results, _, err = run(capsys, "--rw", "read", "--iodepth", "4", status=1)
    assert {"aioposix", "sync"} <= set(ran(results))
    for name, result in ran(results).items():
        assert result["verified"] is not True
        assert result["error"] == (
            f"Mismatch: {name} read wrong data at offset 20480 (block 5, bs 4096): byte 100 "
            f"(file offset 20580) is 0x{good ^ 0xFF:02x} where the file holds "
            f"0x{good:02x}; 1 of 4096 bytes differ")
        assert f"error: {name}: Mismatch: {name} read wrong data at offset 20480" in err


def test_a_block_from_elsewhere_names_its_stamp(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    moved = Pattern(BS).block(9 * BS)
    monkeypatch.setattr(bench, "READY_HOOKS", [corrupt(2 * BS, moved)])
    results, _, _ = run(capsys, "--rw", "read", "--ioengine", "aioposix,caio", status=1)
    for result in ran(results).values():
        assert "at offset 8192 (block 2, bs 4096): byte 1 (file offset 8193)" in result["error"]
        assert "its stamp is that of offset 36864" in result["error"]


def test_a_short_read_fails(monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    def truncate(w: Workload) -> None:
        os.truncate(w.path, w.size - 100)
    monkeypatch.setattr(bench, "READY_HOOKS", [truncate])
    results, _, _ = run(capsys, "--rw", "read", "--ioengine", "aioposix,sync", status=1)
    for result in results.values():
        assert result["error"].endswith(
            "read wrong data at offset 4190208 (block 1023, bs 4096): "
            "a short read: 3996 bytes of 4096")


def test_a_corrupted_direct_read_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    if not hasattr(os, "O_DIRECT") or not o_direct_works(tmp_path):
        pytest.skip(f"O_DIRECT is not supported on the filesystem of {tmp_path}")
    monkeypatch.setattr(bench, "READY_HOOKS", [corrupt(7 * BS + 4000, flipped(7 * BS + 4000, 96))])
    results, _, _ = run(capsys, "--rw", "read", "--direct=1", "--ioengine", "aioposix,sync",
                        "--filename", str(tmp_path / "data"), status=1)
    for name, result in results.items():
        assert result["error"].startswith(
            f"Mismatch: {name} read wrong data at offset 28672 (block 7, bs 4096): byte 4000")


def test_a_corrupted_read_in_a_mixed_workload_fails(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # every block damaged: whichever is read before a write mends it fails the engine
    def every_block(w: Workload) -> None:
        fd = os.open(w.path, os.O_WRONLY)
        try:
            for offset in range(0, w.size, w.bs):
                os.pwrite(fd, flipped(offset + 17), offset + 17)
        finally:
            os.close(fd)
    monkeypatch.setattr(bench, "READY_HOOKS", [every_block])
    results, _, _ = run(capsys, "--rw", "randrw", "--rwmixread", "90", "--numjobs", "2",
                        "--iodepth", "4", "--ioengine", "aioposix,sync", status=1)
    for name, result in results.items():
        assert f"Mismatch: {name} read wrong data at offset " in result["error"]
        assert "byte 17 (file offset " in result["error"]


# -- the check itself -----------------------------------------------------------------


def test_check_counts_and_refuses() -> None:
    pattern = Pattern(BS)
    check = Check("x", pattern)
    check.data(pattern.block(3 * BS), 3 * BS)
    buf = bytearray(pattern.block(BS))
    check.into(buf)(BS, BS)
    assert check.verified_bytes == 2 * BS
    with pytest.raises(Mismatch, match="a short read: 100 bytes of 4096"):
        check.into(buf)(100, BS)  # the buffer's stale tail does not count
    with pytest.raises(Mismatch, match=r"at offset 0 \(block 0, bs 4096\): byte 1 "):
        check.data(pattern.block(BS), 0)
    assert check.verified_bytes == 2 * BS
    assert bytes(check.block(BS)) == pattern.block(BS)
