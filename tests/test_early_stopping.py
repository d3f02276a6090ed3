"""Early stopping in the search: cost first, learning curves, stopped trials stored as pruned,
rung tables read from the storage. (The rule itself: tests/test_stopping.py.)"""

from __future__ import annotations

import json
import math
import re
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from greenml.cli import main
from greenml.config import MeasureConfig
from greenml.data import load_dataset
from greenml.errors import ConfigError
from greenml.ledger import spent_energy_j
from greenml.measure import Meter
from greenml.records import ARTIFACT_KEY as ARTIFACT_KEY_ATTR
from greenml.records import CURVE as CURVE_ATTR
from greenml.records import EARLY_COST as COST_ATTR
from greenml.records import STOPPED as STOPPED_ATTR
from greenml.results import trial_rows
from greenml.search import SearchConfig, prepare, run
from greenml.search._rungs import StudyStopping
from greenml.search._stopping import MOASHA, Decision, RungEntry
from greenml.spaces import load_space
from greenml.storage import open_storage
from greenml.testing.sources import ConstantPowerSource
from greenml.trial import TrialContext, run_trial

FAST = {"latency_s": 0.05, "energy_window_s": 0.05}


class _NeverStops:
    """Asks for rungs and the cost first, never stops: the trial runs as it would under a rule."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, float]] = []

    def rungs(self, epochs: int) -> tuple[int, ...]:
        return (1,)

    def known_cost(self, key: str) -> None:
        return None

    def before_training(self, cost: dict[str, float]) -> str | None:
        return None

    def at_rung(self, epoch: int, curve: list[dict[str, float]], cost: dict[str, float]) -> str | None:
        self.asked.append((epoch, curve[-1]["accuracy"]))
        return None


def _mlp_context(rule: Any, **settings: Any) -> TrialContext:
    """A trial context for the MLP space on digits, metered at a constant 10 W, asking ``rule``."""
    return TrialContext(
        space=load_space("mlp"),
        dataset=load_dataset("digits", 0),
        meter=Meter([ConstantPowerSource({"cpu": 10.0})]),
        early_stopping=rule,
        **settings,
    )


@pytest.mark.parametrize(
    "params",
    [
        {"runtime": "torch", "pruning": "structured", "prune_amount": 0.5, "finetune_epochs": 1},
        pytest.param(
            {"runtime": "onnxruntime", "quantization": "dynamic", "pruning": "none"},
            marks=pytest.mark.xfail(
                strict=False,
                reason="open question: in a quiet fresh-clone CI run the final dynamic-int8 ONNX "
                "artifact timed 2.3x, 0.62x and 2.0x the early one's latency (0.017 vs 0.040 ms); "
                "whether trained weights change ONNX Runtime's dynamic-quantization path is not "
                "yet known",
            ),
        ),
    ],
    ids=["torch-structured", "onnx-dynamic-int8"],
)
def test_the_cost_measured_before_training_agrees_with_the_final_artifacts(params: dict[str, Any]) -> None:
    fixed = {"n_layers": 2, "width": 256, "dropout": 0.0, "lr": 3e-3, "epochs": 3, "batch_size": 64}
    # The test times 0.3 s windows (a search times 1 s per batch size). On VMs of this kind the
    # machine has slow spells, a level about 1.7x slower for seconds at a time (see the README's
    # latency notes), which can cover one whole short window and not the other. So the pair is
    # measured again, up to 3 times, and one agreement is required: a systematic difference
    # between the early and the final artifact fails every attempt.
    attempts = []
    for _ in range(3):
        rule = _NeverStops()
        ctx = _mlp_context(rule, latency_s=0.3, energy_window_s=0.3, epochs=(1, 5), finetune_epochs=(0, 2))
        final = run_trial(optuna.trial.FixedTrial({**fixed, "distill": False, **params}), ctx)
        early = final.early_cost
        assert early is not None
        # The artifact's shape fixes its size exactly enough; latency (and energy, 10 W x time
        # here) agree within the benchmark's noise: four combined standard errors, or 15%.
        assert early["model_bytes"] == pytest.approx(final["model_bytes"], rel=0.02)
        noise = 4 * math.hypot(early["latency_stderr_ms"], final["latency_stderr_ms"])
        attempts.append((early["latency_ms"], final["latency_ms"]))
        if abs(early["latency_ms"] - final["latency_ms"]) <= max(noise, 0.15 * final["latency_ms"]):
            break
    else:
        pytest.fail(f"early and final latency (ms) disagreed in all 3 attempts: {attempts}")
    # (Energy per inference is left out: on a shared 2-core machine its 0.3 s windows swung by a
    # factor of 3 between two runs of one model, while latency agreed within 2%.)
    # The cost phase is measured on its own, before training.
    assert final["cost_seconds"] > 0 and final["cost_energy_j"] > 0
    assert rule.asked == [(1, final.curve[0]["accuracy"])]
    # The learning curve: one point per training epoch, cumulative energy and time.
    assert [p["epoch"] for p in final.curve] == [1, 2, 3]
    assert all(0 <= p["accuracy"] <= 1 for p in final.curve)
    energies = [p["energy_j"] for p in final.curve]
    assert energies == sorted(energies) and energies[0] > 0
    assert energies[-1] <= final["train_energy_j"] * (1 + 1e-6)


def test_the_cost_phase_times_shorter_windows_than_the_final_benchmark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import greenml.measure.inference as inference

    windows: list[tuple[float, float]] = []
    original = inference.benchmark_inference

    def spy(*args: Any, **kwargs: Any) -> Any:
        windows.append((kwargs["min_latency_s"], kwargs["min_energy_window_s"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(inference, "benchmark_inference", spy)
    ctx = _mlp_context(_NeverStops(), latency_s=0.2, energy_window_s=0.3, cost_window_s=0.05, epochs=(1, 1))
    fixed = {"n_layers": 1, "width": 32, "dropout": 0.0, "lr": 3e-3, "epochs": 1, "batch_size": 64}
    run_trial(
        optuna.trial.FixedTrial({**fixed, "distill": False, "pruning": "none", "runtime": "torch"}), ctx
    )
    # The cost phase first, at the cost window; the final artifact's benchmark at the search's own.
    assert windows == [(0.05, 0.05), (0.2, 0.3)]


def test_an_artifact_of_a_shape_already_measured_reuses_that_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import greenml.measure.inference as inference

    benchmarked: list[float] = []
    original = inference.benchmark_inference

    def spy(*args: Any, **kwargs: Any) -> Any:
        benchmarked.append(kwargs["min_latency_s"])
        return original(*args, **kwargs)

    monkeypatch.setattr(inference, "benchmark_inference", spy)
    study = optuna.create_study(
        study_name="s",
        storage=open_storage(f"sqlite:///{tmp_path}/keys.db"),
        directions=["maximize", "minimize", "minimize"],
    )
    objectives = ("accuracy", "inference_energy_j", "latency_ms")
    base = {"n_layers": 1, "epochs": 1, "batch_size": 64, "distill": False, "runtime": "onnxruntime"}
    base |= {"quantization": "none", "pruning": "structured", "prune_amount": 0.5, "finetune_epochs": 0}
    # Same shape (dropout and the learning rate change what is learnt, not the artifact), then
    # another width, then the first shape on another runtime.
    variants = [
        {"width": 64, "dropout": 0.0, "lr": 3e-3},
        {"width": 64, "dropout": 0.2, "lr": 8e-3},
        {"width": 32, "dropout": 0.0, "lr": 3e-3},
        {"width": 64, "dropout": 0.0, "lr": 3e-3, "runtime": "torch"},
    ]
    costs, keys, cost_from, calls = [], [], [], []
    for variant in variants:
        params = {**base, **variant}
        if params["runtime"] == "torch":
            del params["quantization"]
        study.enqueue_trial(params)
        trial = study.ask()
        ctx = _mlp_context(
            StudyStopping(MOASHA(stop_before_training=False), study, trial, objectives),
            latency_s=0.1,
            energy_window_s=0.1,
            cost_window_s=0.05,
            epochs=(1, 1),
        )
        before = len(benchmarked)
        result = run_trial(trial, ctx)
        calls.append(benchmarked[before:])
        costs.append(result.early_cost)
        cost_from.append(result.cost_from)
        keys.append(trial.user_attrs[ARTIFACT_KEY_ATTR])
        # The key taken before training is the final (trained, pruned) artifact's.
        assert result.artifact_key == keys[-1]
        study.tell(trial, [0.5, 1e-4, 0.01])
    assert keys[0] == keys[1] and len(set(keys)) == 3
    # Measured at the cost window, then the final benchmark; the same shape only the final one.
    assert calls == [[0.05, 0.1], [0.1], [0.05, 0.1], [0.05, 0.1]]
    assert cost_from == [None, 0, None, None]
    assert costs[1] == costs[0] and costs[2] != costs[0]


def _config(tmp_path: Path, **overrides: Any) -> SearchConfig:
    settings: dict[str, Any] = {
        "storage": f"sqlite:///{tmp_path}/es.db",
        "study": f"es-{uuid.uuid4().hex[:8]}",
        "trials": 6,
        "epochs": (2, 3),
        "measure": MeasureConfig(meter="estimate", idle_seconds=0, watts_per_core=10.0),
        "distillation": False,
        "artifacts": str(tmp_path / "artifacts"),
        "early_stopping": "mo-asha",
        # Only the best trial at a rung goes on (the first front too): trials are stopped from
        # the second one on.
        "reduction_factor": 100.0,
        "keep_front": False,
        "rungs": (1,),
        "sampler": "random",
        **FAST,
    }
    settings.update(overrides)
    return SearchConfig(**settings)


def test_stopped_trials_are_pruned_with_curve_cost_and_energy_and_count_toward_the_budget(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    search = prepare(config)
    lines: list[str] = []
    try:
        outcome = run(search, lines.append)
    finally:
        search.close()
    study = search.study
    stopped = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert stopped, "with η=100 every trial but the best at rung 1 is stopped"
    assert len(stopped) + len(complete) == 6 == len(study.trials)  # --trials counts both
    assert "6 complete or stopped trials" in outcome.stop_reason
    for trial in stopped:
        reason = trial.user_attrs[STOPPED_ATTR]
        assert reason.startswith("stopped")
        assert trial.user_attrs[COST_ATTR]["latency_ms"] > 0
        assert trial.user_attrs["trial_energy_j"] > 0
        metrics = trial.user_attrs["metrics"]
        assert (
            "accuracy" not in metrics and metrics["latency_ms"] == trial.user_attrs[COST_ATTR]["latency_ms"]
        )
        assert metrics["cost_energy_j"] > 0
        if "epoch 1" in reason:
            assert [p["epoch"] for p in trial.user_attrs[CURVE_ATTR]] == [1]
            assert (
                "compress_seconds" in metrics and metrics["compress_seconds"] == 0
            )  # never pruned or fine-tuned
        assert any(f"trial {trial.number} {reason}" in line for line in lines)
    for trial in complete:
        curve = trial.user_attrs[CURVE_ATTR]
        assert [p["epoch"] for p in curve] == list(range(1, trial.params["epochs"] + 1))
    # Never on the front, always in the study's energy.
    assert {t.number for t in study.best_trials} <= {t.number for t in complete}
    assert spent_energy_j(study) == pytest.approx(sum(t.user_attrs["trial_energy_j"] for t in study.trials))
    rows = {row["number"]: row for row in trial_rows(study)}
    for trial in stopped:
        assert rows[trial.number]["stopped"] == trial.user_attrs[STOPPED_ATTR]
    assert rows[complete[0].number]["learning_curve"] == complete[0].user_attrs[CURVE_ATTR]


class _Recorder:
    """A rule that records the table it was given (the storage's view) and never stops."""

    def __init__(self) -> None:
        self.tables: list[list[RungEntry]] = []

    def rungs(self, epochs: int) -> tuple[int, ...]:
        return (1, 3)

    def decide(self, rung: int, candidate: RungEntry, table: Any) -> Decision:
        self.tables.append(sorted(table, key=lambda e: e.trial))
        return Decision(stop=False, reason="goes on")

    def before_training(self, trial: int, costs: Any, complete: Any) -> Decision:
        return MOASHA(stop_before_training=True).before_training(trial, costs, complete)


def test_rung_tables_come_from_the_storage_so_workers_see_each_others_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/rungs.db"
    objectives = ("accuracy", "inference_energy_j", "latency_ms")
    one = optuna.create_study(
        study_name="s", storage=open_storage(url), directions=["maximize", "minimize", "minimize"]
    )
    # Another worker's process: its own storage connection and study object.
    two = optuna.load_study(study_name="s", storage=open_storage(url))
    rule = _Recorder()
    first = one.ask()
    mine = StudyStopping(rule, one, first, objectives)
    assert mine.before_training({"inference_energy_j": 2e-4, "latency_ms": 0.05}) is None
    mine.at_rung(
        1,
        [{"epoch": 1, "accuracy": 0.6, "energy_j": 1.0, "seconds": 0.5}],
        {"inference_energy_j": 2e-4, "latency_ms": 0.05},
    )
    second = two.ask()
    theirs = StudyStopping(rule, two, second, objectives)
    theirs.before_training({"inference_energy_j": 1e-4, "latency_ms": 0.04})
    theirs.at_rung(
        1,
        [{"epoch": 1, "accuracy": 0.7, "energy_j": 1.0, "seconds": 0.5}],
        {"inference_energy_j": 1e-4, "latency_ms": 0.04},
    )
    # The second worker ranked against the first's stored entry, as (error, energy, latency).
    assert rule.tables[-1] == [RungEntry(first.number, (pytest.approx(0.4), 2e-4, 0.05))]
    # A rung the other trial never reached is not in the table.
    theirs.at_rung(
        3,
        [{"epoch": 3, "accuracy": 0.8, "energy_j": 3.0, "seconds": 1.5}],
        {"inference_energy_j": 1e-4, "latency_ms": 0.04},
    )
    assert rule.tables[-1] == []


def test_a_trial_dominated_even_at_the_best_accuracy_is_stopped_before_training(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hopeless.db"
    objectives = ("accuracy", "inference_energy_j", "latency_ms")
    study = optuna.create_study(
        study_name="s", storage=open_storage(url), directions=["maximize", "minimize", "minimize"]
    )
    best = optuna.trial.create_trial(
        values=[0.95, 1e-4, 0.03],
        user_attrs={"metrics": {"accuracy": 0.95, "inference_energy_j": 1e-4, "latency_ms": 0.03}},
    )
    study.add_trial(best)
    trial = study.ask()
    stopping = StudyStopping(MOASHA(stop_before_training=True), study, trial, objectives)
    reason = stopping.before_training({"inference_energy_j": 2e-4, "latency_ms": 0.05})
    assert reason is not None and "complete trial 0" in reason
    cheaper = study.ask()
    assert (
        StudyStopping(MOASHA(stop_before_training=True), study, cheaper, objectives).before_training(
            {"inference_energy_j": 5e-5, "latency_ms": 0.05}
        )
        is None
    )


def test_early_stopping_settings_are_checked_and_part_of_what_makes_a_study_comparable(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="add accuracy to --objectives"):
        _config(tmp_path, objectives=("inference_energy_j", "latency_ms"))
    with pytest.raises(ConfigError, match="rungs"):
        _config(tmp_path, rungs=(3, 1))
    config = _config(tmp_path, trials=1, stop_before_training=True)
    prepare(config).close()
    with pytest.raises(ConfigError, match="--early-stopping"):
        prepare(
            _config(tmp_path, trials=1, study=config.study, reduction_factor=3.0, stop_before_training=True)
        )
    with pytest.raises(ConfigError, match="--no-keep-front"):
        prepare(_config(tmp_path, trials=1, study=config.study, keep_front=True, stop_before_training=True))
    # A study from before these settings stored four values (and behaved as --no-keep-front
    # --stop-before-training): it still resumes under those flags.
    study = optuna.load_study(study_name=config.study, storage=config.storage_url)
    assert study.user_attrs["comparable"]["early_stopping"] == ["mo-asha", 100.0, 1, [1]]
    # Resumed with today's default (no stop before training), it is refused.
    with pytest.raises(ConfigError, match=re.escape("--[no-]stop-before-training")):
        prepare(_config(tmp_path, trials=1, study=config.study))
    default = _config(tmp_path, trials=1)
    prepare(default).close()
    stored = optuna.load_study(study_name=default.study, storage=default.storage_url).user_attrs
    assert stored["comparable"]["early_stopping"][-1] == "no-stop-before-training"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--early-stopping", "hyperband"], "invalid choice: 'hyperband'"),
        (["--early-stopping", "mo-asha", "--rungs", "1,x"], "--rungs must be whole numbers"),
        (["--early-stopping", "mo-asha", "--reduction-factor", "1"], "reduction"),
    ],
)
def test_bad_early_stopping_input_is_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        code = main(["search", "--storage", f"sqlite:///{tmp_path}/x.db", *args])
        raise SystemExit(code)
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 2 and message in err[-1]  # argparse prints its usage line first
    assert not (tmp_path / "x.db").exists()


