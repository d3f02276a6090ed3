"""The study's energy ledger: what a search has spent, read from the storage by every worker.

A study's spent energy is the sum of

- every trial's measured window (``trial_energy_j``): complete, failed and pruned trials alike;
- what running trials have recorded so far (``trial_energy_so_far_j``, updated after each phase),
  and what a trial whose worker died had recorded before it died;
- the study's own entries, kept as study user attributes ``ledger:NAME`` (``ledger:teacher``:
  the distillation teacher, trained once per study).

Waiting trials (a dead worker's parameters queued again) have spent nothing yet and are left out,
though they carry a copy of the dead trial's attributes. Every worker reads the same storage, so
a budget holds for the study, not per worker.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "LEDGER_PREFIX",
    "SO_FAR_ATTR",
    "ledger_entries",
    "spent_energy_j",
    "trial_spent_j",
]

LEDGER_PREFIX = "ledger:"
SO_FAR_ATTR = "trial_energy_so_far_j"


def ledger_entries(study_user_attrs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The study's own entries by name ('teacher'), each with at least ``energy_j`` and ``seconds``."""
    return {
        key[len(LEDGER_PREFIX) :]: value
        for key, value in sorted(study_user_attrs.items())
        if key.startswith(LEDGER_PREFIX) and isinstance(value, dict)
    }


def trial_spent_j(trial: Any) -> float:
    """What one trial has spent: its whole window once written, else what it recorded so far."""
    if trial.state.name == "WAITING":
        return 0.0
    attrs = trial.user_attrs
    value = attrs.get("trial_energy_j")
    if value is None:
        value = attrs.get(SO_FAR_ATTR, 0.0)
    return float(value)


def spent_energy_j(study: Any) -> float:
    """The study's spent energy, as the storage holds it now: every worker's trials and entries."""
    trials = study.get_trials(deepcopy=False)
    entries = ledger_entries(study.user_attrs)
    return sum(trial_spent_j(t) for t in trials) + sum(
        float(e.get("energy_j", 0.0)) for e in entries.values()
    )
