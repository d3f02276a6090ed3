"""The report's data, apart from the drawing: front, hypervolume, footprint, importances, basis, units."""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import numpy as np
import optuna
import pytest
from _report_helpers import OBJECTIVES
from optuna._hypervolume import compute_hypervolume

from greenml.errors import ConfigError
from greenml.metrics import COMPONENTS, MAXIMIZED, PHASES
from greenml.models import knee_trial
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
from greenml.report._display import page_units, parameter_text, shown_values
from greenml.report._front import FrontMarks
from greenml.report._labels import metric_label
from greenml.report._loss import loss_form as to_loss
from greenml.report._record import TrialRecord
from greenml.storage import default_storage
from greenml.testing.studies import NO_PRUNABLE_LAYER, make_study, provenance
from greenml.units import QUANTITIES, plain

optuna.logging.set_verbosity(optuna.logging.ERROR)


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
