"""`greenml search`, `export` and `spaces` end to end, with tiny budgets."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

from greenml.cli import main
from greenml.storage import open_storage, study_names

FAST = [
    "--epochs",
    "1:2",
    "--min-energy-window",
    "0.05",
    "--min-latency-window",
    "0.05",
    "--idle-seconds",
    "0",
    "--no-distillation",
    "--no-report",
    # These tests count complete trials; tests/test_early_stopping.py covers the default rule
    # (and test_each_builtin_space_runs runs it).
    "--early-stopping",
    "none",
]


def greenml(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``greenml ARGS`` run in ``cwd``, in this process (a new interpreter only adds its start-up)."""
    out, err = io.StringIO(), io.StringIO()
    # The command sets signal handlers for its process; this one's are put back after it, so that
    # later tests' child processes do not inherit an ignored signal.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit:  # argparse's usage errors
            code = exit.code if isinstance(exit.code, int) else 1
        finally:
            left = signal.getsignal(signal.SIGTERM)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    # The command itself puts SIGTERM back: main() may run inside a longer-lived process.
    assert left == handlers[signal.SIGTERM], f"greenml {args[0]} left SIGTERM set to {left!r}"
    return subprocess.CompletedProcess(["greenml", *args], code, out.getvalue(), err.getvalue())


def _storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def _complete(storage: str, study: str) -> list[optuna.trial.FrozenTrial]:
    loaded = optuna.load_study(study_name=study, storage=storage)
    return [t for t in loaded.trials if t.state == optuna.trial.TrialState.COMPLETE]


