"""The data behind the report's figures, tested apart from the drawing and cross-checked with Optuna."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna._hypervolume import compute_hypervolume

from greenml.errors import ConfigError
from greenml.metrics import COMPONENTS, PHASES
from greenml.report import (
    classify,
    default_reference,
    footprint,
    front_numbers,
    hypervolume,
    hypervolume_history,
    importances,
    load_record,
    parse_reference,
)
from greenml.report._data import (
    TrialRecord,
    energy_basis,
    estimate_share,
    inference_estimate_shares,
    metric_label,
    search_estimate_share,
    to_loss,
)
from greenml.testing.studies import NO_PRUNABLE_LAYER, make_study, provenance

optuna.logging.set_verbosity(optuna.logging.ERROR)
OBJECTIVES = ("accuracy", "inference_energy_j", "latency_ms")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    storage = f"sqlite:///{tmp_path_factory.mktemp('data') / 'studies.db'}"
    return make_study(storage, n_trials=60, constraints=(("accuracy", 0.8),), fail_every=7, seed=3)


def test_the_front_is_optunas_front(study: optuna.Study) -> None:
    record = load_record(study)
    front = front_numbers(record.trials, record.objectives)
    assert front == sorted(t.number for t in study.best_trials)  # Optuna honours the constraints too
    assert len(front) >= 3


def test_two_objective_front_matches_optuna(tmp_path: Path) -> None:
    study = make_study(f"sqlite:///{tmp_path / 's.db'}", objectives=("accuracy", "model_bytes"), n_trials=50)
    record = load_record(study)
    assert front_numbers(record.trials, record.objectives) == sorted(t.number for t in study.best_trials)


def test_classify_marks_every_trial(study: optuna.Study) -> None:
    record = load_record(study)
    status = classify(record.trials, record.objectives)
    by_number = {t.number: t for t in record.trials}
    assert set(status.values()) == {"front", "dominated", "infeasible", "failed"}
    for number, place in status.items():
        trial = by_number[number]
        if place == "failed":
            assert trial.state == "FAIL"
        elif place == "infeasible":
            assert trial.state == "COMPLETE" and trial.metrics["accuracy"] < 0.8
        else:
            assert trial.feasible


def test_hypervolume_matches_optunas_computation(study: optuna.Study) -> None:
    record = load_record(study)
    reference = default_reference([record], OBJECTIVES)
    assert reference is not None
    feasible = [t for t in record.trials if t.feasible]
    losses = np.array([[to_loss(m, t.metrics[m]) for m in OBJECTIVES] for t in feasible])
    ref = np.array([reference[m] for m in OBJECTIVES])
    expected = compute_hypervolume(losses, ref) / float(np.prod(ref))
    assert hypervolume(record.trials, OBJECTIVES, reference) == pytest.approx(expected, rel=1e-9)
    assert 0.0 < expected < 1.0


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_history_matches_optunas_hypervolume_history(study: optuna.Study) -> None:
    record = load_record(study)
    reference = default_reference([record], OBJECTIVES)
    assert reference is not None
    history = hypervolume_history(record, OBJECTIVES, reference)
    # Optuna's own history, through its public plot, in the objectives' own directions.
    raw_reference = [1.0 - reference["accuracy"], reference["inference_energy_j"], reference["latency_ms"]]
    figure = optuna.visualization.plot_hypervolume_history(study, raw_reference)
    optuna_by_trial = dict(zip(figure.data[0].x, figure.data[0].y, strict=True))
    assert len(optuna_by_trial) > 40
    box = math.prod(reference.values())
    ours = {point.trial: point.hypervolume * box for point in history}
    for number, value in optuna_by_trial.items():
        assert ours[number] == pytest.approx(value, rel=1e-9, abs=1e-18)
    values = [point.hypervolume for point in history]
    assert values == sorted(values)  # never decreases
    assert [p.finished for p in history] == list(range(1, len(record.finished()) + 1))
    energy = sum(t.energy_j or 0.0 for t in record.finished())
    assert history[-1].energy_kwh == pytest.approx(energy / 3.6e6)  # failed trials' energy counted


def test_default_reference_is_a_margin_past_the_worst_feasible_value(study: optuna.Study) -> None:
    record = load_record(study)
    reference = default_reference([record], OBJECTIVES)
    assert reference is not None
    feasible = [t for t in record.trials if t.feasible]
    assert reference["latency_ms"] == pytest.approx(1.1 * max(t.metrics["latency_ms"] for t in feasible))
    worst_error = max(1 - t.metrics["accuracy"] for t in feasible)
    assert reference["accuracy"] == pytest.approx(min(1.0, 1.1 * worst_error))


def test_reference_parsing() -> None:
    assert parse_reference("accuracy=0.5, latency_ms=2", OBJECTIVES) == {"accuracy": 0.5, "latency_ms": 2.0}
    for text, message in [
        ("speed=1", "'speed' is not an objective of this report; valid: accuracy"),
        ("latency_ms=fast", "latency_ms must be a number, got 'fast'"),
        ("latency_ms", "is not METRIC=VALUE"),
        ("accuracy=1", "must be a finite number below 1"),
        ("latency_ms=-1", "must be a finite number above 0"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_reference(text, OBJECTIVES)


def test_a_point_past_the_reference_adds_nothing(study: optuna.Study) -> None:
    record = load_record(study)
    tight = {"accuracy": 1e-6, "inference_energy_j": 1e-12, "latency_ms": 1e-9}
    assert hypervolume(record.trials, OBJECTIVES, tight) == 0.0


def test_footprint_sums(study: optuna.Study) -> None:
    record = load_record(study)
    fp = footprint(record)
    assert fp.energy_j == pytest.approx(sum(t.energy_j or 0.0 for t in record.trials))
    assert sum(fp.phase_energy_j.values()) == pytest.approx(fp.energy_j)
    complete = [t for t in record.trials if t.state == "COMPLETE"]
    for phase in PHASES:
        from_metrics = sum(t.metrics[f"{phase}_energy_j"] for t in complete)
        from_failed = sum(
            t.phases.get(phase, {}).get("energy_j", 0.0) for t in record.trials if t.state == "FAIL"
        )
        assert fp.phase_energy_j[phase] == pytest.approx(from_metrics + from_failed)
    assert fp.phase_energy_j["other"] >= 0
    # CO2e from the recorded intensity and PUE agrees with each trial's own figure.
    for row in fp.trials:
        trial = next(t for t in complete if t.number == row.number) if row.state == "COMPLETE" else None
        if trial is not None:
            assert row.co2_g == pytest.approx(trial.metrics["co2_g"])
    assert fp.co2_g == pytest.approx(fp.energy_j / 3.6e6 * 475.0)
    assert {row.state for row in fp.trials} == {"COMPLETE", "FAIL"}
    assert fp.energy_basis == "estimated"
    assert fp.wall_seconds == pytest.approx(sum(t.seconds or 0.0 for t in record.trials))  # run back to back


def test_importances_are_optunas(study: optuna.Study) -> None:
    trials = study.get_trials()
    values, reason = importances(trials, OBJECTIVES, "mdi")
    assert reason is None and set(values) == set(OBJECTIVES)
    evaluator = optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)
    direct = optuna.importance.get_param_importances(
        study, evaluator=evaluator, target=lambda t: t.user_attrs["metrics"]["latency_ms"]
    )
    assert values["latency_ms"] == pytest.approx(dict(direct))
    for per_objective in values.values():
        assert sum(per_objective.values()) == pytest.approx(1.0)
        # conditional parameters (only some trials have them) are left out, as Optuna does
        assert "prune_amount" not in per_objective and "quantization" not in per_objective
    # latency is built from width, layers, pruning and quantization; the learning rate plays no part
    latency = values["latency_ms"]
    assert latency["width"] > latency["lr"]


def test_importances_need_two_complete_trials(tmp_path: Path) -> None:
    study = make_study(f"sqlite:///{tmp_path / 's.db'}", n_trials=2, fail_every=2)
    values, reason = importances(study.get_trials(), OBJECTIVES)
    assert values == {} and reason == "needs at least 2 complete trials, the study has 1"
    with pytest.raises(
        ConfigError, match="unknown importance evaluator 'shap'; valid: mdi, fanova, ped-anova"
    ):
        importances(study.get_trials(), OBJECTIVES, "shap")


def test_load_record_hides_the_storage_password(study: optuna.Study) -> None:
    record = load_record(study, "postgresql://alice:s3cret@db.example:5432/studies")
    assert record.storage == "postgresql://alice:***@db.example:5432/studies"
    assert record.counts() == {"COMPLETE": 52, "FAIL": 8}


def _trial(
    number: int,
    kinds: dict[str, str],
    split: dict[str, float | None] | None = None,
    inference: dict[str, float] | None = None,
    state: str = "COMPLETE",
    backend: str = "estimate",
    basis: str | None = None,
    total: list[str] | None = None,
) -> TrialRecord:
    """A hand-made trial: component kinds, its whole energy per component, inference energy
    per component."""
    components = {
        c: {"component": c, "kind": kind, "backend": "nvml" if kind == "measured" else backend}
        for c, kind in kinds.items()
    }
    if basis is None:
        found = set(kinds.values())
        basis = "partly estimated" if len(found) > 1 else found.pop()
    prov = {"energy_basis": basis, "total_components": total or list(kinds), "components": components}
    metrics = {f"inference_{c}_energy_j": v for c, v in (inference or {}).items()}
    if inference:
        metrics["inference_energy_j"] = sum(inference.values())
    return TrialRecord(
        number=number,
        state=state,
        params={},
        metrics=metrics,
        constraints={},
        provenance=prov,
        energy_components_j=dict(split or {}),
    )


def test_energy_basis_is_read_from_the_provenance() -> None:
    measured = _trial(0, {"cpu": "measured", "dram": "measured"})
    estimated = _trial(1, {"cpu": "estimated"})
    partly = _trial(2, {"gpu": "measured", "cpu": "estimated"})
    assert (measured.provenance or {})["energy_basis"] == "measured"
    assert (estimated.provenance or {})["energy_basis"] == "estimated"
    assert (partly.provenance or {})["energy_basis"] == "partly estimated"

    basis = energy_basis([measured, measured])
    assert (basis.basis, basis.estimated, basis.measured, basis.cpu_time) == (
        "measured",
        (),
        ("cpu", "dram"),
        False,
    )
    assert basis.qualifier() == "" and basis.qualifier("cpu") == ""

    basis = energy_basis([estimated])
    assert (basis.basis, basis.estimated, basis.cpu_time) == ("estimated", ("cpu",), True)
    assert basis.qualifier() == "estimated from CPU time"

    basis = energy_basis([partly])
    assert (basis.basis, basis.estimated, basis.measured) == ("partly estimated", ("cpu",), ("gpu",))
    assert basis.qualifier() == "CPU part estimated from CPU time"
    assert basis.qualifier("gpu") == "" and basis.qualifier("cpu") == "estimated from CPU time"

    # trials on different bases (a study resumed elsewhere), and trials with no provenance
    assert energy_basis([measured, estimated]).basis == "mixed"
    assert energy_basis([measured, estimated]).qualifier() == "measured in some trials, estimated in others"
    bare = TrialRecord(number=3, state="COMPLETE", params={}, metrics={}, constraints={})
    assert energy_basis([bare]).basis == "unknown"
    assert energy_basis([]).basis == "unknown"
    assert energy_basis([bare, estimated]).basis == "mixed"
    # an estimate that is not greenml's CPU-time estimate is only called an estimate
    other = energy_basis([_trial(4, {"cpu": "estimated"}, backend="codecarbon")])
    assert not other.cpu_time and other.qualifier() == "estimated"


def test_metric_labels_carry_the_vocabularys_units_and_the_basis() -> None:
    estimated = energy_basis([_trial(0, {"cpu": "estimated"})])
    partly = energy_basis([_trial(0, {"gpu": "measured", "cpu": "estimated"})])
    measured = energy_basis([_trial(0, {"cpu": "measured"})])
    assert metric_label("latency_ms") == "latency_ms (ms)"
    assert metric_label("latency_ms", estimated) == "latency_ms (ms)"  # not an energy figure
    assert metric_label("accuracy") == "accuracy"  # no unit
    assert metric_label("model_bytes") == "model_bytes (bytes)"
    assert metric_label("batch_throughput_per_s") == "batch_throughput_per_s (1/s)"
    assert metric_label("not_a_metric") == "not_a_metric"
    assert metric_label("inference_energy_j") == "inference_energy_j (J)"
    assert metric_label("inference_energy_j", measured) == "inference_energy_j (J)"
    assert metric_label("inference_energy_j", estimated) == "inference_energy_j (J, estimated from CPU time)"
    assert metric_label("train_energy_j", estimated) == "train_energy_j (J, estimated from CPU time)"
    assert (
        metric_label("inference_energy_j", partly)
        == "inference_energy_j (J, CPU part estimated from CPU time)"
    )
    assert metric_label("inference_gpu_energy_j", partly) == "inference_gpu_energy_j (J)"
    # for axis titles, the basis on a line of its own
    assert metric_label("inference_energy_j", estimated, lines=True) == (
        "inference_energy_j (J)<br>estimated from CPU time"
    )
    assert metric_label("inference_energy_j", measured, lines=True) == "inference_energy_j (J)"
    assert (
        metric_label("inference_cpu_energy_j", partly)
        == "inference_cpu_energy_j (J, estimated from CPU time)"
    )


def test_estimated_share_of_search_energy() -> None:
    both = {"gpu": "measured", "cpu": "estimated"}
    trials = [
        _trial(0, both, {"gpu": 30.0, "cpu": 10.0, "dram": None}),
        _trial(1, both, {"gpu": 50.0, "cpu": 10.0, "dram": None}, state="FAIL"),  # failed trials count
        _trial(2, both),  # no per-component split recorded: left out
        # an older record whose total left the estimated CPU out: only its total counts
        _trial(3, both, {"gpu": 20.0, "cpu": 5.0, "dram": None}, basis="measured", total=["gpu"]),
    ]
    assert search_estimate_share(trials) == pytest.approx(20.0 / 120.0)
    assert search_estimate_share(trials[:1]) == pytest.approx(0.25)
    assert search_estimate_share([_trial(0, {"cpu": "measured"}, {"cpu": 5.0})]) is None  # nothing estimated
    assert search_estimate_share(trials[2:3]) is None  # no split
    assert search_estimate_share([_trial(0, {"cpu": "estimated"}, {"cpu": 5.0})]) == 1.0


def test_estimated_share_of_inference_energy() -> None:
    both = {"gpu": "measured", "cpu": "estimated"}
    trials = [
        _trial(0, both, inference={"gpu": 3.0, "cpu": 1.0}),  # 25%
        _trial(1, both, inference={"gpu": 1.0, "cpu": 1.0}),  # 50%
        _trial(2, both, inference={"gpu": 1.0, "cpu": 9.0}),  # 90%
        _trial(3, both, inference={"gpu": 2.0, "cpu": 8.0}),  # 80%
        _trial(4, both, inference={"gpu": 1.0, "cpu": 1.0}, state="FAIL"),  # not complete
        _trial(5, both),  # no split
        _trial(6, {"gpu": "measured"}, inference={"gpu": 1.0, "cpu": 1.0}),  # a part of no known kind
    ]
    assert inference_estimate_shares(trials) == pytest.approx([0.25, 0.5, 0.9, 0.8])
    share = estimate_share(trials, front=[0, 1, 2, 5])
    assert share is not None
    assert share.components == ("cpu",)
    assert share.front == pytest.approx(0.5) and share.front_trials == 3
    assert share.complete == pytest.approx(0.65) and share.complete_trials == 4
    assert share.search is None  # no trial recorded its whole energy per component
    assert estimate_share([_trial(0, {"cpu": "measured"}, inference={"cpu": 1.0})]) is None


def test_synthetic_studies_record_what_the_search_writes(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(ValueError, match="unknown basis 'guessed'"):
        provenance("guessed")
    partly = load_record(make_study(storage, "partly", n_trials=40, basis="partly estimated"))
    assert partly.attrs["device"] == partly.attrs["deploy_device"] == "cuda:0"
    complete = [t for t in partly.trials if t.state == "COMPLETE"]
    assert {t.deploy_device for t in complete} == {"cpu", "cuda:0"}
    assert all(t.device == "cuda:0" for t in partly.trials)
    for trial in complete:
        parts = [trial.metrics[f"inference_{c}_energy_j"] for c in ("gpu", "cpu")]
        assert sum(parts) == pytest.approx(trial.metrics["inference_energy_j"])
        assert "inference_dram_energy_j" not in trial.metrics  # not metered: absent, never 0
        assert trial.energy_components_j["dram"] is None
        assert sum(v or 0.0 for v in trial.energy_components_j.values()) == pytest.approx(trial.energy_j)
    noted = [t for t in partly.trials if t.notes]
    assert noted and all(t.notes == (NO_PRUNABLE_LAYER,) for t in noted)
    assert all(t.params["pruning"] == "structured" and t.params["n_layers"] == 1 for t in noted)
    basis = energy_basis(partly.trials)
    assert (basis.basis, basis.estimated, basis.measured) == ("partly estimated", ("cpu",), ("gpu",))
    share = estimate_share(partly.trials, front_numbers(partly.trials, partly.objectives))
    assert share is not None and share.search == pytest.approx(0.25)  # the synthetic split
    assert share.complete is not None and 0.2 <= share.complete <= 0.65

    measured = load_record(make_study(storage, "measured", n_trials=10, basis="measured"))
    assert energy_basis(measured.trials).basis == "measured"
    assert estimate_share(measured.trials) is None
    estimated = load_record(make_study(storage, "estimated", n_trials=10))
    basis = energy_basis(estimated.trials)
    assert (basis.basis, basis.cpu_time) == ("estimated", True)
    assert {c for t in estimated.trials for c, v in t.energy_components_j.items() if v is not None} == {"cpu"}
    assert set(COMPONENTS) == {c for t in estimated.trials for c in t.energy_components_j}
