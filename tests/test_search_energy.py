"""The search's own computation is part of its footprint: each trial's window opens before
Optuna asks the sampler for it, so a sampler's proposal is the trial's first phase, ``propose``."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest

from greenml.config import MeasureConfig
from greenml.ledger import spent_energy_j
from greenml.search import SearchConfig, prepare, run
from greenml.storage import open_storage
from greenml.testing.synthetic import evaluate

WATTS_PER_CORE = 10.0


class ThinkingSampler(optuna.samplers.RandomSampler):
    """Random proposals after ``cpu_s`` of CPU time in the relative step, as a GP sampler spends
    fitting its model before each trial."""

    def __init__(self, cpu_s: float, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.cpu_s = cpu_s

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        end = time.process_time() + self.cpu_s
        while time.process_time() < end:
            pass
        return {}


def _search(
    tmp_path: Path, sampler: optuna.samplers.BaseSampler, queued: dict[str, Any] | None = None
) -> list[optuna.trial.FrozenTrial]:
    config = SearchConfig(
        storage=f"sqlite:///{tmp_path}/energy.db",
        study=f"energy-{uuid.uuid4().hex[:8]}",
        trials=3,
        measure=MeasureConfig(meter="estimate", idle_seconds=0, watts_per_core=WATTS_PER_CORE),
        distillation=False,
        artifacts=str(tmp_path / "artifacts"),
    )
    search = prepare(config, evaluate=evaluate)
    search.study.sampler = sampler
    if queued is not None:
        search.study.enqueue_trial(queued)
    try:
        run(search)
    finally:
        search.close()
    study = optuna.load_study(study_name=config.study_name, storage=open_storage(config.storage_url))
    trials = study.get_trials(deepcopy=False)
    assert spent_energy_j(study) == pytest.approx(sum(t.user_attrs["trial_energy_j"] for t in trials))
    return trials


def test_a_samplers_proposal_is_charged_to_the_trial_it_proposes(tmp_path: Path) -> None:
    trials = _search(tmp_path, ThinkingSampler(cpu_s=0.3))
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for trial in trials:
        propose = trial.user_attrs["phases"]["propose"]
        # The estimate charges CPU time at the watts per core: 0.3 s is 3 J, and a little more
        # for the storage's work in the same step.
        assert propose["seconds"] >= 0.3
        assert 0.3 * WATTS_PER_CORE <= propose["energy_j"] < 0.6 * WATTS_PER_CORE
        metrics = trial.user_attrs["metrics"]
        assert metrics["propose_energy_j"] == pytest.approx(propose["energy_j"])
        assert metrics["trial_energy_j"] >= propose["energy_j"] + metrics["train_energy_j"]
        assert trial.user_attrs["trial_energy_j"] == pytest.approx(metrics["trial_energy_j"])


def test_a_sampler_that_proposes_at_once_costs_next_to_nothing(tmp_path: Path) -> None:
    trials = _search(tmp_path, optuna.samplers.RandomSampler(seed=0))
    assert all(t.user_attrs["phases"]["propose"]["energy_j"] < 0.1 * WATTS_PER_CORE for t in trials)


def test_a_queued_trial_is_not_proposed(tmp_path: Path) -> None:
    """Its parameters are fixed, so Optuna never asks the sampler for them; nor does greenml."""
    trials = _search(tmp_path, ThinkingSampler(cpu_s=0.3), queued={"x": 0.5, "depth": 3, "kind": "wide"})
    assert trials[0].params == {"x": 0.5, "depth": 3, "kind": "wide"}
    # In joules of the CPU-time estimate (10 W per core-second): CPU time, which a busy machine
    # does not stretch the way it stretches wall time.
    assert trials[0].user_attrs["phases"]["propose"]["energy_j"] < 0.3 * WATTS_PER_CORE
    assert all(t.user_attrs["phases"]["propose"]["energy_j"] >= 0.3 * WATTS_PER_CORE for t in trials[1:])


class SlowToTellSampler(optuna.samplers.RandomSampler):
    """Random proposals; ``cpu_s`` of CPU time in ``after_trial``, once Optuna has the result."""

    def __init__(self, cpu_s: float, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.cpu_s = cpu_s

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        end = time.process_time() + self.cpu_s
        while time.process_time() < end:
            pass


def test_what_the_worker_does_between_trials_is_the_next_trials_propose_phase(tmp_path: Path) -> None:
    """Storing a result (the sampler's after_trial here) comes after its trial's window has ended:
    it is charged to the next trial, and only the last one's goes unmetered."""
    trials = _search(tmp_path, SlowToTellSampler(cpu_s=0.3))
    propose = [t.user_attrs["phases"]["propose"]["energy_j"] for t in trials]  # CPU time x 10 W
    threshold = 0.3 * WATTS_PER_CORE
    assert propose[0] < threshold and all(joules >= threshold for joules in propose[1:]), propose


class FailingSampler(ThinkingSampler):
    """Thinks, then fails: a GP fit that raises."""

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
        raise RuntimeError("the model fit diverged")


def _one_failed_trial(
    tmp_path: Path, evaluate: Any, sampler: optuna.samplers.BaseSampler | None = None
) -> tuple[optuna.Study, optuna.trial.FrozenTrial]:
    """A one-trial search whose trial fails, and that trial as stored."""
    config = SearchConfig(
        storage=f"sqlite:///{tmp_path}/fail.db",
        study=f"fail-{uuid.uuid4().hex[:8]}",
        trials=1,
        max_consecutive_failures=1,
        measure=MeasureConfig(meter="estimate", idle_seconds=0, watts_per_core=WATTS_PER_CORE),
        distillation=False,
        artifacts=str(tmp_path / "artifacts"),
    )
    search = prepare(config, evaluate=evaluate)
    if sampler is not None:
        search.study.sampler = sampler
    try:
        run(search)
    finally:
        search.close()
    study = optuna.load_study(study_name=config.study_name, storage=open_storage(config.storage_url))
    (trial,) = study.trials
    assert trial.state.name == "FAIL"
    return study, trial


def test_a_proposal_that_fails_keeps_what_it_spent(tmp_path: Path) -> None:
    """The trial fails before the space builds anything; its record still has its energy."""
    study, trial = _one_failed_trial(tmp_path, evaluate, FailingSampler(cpu_s=0.3))
    assert trial.user_attrs["error"] == "RuntimeError: the model fit diverged"
    assert trial.user_attrs["phases"]["propose"]["energy_j"] >= 0.3 * WATTS_PER_CORE
    assert trial.user_attrs["trial_energy_j"] >= 0.3 * WATTS_PER_CORE
    assert spent_energy_j(study) == pytest.approx(trial.user_attrs["trial_energy_j"])


def _fails_after_training(trial: Any, ctx: Any) -> Any:
    """A stand-in evaluate that trains (0.3 s of CPU), ends its window itself and then fails, handing
    no partial result on its error (as a user's evaluate need not)."""
    from greenml.trial import trial_window

    window = trial_window(ctx, trial)
    try:
        with ctx.meter.window("train"):
            end = time.process_time() + 0.3
            while time.process_time() < end:
                pass
    finally:
        window.end()
    raise RuntimeError("the evaluation diverged")


def test_an_evaluate_that_ends_its_window_and_fails_keeps_what_it_spent(tmp_path: Path) -> None:
    study, trial = _one_failed_trial(tmp_path, _fails_after_training)
    assert trial.user_attrs["error"] == "RuntimeError: the evaluation diverged"
    assert trial.user_attrs["phases"]["train"]["energy_j"] >= 0.3 * WATTS_PER_CORE
    assert trial.user_attrs["trial_energy_j"] >= 0.3 * WATTS_PER_CORE
    assert spent_energy_j(study) == pytest.approx(trial.user_attrs["trial_energy_j"])
