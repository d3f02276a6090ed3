"""The data behind the report's figures, tested apart from the drawing and cross-checked with Optuna."""

from __future__ import annotations

import itertools
import math
import re
import shlex
from datetime import datetime
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna._hypervolume import compute_hypervolume

from greenml.errors import ConfigError
from greenml.ledger import spent_energy_j
from greenml.metrics import COMPONENTS, MAXIMIZED, PHASES, TRAINING_SETTINGS
from greenml.models import knee_trial
from greenml.records import CURVE as CURVE_ATTR
from greenml.records import EARLY_COST as COST_ATTR
from greenml.records import STOPPED as STOPPED_ATTR
from greenml.report import (
    classify,
    default_reference,
    footprint,
    front_marks,
    front_numbers,
    hypervolume,
    hypervolume_history,
    importances,
    load_record,
    model_command,
    parse_reference,
)
from greenml.report._basis import (
    energy_basis,
    estimate_share,
    inference_estimate_shares,
    search_estimate_share,
)
from greenml.report._curves import learning_curves
from greenml.report._display import page_units, parameter_text, shown_values
from greenml.report._front import FrontMarks
from greenml.report._labels import metric_label
from greenml.report._loss import loss_form as to_loss
from greenml.report._record import CurvePoint, StudyRecord, TrialRecord, architecture
from greenml.report._stopping import ALL_COMPLETE, OWN_CURVE, SAME_ARCHITECTURE, stopping_savings
from greenml.report._workers import hardware_differences, workers
from greenml.storage import default_storage
from greenml.testing.studies import NO_PRUNABLE_LAYER, make_study, provenance, worker
from greenml.units import QUANTITIES, plain

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
        # a phase a trial did not run (the cost phase, without early stopping) spent nothing
        from_metrics = sum(t.metrics.get(f"{phase}_energy_j", 0.0) for t in complete)
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
    found = importances(trials, OBJECTIVES, "mdi")
    values = found.values
    assert found.reason is None and set(values) == set(OBJECTIVES)
    # what they rest on: the complete trials, counted from the raw records
    assert found.trials == sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) > 10
    assert found.reliable
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
    found = importances(study.get_trials(), OBJECTIVES)
    assert found.values == {} and found.reason == "needs at least 2 complete trials, the study has 1"
    assert found.trials == 1
    few = make_study(f"sqlite:///{tmp_path / 's.db'}", "few", n_trials=4, fail_every=0)
    found = importances(few.get_trials(), OBJECTIVES)
    assert found.values and found.trials == 4 and not found.reliable
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


def _workers_study(*machines: dict[str, object], **options: object) -> optuna.Study:
    return make_study(None, n_trials=13, workers=machines, **options)  # type: ignore[arg-type]


def test_every_worker_seen_in_the_trials_is_listed() -> None:
    study = _workers_study(worker("node-a"), worker("node-b"), worker("node-c"), stale=[4, 12])
    listed = workers(load_record(study))
    # Read back from the raw records: the worker of every trial that ran (a waiting retry has not).
    ran: dict[int, int] = {}
    for trial in study.get_trials():
        if trial.state != optuna.trial.TrialState.WAITING:
            number = trial.user_attrs["worker"]["number"]
            ran[number] = ran.get(number, 0) + 1
    assert [(w.number, w.host, w.pid, w.trials) for w in listed] == [
        (0, "node-a", 1000, ran[0]),
        (1, "node-b", 1001, ran[1]),
        (2, "node-c", 1002, ran[2]),
    ]
    assert sum(ran.values()) == 13  # the stale last trial's waiting retry is not counted
    assert {w.hardware["cpu"] for w in listed} == {"synthetic CPU"}
    assert {w.hardware["meter"] for w in listed} == {"estimate"}
    assert hardware_differences(listed) == []  # identical machines: comparable


@pytest.mark.parametrize(
    ("other", "differs"),
    [
        (worker("node-b", cpu="AMD EPYC 9654 (synthetic)"), ["CPU model"]),
        (worker("node-b", cpu_count=64), ["logical CPUs"]),
        (worker("node-b", gpus=["cuda:0 NVIDIA H100 (synthetic)"]), ["GPUs"]),
        (worker("node-b", basis="measured"), ["meter"]),  # RAPL beside the CPU-time estimate
        (
            worker("node-b", cpu="other", cpu_count=8, basis="measured"),
            ["CPU model", "logical CPUs", "meter"],
        ),
    ],
)
def test_workers_on_different_hardware_are_told_apart(other: dict[str, object], differs: list[str]) -> None:
    listed = workers(load_record(_workers_study(worker("node-a"), other)))
    assert len(listed) == 2
    assert hardware_differences(listed) == differs


