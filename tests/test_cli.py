"""`greenml meters` and `greenml measure`, as users run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from greenml.cli import main
from greenml.testing.fake_nvml import FakeGpu, FakeNvml

SPIN = "import time\nt=time.process_time()+{s}\nwhile time.process_time()<t: pass"


def greenml(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greenml", *args], capture_output=True, text=True, timeout=timeout
    )


def test_meters_table_says_what_works_here() -> None:
    run = greenml("meters")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split()[:3] == ["meter", "available", "chosen"]
    assert {line.split()[0] for line in lines[1:4]} == {"nvml", "rapl", "estimate"}


def test_meters_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([FakeGpu(name="NVIDIA H100 80GB HBM3")]))
    assert main(["meters", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    nvml = next(m for m in document["meters"] if m["name"] == "nvml")
    assert nvml["available"] and nvml["chosen"] and nvml["components"] == ["gpu"]
    assert nvml["devices"][0].startswith("NVIDIA H100")


def test_measure_json_output_and_exit_code(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    run = greenml(
        "measure",
        "--json",
        "--idle-seconds",
        "0.2",
        "--country",
        "SWE",
        "--pue",
        "1.1",
        "-o",
        str(out),
        "--",
        sys.executable,
        "-c",
        SPIN.format(s=0.5) + "\nraise SystemExit(3)",
    )
    assert run.returncode == 3, run.stderr
    document = json.loads(run.stdout)
    assert document == json.loads(out.read_text())
    assert document["exit_code"] == 3
    assert document["seconds"] >= 0.5
    assert set(document["energy_j"]) == {"gpu", "cpu", "dram"}
    assert set(document["dynamic_energy_j"]) == {"gpu", "cpu", "dram"}
    assert document["provenance"]["idle"]["seconds"] >= 0.2
    assert document["provenance"]["carbon"]["country"] == "SWE"
    assert document["provenance"]["carbon"]["pue"] == 1.1
    basis = document["provenance"]["energy_basis"]
    assert basis in {"measured", "partly estimated", "estimated"}
    assert document["total_energy_j"] > 0
    assert document["co2_g"] == pytest.approx(
        document["total_energy_j"] / 3.6e6 * document["provenance"]["carbon"]["intensity_g_per_kwh"] * 1.1
    )


def test_measure_summary_on_stderr_keeps_stdout_for_the_command() -> None:
    run = greenml("measure", "--idle-seconds", "0", "--", sys.executable, "-c", "print('hello')")
    assert run.returncode == 0
    assert run.stdout == "hello\n"
    assert "energy" in run.stderr and "cpu" in run.stderr


def test_measure_reports_signal_deaths_like_a_shell() -> None:
    run = greenml(
        "measure",
        "--idle-seconds",
        "0",
        "--",
        sys.executable,
        "-c",
        "import os, signal; os.kill(os.getpid(), signal.SIGTERM)",
    )
    assert run.returncode == 128 + 15


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["measure", "--meter", "gpu", "--", "true"],
            "invalid choice: 'gpu' (choose from 'auto', 'nvml', 'rapl', 'estimate')",
        ),
        (["measure", "--country", "XYZ", "--", "true"], "unknown country code 'XYZ'"),
        (["measure", "--idle-seconds", "-1", "--", "true"], "--idle-seconds must be >= 0"),
        (["measure", "--idle-seconds", "abc", "--", "true"], "invalid float value: 'abc'"),
        (["measure", "--pue", "0.5", "--", "true"], "--pue must be >= 1.0"),
        (["measure", "--cpu-watts-per-core", "0", "--", "true"], "--cpu-watts-per-core must be > 0"),
        (["measure", "--sample-hz", "5", "--", "true"], "--sample-hz must be >= 10"),
        (["measure"], "no command given"),
        (["measure", "--"], "no command given"),
        (["measure", "--", "no-such-command-greenml"], "command not found: 'no-such-command-greenml'"),
        (["measure", "-o", "/no/such/dir/x.json", "--", "true"], "does not exist"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    run = greenml(*args)
    assert run.returncode == 2
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert message in run.stderr


def test_named_meter_missing_here_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(library_present=False))
    assert main(["measure", "--meter", "nvml", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert "no NVML library" in err and "valid: auto, nvml, rapl, estimate" in err


def test_no_partial_output_file_on_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    assert greenml("measure", "--country", "XX", "-o", str(out), "--", "true").returncode == 2
    assert not out.exists()


def test_help_and_version() -> None:
    assert "measure" in greenml("--help").stdout
    assert greenml("--version").stdout.startswith("greenml ")
    assert "--idle-seconds" in greenml("measure", "--help").stdout


def test_sigterm_to_greenml_reaches_the_command_and_the_result_is_kept(tmp_path: Path) -> None:
    import signal
    import time

    out = tmp_path / "r.json"
    marker = tmp_path / "child-started"
    child = (
        "import pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
        f"pathlib.Path({str(marker)!r}).touch()\n"
        "time.sleep(30)\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "greenml",
            "measure",
            "--idle-seconds",
            "0",
            "-o",
            str(out),
            "--",
            sys.executable,
            "-c",
            child,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 42, err
    assert json.loads(out.read_text())["exit_code"] == 42


def test_a_report_after_a_search_warns_on_a_user_error_and_keeps_a_bugs_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    import types

    import greenml.report
    from greenml.cli.search import _search_report
    from greenml.errors import ConfigError

    args = argparse.Namespace(no_report=False, report=None)
    search = types.SimpleNamespace(
        study=types.SimpleNamespace(study_name="s"),
        config=types.SimpleNamespace(storage_url="sqlite:///x.db"),
    )

    def user_error(*_: object) -> None:
        raise ConfigError("-o: directory 'nowhere' does not exist")

    monkeypatch.setattr(greenml.report, "write_report", user_error)
    _search_report(args, search)
    assert capsys.readouterr().err == (
        "greenml: warning: report not written (-o: directory 'nowhere' does not exist); retry with greenml report\n"
    )

    def bug(*_: object) -> None:
        raise KeyError("objectives")

    monkeypatch.setattr(greenml.report, "write_report", bug)
    with pytest.raises(KeyError, match="objectives"):
        _search_report(args, search)
    assert "the study is stored" in capsys.readouterr().err
