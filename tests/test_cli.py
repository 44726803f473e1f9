"""The ``aioposix`` command: ``bench`` (the workload runner) and ``sysctl``.

Benchmarks run tiny (a 4 MiB file, 0.2 s per engine): what is checked is
what a user reads off the output (the JSON figures, the table, the exit
status, the file), never how fast anything was.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import open_fds

import aioposix
from aioposix._cli import main

ALL = ("aioposix", "aiofiles", "caio", "sync")
TINY = ["--size", "4m", "--runtime", "0.2"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aioposix", *args], capture_output=True,
                          text=True, timeout=50, env=env)


def bench_json(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "result.json"
    assert main(["bench", *TINY, "--json", str(out), *args]) == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def by_engine(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["engine"]: r for r in doc["results"]}


def assert_ran(result: dict[str, Any], reads: bool) -> None:
    assert result["skipped"] is None and result["error"] is None, result
    assert result["ops"] > 0 and result["iops"] > 0 and result["mib_s"] > 0
    assert 0 < result["p50_us"] <= result["p99_us"]
    assert result["verified"] is (True if reads else None)


def o_direct_works(directory: Path) -> bool:
    try:
        fd = os.open(directory / "probe", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    os.close(fd)
    return True


# -- bench ----------------------------------------------------------------------


@pytest.mark.parametrize("rw", ["read", "write", "randread", "randwrite", "randrw"])
def test_bench_every_rw_mode_reports_every_engine(tmp_path: Path, rw: str) -> None:
    doc = bench_json(tmp_path, "--rw", rw)
    results = by_engine(doc)
    assert list(results) == list(ALL)  # in the order asked, skipped ones included
    assert doc["params"]["rw"] == rw
    for name, result in results.items():
        if result["skipped"]:  # only an optional engine may be missing
            assert name in ("aiofiles", "caio") and importlib.util.find_spec(name) is None
        else:
            assert_ran(result, reads=rw != "write" and rw != "randwrite")
    assert results["aioposix"]["ratio"] == 1.0


def test_bench_runs_only_the_engines_asked_in_that_order(tmp_path: Path) -> None:
    doc = bench_json(tmp_path, "--engine", "sync,aioposix", "--engine", "sync")
    assert [r["engine"] for r in doc["results"]] == ["sync", "aioposix"]
    sync, mine = doc["results"]
    assert sync["ratio"] == 1.0
    assert mine["ratio"] == pytest.approx(mine["iops"] / sync["iops"])


def test_bench_parses_size_suffixes(tmp_path: Path) -> None:
    doc = bench_json(tmp_path, "--engine", "aioposix", "--bs", "64k", "--iodepth", "8")
    assert doc["params"]["bs"] == 65536
    assert doc["params"]["size"] == 4 << 20
    assert doc["params"]["iodepth"] == 8
    result = by_engine(doc)["aioposix"]
    assert result["mib_s"] == pytest.approx(result["iops"] * 65536 / (1 << 20))


def test_bench_on_uvloop(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    doc = bench_json(tmp_path, "--loop", "uvloop", "--engine", "aioposix,caio")
    assert doc["params"]["loop"] == "uvloop"
    assert_ran(by_engine(doc)["aioposix"], reads=True)


def test_bench_direct_skips_engines_that_cannot(tmp_path: Path) -> None:
    if not hasattr(os, "O_DIRECT") or not o_direct_works(tmp_path):
        pytest.skip(f"O_DIRECT is not supported on the filesystem of {tmp_path}")
    doc = bench_json(tmp_path, "--direct", "--rw", "randrw", "--file", str(tmp_path / "data"))
    results = by_engine(doc)
    assert doc["params"]["direct"] is True
    assert_ran(results["aioposix"], reads=True)
    assert_ran(results["sync"], reads=True)
    assert "O_DIRECT" in results["aiofiles"]["skipped"]


def test_bench_leaves_no_descriptor_open(tmp_path: Path) -> None:
    before = open_fds()
    bench_json(tmp_path)
    assert open_fds() == before


def test_bench_file_is_kept_extended_and_written(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(bytes(1 << 20))  # 1 MiB of zeros: shorter than --size
    doc = bench_json(tmp_path, "--file", str(path), "--rw", "write", "--engine", "sync")
    assert doc["params"]["path"] == str(path)
    data = path.read_bytes()
    assert len(data) == 4 << 20
    assert data[: 1 << 20] != bytes(1 << 20)  # the sequential writes began at offset 0


def test_bench_removes_its_temporary_file(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = run_cli("bench", *TINY, "--engine", "sync", env=env)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_bench_output_is_clean_when_not_a_tty(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = run_cli("bench", *TINY, "--engine", "aioposix,sync", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout + done.stderr and "\x1b" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("randread bs=4096 iodepth=64 size=4 MiB")
    assert lines[1].split()[:3] == ["engine", "IOPS", "MiB/s"]
    rows = {line.split()[0]: line for line in lines[3:]}
    assert set(rows) == {"aioposix", "sync"}
    iops = {r["engine"]: r["iops"] for r in json.loads(out.read_text())["results"]}
    assert rows["sync"].split()[1] == f"{iops['sync']:,.0f}"


def test_bench_sysctl_option_applies_to_the_run(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = run_cli("bench", *TINY, "--engine", "aioposix", "--json", str(out),
                   "--sysctl", "vfs.aio.backend=threads")
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["machine"]["backend"] == "threads"
    assert_ran(by_engine(doc)["aioposix"], reads=True)


def test_bench_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "chart.png"
    bench_json(tmp_path, "--engine", "aioposix,sync", "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_plot_without_matplotlib_is_a_note(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("matplotlib") is not None:
        pytest.skip("matplotlib is installed")
    png = tmp_path / "chart.png"
    bench_json(tmp_path, "--engine", "sync", "--plot", str(png))
    assert "matplotlib" in capsys.readouterr().err
    assert not png.exists()


@pytest.mark.parametrize("args", [
    ["--engine", "nope"],
    ["--iodepth", "0"],
    ["--runtime", "0"],
    ["--size", "1k", "--bs", "4k"],
    ["--direct", "--bs", "1000"],
])
def test_bench_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aioposix bench: ")


@pytest.mark.parametrize("value", ["4q", "k", "-1", "0.5"])
def test_bench_bad_size_is_a_usage_error(value: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--bs", value])
    assert exit_info.value.code == 2


# -- sysctl ---------------------------------------------------------------------


def test_sysctl_lists_every_name_with_its_meaning() -> None:
    done = run_cli("sysctl")
    assert done.returncode == 0, done.stderr
    lines = {line.split(":")[0]: line for line in done.stdout.splitlines()}
    assert set(lines) == set(aioposix.sysctl)
    assert lines["vfs.aio.max_aio_procs"].split("#")[0].split() == ["vfs.aio.max_aio_procs:", "32"]
    assert "most worker daemons" in lines["vfs.aio.max_aio_procs"]
    assert "(read-only)" in lines["vfs.aio.num_queue_count"]


def test_sysctl_prints_one_name() -> None:
    done = run_cli("sysctl", "vfs.aio.max_aio_queue")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("#")[0].split() == ["vfs.aio.max_aio_queue:", "1024"]


def test_sysctl_sets_values_as_the_tunables_type() -> None:
    done = run_cli("sysctl", "vfs.aio.max_aio_procs=8", "vfs.aio.aiod_lifetime=2.5",
                   "vfs.aio.backend=threads", "vfs.aio.max_aio_procs",
                   "vfs.aio.backend_active")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["vfs.aio.max_aio_procs: 32 -> 8", "vfs.aio.aiod_lifetime: 30.0 -> 2.5",
                         "vfs.aio.backend: auto -> threads"]
    assert lines[3].split("#")[0].split() == ["vfs.aio.max_aio_procs:", "8"]
    assert lines[4].split("#")[0].split() == ["vfs.aio.backend_active:", "threads"]


@pytest.mark.parametrize(("setting", "message"), [
    ("vfs.aio.max_aio_proc", "unknown sysctl name: vfs.aio.max_aio_proc"),
    ("vfs.aio.nonsense=3", "unknown sysctl name: vfs.aio.nonsense"),
    ("vfs.aio.num_buf_aio=3", "vfs.aio.num_buf_aio is read-only"),
    ("p1003_1b.aio_listio_max=3", "p1003_1b.aio_listio_max is read-only"),
    ("vfs.aio.max_aio_procs=abc", "bad value"),
    ("vfs.aio.max_aio_procs=1.5", "bad value"),
    ("vfs.aio.max_aio_procs=0", "bad value"),
    ("vfs.aio.backend=fast", "bad value"),
])
def test_sysctl_errors_exit_2(setting: str, message: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    name = setting.partition("=")[0]
    before = aioposix.sysctl.get(name)
    try:
        assert main(["sysctl", setting]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(f"aioposix sysctl: {message}")
        assert name in captured.err
        assert aioposix.sysctl.get(name) == before
    finally:
        aioposix.sysctl.reset()


def test_sysctl_suggests_the_close_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sysctl", "vfs.aio.max_aio_proc"]) == 2
    assert "did you mean vfs.aio.max_aio_procs?" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "aioposix"
    if not script.exists():
        pytest.skip("the aioposix console script is not installed next to this Python")
    done = subprocess.run([str(script), "sysctl", "vfs.aio.max_aio_procs"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("vfs.aio.max_aio_procs: 32")
