"""Early stopping across workers: the rung tables are read from the storage, never from memory.

A trial under early stopping stores its deployment cost (measured before training, user
attribute ``early_cost``) and its learning curve (``learning_curve``: after each training epoch,
``epoch``, validation ``accuracy``, cumulative ``energy_j`` and ``seconds``), the curve at every
rung before it asks the rule. The rung table of epoch *r* is then every other trial of the study,
whichever worker runs it, whose stored curve reaches *r*: complete, stopped, running or failed.
The rule itself (:mod:`greenml.search._stopping`) sees plain numbers only.

A trial whose deployed artifact has the key (:func:`greenml.compress.artifact_key`) of one an
earlier trial measured does not measure it again: it reuses that trial's stored cost (user
attribute ``early_cost_from`` names the trial), so its cost phase is only a build and a prune.

Each trial's entry is ``(1 - validation accuracy at the rung, *cost losses)``: the early cost of
each cost objective, in the objectives' order (negated where maximised). Complete trials compared
before training use their final accuracy and cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from greenml import records
from greenml.metrics import to_loss
from greenml.search._stopping import RungEntry

__all__ = ["StudyStopping", "counts_toward_trials", "curve_at", "is_stopped"]


def is_stopped(trial: Any) -> bool:
    """Whether the trial was stopped early by the rule (not a surplus trial or a failure)."""
    return trial.state.name == "PRUNED" and records.trial_stopped(trial) is not None


def counts_toward_trials(trial: Any) -> bool:
    """Whether a finished trial counts toward ``--trials``: complete, or stopped by the rule."""
    return trial.state.name == "COMPLETE" or is_stopped(trial)


def curve_at(curve: Sequence[dict[str, float]] | None, epoch: int) -> dict[str, float] | None:
    for point in curve or ():
        if int(point.get("epoch", -1)) == epoch:
            return point
    return None


def _cost_losses(objectives: Sequence[str], cost: dict[str, float]) -> tuple[float, ...] | None:
    """The cost objectives as losses, in the objectives' order; None when one was not measured."""
    values = []
    for name in objectives:
        if name == "accuracy":
            continue
        if name not in cost:
            return None
        values.append(to_loss(name, cost[name]))
    return tuple(values)


def _losses(objectives: Sequence[str], accuracy: float, cost: dict[str, float]) -> tuple[float, ...] | None:
    """``(validation error, *cost losses)``, the rule's order (:class:`~greenml.search._stopping.RungEntry`)."""
    costs = _cost_losses(objectives, cost)
    return None if costs is None else (1.0 - float(accuracy), *costs)


class StudyStopping:
    """The trial's view of the study's early-stopping rule (:class:`greenml.trial.EarlyStopping`)."""

    def __init__(self, rule: Any, study: Any, trial: Any, objectives: Sequence[str]) -> None:
        self.rule = rule
        self.study = study
        self.trial = trial
        self.objectives = tuple(objectives)

    def rungs(self, epochs: int) -> tuple[int, ...]:
        return tuple(self.rule.rungs(epochs))

    def _others(self) -> list[Any]:
        return [
            t
            for t in self.study.get_trials(deepcopy=False)
            if t.number != self.trial.number and t.state.name != "WAITING"
        ]

    def known_cost(self, key: str) -> tuple[dict[str, float], int] | None:
        """The cost the lowest-numbered other trial stored for an artifact of key ``key``, if any.

        Every trial of one key then ranks on one measurement, whichever worker ran it. The key is
        stored on this trial at once, so trials that start while it trains find its cost.
        """
        records.record_artifact_key(self.trial, key)
        for other in sorted(self._others(), key=lambda t: t.number):
            cost = records.trial_early_cost(other)
            if cost and records.trial_artifact_key(other) == key:
                return dict(cost), other.number
        return None

    def before_training(self, cost: dict[str, float]) -> str | None:
        records.record_early_cost(self.trial, cost)
        own = _cost_losses(self.objectives, cost)
        if own is None:
            return None
        complete = []
        for other in self._others():
            metrics = records.trial_metrics(other)
            if other.state.name != "COMPLETE" or "accuracy" not in metrics:
                continue
            losses = _losses(self.objectives, metrics["accuracy"], metrics)
            if losses is not None:
                complete.append(RungEntry(other.number, losses))
        decision = self.rule.before_training(self.trial.number, own, complete)
        return str(decision.reason) if decision.stop else None

    def at_rung(self, epoch: int, curve: list[dict[str, float]], cost: dict[str, float]) -> str | None:
        records.record_curve(self.trial, curve)  # the other workers rank against it
        point = curve_at(curve, epoch)
        own = None if point is None else _losses(self.objectives, point["accuracy"], cost)
        if own is None:
            return None
        table = []
        for other in self._others():
            reached = curve_at(records.trial_curve(other), epoch)
            other_cost = records.trial_early_cost(other)
            if reached is None or not other_cost:
                continue
            losses = _losses(self.objectives, reached["accuracy"], other_cost)
            if losses is not None:
                table.append(RungEntry(other.number, losses))
        decision = self.rule.decide(epoch, RungEntry(self.trial.number, own), table)
        return str(decision.reason) if decision.stop else None
