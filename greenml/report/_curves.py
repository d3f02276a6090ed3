"""The learning curves a report draws: one line per trial that trained, as its record keeps it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from greenml.report._record import CurvePoint, TrialRecord, planned_epochs

__all__ = ["CurveLine", "learning_curves"]


@dataclass(frozen=True)
class CurveLine:
    """One trial's learning curve as the report draws it."""

    number: int
    status: str  # the trial's place (classify): front, dominated, infeasible, stopped, failed
    points: tuple[CurvePoint, ...]
    epochs: int | None  # the training epochs it sampled
    stopped_at: int | None  # the epoch the early-stopping rule stopped it after; None: not stopped


def learning_curves(trials: Sequence[TrialRecord], status: Mapping[int, str]) -> list[CurveLine]:
    """The learning curves of the complete, stopped and failed trials that recorded one, in
    trial order. Running trials are left out until they finish (their stored curve stops at
    their last rung), and trials stopped before training have no curve to draw."""
    lines = []
    for trial in sorted(trials, key=lambda t: t.number):
        if not trial.curve or not (trial.state in ("COMPLETE", "FAIL") or trial.stopped is not None):
            continue
        lines.append(
            CurveLine(
                trial.number, status[trial.number], trial.curve, planned_epochs(trial), trial.stopped_at
            )
        )
    return lines
