"""The data behind the report's figures, tested apart from the drawing and cross-checked with Optuna."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna._hypervolume import compute_hypervolume

from greenml.errors import ConfigError
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
from greenml.report._data import to_loss
from greenml.testing.studies import make_study
from greenml.trial import PHASES

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
