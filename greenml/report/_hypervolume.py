"""The front's normalised hypervolume, its reference point, and its history over a search.

Convention, stated on every page: objectives are put in *loss form* (:mod:`._loss`: minimised,
``error = 1 - accuracy``; the others are already minimised and non-negative), and the
hypervolume of the feasible complete trials against a reference point ``r`` is divided by the
volume of the box from 0 to ``r``. So it is the fraction of that box the front dominates: 0 for
nothing, 1 for a perfect model that costs nothing. With the same reference point, numbers from
different reports compare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from greenml.errors import ConfigError
from greenml.metrics import MAXIMIZED
from greenml.report._footprint import ledger_items
from greenml.report._front import feasible_complete, has_objectives
from greenml.report._loss import loss_form
from greenml.report._record import StudyRecord, TrialRecord
from greenml.units import joules_to_kwh

__all__ = [
    "REFERENCE_MARGIN",
    "HypervolumePoint",
    "default_reference",
    "hypervolume",
    "hypervolume_history",
    "parse_reference",
]

# Margin of the default reference point beyond the worst feasible value: without it the trials
# that are worst in one objective would add no volume at all.
REFERENCE_MARGIN = 1.1


def _losses(trials: Sequence[TrialRecord], objectives: Sequence[str]) -> np.ndarray:
    return np.array(
        [[loss_form(name, trial.metrics[name]) for name in objectives] for trial in trials], dtype=float
    ).reshape(len(trials), len(objectives))


def default_reference(records: Sequence[StudyRecord], objectives: Sequence[str]) -> dict[str, float] | None:
    """Reference point in loss form: 1.1 x the worst feasible value of each objective, over all
    the records (so a comparison shares one point); an error is capped at 1. None without data."""
    trials = [t for record in records for t in feasible_complete(record.trials, objectives)]
    if not trials:
        return None
    worst = _losses(trials, objectives).max(axis=0)
    reference = {}
    for name, value in zip(objectives, worst, strict=True):
        point = float(value) * REFERENCE_MARGIN if value > 0 else 1.0
        reference[name] = min(point, 1.0) if name in MAXIMIZED else point
    return reference


def parse_reference(text: str, objectives: Sequence[str]) -> dict[str, float]:
    """``accuracy=0.5,latency_ms=2`` (raw units) -> the reference point in loss form."""
    reference = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise ConfigError(f"--reference: {item!r} is not METRIC=VALUE, e.g. accuracy=0.5,latency_ms=2")
        if name not in objectives:
            raise ConfigError(
                f"--reference: {name!r} is not an objective of this report; valid: {', '.join(objectives)}"
            )
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"--reference: {name} must be a number, got {value!r}") from None
        loss = loss_form(name, number)
        if not math.isfinite(loss) or loss <= 0:
            bound = "below 1" if name in MAXIMIZED else "above 0"
            raise ConfigError(f"--reference: {name}={value} must be a finite number {bound}")
        reference[name] = loss
    return reference


def hypervolume(
    trials: Sequence[TrialRecord], objectives: Sequence[str], reference: Mapping[str, float]
) -> float:
    """Normalised hypervolume of the feasible complete ``trials`` (see the module docstring)."""
    import moocore

    points = _losses(feasible_complete(trials, objectives), objectives)
    ref = np.array([reference[name] for name in objectives], dtype=float)
    points = np.clip(points, 0.0, None)
    points = points[(points < ref).all(axis=1)]
    if len(points) == 0:
        return 0.0
    return float(moocore.hypervolume(points, ref=ref)) / float(np.prod(ref))


@dataclass(frozen=True)
class HypervolumePoint:
    """The front's normalised hypervolume after one more trial finished."""

    trial: int
    finished: int  # trials finished so far, failed and early-stopped ones included
    energy_j: float  # the search's energy so far, failed and early-stopped trials included
    hypervolume: float
    stopped: bool = False  # the trial was stopped by the early-stopping rule: energy, no volume

    @property
    def energy_kwh(self) -> float:
        return joules_to_kwh(self.energy_j)


def hypervolume_history(
    record: StudyRecord, objectives: Sequence[str], reference: Mapping[str, float]
) -> list[HypervolumePoint]:
    """Hypervolume after each finished trial, in finishing order, against trials and energy
    (the search's: trials and the study's ledger entries).

    A trial the early-stopping rule stopped advances the trials and the energy (it spent what
    it spent) but never the hypervolume: only feasible complete trials make the front.

    Incremental: a new point dominated by the current front leaves the value as it was, so the
    hypervolume is recomputed (on the front only) just when the front changes.
    """
    import moocore

    ref = np.array([reference[name] for name in objectives], dtype=float)
    box = float(np.prod(ref))
    front = np.empty((0, len(objectives)))
    history: list[HypervolumePoint] = []
    # The study's own spending (the distillation teacher) has no time stamp: it is counted from
    # the start. A search trains its teacher before its workers start their trials, so for the
    # teacher that is where it was spent.
    energy = sum(item.energy_j for item in ledger_items(record))
    value = 0.0
    for count, trial in enumerate(record.finished(), start=1):
        energy += trial.energy_j or 0.0
        if trial.feasible and has_objectives(trial, objectives):
            point = np.clip(_losses([trial], objectives)[0], 0.0, None)
            inside = bool((point < ref).all())
            dominated = bool(len(front)) and bool(((front <= point).all(axis=1)).any())
            if inside and not dominated:
                keep = ~((point <= front).all(axis=1))
                front = np.vstack([front[keep], point])
                value = float(moocore.hypervolume(front, ref=ref)) / box
        history.append(HypervolumePoint(trial.number, count, energy, value, trial.stopped is not None))
    return history