def test_the_same_gpu_model_on_another_index_is_no_difference() -> None:
    listed = workers(
        load_record(
            _workers_study(
                worker("node-a", gpus=["cuda:0 NVIDIA H100 (synthetic)"], basis="partly estimated"),
                worker("node-a", gpus=["cuda:1 NVIDIA H100 (synthetic)"], basis="partly estimated"),
            )
        )
    )
    assert [w.number for w in listed] == [0, 1] and {w.host for w in listed} == {"node-a"}
    assert hardware_differences(listed) == []


def test_an_older_study_lists_its_study_hardware_as_one_worker(study: optuna.Study) -> None:
    record = load_record(study)
    assert all("worker" not in t.user_attrs for t in study.get_trials())  # as before workers
    (only,) = workers(record)
    assert (only.number, only.host, only.pid, only.trials) == (None, None, None, len(record.trials))
    assert only.hardware == study.user_attrs["hardware"]
    assert hardware_differences([only]) == []
    # a study created by an older greenml with no trial yet: its attribute alone
    empty = make_study(None, n_trials=0)
    (alone,) = workers(load_record(empty))
    assert alone.trials == 0 and alone.hardware == empty.user_attrs["hardware"]


def test_the_teacher_is_an_item_of_the_footprint_and_counted_in_its_total() -> None:
    study = _workers_study(worker("node-a"), worker("node-b"), ledger={"teacher": 250.0}, stale=[5])
    record = load_record(study)
    fp = footprint(record)
    (teacher,) = fp.ledger
    assert (teacher.name, teacher.energy_j, teacher.worker, teacher.host) == ("teacher", 250.0, 0, "node-a")
    assert teacher.seconds == study.user_attrs["ledger:teacher"]["seconds"]
    assert teacher.energy_basis == "estimated"
    assert teacher.co2_g == pytest.approx(250.0 / 3.6e6 * 475.0)
    # the total is the study's spent energy as the ledger counts it: trials (the stale one with
    # what it spent before its worker died) and the teacher, never inside a trial's phase
    trials_j = sum(
        t.user_attrs.get("trial_energy_j", t.user_attrs.get("trial_energy_so_far_j", 0.0))
        for t in study.get_trials()
    )
    assert fp.energy_j == pytest.approx(trials_j + 250.0)
    assert fp.energy_j == pytest.approx(spent_energy_j(study))
    assert fp.trial_energy_j == pytest.approx(trials_j)
    assert sum(fp.phase_energy_j.values()) == pytest.approx(trials_j)  # the phases hold the trials alone
    assert fp.co2_g == pytest.approx(fp.energy_j / 3.6e6 * 475.0)
    assert fp.energy_basis == "estimated"
    # the hypervolume's energy axis counts the teacher from the start
    reference = default_reference([record], OBJECTIVES)
    assert reference is not None
    history = hypervolume_history(record, OBJECTIVES, reference)
    first = record.finished()[0]
    assert history[0].energy_kwh == pytest.approx((250.0 + (first.energy_j or 0.0)) / 3.6e6)
    finished_j = sum(t.energy_j or 0.0 for t in record.finished())
    assert history[-1].energy_kwh == pytest.approx((250.0 + finished_j) / 3.6e6)


def test_other_ledger_entries_are_items_too() -> None:
    record = load_record(make_study(None, n_trials=6, ledger={"teacher": 10.0, "calibration": 2.5}))
    fp = footprint(record)
    assert [(item.name, item.energy_j, item.worker) for item in fp.ledger] == [
        ("calibration", 2.5, None),  # booked by no recorded worker (a study without workers)
        ("teacher", 10.0, None),
    ]
    assert fp.energy_j == pytest.approx(sum(t.energy_j or 0.0 for t in record.trials) + 12.5)
    assert footprint(load_record(make_study(None, n_trials=6))).ledger == []


