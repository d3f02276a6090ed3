"""The report's early-stopping data: stopped trials' energy spent and saved, the energy axis, curves."""

from __future__ import annotations

import itertools
from datetime import datetime

import optuna
import pytest
from _report_helpers import OBJECTIVES

from greenml.metrics import PHASES, TRAINING_SETTINGS
from greenml.records import CURVE as CURVE_ATTR
from greenml.records import EARLY_COST as COST_ATTR
from greenml.records import STOPPED as STOPPED_ATTR
from greenml.report import classify, default_reference, footprint, hypervolume_history, load_record
from greenml.report._curves import learning_curves
from greenml.report._record import CurvePoint, StudyRecord, TrialRecord, architecture
from greenml.report._stopping import ALL_COMPLETE, OWN_CURVE, SAME_ARCHITECTURE, stopping_savings
from greenml.testing.studies import make_study

optuna.logging.set_verbosity(optuna.logging.ERROR)


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