def test_export_writes_the_learning_curve_as_json_text_in_csv(tmp_path: Path) -> None:
    config = _config(tmp_path, trials=2, early_stopping="none", rungs=None)
    search = prepare(config)
    try:
        run(search)
    finally:
        search.close()
    out = tmp_path / "trials.csv"
    assert (
        main(
            [
                "export",
                "--study",
                config.study_name,
                "--storage",
                config.storage_url,
                "--format",
                "csv",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    import pandas as pd

    frame = pd.read_csv(out)
    curve = json.loads(frame["learning_curve"][0])
    assert [p["epoch"] for p in curve] == list(range(1, len(curve) + 1)) and "energy_j" in curve[0]


def test_the_benchmark_in_ci_size(tmp_path: Path) -> None:
    """benchmarks/early_stopping.py with a small budget: digits, 3 trials, short windows, η=100."""
    import importlib.util

    path = Path(__file__).parent.parent / "benchmarks" / "early_stopping.py"
    spec = importlib.util.spec_from_file_location("early_stopping_benchmark", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["--quick", "--space", "mlp", "--dataset", "digits", "--epochs", "1:2", "--seeds", "1"]
    summary = bench.main([*argv, "--trials", "3", "--sampler", "random", "--workdir", str(tmp_path)])
    (seed,) = summary["seeds"]
    assert seed["none_trials"] == seed["mo-asha_trials"] == 3  # equal trials started and ended
    assert seed["none_stopped"] == 0 and seed["mo-asha_stopped"] >= 1
    # The random sampler proposes the same trials in both arms. (Whether stopping spends less is
    # the full benchmark's question: at this size the cost phase can outweigh what it saves.)
    none, early = summary["runs"]["none-0"], summary["runs"]["mo-asha-0"]
    assert [r["number"] for r in none] == [r["number"] for r in early]
    assert seed["mo-asha_energy_j"] == pytest.approx(sum(r["energy_j"] for r in early))
    assert seed["none_energy_j"] == pytest.approx(sum(r["energy_j"] for r in none))
    assert 0 < seed["none_hypervolume"] <= 1 and 0 < seed["mo-asha_hypervolume"] <= 1
    assert seed["none_energy_to_95_j"] is not None and seed["none_energy_to_95_j"] <= seed["none_energy_j"]


def test_the_default_is_mo_asha_when_accuracy_is_an_objective_and_old_studies_resume_without(
    tmp_path: Path,
) -> None:
    assert SearchConfig().early_stopping == "mo-asha"
    assert SearchConfig(objectives=("inference_energy_j", "latency_ms")).early_stopping == "none"
    assert SearchConfig(early_stopping="none").early_stopping == "none"
    # A study started without early stopping (every study before it was the default) resumes
    # without it when --early-stopping is left at auto; an explicit mo-asha is still refused.
    old = _config(tmp_path, trials=1, early_stopping="none", rungs=None)
    prepare(old).close()
    resumed = prepare(_config(tmp_path, trials=1, study=old.study, early_stopping="auto", rungs=None))
    try:
        assert resumed.config.early_stopping == "none"
    finally:
        resumed.close()
    with pytest.raises(ConfigError, match="--early-stopping"):
        prepare(_config(tmp_path, trials=1, study=old.study, early_stopping="mo-asha", rungs=None))
    # A new study under auto stops early.
    fresh = prepare(_config(tmp_path, trials=1, early_stopping="auto", rungs=None))
    try:
        assert fresh.config.early_stopping == "mo-asha"
        assert fresh.study.user_attrs["comparable"]["early_stopping"][0] == "mo-asha"
    finally:
        fresh.close()