def test_a_trial_whose_worker_died_is_told_and_its_retry_linked() -> None:
    study = _workers_study(worker("node-a"), worker("node-b"), stale=[2, 12], fail_every=0)
    record = load_record(study)
    by_number = {t.number: t for t in record.trials}
    dead, retry = by_number[2], by_number[3]
    assert dead.state == "FAIL" and dead.stale and dead.traceback is None
    assert dead.error == "its worker stopped sending heartbeats (killed or lost); retried as trial 3"
    assert (dead.worker_number, dead.host) == (0, "node-a")
    assert dead.energy_j == study.trials[2].user_attrs["trial_energy_so_far_j"] > 0  # spent before it died
    assert (retry.retry_of, retry.state, retry.error, retry.worker_number) == (2, "COMPLETE", None, 1)
    assert retry.params == dead.params
    # the last trial's retry is queued, not run: no worker, no energy, though it copies the dead one's
    last, queued = by_number[12], by_number[13]
    assert last.error is not None and last.error.endswith("; retried as trial 13")
    assert (queued.state, queued.retry_of, queued.worker, queued.energy_j) == ("WAITING", 12, None, None)
    assert "worker" in study.trials[13].user_attrs
    assert [t.number for t in record.trials if t.stale] == [2, 12]
    # a stale trial never wrote its provenance: the study's basis stays what its trials recorded
    assert energy_basis(record.trials).basis == "estimated"
    assert footprint(record).energy_basis == "estimated"
    assert footprint(record).co2_g is not None
    # a trial that failed with an error of its own is no stale trial
    failed = load_record(make_study(None, n_trials=9, fail_every=9)).trials[8]
    assert failed.error == "RuntimeError: CUDA out of memory (synthetic)" and not failed.stale
    # nor is a stale trial nobody retried (its retries spent) told it was
    bare = optuna.create_study()
    bare.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    (alone,) = load_record(bare).trials
    assert alone.stale and alone.error == "its worker stopped sending heartbeats (killed or lost)"


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_synthetic_workers_and_retries_record_what_the_search_and_optuna_write() -> None:
    machines = (worker("node-a"), worker("node-b", basis="partly estimated"))
    study = make_study(None, n_trials=8, workers=machines, ledger={"teacher": 40.0}, stale=[3, 7])
    trials = study.get_trials()
    for trial in trials[:-1]:  # every trial that ran: its worker, and its machine with its meter
        index = trial.number % 2
        assert trial.user_attrs["worker"] == {
            "number": index,
            "host": f"node-{'ab'[index]}",
            "pid": 1000 + index,
        }
        assert trial.user_attrs["hardware"]["host"] == trial.user_attrs["worker"]["host"]
        if "provenance" in trial.user_attrs:
            assert trial.user_attrs["hardware"]["meter"] == trial.user_attrs["provenance"]["meter"]
    assert [t.user_attrs["hardware"]["meter"] for t in trials[:2]] == ["estimate", "nvml+estimate"]
    assert study.user_attrs["hardware"] == trials[0].user_attrs["hardware"]  # the first worker's
    entry = study.user_attrs["ledger:teacher"]
    assert entry["worker"] == trials[0].user_attrs["worker"] and entry["energy_j"] == 40.0
    assert study.user_attrs["teacher"]["artifact_id"] == "synthetic"
    dead = trials[3]
    assert dead.state == optuna.trial.TrialState.FAIL
    assert set(dead.user_attrs) == {"worker", "hardware", "trial_energy_so_far_j"}  # no error, no window
    # The retries are what Optuna's own callback makes of the dead trials.
    for number, retry in ((3, trials[4]), (7, trials[8])):
        replay = optuna.create_study(directions=study.directions)
        optuna.storages.RetryHeartbeatStaleTrialCallback()(replay, trials[number])
        (made,) = replay.get_trials()
        kept = {key: retry.system_attrs[key] for key in ("failed_trial", "retry_history")}
        assert made.system_attrs == kept == {"failed_trial": number, "retry_history": [number]}
        assert made.params == retry.params
    assert trials[8].state == optuna.trial.TrialState.WAITING
    assert trials[8].user_attrs == trials[7].user_attrs  # the queued retry copies them, as Optuna's does


