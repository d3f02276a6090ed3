"""The study's energy ledger: what a search has spent, read from the storage by every worker.

A study's spent energy is the sum of

- every trial's measured window (``trial_energy_j``, see :mod:`greenml.records`): complete, failed and pruned trials alike;
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

from greenml.records import ledger_entries, trial_spent_j

__all__ = ["spent_energy_j"]


def spent_energy_j(study: Any) -> float:
    """The study's spent energy, as the storage holds it now: every worker's trials and entries."""
    trials = study.get_trials(deepcopy=False)
    entries = ledger_entries(study.user_attrs)
    return sum(trial_spent_j(t) for t in trials) + sum(
        float(e.get("energy_j", 0.0)) for e in entries.values()
    )
