"""What a study's energy figures rest on: measured or estimated, per component, and how much of
the energy the estimated components make up. Read from each trial's provenance."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from greenml.metrics import COMPONENTS
from greenml.report._labels import basis_qualifier, estimate_words
from greenml.report._record import TrialRecord

__all__ = [
    "EnergyBasis",
    "EstimateShare",
    "energy_basis",
    "estimate_share",
    "inference_estimate_shares",
    "search_estimate_share",
]


@dataclass(frozen=True)
class EnergyBasis:
    """What a set of trials' energy figures rest on, read from their provenance."""

    basis: str  # measured, partly estimated, estimated; mixed where trials differ; unknown
    estimated: tuple[str, ...]  # components estimated in any of the trials (gpu, cpu, dram order)
    measured: tuple[str, ...]  # components measured in any of the trials
    cpu_time: bool  # every estimated component is greenml's estimate from CPU time

    @property
    def estimate(self) -> str:
        """How the estimated components were estimated, in a few words (:mod:`._labels`)."""
        return estimate_words(self.cpu_time)

    def qualifier(self, component: str | None = None) -> str:
        """What to write beside an energy figure ("" where it is measured): of one component,
        or (None) of a total over every metered component (:func:`._labels.basis_qualifier`)."""
        return basis_qualifier(self.basis, self.estimated, self.measured, self.cpu_time, component)


def energy_basis(trials: Iterable[TrialRecord]) -> EnergyBasis:
    """The basis of the trials' energy: one of the provenance's ``measured``, ``partly
    estimated``, ``estimated`` when every trial has the same, ``mixed`` when they differ (a
    resumed study on other hardware), ``unknown`` when none recorded it. Unfinished trials
    without a provenance (running, or stopped by their worker's death) have not written it yet
    rather than lack one, and are left out."""
    bases: set[str] = set()
    kinds: dict[str, set[str]] = {}
    estimators: set[str] = set()
    for trial in trials:
        if trial.provenance is None and trial.unfinished:
            continue
        prov = trial.provenance or {}
        bases.add(str(prov.get("energy_basis") or "unknown"))
        for component, kind in trial.kinds().items():
            kinds.setdefault(kind, set()).add(component)
            if kind == "estimated":
                estimators.add(str(prov["components"][component].get("backend", "?")))
    basis = bases.pop() if len(bases) == 1 else ("mixed" if bases else "unknown")
    estimated = tuple(c for c in COMPONENTS if c in kinds.get("estimated", ()))
    return EnergyBasis(
        basis=basis,
        estimated=estimated,
        measured=tuple(c for c in COMPONENTS if c in kinds.get("measured", ())),
        cpu_time=bool(estimated) and estimators == {"estimate"},
    )


def search_estimate_share(trials: Iterable[TrialRecord]) -> float | None:
    """The share of the search's energy (every trial's whole window, failed trials included)
    that estimated components make up, from ``trial_energy_components_j`` and the provenance's
    kinds. None where no trial records a per-component split with an estimated component."""
    estimated = total = 0.0
    seen = False
    for trial in trials:
        split = trial.energy_components_j
        kinds = trial.kinds()
        listed = (trial.provenance or {}).get("total_components")
        counted = listed if listed is not None else [c for c, v in split.items() if v is not None]
        for component in counted:
            value = split.get(component)
            if value is None:
                continue
            total += value
            if kinds.get(component) == "estimated":
                estimated += value
                seen = True
    return estimated / total if seen and total > 0 else None


def inference_estimate_shares(trials: Iterable[TrialRecord]) -> list[float]:
    """Per complete trial, the share of its inference energy (``inference_<c>_energy_j``) that
    estimated components make up; trials without the split, or with a part of no known kind,
    are left out."""
    shares = []
    for trial in trials:
        if trial.state != "COMPLETE":
            continue
        kinds = trial.kinds()
        parts = {
            c: trial.metrics[f"inference_{c}_energy_j"]
            for c in COMPONENTS
            if f"inference_{c}_energy_j" in trial.metrics
        }
        whole = sum(parts.values())
        if not parts or whole <= 0 or any(c not in kinds for c in parts):
            continue
        shares.append(sum(v for c, v in parts.items() if kinds[c] == "estimated") / whole)
    return shares


@dataclass(frozen=True)
class EstimateShare:
    """How much of the energy the estimated components make up."""

    components: tuple[str, ...]  # the estimated components
    search: float | None  # share of the search's energy
    front: float | None  # median share of inference energy over the front trials
    front_trials: int
    complete: float | None  # median share of inference energy over every complete trial
    complete_trials: int


def estimate_share(trials: Sequence[TrialRecord], front: Iterable[int] = ()) -> EstimateShare | None:
    """The estimated components' share of the search's energy and of inference energy (median
    over the ``front`` trial numbers and over every complete trial). None where no component of
    any trial is estimated."""
    components = energy_basis(trials).estimated
    if not components:
        return None
    chosen = set(front)
    on_front = inference_estimate_shares(t for t in trials if t.number in chosen)
    everywhere = inference_estimate_shares(trials)
    return EstimateShare(
        components=components,
        search=search_estimate_share(trials),
        front=statistics.median(on_front) if on_front else None,
        front_trials=len(on_front),
        complete=statistics.median(everywhere) if everywhere else None,
        complete_trials=len(everywhere),
    )