def test_the_knee_and_the_bests_are_those_of_greenml_model(study: optuna.Study) -> None:
    record = load_record(study)
    marks = front_marks(record.trials, record.objectives)
    assert marks.knee == knee_trial(study).number  # the trial `greenml model --pick knee` takes
    # Each objective's best, read from Optuna's own front and values (ties: lowest number).
    front = sorted(study.best_trials, key=lambda t: t.number)
    for index, name in enumerate(OBJECTIVES):
        sign = -1.0 if name in MAXIMIZED else 1.0
        assert marks.best[name] == min(front, key=lambda t: (sign * t.values[index], t.number)).number
    assert len(set(marks.best.values())) > 1  # a front with a trade-off: different trials win
    assert marks.labels(marks.best["accuracy"])[-1] == "best accuracy"
    empty = make_study(None, n_trials=3, fail_every=1)
    assert front_marks(load_record(empty).trials, OBJECTIVES) == FrontMarks(None, {})


def _point(number: int, accuracy: float, energy: float, size: float) -> TrialRecord:
    metrics = {"accuracy": accuracy, "inference_energy_j": energy, "model_bytes": size}
    return TrialRecord(number=number, state="COMPLETE", params={}, metrics=metrics, constraints={})


def test_ties_go_to_the_lowest_trial_number_and_marks_say_what_they_are() -> None:
    objectives = ("accuracy", "inference_energy_j", "model_bytes")
    # 3 and 1 tie on every objective (both on the front, as Optuna keeps them); 2 is smallest;
    # 5 is as accurate as 3 and 1 but costlier in energy: dominated.
    trials = [
        _point(3, 0.9, 2e-5, 4000.0),
        _point(1, 0.9, 2e-5, 4000.0),
        _point(2, 0.6, 3e-5, 900.0),
        _point(5, 0.9, 9e-5, 4000.0),
    ]
    marks = front_marks(trials, objectives)
    assert marks.best == {"accuracy": 1, "inference_energy_j": 1, "model_bytes": 2}
    assert marks.knee in (1, 2)
    assert marks.labels(1)[-2:] == ["best accuracy", "lowest energy per inference"]
    assert marks.labels(2)[-1] == "smallest model"
    assert marks.labels(3) == [] and marks.labels(5) == []
    # the knee of an even trade-off: the scaled point nearest the ideal
    knee = front_marks(
        [_point(0, 0.9, 9e-5, 1.0), _point(1, 0.85, 2e-5, 1.0), _point(2, 0.5, 1e-5, 1.0)], objectives
    )
    assert knee.knee == 1 and knee.labels(1) == ["knee"]


def test_the_model_command_is_quoted_and_keeps_the_password_hidden() -> None:
    hostile = "it's a study; rm -rf ~"
    command = model_command(hostile, "postgresql://alice:***@db.example:5432/studies", 7)
    assert shlex.split(command) == [
        "greenml",
        "model",
        "--study",
        hostile,
        "--storage",
        "postgresql://alice:***@db.example:5432/studies",
        "--trial",
        "7",
        "-o",
        "model-7",
    ]
    # the default storage goes without saying; the search's --artifacts folder goes with it
    for recorded in (
        ["greenml", "search", "--artifacts", "/shared/my models"],
        ["--artifacts=/shared/my models"],
    ):
        argv = shlex.split(model_command("s", default_storage(), 3, {"command": recorded}))
        assert argv == [
            "greenml",
            "model",
            "--study",
            "s",
            "--trial",
            "3",
            "-o",
            "model-3",
            "--artifacts",
            "/shared/my models",
        ]
    # the record the report reads hides the password before any command is made of it
    record = load_record(make_study(None, n_trials=3), "postgresql://alice:s3cret@db/studies")
    assert "s3cret" not in model_command(record.name, record.storage, 0, record.attrs)


