"""The ``aioposix`` command: ``bench`` (the workload runner) and ``sysctl``.

Benchmarks run tiny (a 4 MiB file, 0.2 s per engine): what is checked is
what a user reads off the output (the JSON figures, the table, the exit
status, the file), never how fast anything was.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import o_direct_works, open_fds

import aioposix
from aioposix._cli.main import main
from aioposix._cli.verify import Pattern
from aioposix._kernel.tunables import TUNABLES

ALL = ("aioposix", "aiofiles", "caio", "py-asyncfiles", "sync")
MODULE = {"aiofiles": "aiofiles", "caio": "caio", "py-asyncfiles": "asyncfiles"}  # optional ones
TINY = ["--size", "4m", "--runtime", "0.2"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aioposix", *args], capture_output=True,
                          text=True, timeout=50, env=env)


def bench_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """``aioposix bench --output-format=json``: stdout holds one JSON document."""
    capsys.readouterr()
    assert main(["bench", *TINY, "--output-format=json", *args]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def by_engine(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["engine"]: r for r in doc["results"]}


def assert_ran(result: dict[str, Any], reads: bool) -> None:
    assert result["skipped"] is None and result["error"] is None, result
    assert result["ops"] > 0 and result["iops"] > 0 and result["mib_s"] > 0
    assert result["ops"] == result["read_ops"] + result["write_ops"]
    clat = result["clat_ns"]
    assert clat["N"] == result["ops"]
    assert 0 < clat["min"] <= clat["mean"] <= clat["max"]
    assert clat["stddev"] >= 0
    values = list(clat["percentile"].values())
    assert values == sorted(values) and clat["min"] <= values[0] and values[-1] <= clat["max"]
    assert result["verified"] is (True if reads else None)
    assert result["verified_bytes"] == result["read_bytes"]  # every byte read was verified
    assert (result["read_bytes"] >= result["read_ops"] > 0) is reads


@pytest.fixture(autouse=True)
def _fresh_sysctl() -> Iterator[None]:
    aioposix.sysctl.reset()  # type: ignore[attr-defined]
    yield
    aioposix.sysctl.reset()  # type: ignore[attr-defined]


# -- bench ----------------------------------------------------------------------


@pytest.mark.parametrize("rw", ["read", "write", "randread", "randwrite", "rw", "randrw"])
def test_bench_every_rw_mode_reports_every_engine(capsys: pytest.CaptureFixture[str],
                                                  rw: str) -> None:
    doc = bench_json(capsys, "--rw", rw)
    results = by_engine(doc)
    assert list(results) == list(ALL)  # in the order asked, skipped ones included
    assert doc["params"]["rw"] == rw
    for name, result in results.items():
        if result["skipped"]:  # only an optional engine may be missing
            assert name in MODULE and importlib.util.find_spec(MODULE[name]) is None
        else:
            assert_ran(result, reads=rw not in ("write", "randwrite"))
            assert result["jobs"] == 1
            if rw in ("read", "randread"):
                assert result["write_ops"] == 0
            if rw in ("write", "randwrite"):
                assert result["read_ops"] == 0
    assert results["aioposix"]["ratio"] == 1.0


def test_bench_readwrite_is_fios_name_for_rw(capsys: pytest.CaptureFixture[str]) -> None:
    doc = bench_json(capsys, "--readwrite", "readwrite", "--ioengine", "sync")
    assert doc["params"]["rw"] == "rw"
    result = by_engine(doc)["sync"]
    assert result["read_ops"] > 0 and result["write_ops"] > 0


@pytest.mark.parametrize(("mix", "low", "high"), [(0, 0.0, 0.0), (100, 1.0, 1.0),
                                                  (25, 0.15, 0.35)])
def test_bench_rwmixread_sets_the_share_of_reads(capsys: pytest.CaptureFixture[str], mix: int,
                                                 low: float, high: float) -> None:
    doc = bench_json(capsys, "--rw", "randrw", "--rwmixread", str(mix), "--ioengine", "sync")
    result = by_engine(doc)["sync"]
    assert doc["params"]["rwmixread"] == mix
    assert result["ops"] > 500
    assert low <= result["read_ops"] / result["ops"] <= high


def test_bench_runs_only_the_engines_asked_in_that_order(
        capsys: pytest.CaptureFixture[str]) -> None:
    doc = bench_json(capsys, "--ioengine", "sync,aioposix", "--engine", "sync")
    assert [r["engine"] for r in doc["results"]] == ["sync", "aioposix"]
    sync, mine = doc["results"]
    assert sync["ratio"] == 1.0
    assert mine["ratio"] == pytest.approx(mine["iops"] / sync["iops"])


def test_bench_numjobs_sums_the_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    doc = bench_json(capsys, "--numjobs", "3", "--iodepth", "4", "--ioengine", "aioposix,sync")
    assert doc["params"]["numjobs"] == 3
    for result in doc["results"]:
        assert_ran(result, reads=True)
        assert result["jobs"] == 3


def test_bench_puts_back_the_quotas_it_raised(capsys: pytest.CaptureFixture[str]) -> None:
    tunables = [t.name for t in TUNABLES]
    before = {name: aioposix.sysctl[name] for name in tunables}
    assert main(["bench", *TINY, "--output-format=json", "--numjobs", "2", "--iodepth", "600",
                 "--ioengine", "aioposix"]) == 0
    captured = capsys.readouterr()
    assert_ran(by_engine(json.loads(captured.out))["aioposix"], reads=True)
    assert "vfs.aio.max_aio_queue_per_proc raised to 600" in captured.err
    assert "vfs.aio.max_aio_queue raised to 1200" in captured.err
    assert {name: aioposix.sysctl[name] for name in tunables} == before


def test_bench_deep_iodepth_says_which_quota_it_raised() -> None:
    done = run_cli("bench", *TINY, "--ioengine", "aioposix", "--iodepth", "300",
                   "--numjobs", "4", "--output-format=json")
    assert done.returncode == 0, done.stderr
    assert "vfs.aio.max_aio_queue_per_proc raised to 300" in done.stderr
    assert "vfs.aio.max_aio_queue raised to 1200" in done.stderr
    assert by_engine(json.loads(done.stdout))["aioposix"]["error"] is None


def test_bench_ramp_time_is_not_counted(capsys: pytest.CaptureFixture[str]) -> None:
    doc = bench_json(capsys, "--ramp_time", "0.2", "--ioengine", "sync")
    assert doc["params"]["ramp_time"] == 0.2
    result = by_engine(doc)["sync"]
    assert_ran(result, reads=True)
    assert result["seconds"] >= 0.2  # the measured span is --runtime, after the ramp


@pytest.mark.parametrize("engine", ["aioposix", "sync", "aiofiles", "caio"])
def test_bench_fsync_after_every_n_writes(capsys: pytest.CaptureFixture[str],
                                          engine: str) -> None:
    if engine in ("aiofiles", "caio"):
        pytest.importorskip(engine)
    doc = bench_json(capsys, "--rw", "randwrite", "--fsync", "8", "--iodepth", "4",
                     "--ioengine", engine)
    result = by_engine(doc)[engine]
    assert_ran(result, reads=False)
    assert result["fsyncs"] == result["write_ops"] // 8 > 0
    assert result["sync_ns"]["N"] == result["fsyncs"]


def test_bench_without_fsync_reports_none(capsys: pytest.CaptureFixture[str]) -> None:
    result = by_engine(bench_json(capsys, "--rw", "write", "--ioengine", "sync"))["sync"]
    assert result["fsyncs"] == 0 and result["sync_ns"] is None


def test_bench_reports_fios_percentiles_or_the_list_asked(
        capsys: pytest.CaptureFixture[str]) -> None:
    fio = ["1.000000", "5.000000", "10.000000", "20.000000", "30.000000", "40.000000",
           "50.000000", "60.000000", "70.000000", "80.000000", "90.000000", "95.000000",
           "99.000000", "99.500000", "99.900000", "99.950000", "99.990000"]
    result = by_engine(bench_json(capsys, "--ioengine", "sync"))["sync"]
    assert list(result["clat_ns"]["percentile"]) == fio
    result = by_engine(bench_json(capsys, "--ioengine", "sync",
                                  "--percentile_list", "50:99.9"))["sync"]
    assert list(result["clat_ns"]["percentile"]) == ["50.000000", "99.900000"]


def test_bench_parses_size_suffixes(capsys: pytest.CaptureFixture[str]) -> None:
    doc = bench_json(capsys, "--ioengine", "aioposix", "--bs", "64k", "--iodepth", "8")
    assert doc["params"]["bs"] == 65536
    assert doc["params"]["size"] == 4 << 20
    assert doc["params"]["iodepth"] == 8
    result = by_engine(doc)["aioposix"]
    assert result["mib_s"] == pytest.approx(result["iops"] * 65536 / (1 << 20))


def test_bench_on_uvloop(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("uvloop")
    doc = bench_json(capsys, "--loop", "uvloop", "--ioengine", "aioposix,caio")
    assert doc["params"]["loop"] == "uvloop"
    assert_ran(by_engine(doc)["aioposix"], reads=True)


@pytest.mark.parametrize("flag", [["--direct=1"], ["--direct"]])
def test_bench_direct_skips_engines_that_cannot(tmp_path: Path, flag: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    if not hasattr(os, "O_DIRECT") or not o_direct_works(tmp_path):
        pytest.skip(f"O_DIRECT is not supported on the filesystem of {tmp_path}")
    doc = bench_json(capsys, *flag, "--rw", "randrw", "--filename", str(tmp_path / "data"))
    results = by_engine(doc)
    assert doc["params"]["direct"] is True
    assert_ran(results["aioposix"], reads=True)
    assert_ran(results["sync"], reads=True)
    assert "O_DIRECT" in results["aiofiles"]["skipped"]


def test_bench_direct_0_is_buffered(capsys: pytest.CaptureFixture[str]) -> None:
    doc = bench_json(capsys, "--direct=0", "--ioengine", "aiofiles,sync")
    assert doc["params"]["direct"] is False
    assert by_engine(doc)["aiofiles"]["skipped"] in (None, "aiofiles is not installed")


def test_bench_leaves_no_descriptor_open(capsys: pytest.CaptureFixture[str]) -> None:
    # every engine but py-asyncfiles, which keeps an io_uring and an eventfd per
    # thread for the life of the process, by its own design
    before = open_fds()
    bench_json(capsys, "--numjobs", "2", "--ioengine", "aioposix,aiofiles,caio,sync")
    assert open_fds() == before


@pytest.mark.parametrize("option", ["--filename", "--file"])
def test_bench_file_is_kept_extended_and_written(tmp_path: Path, option: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "data"
    path.write_bytes(bytes(1 << 20))  # 1 MiB of zeros: shorter than --size
    doc = bench_json(capsys, option, str(path), "--rw", "write", "--ioengine", "sync",
                     "--overwrite=1")  # (zeros are not the check pattern)
    assert doc["params"]["path"] == str(path)
    assert by_engine(doc)["sync"]["write_ops"] > 0
    assert path.read_bytes() == Pattern(4096).blocks(0, 1024)  # laid out, and written so


def test_bench_removes_its_temporary_file(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = run_cli("bench", *TINY, "--ioengine", "sync", env=env)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_bench_json_on_stdout_is_the_whole_stdout() -> None:
    done = run_cli("bench", *TINY, "--ioengine", "aioposix,sync", "--output-format=json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [r["engine"] for r in doc["results"]] == ["aioposix", "sync"]
    assert doc["machine"]["aioposix"] == aioposix.__version__


def test_bench_output_writes_a_file_and_nothing_on_stdout(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = run_cli("bench", *TINY, "--ioengine", "sync", "--output-format", "json",
                   "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert by_engine(json.loads(out.read_text()))["sync"]["ops"] > 0


def test_bench_normal_output_is_clean_when_not_a_tty(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = run_cli("bench", *TINY, "--ioengine", "aioposix,sync")
    json_done = run_cli("bench", *TINY, "--ioengine", "sync", "--output-format=json",
                        "--output", str(out))
    assert done.returncode == 0 == json_done.returncode, done.stderr + json_done.stderr
    assert "\r" not in done.stdout + done.stderr and "\x1b" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("randread bs=4096 iodepth=64 numjobs=1 size=4 MiB")
    assert lines[1].split()[:8] == ["engine", "IOPS", "MiB/s", "mean", "us", "stdev", "us",
                                    "p50"]
    rows = {line.split()[0]: line.split() for line in lines[3:5]}
    assert set(rows) == {"aioposix", "sync"}
    assert rows["aioposix"][-2:] == ["1.00x", "verified"]
    assert "aioposix: IOPS=" in done.stdout and "sync: IOPS=" in done.stdout
    assert done.stdout.count("clat percentiles (usec):") == 2
    assert "|  1.00th=[" in done.stdout and "99.99th=[" in done.stdout


def test_bench_sysctl_option_applies_to_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    doc = bench_json(capsys, "--ioengine", "aioposix", "--sysctl", "vfs.aio.backend=threads")
    assert doc["machine"]["backend"] == "threads"
    assert_ran(by_engine(doc)["aioposix"], reads=True)


def test_bench_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "chart.png"
    bench_json(capsys, "--ioengine", "aioposix,sync", "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_plot_without_matplotlib_names_the_extra(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("matplotlib") is not None:
        pytest.skip("matplotlib is installed")
    png = tmp_path / "chart.png"
    capsys.readouterr()
    assert main(["bench", *TINY, "--ioengine", "sync", "--plot", str(png)]) == 0
    assert "aioposix[bench]" in capsys.readouterr().err
    assert not png.exists()


@pytest.mark.parametrize("args", [
    ["--ioengine", "nope"],
    ["--iodepth", "0"],
    ["--numjobs", "0"],
    ["--runtime", "0"],
    ["--ramp_time", "-1"],
    ["--rwmixread", "101"],
    ["--fsync", "-1"],
    ["--size", "1k", "--bs", "4k"],
    ["--direct=1", "--bs", "1000"],
])
def test_bench_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aioposix bench: ")


@pytest.mark.parametrize("args", [["--bs", "4q"], ["--bs", "k"], ["--bs", "-1"],
                                  ["--bs", "0.5"], ["--direct=2"], ["--output-format=csv"],
                                  ["--percentile_list", "0:50"], ["--percentile_list", "x"]])
def test_bench_bad_values_are_usage_errors(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *args])
    assert exit_info.value.code == 2


# -- --version ------------------------------------------------------------------


def test_version_is_the_installed_distributions() -> None:
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"aioposix {aioposix.__version__}\n"
    assert importlib.metadata.version("aioposix") == aioposix.__version__


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


# -- persistent settings ----------------------------------------------------------


def env_with(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOPOSIX_SYSCTL")}
    return {**env, **extra}


def shown(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """``aioposix sysctl NAME ...`` output: {name: value as printed}."""
    assert done.returncode == 0, done.stderr
    pairs = (line.split("#")[0].split(":", 1) for line in done.stdout.splitlines())
    return {name: value.strip() for name, value in pairs}


def test_sysctl_setting_says_it_changes_only_its_own_process() -> None:
    done = run_cli("sysctl", "vfs.aio.max_aio_procs=8", env=env_with())
    assert done.returncode == 0, done.stderr
    assert done.stdout == "vfs.aio.max_aio_procs: 32 -> 8\n"
    assert "this command's own process only" in done.stderr
    assert "AIOPOSIX_SYSCTL" in done.stderr
    again = run_cli("sysctl", "vfs.aio.max_aio_procs", env=env_with())
    assert shown(again) == {"vfs.aio.max_aio_procs": "32"}  # indeed nothing lasted


def test_environment_variable_sets_tunables_at_import() -> None:
    env = env_with(AIOPOSIX_SYSCTL="vfs.aio.max_aio_procs=8, vfs.aio.aiod_lifetime=2.5,"
                                   "vfs.aio.backend=threads")
    done = run_cli("sysctl", "vfs.aio.max_aio_procs", "vfs.aio.aiod_lifetime",
                   "vfs.aio.backend", "vfs.aio.backend_active", env=env)
    assert shown(done) == {"vfs.aio.max_aio_procs": "8", "vfs.aio.aiod_lifetime": "2.5",
                           "vfs.aio.backend": "threads", "vfs.aio.backend_active": "threads"}


def test_file_sets_tunables_and_the_variable_wins(tmp_path: Path) -> None:
    conf = tmp_path / "aioposix.conf"
    conf.write_text("# tuned for this host\nvfs.aio.max_aio_procs = 8\n\n"
                    "vfs.aio.target_aio_procs=2 ; a comment\n")
    env = env_with(AIOPOSIX_SYSCTL_FILE=str(conf), AIOPOSIX_SYSCTL="vfs.aio.max_aio_procs=9")
    done = run_cli("sysctl", "vfs.aio.max_aio_procs", "vfs.aio.target_aio_procs", env=env)
    assert shown(done) == {"vfs.aio.max_aio_procs": "9", "vfs.aio.target_aio_procs": "2"}


def test_bad_persistent_settings_warn_and_the_rest_apply(tmp_path: Path) -> None:
    env = env_with(AIOPOSIX_SYSCTL="vfs.aio.nope=1,vfs.aio.num_buf_aio=3,"
                                   "vfs.aio.max_aio_procs=x,vfs.aio.max_buf_aio=4",
                   AIOPOSIX_SYSCTL_FILE=str(tmp_path / "missing.conf"))
    done = run_cli("sysctl", "vfs.aio.max_buf_aio", "vfs.aio.max_aio_procs", env=env)
    assert shown(done) == {"vfs.aio.max_buf_aio": "4", "vfs.aio.max_aio_procs": "32"}
    warnings = [line for line in done.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(warnings) == 4, done.stderr
    assert "unknown sysctl name 'vfs.aio.nope'" in done.stderr
    assert "vfs.aio.num_buf_aio is read-only" in done.stderr
    assert "vfs.aio.max_aio_procs takes int, not 'x'" in done.stderr
    assert "missing.conf' cannot be read" in done.stderr


def test_reset_goes_back_to_the_persistent_settings() -> None:
    code = ("import aioposix; s = aioposix.sysctl; s['vfs.aio.max_aio_procs'] = 3; "
            "s['vfs.aio.max_buf_aio'] = 5; s.reset(); "
            "print(s['vfs.aio.max_aio_procs'], s['vfs.aio.max_buf_aio'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, env=env_with(AIOPOSIX_SYSCTL="vfs.aio.max_aio_procs=8"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "8 16\n"


def test_sysctl_write_edits_the_file_later_processes_read(tmp_path: Path) -> None:
    conf = tmp_path / "aioposix.conf"
    conf.write_text("# kept\nvfs.aio.max_aio_procs = 4\nvfs.aio.max_aio_procs = 5\n")
    env = env_with(AIOPOSIX_SYSCTL_FILE=str(conf))
    done = run_cli("sysctl", "--write", "vfs.aio.max_aio_procs=8", "vfs.aio.backend=threads",
                   env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"vfs.aio.max_aio_procs = 8  # written to {conf}",
        f"vfs.aio.backend = threads  # written to {conf}"]
    assert conf.read_text() == ("# kept\nvfs.aio.max_aio_procs = 8\n"
                                "vfs.aio.backend = threads\n")
    later = run_cli("sysctl", "vfs.aio.max_aio_procs", "vfs.aio.backend", env=env)
    assert shown(later) == {"vfs.aio.max_aio_procs": "8", "vfs.aio.backend": "threads"}


def test_sysctl_write_to_a_named_file_says_how_to_use_it(tmp_path: Path) -> None:
    conf = tmp_path / "new.conf"
    done = run_cli("sysctl", "-w", "--file", str(conf), "vfs.aio.inline=0", env=env_with())
    assert done.returncode == 0, done.stderr
    assert conf.read_text() == "vfs.aio.inline = 0\n"
    assert f"AIOPOSIX_SYSCTL_FILE={conf}" in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--write", "vfs.aio.max_aio_procs=8"], "--write needs a file"),
    (["--write", "--file", "x.conf", "vfs.aio.max_aio_procs"], "NAME=VALUE"),
    (["--write", "--file", "x.conf", "vfs.aio.max_aio_procs=0"], "bad value"),
    (["--write", "--file", "x.conf", "vfs.aio.num_buf_aio=1"], "read-only"),
])
def test_sysctl_write_refuses_what_it_cannot_write(tmp_path: Path, args: list[str],
                                                   message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "aioposix", "sysctl", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30, env=env_with())
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "x.conf").exists()