@pytest.mark.parametrize("space", ["mlp", "cnn", "tinybert"])
def test_each_builtin_space_runs(tmp_path: Path, space: str) -> None:
    storage = _storage(tmp_path)
    run = greenml(
        "search",
        "--space",
        space,
        "--trials",
        "1",
        "--storage",
        storage,
        "--study",
        space,
        *FAST[:-2],  # the default early stopping: one trial, so nothing to stop it against
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    trials = _complete(storage, space)
    assert len(trials) == 1
    assert trials[0].user_attrs["metrics"]["cost_seconds"] > 0  # the cost phase ran first
    for trial in trials:
        metrics = trial.user_attrs["metrics"]
        assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["test_accuracy"] <= 1.0
        assert metrics["latency_ms"] > 0 and metrics["model_bytes"] > 0 and metrics["inference_energy_j"] > 0
        assert metrics["train_seconds"] > 0
        assert metrics["latency_ms"] <= metrics["latency_p99_ms"] and metrics["latency_stderr_ms"] >= 0
        assert metrics["batch_inference_energy_j"] > 0 and metrics["inference_cpu_energy_j"] > 0
        assert "inference_dynamic_energy_j" not in metrics  # --idle-seconds 0: not measured, not 0
        assert trial.user_attrs["provenance"]["energy_basis"] == "estimated"
        assert trial.user_attrs["device"] == "cpu" and trial.user_attrs["deploy_device"] == "cpu"
        components = trial.user_attrs["trial_energy_components_j"]
        assert components["cpu"] == pytest.approx(trial.user_attrs["trial_energy_j"])
        assert trial.user_attrs["inference"]["latency_ms"]["blocks"] >= 2
    assert "Pareto front" in run.stdout


def test_resume_counts_complete_trials_in_total(tmp_path: Path) -> None:
    storage = _storage(tmp_path)
    # Without early stopping --trials counts complete trials (with it: complete or stopped).
    first = greenml("search", "--trials", "2", "--storage", storage, *FAST, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # Left at auto, the study keeps the rule it was started with.
    second = greenml("search", "--trials", "3", "--storage", storage, *FAST[:-2], cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    # One search study, and greenml's coordination study beside it (worker numbers, claims).
    assert sorted(names) == ["mlp-digits-random-seed0", "mlp-digits-random-seed0::greenml-workers"]
    assert study_names(open_storage(storage)) == ["mlp-digits-random-seed0"]
    assert len(_complete(storage, names[0])) == 3
    again = greenml("search", "--trials", "3", "--storage", storage, *FAST, cwd=tmp_path)
    assert again.returncode == 0 and "already has 3 complete trials" in again.stderr
    assert len(_complete(storage, names[0])) == 3


def test_study_metric_names_and_constraints(tmp_path: Path) -> None:
    storage = _storage(tmp_path)
    run = greenml(
        "search",
        "--trials",
        "2",
        "--storage",
        storage,
        "--study",
        "c",
        "--objectives",
        "accuracy,model_bytes",
        "--constraint",
        "accuracy>=0.99",
        "--constraint",
        "latency_ms<1000",
        *FAST,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    study = optuna.load_study(study_name="c", storage=storage)
    assert study.metric_names == ["accuracy", "model_bytes"]
    for trial in _complete(storage, "c"):
        constraints = trial.system_attrs
        accuracy = trial.user_attrs["metrics"]["accuracy"]
        assert constraints["constraints:accuracy>=0.99"] == pytest.approx(0.99 - accuracy)


def test_export_formats(tmp_path: Path) -> None:
    storage = _storage(tmp_path)
    assert (
        greenml(
            "search", "--trials", "2", "--storage", storage, "--study", "e", *FAST, cwd=tmp_path
        ).returncode
        == 0
    )
    csv = greenml("export", "--study", "e", "--storage", storage, "--format", "csv", cwd=tmp_path)
    assert csv.returncode == 0, csv.stderr
    header = csv.stdout.splitlines()[0].split(",")
    assert {
        "number",
        "state",
        "accuracy",
        "inference_energy_j",
        "latency_ms",
        "train_energy_j",
        "param_lr",
    } <= set(header)
    out = tmp_path / "e.json"
    assert (
        greenml(
            "export", "--study", "e", "--storage", storage, "--format", "json", "-o", str(out), cwd=tmp_path
        ).returncode
        == 0
    )
    rows = json.loads(out.read_text())
    assert len(rows) == 2 and all(row["state"] == "COMPLETE" for row in rows)
    parquet = tmp_path / "e.parquet"
    assert (
        greenml(
            "export",
            "--study",
            "e",
            "--storage",
            storage,
            "--format",
            "parquet",
            "-o",
            str(parquet),
            cwd=tmp_path,
        ).returncode
        == 0
    )
    import pandas as pd

    assert len(pd.read_parquet(parquet)) == 2


def _readme_space_example() -> str:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Custom search spaces", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_custom_space_from_file(tmp_path: Path) -> None:
    path = tmp_path / "my_space.py"
    path.write_text(_readme_space_example())  # the README's example, exactly as written
    storage = _storage(tmp_path)
    run = greenml("search", "--space", str(path), "--trials", "2", "--storage", storage, *FAST, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    trials = _complete(storage, "my_space-digits-random-seed0")
    assert len(trials) == 2 and all("hidden" in t.params for t in trials)


def test_custom_space_from_an_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "greenml_tiny_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "greenml_tiny_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: greenml-tiny-plugin\nVersion: 0.1\n"
    )
    (site / "greenml_tiny_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[greenml.search_spaces]\ntiny = greenml_tiny_plugin:SPACE\n"
    )
    (site / "greenml_tiny_plugin.py").write_text(_readme_space_example())
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run(
        [sys.executable, "-m", "greenml", "spaces"], capture_output=True, text=True, env=env
    )
    assert "tiny" in listed.stdout and "linear classifier" in listed.stdout
    storage = _storage(tmp_path)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenml",
            "search",
            "--space",
            "tiny",
            "--trials",
            "1",
            "--storage",
            storage,
            *FAST,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert len(_complete(storage, "tiny-digits-random-seed0")) == 1


def test_spaces_lists_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    for name in ("mlp", "cnn", "tinybert"):
        assert name in out


FAILING = textwrap.dedent(
    """
    class Broken:
        name = "broken"
        description = "raises in build"

        def build(self, trial, data):
            trial.suggest_int("x", 0, 3)
            raise RuntimeError("this space has a bug")


    SPACE = Broken()
    """
)


def test_failing_trials_are_kept_and_the_search_stops_after_n(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text(FAILING)
    storage = _storage(tmp_path)
    run = greenml(
        "search",
        "--space",
        str(path),
        "--trials",
        "5",
        "--max-failures",
        "2",
        "--storage",
        storage,
        "--study",
        "b",
        *FAST,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "2 consecutive failed trials" in run.stderr and "this space has a bug" in run.stderr
    assert "Traceback" not in run.stderr
    trials = optuna.load_study(study_name="b", storage=storage).trials
    assert len(trials) == 2
    assert all(t.state == optuna.trial.TrialState.FAIL for t in trials)
    assert all("RuntimeError: this space has a bug" in t.user_attrs["error"] for t in trials)
    assert all("Traceback" in t.user_attrs["traceback"] for t in trials)  # kept for debugging


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--space", "nope"], "unknown space 'nope'; valid: mlp, cnn, tinybert"),
        (["--dataset", "cifar"], "unknown dataset 'cifar'; valid: digits, mnist1d"),
        (["--sampler", "cmaes"], "invalid choice: 'cmaes'"),
        (["--objectives", "accuracy,speed"], "unknown objective 'speed'"),
        (["--objectives", "accuracy,trial_seconds"], "unknown objective 'trial_seconds'"),
        (["--constraint", "accuracy>>0.9"], "malformed constraint"),
        (["--constraint", "speed<2"], "unknown metric 'speed'"),
        (["--constraint", "test_accuracy>=0.9"], "the test split must never steer the search"),
        (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot open storage"),
        (["--storage", "not-a-url"], "malformed storage URL"),
        (["--device", "cuda"], "--device 'cuda:0' is not available: torch sees no CUDA GPU"),
        (["--device", "tpu"], "unknown --device 'tpu'; valid: cpu, cuda, cuda:N"),
        (["--deploy-device", "gpu"], "unknown --deploy-device 'gpu'; valid: cpu, cuda, cuda:N"),
        (["--deploy-device", "cuda:1"], "--deploy-device 'cuda:1' is not available"),
        (["--seed", "-3"], "--seed must be an integer from 0 to 4294967295, got -3"),
        (["--trials", "0"], "--trials must be >= 1"),
        (["--min-latency-window", "-1"], "--min-latency-window must be >= 0 seconds"),
        (
            ["--objectives", "accuracy,inference_dynamic_energy_j", "--idle-seconds", "0"],
            "inference_dynamic_energy_j subtracts idle power, which --idle-seconds 0 leaves unmeasured",
        ),
        (["--space", "missing.py"], "space file 'missing.py' does not exist"),
        (["--space", "not_a_space.py"], "defines no search space"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    (tmp_path / "not_a_space.py").write_text("X = 1\n")
    monkeypatch.chdir(tmp_path)
    assert main(["search", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not (tmp_path / "greenml.db").exists()


def test_onnxruntime_on_a_gpu_without_onnxruntime_gpu_is_refused_before_the_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Never run an ONNX Runtime model on the CPU when the user asked for the GPU."""
    import onnxruntime

    import greenml.devices

    monkeypatch.setattr(greenml.devices, "check_available", lambda *_: None)  # as if a GPU were here
    assert "CUDAExecutionProvider" not in onnxruntime.get_available_providers()
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--device", "cpu", "--deploy-device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--deploy-device cuda:0 runs ONNX Runtime models on the GPU" in err
    assert "install onnxruntime-gpu" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "greenml.db").exists()


@pytest.mark.parametrize(("trials", "population"), [(12, 4), (60, 20), (300, 50), (None, 50)])
def test_nsga_population_is_sized_to_the_budget(trials: int | None, population: int) -> None:
    from greenml.search import SearchConfig
    from greenml.search._open import start_notes as _start_notes
    from greenml.search._samplers import sampler_for as _make_sampler

    config = SearchConfig(sampler="nsga2", trials=trials, timeout_s=None if trials else 60.0)
    assert _make_sampler(config, seed=0)._population_size == population
    notes = " ".join(_start_notes(config, _estimate_meter()))
    assert f"population {population}" in notes
    if trials is None:
        assert "random first generation" in notes


def _estimate_meter() -> object:
    from greenml.measure import Meter
    from greenml.measure.estimate import CpuTimeEstimate, WattsPerCore

    return Meter([CpuTimeEstimate(WattsPerCore(4.0, "test"))])


def test_postgresql_storage_and_resume(tmp_path: Path, postgres_url: str) -> None:
    import uuid

    study = f"greenml-test-{uuid.uuid4().hex[:8]}"
    try:
        first = greenml(
            "search", "--trials", "1", "--storage", postgres_url, "--study", study, *FAST, cwd=tmp_path
        )
        assert first.returncode == 0, first.stderr
        second = greenml(
            "search", "--trials", "2", "--storage", postgres_url, "--study", study, *FAST, cwd=tmp_path
        )
        assert second.returncode == 0, second.stderr
        assert len(_complete(postgres_url, study)) == 2
        exported = greenml(
            "export", "--study", study, "--storage", postgres_url, "--format", "csv", cwd=tmp_path
        )
        assert exported.returncode == 0 and len(exported.stdout.strip().splitlines()) == 3
    finally:
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=study, storage=postgres_url)


SLOW = """
import pathlib
import time

from torch import nn


class Slow:
    name = "slow"
    description = "signals that a trial started, then takes its time"

    def build(self, trial, data):
        trial.suggest_int("x", 0, 3)
        pathlib.Path(__file__).with_name("started").touch()
        time.sleep(60)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, data.num_classes))


SPACE = Slow()
"""


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_ctrl_c_fails_the_running_trial_and_keeps_the_study(tmp_path: Path, signal_name: str) -> None:
    """Ctrl-C, or a scheduler's SIGTERM (preemption, a time limit): the same clean stop."""
    import signal
    import time

    (tmp_path / "slow.py").write_text(SLOW)
    storage = _storage(tmp_path)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "greenml",
            "search",
            "--space",
            str(tmp_path / "slow.py"),
            "--trials",
            "2",
            "--storage",
            storage,
            "--study",
            "s",
            *FAST,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        # As a terminal would: a shell running these tests in the background (`cmd &`) ignores
        # SIGINT, children inherit that, and Python then leaves Ctrl-C ignored, rightly.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(getattr(signal, signal_name))
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err and "Resume with: greenml search --space" in err
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL]
    assert "KeyboardInterrupt" in trials[0].user_attrs["error"]


@pytest.mark.parametrize("sampler", ["nsga2", "nsga3", "gp", "random"])
def test_every_sampler_runs_and_the_energy_budget_stops_the_search(tmp_path: Path, sampler: str) -> None:
    storage = _storage(tmp_path)
    run = greenml(
        "search",
        "--sampler",
        sampler,
        "--energy-budget",
        "0.001",
        "--storage",
        storage,
        "--study",
        sampler,
        *FAST,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "energy budget of 0.001 J spent" in run.stderr
    trials = optuna.load_study(study_name=sampler, storage=storage).trials
    assert len(trials) == 1 and trials[0].user_attrs["trial_energy_j"] > 0.001