def test_a_kept_model_is_read_from_the_trial(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", directions=["maximize"])
    kept = {"artifact_id": "abc", "format": "onnx", "bytes": 10, "sha256": "0" * 64}
    for attrs in ({"model": kept}, {}):
        study.add_trial(
            optuna.trial.create_trial(values=[0.5], user_attrs={"metrics": {"accuracy": 0.5}, **attrs})
        )
    first, second = load_record(study).trials
    assert first.model == kept and second.model is None


# A number written in an exponent: 6.8e-05, 3.428e+05, 1e5.
EXPONENT = re.compile(r"\d(\.\d+)?[eE][+-]?\d")


def test_plain_numbers_never_use_an_exponent() -> None:
    for value, digits, expected in [
        (6.81894e-05, 6, "0.0000681894"),
        (342812.3, 3, "342812"),
        (0.5, 6, "0.5"),
        (1e-10, 4, "0.0000000001"),
        (-0.00123456789, 3, "-0.00123"),
        (2.0, 4, "2"),
        (9.99996, 3, "10"),
        (0.0, 3, "0"),
    ]:
        assert plain(value, digits) == expected
        assert float(expected) == pytest.approx(value, rel=10 ** (1 - digits), abs=1e-12)
    assert (
        parameter_text(1e-05) == "0.00001" and parameter_text(64) == "64" and parameter_text("none") == "none"
    )


def test_a_page_has_one_unit_per_quantity_chosen_from_all_its_values(study: optuna.Study) -> None:
    record = load_record(study)
    fp = footprint(record)
    units = page_units(record.trials, [fp])
    values = shown_values(record.trials, [fp])
    # every inference energy of every trial (per component, batch, dynamic) is one quantity
    per_inference = [
        v for t in record.trials for n, v in t.metrics.items() if "inference" in n and n.endswith("_j")
    ]
    assert sorted(values["inference_energy"]) == sorted(per_inference)
    for name in ("inference_energy_j", "inference_cpu_energy_j", "batch_inference_energy_j"):
        assert units.of(name) == units.scale("inference_energy")
    # the unit shows the median of the page's values between 1 and 1000
    for quantity, found in values.items():
        scale = units.scale(quantity)
        median = sorted(abs(v) for v in found if v)[len([v for v in found if v]) // 2]
        sizes = dict(QUANTITIES[quantity])
        assert scale.size == sizes[scale.unit]
        if len(sizes) > 1 and min(sizes.values()) * 0.9995 <= median < max(sizes.values()) * 1000:
            assert 1 <= scale.value(median) < 1000, quantity
    # these synthetic trials spend tens of µJ per inference, and their models are kB
    assert units.unit("inference_energy_j") == "µJ" and units.unit("model_bytes") == "kB"
    # cells and texts in that unit, never in an exponent, however far a value is from the median
    for value in (6.819e-05, 3.4e-09, 0.021, 1.0, 1234.5):
        for text in (units.cell("inference_energy_j", value), units.text("inference_energy_j", value)):
            assert not EXPONENT.search(text), text
    assert units.text("inference_energy_j", 6.819e-05) == "68.2 µJ"
    assert units.cell("inference_energy_j", 6.819e-05) == "68.2"
    assert units.text("model_bytes", 342800.0) == "343 kB"
    assert units.cell("accuracy", 0.95123) == "0.9512"
    assert units.text("not_a_metric", 3.428e05) == "342800"


# Early stopping: what stopped trials spent and saved, their place on the energy axis, their curves.


def _curve(*energies: float) -> tuple[CurvePoint, ...]:
    """A learning curve whose cumulative training energy after epoch 1, 2, ... is ``energies``."""
    return tuple(
        CurvePoint(epoch, 0.5 + 0.01 * epoch, joules, 0.1 * epoch) for epoch, joules in enumerate(energies, 1)
    )


def _run(
    number: int,
    state: str,
    params: dict[str, object],
    energy_j: float,
    curve: tuple[CurvePoint, ...] = (),
    stopped: str | None = None,
    metrics: dict[str, float] | None = None,
    cost_j: float = 0.5,
) -> TrialRecord:
    """A hand-made trial with its energy, curve, cost phase and (stopped) the rule's reason."""
    return TrialRecord(
        number=number,
        state=state,
        params=params,
        metrics=metrics or {},
        constraints={},
        energy_j=energy_j,
        phases={"cost": {"seconds": 0.1, "energy_j": cost_j}},
        curve=curve,
        stopped=stopped,
        started=datetime(2026, 1, 1, 0, 0, number),
        completed=datetime(2026, 1, 1, 0, 0, number, 500_000),
    )


SMALL = {"n_layers": 2, "width": 64}


def _stopping_study() -> list[TrialRecord]:
    """Four complete trials (training energy per epoch: 2, 6 and 1 J, so a median of 2 and a mean
    of 3; the fourth recorded no curve), four stopped ones, a failed one with a curve and a
    pruned surplus trial."""
    return [
        _run(0, "COMPLETE", {**SMALL, "lr": 0.01, "epochs": 10}, 40.0, _curve(*range(2, 21, 2))),  # 20 J / 10
        _run(1, "COMPLETE", {**SMALL, "lr": 0.002, "epochs": 4}, 30.0, _curve(6, 12, 18, 24)),  # 24 J / 4
        _run(
            2, "COMPLETE", {"n_layers": 1, "width": 32, "epochs": 5}, 15.0, _curve(1, 2, 3, 4, 5)
        ),  # 1 J/epoch
        _run(3, "COMPLETE", {"n_layers": 3, "width": 256, "epochs": 8}, 50.0),  # no curve: no basis
        # k = 3 of E = 12: 7.5 J / 3 x (12 - 3) = 22.5 J
        _run(4, "PRUNED", {**SMALL, "epochs": 12}, 10.0, _curve(2.5, 5.0, 7.5), "stopped at epoch 3: ..."),
        # k = 0, the same architecture as 0 and 1: median(2, 6) x 10 = 40 J
        _run(5, "PRUNED", {**SMALL, "lr": 0.005, "epochs": 10}, 4.0, stopped="stopped before training: ..."),
        # k = 0, the architecture of 3 alone (no curve): median of all complete, 2 (not the mean, 3), x 6 = 12 J
        _run(6, "PRUNED", {"n_layers": 3, "width": 256, "epochs": 6}, 4.0, stopped="stopped before training"),
        # k = 0 and no sampled epochs recorded: no basis
        _run(7, "PRUNED", dict(SMALL), 3.0, stopped="stopped before training: ..."),
        _run(8, "FAIL", {**SMALL, "epochs": 9}, 6.0, _curve(2, 4)),
        _run(9, "PRUNED", {}, 0.0, cost_j=0.0),  # a surplus trial: pruned, never run, not stopped
    ]


def test_stopping_savings_by_hand() -> None:
    trials = _stopping_study()
    savings = stopping_savings(trials)
    by_number = {t.number: t for t in savings.trials}
    assert sorted(by_number) == [4, 5, 6, 7]  # the rule's trials only
    assert [(t.epochs_run, t.epochs, t.basis) for t in savings.trials] == [
        (3, 12, OWN_CURVE),
        (0, 10, SAME_ARCHITECTURE),
        (0, 6, ALL_COMPLETE),
        (0, None, None),
    ]
    assert by_number[4].saved_j == pytest.approx(22.5)
    assert by_number[5].saved_j == pytest.approx(40.0)
    assert by_number[6].saved_j == pytest.approx(12.0)
    assert by_number[7].saved_j is None
    assert savings.spent_j == pytest.approx(10.0 + 4.0 + 4.0 + 3.0)  # measured, whatever the basis
    assert savings.saved_j == pytest.approx(22.5 + 40.0 + 12.0)  # the trials with a basis
    counts = [savings.covered(b) for b in (OWN_CURVE, SAME_ARCHITECTURE, ALL_COMPLETE, None)]
    assert counts == [1, 1, 1, 1]
    assert (savings.at_rung, savings.before_training) == (1, 3)
    assert savings.cost_phase_j == pytest.approx(9 * 0.5)  # early stopping's own overhead, every trial
    # The architecture is what the space sampled: greenml's own settings (lr, epochs) are not.
    assert architecture(trials[0]) == architecture(trials[1]) == SMALL
    # With no complete trial that recorded a curve, a trial stopped before training has no basis.
    alone = stopping_savings([trials[3], trials[5]])
    assert [(t.saved_j, t.basis) for t in alone.trials] == [(None, None)]
    assert (alone.spent_j, alone.saved_j) == (4.0, 0.0)
    # No stopped trial: nothing spent or saved.
    assert stopping_savings(trials[:4]).trials == ()


def test_the_saving_basis_is_the_trials_own_architecture() -> None:
    # the same rate for every architecture but the stopped trial's: the median must be its own
    trials = [
        _run(0, "COMPLETE", {"width": 32, "epochs": 2}, 9.0, _curve(1, 2)),
        _run(1, "COMPLETE", {"width": 32, "epochs": 2}, 9.0, _curve(1, 2)),
        _run(2, "COMPLETE", {"width": 256, "epochs": 2}, 9.0, _curve(8, 16)),
        _run(3, "PRUNED", {"width": 256, "epochs": 5}, 1.0, stopped="stopped before training"),
    ]
    (stopped,) = stopping_savings(trials).trials
    assert (stopped.saved_j, stopped.basis) == (40.0, SAME_ARCHITECTURE)  # 8 J/epoch x 5


def test_the_training_settings_are_those_every_trial_samples() -> None:
    """The report's list of greenml's own parameters (not a space's architecture) is the trial's."""
    from types import SimpleNamespace

    from greenml.training import suggest_settings as _suggest_settings

    sampled: list[str] = []

    class Recorder:
        def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
            sampled.append(name)
            return low

        def suggest_int(self, name: str, low: int, high: int) -> int:
            sampled.append(name)
            return low

        def suggest_categorical(self, name: str, choices: list[object]) -> object:
            sampled.append(name)
            return choices[-1]  # distill, pruning and ONNX Runtime: every conditional setting

    _suggest_settings(Recorder(), SimpleNamespace(teacher=object(), epochs=(1, 2), finetune_epochs=(0, 1)))
    assert set(sampled) == TRAINING_SETTINGS


def test_stopped_trials_advance_the_energy_axis_never_the_hypervolume() -> None:
    objectives = ("accuracy", "latency_ms")
    reference = {"accuracy": 1.0, "latency_ms": 10.0}  # loss form
    good = _run(0, "COMPLETE", {}, 10.0, metrics={"accuracy": 0.8, "latency_ms": 5.0})
    # stopped, with figures that would dominate the front were it counted (it never is)
    stopped = _run(
        1, "PRUNED", {}, 5.0, stopped="stopped at epoch 1: ...", metrics={"accuracy": 0.99, "latency_ms": 1.0}
    )
    worse = _run(2, "COMPLETE", {}, 20.0, metrics={"accuracy": 0.7, "latency_ms": 8.0})
    surplus = _run(3, "PRUNED", {}, 0.0)
    record = StudyRecord("s", "", {}, objectives, (good, stopped, worse, surplus))
    history = hypervolume_history(record, objectives, reference)
    assert [(p.trial, p.finished, p.stopped) for p in history] == [(0, 1, False), (1, 2, True), (2, 3, False)]
    assert [p.energy_j for p in history] == pytest.approx([10.0, 15.0, 35.0])  # the stopped trial's 5 J
    # (1 - 0.2) x (10 - 5) / (1 x 10): trial 0 alone, before and after the stopped trial
    assert [p.hypervolume for p in history] == pytest.approx([0.4, 0.4, 0.4])
    assert classify(record.trials, objectives) == {0: "front", 1: "stopped", 2: "dominated", 3: "pruned"}


def test_a_synthetic_early_stopping_study_counts_its_stopped_trials_energy() -> None:
    record = load_record(make_study(None, n_trials=24, stop_every=3, seed=2))
    stopped = [t for t in record.trials if t.stopped is not None]
    assert stopped and {t.state for t in stopped} == {"PRUNED"}
    reference = default_reference([record], OBJECTIVES)
    assert reference is not None
    history = hypervolume_history(record, OBJECTIVES, reference)
    assert {p.trial for p in history} == {t.number for t in record.trials}  # none running or waiting
    assert history[-1].energy_j == pytest.approx(footprint(record).energy_j)  # the whole search's energy
    for before, point in itertools.pairwise(history):
        if point.stopped:
            assert point.hypervolume == before.hypervolume
    fp = footprint(record)
    assert fp.stopping is not None and fp.stopping.spent_j == pytest.approx(
        sum(t.energy_j or 0 for t in stopped)
    )
    assert fp.stopping.cost_phase_j > 0
    assert fp.phase_energy_j["cost"] == pytest.approx(fp.stopping.cost_phase_j)
    # a study searched without early stopping has no stopping figures
    assert footprint(load_record(make_study(None, n_trials=6, curves=True))).stopping is None
    assert footprint(load_record(make_study(None, n_trials=6))).stopping is None


def test_learning_curves_of_the_trials_that_trained() -> None:
    trials = _stopping_study()
    status = {t.number: "dominated" for t in trials} | {4: "stopped", 5: "stopped", 8: "failed"}
    running = _run(10, "RUNNING", {"epochs": 5}, 1.0, _curve(1.0))
    lines = learning_curves([*trials, running], status)
    # complete ones with a curve, the one stopped at a rung, the failed one; not the trials
    # stopped before training (no epoch), not the running one (its curve stops at its last rung)
    assert [(line.number, line.status, line.stopped_at, line.epochs) for line in lines] == [
        (0, "dominated", None, 10),
        (1, "dominated", None, 4),
        (2, "dominated", None, 5),
        (4, "stopped", 3, 12),
        (8, "failed", None, 9),
    ]
    assert [p.energy_j for p in lines[3].points] == [2.5, 5.0, 7.5]


def test_stored_curves_and_reasons_are_read_as_the_search_writes_them() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    reason = "stopped at epoch 2: ranked 3 of 3 trials at this rung (Pareto front 2); the best 1 go on"
    curve = [
        {"epoch": 2, "accuracy": 0.6, "energy_j": 2.0, "seconds": 0.2},
        {"epoch": 1, "accuracy": 0.4, "energy_j": 1.0, "seconds": 0.1},
        {"epoch": 3, "accuracy": "n/a"},  # unreadable: dropped
    ]
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED,
            user_attrs={STOPPED_ATTR: reason, CURVE_ATTR: curve, "trial_energy_j": 3.0},
        )
    )
    study.add_trial(
        optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, user_attrs={"surplus": "x"})
    )
    stopped, surplus = load_record(study).trials
    assert stopped.stopped == reason and stopped.stopped_at == 2
    assert stopped.curve == (CurvePoint(1, 0.4, 1.0, 0.1), CurvePoint(2, 0.6, 2.0, 0.2))
    assert (surplus.stopped, surplus.stopped_at, surplus.curve) == (None, None, ())


