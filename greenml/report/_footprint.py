"""What the search itself cost: energy, CO2e and time by phase and by trial, and the study's ledger.

Failed trials count, and so do running ones and those whose worker died, with what they
recorded so far. Spending that belongs to the study rather than to a trial (the distillation
teacher: :func:`greenml.records.ledger_entries`) is an item of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from greenml import records
from greenml.metrics import PHASES
from greenml.report._basis import energy_basis
from greenml.report._record import StudyRecord, TrialRecord
from greenml.report._stopping import StoppingSavings, stopping_rule, stopping_savings
from greenml.units import co2_g, joules_to_kwh

__all__ = ["Footprint", "LedgerItem", "TrialFootprint", "footprint", "ledger_items"]


@dataclass(frozen=True)
class TrialFootprint:
    number: int
    state: str
    energy_j: float
    seconds: float
    co2_g: float | None
    phases: dict[str, float]  # energy per phase; "other" holds what no phase window covered
    stopped_at: int | None = None  # the epoch the early-stopping rule stopped it after (0: before training)


@dataclass(frozen=True)
class LedgerItem:
    """One entry of the study's ledger: spending that belongs to the study, not to a trial
    (``teacher``: the distillation teacher, trained once per study)."""

    name: str
    energy_j: float
    seconds: float
    co2_g: float | None  # at the carbon intensity and PUE of the trials (those of its worker first)
    energy_basis: str  # as its entry records it; "unknown" where it does not
    worker: int | None  # the worker that spent it
    host: str | None


def ledger_items(record: StudyRecord) -> list[LedgerItem]:
    """The study's ledger entries (study attributes ``ledger:NAME``), in name order."""
    items = []
    for name, entry in records.ledger_entries(record.attrs).items():
        # An entry records its worker and machine as a trial does (greenml.records).
        worker = _mapping(entry.get(records.WORKER))
        hardware = _mapping(entry.get(records.HARDWARE))
        number = worker.get("number")
        host = worker.get("host") or hardware.get("host")
        energy = float(entry.get("energy_j") or 0.0)
        items.append(
            LedgerItem(
                name=name,
                energy_j=energy,
                seconds=float(entry.get("seconds") or 0.0),
                co2_g=_co2_near(energy, record, number if isinstance(number, int) else None),
                energy_basis=str(entry.get("energy_basis") or "unknown"),
                worker=int(number) if isinstance(number, int) else None,
                host=str(host) if host else None,
            )
        )
    return items


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _co2_near(energy_j: float, record: StudyRecord, worker: int | None) -> float | None:
    """gCO2e of energy that recorded no carbon intensity (a ledger entry, a trial whose worker
    died): at that of the worker's other trials, else of all the trials, where they agree."""
    own = [t for t in record.trials if worker is not None and t.worker_number == worker and t.provenance]
    return _co2_g(energy_j, own or record.trials)


def _co2_g(energy_j: float, trials: Iterable[TrialRecord]) -> float | None:
    """gCO2e of ``energy_j`` at the carbon intensity and PUE the trials recorded, where they agree."""
    carbons = {
        (float(c["intensity_g_per_kwh"]), float(c["pue"]))
        for t in trials
        if (c := (t.provenance or {}).get("carbon"))
    }
    if len(carbons) != 1:
        return None
    ((intensity, pue),) = carbons
    return co2_g(energy_j, intensity, pue)


@dataclass(frozen=True)
class Footprint:
    """What the search itself cost: its trials and the study's ledger entries."""

    energy_j: float  # trials and ledger entries
    co2_g: float | None
    wall_seconds: float  # first trial start to last trial end
    trial_seconds: float  # the trials' durations summed (more than wall time with parallel workers)
    phase_energy_j: dict[str, float]  # the trials' energy per phase ("other": outside the phases)
    phase_seconds: dict[str, float]
    phase_co2_g: dict[str, float | None]
    energy_basis: str  # measured, partly estimated, estimated, mixed or unknown (see energy_basis)
    trials: list[TrialFootprint]
    ledger: list[LedgerItem] = field(default_factory=list)
    # What early stopping spent and saved; None for a study that did not stop trials early.
    stopping: StoppingSavings | None = None

    @property
    def energy_kwh(self) -> float:
        return joules_to_kwh(self.energy_j)

    @property
    def trial_energy_j(self) -> float:
        """The trials' share of the energy: the total less the ledger entries."""
        return float(sum(row.energy_j for row in self.trials))


def footprint(record: StudyRecord) -> Footprint:
    """Energy, CO2e and time of the whole search, by phase and by trial (failed trials included;
    running ones and those whose worker died with what they recorded so far), and each of the
    study's ledger entries (the teacher) as an item of its own."""
    parts = (*PHASES, "other")
    energy_by = dict.fromkeys(parts, 0.0)
    seconds_by = dict.fromkeys(parts, 0.0)
    co2_by: dict[str, float | None] = dict.fromkeys(parts, 0.0)
    rows = []
    counted = []

    def co2_of(trial: TrialRecord, energy: float) -> float | None:
        value = trial.co2_g(energy)
        if value is None and trial.unfinished and trial.provenance is None:
            value = _co2_near(energy, record, trial.worker_number)
        return value

    for trial in record.trials:
        if trial.energy_j is None and not trial.phases:
            continue
        energy = trial.energy_j or 0.0
        phases = {phase: float(trial.phases.get(phase, {}).get("energy_j", 0.0)) for phase in PHASES}
        phases["other"] = max(energy - sum(phases.values()), 0.0)
        phase_seconds = {phase: float(trial.phases.get(phase, {}).get("seconds", 0.0)) for phase in PHASES}
        phase_seconds["other"] = max((trial.seconds or 0.0) - sum(phase_seconds.values()), 0.0)
        for part in parts:
            energy_by[part] += phases[part]
            seconds_by[part] += phase_seconds[part]
            co2 = co2_of(trial, phases[part])
            current = co2_by[part]
            co2_by[part] = None if co2 is None or current is None else current + co2
        counted.append(trial)
        rows.append(
            TrialFootprint(
                trial.number,
                trial.state,
                energy,
                trial.seconds or 0.0,
                co2_of(trial, energy),
                phases,
                trial.stopped_at,
            )
        )
    starts = [t.started for t in record.trials if t.started is not None]
    ends = [t.completed for t in record.trials if t.completed is not None]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    ledger = ledger_items(record)
    co2_values = [row.co2_g for row in rows] + [item.co2_g for item in ledger]
    total_co2 = (
        None if any(v is None for v in co2_values) else float(sum(v for v in co2_values if v is not None))
    )
    bases = {item.energy_basis for item in ledger if item.energy_basis != "unknown"}
    if counted or not bases:
        bases.add(energy_basis(counted).basis)
    return Footprint(
        energy_j=float(sum(row.energy_j for row in rows) + sum(item.energy_j for item in ledger)),
        co2_g=total_co2,
        wall_seconds=wall,
        trial_seconds=float(sum(row.seconds for row in rows)),
        phase_energy_j=energy_by,
        phase_seconds=seconds_by,
        phase_co2_g=co2_by,
        energy_basis=bases.pop() if len(bases) == 1 else ("mixed" if bases else "unknown"),
        trials=rows,
        ledger=ledger,
        stopping=stopping_savings(record.trials)
        if stopping_rule(record.attrs) is not None or any(t.stopped is not None for t in record.trials)
        else None,
    )
