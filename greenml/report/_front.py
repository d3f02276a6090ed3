"""The Pareto front of a study's feasible complete trials, each trial's place, and the marks.

Dominance is decided on :func:`greenml.metrics.to_loss` (a maximised metric negated), as
Optuna decides its own ``best_trials`` and as ``greenml model --pick knee`` ranks: the front, the
knee and each objective's best are then taken from the same numbers everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from greenml.metrics import to_loss
from greenml.report._labels import best_label
from greenml.report._record import TrialRecord
from greenml.results import knee_index

__all__ = [
    "FrontMarks",
    "classify",
    "feasible_complete",
    "front_marks",
    "front_numbers",
    "has_objectives",
]


def has_objectives(trial: TrialRecord, objectives: Sequence[str]) -> bool:
    """Whether the trial has a finite value of every objective."""
    return all(math.isfinite(trial.metrics.get(name, math.nan)) for name in objectives)


def feasible_complete(trials: Iterable[TrialRecord], objectives: Sequence[str]) -> list[TrialRecord]:
    """The complete trials that satisfy every constraint and have every objective."""
    return [t for t in trials if t.feasible and has_objectives(t, objectives)]


def front_numbers(trials: Sequence[TrialRecord], objectives: Sequence[str]) -> list[int]:
    """Numbers of the Pareto-optimal feasible complete trials (ties all kept, as Optuna does)."""
    import moocore

    candidates = feasible_complete(trials, objectives)
    if not candidates:
        return []
    losses = np.array(
        [[to_loss(name, trial.metrics[name]) for name in objectives] for trial in candidates], dtype=float
    ).reshape(len(candidates), len(objectives))
    keep = moocore.is_nondominated(losses, keep_weakly=True)
    return sorted(trial.number for trial, kept in zip(candidates, keep, strict=True) if kept)


def classify(trials: Sequence[TrialRecord], objectives: Sequence[str]) -> dict[int, str]:
    """Each trial's place: front, dominated, infeasible, failed, stopped (by the early-stopping
    rule), or its Optuna state in lowercase."""
    front = set(front_numbers(trials, objectives))
    status = {}
    for trial in trials:
        if trial.number in front:
            status[trial.number] = "front"
        elif trial.state == "COMPLETE":
            status[trial.number] = "infeasible" if not trial.feasible else "dominated"
        elif trial.state == "FAIL":
            status[trial.number] = "failed"
        elif trial.stopped is not None:
            status[trial.number] = "stopped"
        else:
            status[trial.number] = trial.state.lower()
    return status


@dataclass(frozen=True)
class FrontMarks:
    """The front trials a reader is likely to choose between: the knee and the best per objective."""

    knee: int | None  # None while the front is empty
    best: dict[str, int]  # objective -> the front trial with its best value (ties: lowest number)

    def labels(self, number: int) -> list[str]:
        """What marks trial ``number`` carries: ``knee``, ``best accuracy``, ``lowest latency``..."""
        labels = ["knee"] if number == self.knee else []
        return labels + [best_label(name) for name, best in self.best.items() if best == number]


def front_marks(trials: Sequence[TrialRecord], objectives: Sequence[str]) -> FrontMarks:
    """The knee (:func:`greenml.results.knee_index` over the front in trial-number order, the
    trial ``greenml model --pick knee`` takes, from the same losses) and each objective's best
    front trial."""
    by_number = {t.number: t for t in trials}
    front = [by_number[number] for number in front_numbers(trials, objectives)]
    if not front:
        return FrontMarks(None, {})
    losses = [[to_loss(name, t.metrics[name]) for name in objectives] for t in front]
    best = {name: _best(front, name) for name in objectives}
    return FrontMarks(front[knee_index(losses)].number, best)


def _best(front: Sequence[TrialRecord], name: str) -> int:
    return min(front, key=lambda t: (to_loss(name, t.metrics[name]), t.number)).number
