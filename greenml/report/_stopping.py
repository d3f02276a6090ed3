"""Early stopping's account: what the stopped trials spent, and an estimate of what it saved."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greenml import records
from greenml.report._record import TrialRecord, architecture, planned_epochs

__all__ = [
    "ALL_COMPLETE",
    "OWN_CURVE",
    "SAME_ARCHITECTURE",
    "StoppedTrial",
    "StoppingSavings",
    "stopping_rule",
    "stopping_savings",
]

# How a stopped trial's saving was estimated (StoppedTrial.basis).
OWN_CURVE = "own curve"
SAME_ARCHITECTURE = "same architecture"
ALL_COMPLETE = "all complete"


def stopping_rule(attrs: Mapping[str, Any]) -> str | None:
    """The early-stopping rule a study was searched with (``mo-asha``), from its attributes;
    None where it was off or not recorded (a study from before early stopping)."""
    comparable = attrs.get(records.COMPARABLE)
    setting = attrs.get(
        records.EARLY_STOPPING,
        (comparable if isinstance(comparable, dict) else {}).get(records.EARLY_STOPPING),
    )
    if isinstance(setting, list) and setting:
        return str(setting[0])
    if isinstance(setting, str) and setting not in ("", "none"):
        return setting
    return None


@dataclass(frozen=True)
class StoppedTrial:
    """A trial the early-stopping rule stopped: what it spent, and what stopping it saved."""

    number: int
    epochs_run: int  # k: the training epochs it ran (0: stopped before training)
    epochs: int | None  # E: the training epochs it sampled; None where not recorded
    spent_j: float  # its whole energy as measured (cost phase, k epochs), in the search's total
    saved_j: float | None  # estimated training energy of its E - k epochs not run; None: no basis
    basis: str | None  # OWN_CURVE, SAME_ARCHITECTURE, ALL_COMPLETE; None: no basis


@dataclass(frozen=True)
class StoppingSavings:
    """What early stopping cost and saved a study (:func:`stopping_savings`)."""

    trials: tuple[StoppedTrial, ...]
    cost_phase_j: float  # the cost phase of every trial: measuring the deployment cost before training

    @property
    def spent_j(self) -> float:
        """What the stopped trials spent, measured: counted in the search's energy."""
        return float(sum(t.spent_j for t in self.trials))

    @property
    def saved_j(self) -> float:
        """The estimated saving, over the stopped trials that have a basis for one."""
        return float(sum(t.saved_j for t in self.trials if t.saved_j is not None))

    def covered(self, basis: str | None) -> int:
        """How many stopped trials' estimates rest on ``basis`` (None: left out, no basis)."""
        return sum(1 for t in self.trials if t.basis == basis)

    @property
    def at_rung(self) -> int:
        return sum(1 for t in self.trials if t.epochs_run > 0)

    @property
    def before_training(self) -> int:
        return sum(1 for t in self.trials if t.epochs_run == 0)


def _per_epoch_j(trial: TrialRecord) -> float | None:
    """A trial's training energy per epoch: its curve's energy at its last epoch k, over k."""
    if not trial.curve:
        return None
    last = trial.curve[-1]
    return last.energy_j / last.epoch


def stopping_savings(trials: Sequence[TrialRecord]) -> StoppingSavings:
    """Energy spent on the trials the early-stopping rule stopped, and an estimate of what
    stopping them saved: the training energy of the epochs they did not run.

    For a stopped trial that trained k >= 1 of its E sampled epochs (``params["epochs"]``), its
    own training energy per epoch (its learning curve's energy at epoch k, divided by k) times
    (E - k). For one stopped before training (k = 0), the median training energy per epoch of
    the complete trials that share its architecture parameters (:func:`architecture`), or where
    there are none, of all complete trials, times E. A complete trial's training energy per
    epoch is likewise its curve's last energy over its last epoch; complete trials without a
    curve are no basis. A trial with no basis (no sampled E, or no complete trial with a curve
    for k = 0) has ``saved_j`` None and is left out of the sum.

    The saving counts training epochs only: a stopped trial also skipped its compress,
    fine-tune, evaluate and benchmark phases, which it leaves out.
    """
    complete = [
        (architecture(t), rate)
        for t in trials
        if t.state == "COMPLETE" and (rate := _per_epoch_j(t)) is not None
    ]
    stopped = []
    for trial in trials:
        if trial.stopped is None:
            continue
        epochs = planned_epochs(trial)
        k = trial.epochs_run
        saved: float | None = None
        basis: str | None = None
        if epochs is not None and k > 0:
            rate = _per_epoch_j(trial)
            assert rate is not None
            saved, basis = rate * max(epochs - k, 0), OWN_CURVE
        elif epochs is not None:
            shape = architecture(trial)
            alike = [rate for arch, rate in complete if shape and arch == shape]
            if alike:
                saved, basis = statistics.median(alike) * epochs, SAME_ARCHITECTURE
            elif complete:
                saved, basis = statistics.median(rate for _, rate in complete) * epochs, ALL_COMPLETE
        stopped.append(StoppedTrial(trial.number, k, epochs, trial.energy_j or 0.0, saved, basis))
    cost = sum(float(t.phases.get("cost", {}).get("energy_j", 0.0)) for t in trials)
    return StoppingSavings(tuple(stopped), cost)