def test_synthetic_stopped_trials_are_stored_as_the_search_stores_them() -> None:
    from greenml.search._rungs import counts_toward_trials, is_stopped

    study = make_study(None, n_trials=24, stop_every=3, seed=5)
    trials = study.get_trials()
    stopped = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert stopped and all(is_stopped(t) and counts_toward_trials(t) for t in stopped)
    before = [t for t in stopped if CURVE_ATTR not in t.user_attrs]
    assert before and len(before) < len(stopped)  # some before training, some at a rung
    for trial in stopped:
        attrs = trial.user_attrs
        assert attrs[STOPPED_ATTR].startswith(
            "stopped before training" if trial in before else "stopped at epoch"
        )
        cost = attrs[COST_ATTR]
        assert {"latency_ms", "inference_energy_j", "model_bytes"} <= set(cost)
        # metrics: the early cost and the window's figures (every phase, 0 where not run), no accuracy
        metrics = attrs["metrics"]
        assert metrics == {**cost, **{k: v for k, v in metrics.items() if k not in cost}}
        assert (
            "accuracy" not in metrics and metrics["cost_energy_j"] > 0 and metrics["benchmark_energy_j"] == 0
        )
        assert {f"{p}_energy_j" for p in PHASES} <= set(metrics)
        assert attrs["trial_energy_j"] == metrics["trial_energy_j"] == attrs["trial_energy_so_far_j"]
        assert set(attrs["phases"]) == ({"cost"} if trial in before else {"cost", "train"})
        if trial not in before:
            k = int(attrs[STOPPED_ATTR].split()[3].rstrip(":"))
            assert [p["epoch"] for p in attrs[CURVE_ATTR]] == list(range(1, k + 1))
            assert k < trial.params["epochs"]
    for trial in trials:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert [p["epoch"] for p in trial.user_attrs[CURVE_ATTR]] == list(
                range(1, trial.params["epochs"] + 1)
            )
            assert trial.user_attrs[COST_ATTR]["latency_ms"] == trial.user_attrs["metrics"]["latency_ms"]
    assert study.user_attrs["early_stopping"][0] == "mo-asha"
    # the options add records without changing the study the defaults make
    plain_study, with_curves = (
        make_study(None, n_trials=12, seed=5),
        make_study(None, n_trials=12, seed=5, curves=True),
    )
    assert [t.params for t in plain_study.trials] == [t.params for t in with_curves.trials]
    assert all(CURVE_ATTR not in t.user_attrs and COST_ATTR not in t.user_attrs for t in plain_study.trials)
    assert "early_stopping" not in plain_study.user_attrs
    assert with_curves.user_attrs["early_stopping"] == "none"
