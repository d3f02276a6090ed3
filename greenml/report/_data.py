"""The numbers behind every figure of a report: pure functions of a study's records.

Nothing here draws. A study is read once into :class:`StudyRecord` (plain values, no storage
handle), and the front, hypervolume, footprint and importances are computed from that, so each
can be tested on its own and cross-checked against Optuna's own computations.

Hypervolume convention, stated on every page: objectives are put in *loss form* (minimised,
``error = 1 - accuracy``; the others are already minimised and non-negative), and the
hypervolume of the feasible complete trials against a reference point ``r`` is divided by the
volume of the box from 0 to ``r``. So it is the fraction of that box the front dominates: 0 for
nothing, 1 for a perfect model that costs nothing. With the same reference point, numbers from
different reports compare.
"""

from __future__ import annotations

import math
import re
import shlex
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from greenml.errors import ConfigError
from greenml.ledger import SO_FAR_ATTR, ledger_entries, trial_spent_j
from greenml.metrics import COMPONENTS, MAXIMIZED, PHASES, TRAINING_SETTINGS, metric
from greenml.models import MODEL_ATTR
from greenml.results import (
    CURVE_ATTR,
    STOPPED_ATTR,
    is_stale,
    knee_index,
    retried_as,
    trial_constraints,
    trial_error,
    trial_hardware,
    trial_worker,
)
from greenml.storage import default_storage, redact_url

__all__ = [
    "CurveLine",
    "CurvePoint",
    "EnergyBasis",
    "EstimateShare",
    "Footprint",
    "FrontMarks",
    "HypervolumePoint",
    "Importances",
    "LedgerItem",
    "StoppedTrial",
    "StoppingSavings",
    "StudyRecord",
    "TrialFootprint",
    "TrialRecord",
    "WorkerSummary",
    "architecture",
    "classify",
    "default_reference",
    "energy_basis",
    "estimate_share",
    "footprint",
    "front_marks",
    "front_numbers",
    "hardware_differences",
    "hypervolume",
    "hypervolume_history",
    "importances",
    "inference_estimate_shares",
    "learning_curves",
    "ledger_items",
    "load_record",
    "metric_label",
    "metric_phrase",
    "model_command",
    "parse_reference",
    "planned_epochs",
    "search_estimate_share",
    "stopping_rule",
    "stopping_savings",
    "to_loss",
    "workers",
]

IMPORTANCE_EVALUATORS = ("mdi", "fanova", "ped-anova")
# Below this many complete trials a random forest's (or fANOVA's) ranking of the parameters
# moves with every new trial: the page says so beside the importances.
IMPORTANCE_RELIABLE_TRIALS = 10
# Margin of the default reference point beyond the worst feasible value: without it the trials
# that are worst in one objective would add no volume at all.
REFERENCE_MARGIN = 1.1


@dataclass(frozen=True)
class CurvePoint:
    """One point of a learning curve: after training epoch ``epoch`` (from 1)."""

    epoch: int
    accuracy: float  # validation accuracy of the model as trained so far (before compression)
    energy_j: float  # the trial's training epochs so far, cumulative
    seconds: float  # likewise


def _curve(value: Any) -> tuple[CurvePoint, ...]:
    """A stored learning curve as points in epoch order; points missing a number are dropped."""
    points = []
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, Mapping):
            continue
        try:
            point = CurvePoint(
                int(item["epoch"]), float(item["accuracy"]), float(item["energy_j"]), float(item["seconds"])
            )
        except (KeyError, TypeError, ValueError):
            continue
        if point.epoch >= 1 and all(map(math.isfinite, (point.accuracy, point.energy_j, point.seconds))):
            points.append(point)
    return tuple(sorted(points, key=lambda p: p.epoch))


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the report sees it."""

    number: int
    state: str  # COMPLETE, FAIL, RUNNING, PRUNED, WAITING
    params: dict[str, Any]
    metrics: dict[str, float]
    constraints: dict[str, float]
    energy_j: float | None = None
    phases: dict[str, dict[str, float]] = field(default_factory=dict)
    started: datetime | None = None
    completed: datetime | None = None
    error: str | None = None
    traceback: str | None = None
    provenance: dict[str, Any] | None = None
    device: str | None = None  # where it was trained
    deploy_device: str | None = None  # where the deployed artifact ran and was measured
    notes: tuple[str, ...] = ()  # what makes this record less than it looks
    # The whole trial's energy per component (gpu, cpu, dram); None where not metered.
    energy_components_j: dict[str, float | None] = field(default_factory=dict)
    # The worker that ran it ({"number", "host", "pid"}) and its machine (cpu, cpu_count, gpus,
    # meter, ...); None in studies from before workers were recorded, and for waiting trials.
    worker: dict[str, Any] | None = None
    hardware: dict[str, Any] | None = None
    retry_of: int | None = None  # Optuna's ``failed_trial``: the trial whose parameters this one reruns
    stale: bool = False  # failed by the heartbeat: its worker died; ``error`` says so
    # The deployed artifact's record (greenml.models.save_model): artifact id, format, bytes,
    # sha256. None where none was saved (--keep-models none, or a study from before models were
    # kept). ``--keep-models front`` deletes the files of trials off the front but leaves this
    # record, so it says a model is kept only for a trial on the front (which never lost it).
    model: dict[str, Any] | None = None
    # Why the early-stopping rule stopped it (a trial it stopped is stored as PRUNED); None for
    # every other trial, a pruned surplus trial included.
    stopped: str | None = None
    # Its learning curve (greenml.results.CURVE_ATTR), by epoch: after each training epoch the
    # validation accuracy of the model as trained so far, and the energy (J) and time (s) its
    # training epochs had spent by then, cumulative. () where it trained no epoch or recorded none.
    curve: tuple[CurvePoint, ...] = ()

    @property
    def epochs_run(self) -> int:
        """The training epochs its curve records: 0 for a trial stopped before training."""
        return self.curve[-1].epoch if self.curve else 0

    @property
    def stopped_at(self) -> int | None:
        """The epoch the rule stopped it after (0: before training); None unless it stopped it."""
        return None if self.stopped is None else self.epochs_run

    @property
    def worker_number(self) -> int | None:
        number = (self.worker or {}).get("number")
        return int(number) if isinstance(number, int) else None

    @property
    def host(self) -> str | None:
        host = (self.worker or {}).get("host") or (self.hardware or {}).get("host")
        return str(host) if host else None

    @property
    def unfinished(self) -> bool:
        """Running, waiting, or stopped by its worker's death: it never wrote its final records
        (provenance, per-phase energy), only what it had spent so far."""
        return self.state in ("RUNNING", "WAITING") or self.stale

    def kinds(self) -> dict[str, str]:
        """``measured`` or ``estimated`` per metered component, from the provenance."""
        components = (self.provenance or {}).get("components") or {}
        return {
            name: str(source["kind"])
            for name, source in components.items()
            if isinstance(source, Mapping) and source.get("kind")
        }

    @property
    def feasible(self) -> bool | None:
        """None unless complete; a complete trial with no constraints is feasible."""
        if self.state != "COMPLETE":
            return None
        return all(value <= 0 for value in self.constraints.values())

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.completed is None:
            return None
        return (self.completed - self.started).total_seconds()

    def co2_g(self, energy_j: float | None = None) -> float | None:
        """gCO2e of ``energy_j`` (default: the whole trial) at this trial's carbon intensity and PUE."""
        energy = self.energy_j if energy_j is None else energy_j
        carbon = (self.provenance or {}).get("carbon")
        if energy is None or not carbon:
            return None
        return float(energy) / 3.6e6 * float(carbon["intensity_g_per_kwh"]) * float(carbon["pue"])


@dataclass(frozen=True)
class StudyRecord:
    """A study read once from its storage: attributes and trials, no open handle."""

    name: str
    storage: str
    attrs: dict[str, Any]
    objectives: tuple[str, ...]
    trials: tuple[TrialRecord, ...]

    def counts(self) -> dict[str, int]:
        return dict(Counter(trial.state for trial in self.trials))

    def finished(self) -> list[TrialRecord]:
        """Complete, failed and early-stopped trials, in the order they finished (a pruned
        surplus trial, which never ran, is not one)."""
        done = [t for t in self.trials if t.state in ("COMPLETE", "FAIL") or t.stopped is not None]
        return sorted(done, key=lambda t: (t.completed or datetime.max, t.number))


def load_record(study: Any, storage_url: str = "", trials: Sequence[Any] | None = None) -> StudyRecord:
    """Read an Optuna study (any storage) into a :class:`StudyRecord`; ``trials`` if already read."""
    objectives = tuple(study.user_attrs.get("objectives") or study.metric_names or ())
    records = []
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    retries = retried_as(trials)
    for trial in trials:
        attrs = trial.user_attrs
        metrics = {k: float(v) for k, v in attrs.get("metrics", {}).items() if isinstance(v, (int, float))}
        if not metrics and trial.values is not None and len(trial.values) == len(objectives):
            metrics = dict(zip(objectives, map(float, trial.values), strict=True))
        constraints = trial_constraints(trial)
        phases = attrs.get("phases") or {
            phase: {"seconds": metrics[f"{phase}_seconds"], "energy_j": metrics[f"{phase}_energy_j"]}
            for phase in PHASES
            if f"{phase}_energy_j" in metrics
        }
        energy = attrs.get("trial_energy_j", metrics.get("trial_energy_j"))
        if energy is None and SO_FAR_ATTR in attrs and trial.state.name != "WAITING":
            # A running trial, or one whose worker died: what it recorded so far, as the ledger counts it.
            energy = trial_spent_j(trial)
        split = attrs.get("trial_energy_components_j") or {}
        error = trial_error(trial, retries.get(trial.number))
        failed_trial = trial.system_attrs.get("failed_trial")
        records.append(
            TrialRecord(
                number=trial.number,
                state=trial.state.name,
                params=dict(trial.params),
                metrics=metrics,
                constraints=constraints,
                energy_j=float(energy) if energy is not None else None,
                phases=phases,
                started=trial.datetime_start,
                completed=trial.datetime_complete,
                error=error,
                traceback=attrs.get("traceback"),
                provenance=attrs.get("provenance"),
                device=_text(attrs.get("device")),
                deploy_device=_text(attrs.get("deploy_device")),
                notes=tuple(str(note) for note in attrs.get("notes") or ()),
                energy_components_j={
                    str(c): float(v) if isinstance(v, (int, float)) else None for c, v in split.items()
                },
                worker=trial_worker(trial),
                hardware=trial_hardware(trial),
                retry_of=int(failed_trial) if isinstance(failed_trial, int) else None,
                stale=is_stale(trial),
                model=_mapping(attrs.get(MODEL_ATTR)) or None,
                stopped=str(attrs[STOPPED_ATTR])
                if trial.state.name == "PRUNED" and attrs.get(STOPPED_ATTR) is not None
                else None,
                curve=_curve(attrs.get(CURVE_ATTR)),
            )
        )
    return StudyRecord(
        name=study.study_name,
        storage=redact_url(storage_url),
        attrs=dict(study.user_attrs),
        objectives=objectives,
        trials=tuple(records),
    )


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def to_loss(metric: str, value: float) -> float:
    """The objective in minimised form: ``1 - accuracy`` for accuracies, the value otherwise."""
    return 1.0 - value if metric in MAXIMIZED else value


def from_loss(metric: str, loss: float) -> float:
    return 1.0 - loss if metric in MAXIMIZED else loss


def _has_all(trial: TrialRecord, objectives: Sequence[str]) -> bool:
    return all(math.isfinite(trial.metrics.get(name, math.nan)) for name in objectives)


def _losses(trials: Sequence[TrialRecord], objectives: Sequence[str]) -> np.ndarray:
    return np.array(
        [[to_loss(name, trial.metrics[name]) for name in objectives] for trial in trials], dtype=float
    ).reshape(len(trials), len(objectives))


def _feasible_complete(trials: Iterable[TrialRecord], objectives: Sequence[str]) -> list[TrialRecord]:
    return [t for t in trials if t.feasible and _has_all(t, objectives)]


def front_numbers(trials: Sequence[TrialRecord], objectives: Sequence[str]) -> list[int]:
    """Numbers of the Pareto-optimal feasible complete trials (ties all kept, as Optuna does)."""
    import moocore

    candidates = _feasible_complete(trials, objectives)
    if not candidates:
        return []
    keep = moocore.is_nondominated(_losses(candidates, objectives), keep_weakly=True)
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


def _signed(metric: str, value: float) -> float:
    """The objective minimised by negation, as Optuna's values are in ``greenml model --pick
    knee`` (greenml.models.knee_trial): the knee is then picked from the same numbers, so a
    near tie cannot fall the other way on a rounding of ``1 - accuracy``."""
    return -value if metric in MAXIMIZED else value


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
    trial ``greenml model --pick knee`` takes) and each objective's best front trial."""
    by_number = {t.number: t for t in trials}
    front = [by_number[number] for number in front_numbers(trials, objectives)]
    if not front:
        return FrontMarks(None, {})
    signed = [[_signed(name, t.metrics[name]) for name in objectives] for t in front]
    best = {name: _best(front, name) for name in objectives}
    return FrontMarks(front[knee_index(signed)].number, best)


def _best(front: Sequence[TrialRecord], name: str) -> int:
    return min(front, key=lambda t: (_signed(name, t.metrics[name]), t.number)).number


def default_reference(records: Sequence[StudyRecord], objectives: Sequence[str]) -> dict[str, float] | None:
    """Reference point in loss form: 1.1 x the worst feasible value of each objective, over all
    the records (so a comparison shares one point); an error is capped at 1. None without data."""
    trials = [t for record in records for t in _feasible_complete(record.trials, objectives)]
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
        loss = to_loss(name, number)
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

    points = _losses(_feasible_complete(trials, objectives), objectives)
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
        return self.energy_j / 3.6e6


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
        if trial.feasible and _has_all(trial, objectives):
            point = np.clip(_losses([trial], objectives)[0], 0.0, None)
            inside = bool((point < ref).all())
            dominated = bool(len(front)) and bool(((front <= point).all(axis=1)).any())
            if inside and not dominated:
                keep = ~((point <= front).all(axis=1))
                front = np.vstack([front[keep], point])
                value = float(moocore.hypervolume(front, ref=ref)) / box
        history.append(HypervolumePoint(trial.number, count, energy, value, trial.stopped is not None))
    return history


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
    for name, entry in ledger_entries(record.attrs).items():
        worker = _mapping(entry.get("worker"))
        hardware = _mapping(entry.get("hardware"))
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
    return energy_j / 3.6e6 * intensity * pue


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
        return self.energy_j / 3.6e6

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


def stopping_rule(attrs: Mapping[str, Any]) -> str | None:
    """The early-stopping rule a study was searched with (``mo-asha``), from its attributes;
    None where it was off or not recorded (a study from before early stopping)."""
    setting = attrs.get("early_stopping", _mapping(attrs.get("comparable")).get("early_stopping"))
    if isinstance(setting, list) and setting:
        return str(setting[0])
    if isinstance(setting, str) and setting not in ("", "none"):
        return setting
    return None


EPOCHS_PARAM = "epochs"  # a trial's sampled training epochs

# How a stopped trial's saving was estimated (StoppedTrial.basis).
OWN_CURVE = "own curve"
SAME_ARCHITECTURE = "same architecture"
ALL_COMPLETE = "all complete"


def planned_epochs(trial: TrialRecord) -> int | None:
    """E: the training epochs the trial sampled; None where it has no such parameter."""
    value = trial.params.get(EPOCHS_PARAM)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def architecture(trial: TrialRecord) -> dict[str, Any]:
    """The trial's architecture parameters: those its space sampled (every parameter but
    greenml's own training and compression settings, :data:`TRAINING_SETTINGS`)."""
    return {name: value for name, value in trial.params.items() if name not in TRAINING_SETTINGS}


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


@dataclass(frozen=True)
class WorkerSummary:
    """A worker of the study, as its trials (and ledger entries) recorded it."""

    number: int | None  # None: trials that recorded no worker (a study from before workers were)
    host: str | None
    pid: int | None
    hardware: dict[str, Any]  # cpu, cpu_count, gpus, meter, ...; {} where not recorded
    trials: int  # trials it ran (running and failed ones included, waiting ones not)
    energy_j: float  # what those trials spent

    def comparable(self) -> dict[str, Any]:
        """What makes energy and latency comparable, by label: CPU model, logical CPUs, GPU models
        (a device index such as ``cuda:1`` is no difference), meter. None where not recorded."""
        gpus = self.hardware.get("gpus")
        return {
            "CPU model": self.hardware.get("cpu"),
            "logical CPUs": self.hardware.get("cpu_count"),
            "GPUs": None
            if gpus is None
            else tuple(sorted(re.sub(r"^cuda:\d+\s+", "", str(g)) for g in gpus)),
            "meter": self.hardware.get("meter"),
        }


def workers(record: StudyRecord) -> list[WorkerSummary]:
    """Every worker seen in the trials and the ledger, in number order; trials that recorded no
    worker (an older study) are one entry, first, with the study's ``hardware`` (written by its
    first worker). A study with no trials yet lists that attribute alone, where it is recorded."""
    study_hardware = record.attrs.get("hardware")
    found: dict[tuple[int, int, str], dict[str, Any]] = {}

    def tally(number: int | None, host: str | None, hardware: dict[str, Any] | None) -> dict[str, Any]:
        # Unrecorded first, then by worker number, then trials that name a host but no worker.
        key = (1, number, "") if number is not None else (2, 0, host) if host else (0, 0, "")
        if key[0] == 0 and not hardware and isinstance(study_hardware, dict):
            hardware = study_hardware
        entry = found.setdefault(
            key, {"number": number, "host": host, "pid": None, "hardware": {}, "trials": 0, "energy_j": 0.0}
        )
        if not entry["hardware"] and hardware:
            entry["hardware"] = dict(hardware)
        entry["host"] = entry["host"] or host
        return entry

    for trial in record.trials:
        if trial.state == "WAITING":  # not run yet
            continue
        entry = tally(trial.worker_number, trial.host, trial.hardware)
        entry["trials"] += 1
        entry["energy_j"] += trial.energy_j or 0.0
        pid = (trial.worker or {}).get("pid")
        if entry["pid"] is None and isinstance(pid, int):
            entry["pid"] = pid
    for item in ledger_entries(record.attrs).values():
        worker, hardware = item.get("worker"), item.get("hardware")
        if isinstance(worker, dict) and isinstance(worker.get("number"), int):
            entry = tally(
                worker["number"], worker.get("host"), hardware if isinstance(hardware, dict) else None
            )
            if entry["pid"] is None and isinstance(worker.get("pid"), int):
                entry["pid"] = worker["pid"]
    if not found and isinstance(study_hardware, dict) and study_hardware:
        tally(None, None, None)
    return [WorkerSummary(**found[key]) for key in sorted(found)]


def hardware_differences(summaries: Sequence[WorkerSummary]) -> list[str]:
    """What differs between the workers' machines (CPU model, logical CPUs, GPUs, meter): the
    labels of :meth:`WorkerSummary.comparable` with more than one recorded value."""
    values: dict[str, set[Any]] = {}
    for summary in summaries:
        for label, value in summary.comparable().items():
            if value is not None:
                values.setdefault(label, set()).add(value)
    return [label for label, seen in values.items() if len(seen) > 1]


@dataclass(frozen=True)
class Importances:
    """Parameter importances per objective, or why there are none, and how many trials they rest on."""

    values: dict[str, dict[str, float]]  # {objective: {param: importance}}; {} when not computed
    reason: str | None  # why they were not computed; None when they were
    trials: int  # the complete trials with every objective: what the evaluator learnt from

    @property
    def reliable(self) -> bool:
        return self.trials >= IMPORTANCE_RELIABLE_TRIALS


def importances(
    trials: Sequence[Any], objectives: Sequence[str], evaluator: str = "mdi", seed: int = 0
) -> Importances:
    """Parameter importances per objective from Optuna's evaluators, over the complete trials.

    ``trials`` are Optuna ``FrozenTrial`` objects (``study.get_trials()``); they are copied into
    an in-memory study so the storage is read once. ``values`` is empty, with a ``reason``, when
    they cannot be computed (fewer than two complete trials, say). Parameters only some trials
    have (conditional ones) are left out, as Optuna does.
    """
    import warnings

    import optuna

    if evaluator not in IMPORTANCE_EVALUATORS:
        raise ConfigError(
            f"unknown importance evaluator {evaluator!r}; valid: {', '.join(IMPORTANCE_EVALUATORS)}"
        )
    complete = [
        t
        for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE
        and all(name in t.user_attrs.get("metrics", {}) for name in objectives)
    ]
    if len(complete) < 2:
        return Importances(
            {}, f"needs at least 2 complete trials, the study has {len(complete)}", len(complete)
        )
    memory = optuna.create_study(directions=["minimize"] * len(complete[0].values))
    memory.add_trials(complete)
    result: dict[str, dict[str, float]] = {}
    for name in objectives:
        if evaluator == "fanova":
            chosen: Any = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        elif evaluator == "ped-anova":
            chosen = optuna.importance.PedAnovaImportanceEvaluator()
        else:
            chosen = optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=seed)

        def target(trial: Any, name: str = name) -> float:
            # PED-ANOVA asks what makes the target *low*: give it the loss form.
            return to_loss(name, float(trial.user_attrs["metrics"][name]))

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values = optuna.importance.get_param_importances(memory, evaluator=chosen, target=target)
        except (RuntimeError, ValueError) as error:
            return Importances({}, f"Optuna could not compute importances: {error}", len(complete))
        result[name] = {param: float(value) for param, value in values.items()}
    return Importances(result, None, len(complete))


@dataclass(frozen=True)
class EnergyBasis:
    """What a set of trials' energy figures rest on, read from their provenance."""

    basis: str  # measured, partly estimated, estimated; mixed where trials differ; unknown
    estimated: tuple[str, ...]  # components estimated in any of the trials (gpu, cpu, dram order)
    measured: tuple[str, ...]  # components measured in any of the trials
    cpu_time: bool  # every estimated component is greenml's estimate from CPU time

    @property
    def estimate(self) -> str:
        """How the estimated components were estimated, in a few words."""
        return "estimated from CPU time" if self.cpu_time else "estimated"

    def qualifier(self, component: str | None = None) -> str:
        """What to write beside an energy figure ("" where it is measured): of one component,
        or (None) of a total over every metered component."""
        if component is not None:
            if component not in self.estimated:
                return ""
            return self.estimate + (" in some trials" if component in self.measured else "")
        if self.basis == "estimated":
            return self.estimate
        if self.basis == "partly estimated":
            return f"{components_text(self.estimated)} part {self.estimate}"
        if self.basis == "mixed":
            return "measured in some trials, estimated in others"
        if self.basis == "unknown":
            return "basis not recorded"
        return ""


def components_text(components: Sequence[str]) -> str:
    """``CPU``, ``CPU and DRAM``, ``GPU, CPU and DRAM``."""
    names = [c.upper() for c in components]
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


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


def energy_label(
    what: str, unit: str, basis: EnergyBasis | None, component: str | None = None, lines: bool = False
) -> str:
    """``what (unit)``, with the basis beside the unit where it is not plainly measured, or with
    ``lines`` on a second line (``<br>``, for a Plotly axis title too short for one line). An
    empty ``unit`` (a figure about the energy, not in it: its importances) leaves the brackets out."""
    qualifier = basis.qualifier(component) if basis is not None else ""
    head = f"{what} ({unit})" if unit else what
    if not qualifier:
        return head
    if lines:
        return f"{head}<br>{qualifier}"
    return f"{what} ({unit}, {qualifier})" if unit else f"{what} ({qualifier})"


def metric_label(
    name: str,
    basis: EnergyBasis | None = None,
    lines: bool = False,
    unit: str | None = None,
    words: bool = False,
) -> str:
    """``latency_ms (ms)``: the name with its unit (from :mod:`greenml.metrics`, or the ``unit``
    a page shows it in); an energy metric also says its basis, e.g. ``inference_energy_j (J,
    estimated from CPU time)``. ``words``: the metric's phrase instead of its name
    (``energy per inference (µJ)``), for an axis that has little room."""
    known = metric(name)
    if known is None:
        return name
    what = metric_phrase(name) if words else name
    shown = known.unit if unit is None else unit
    if known.energy:
        return energy_label(what, shown, basis, _component_of(name), lines)
    return f"{what} ({shown})" if shown else what


# Short words for the metrics on axes and in marks ("lowest energy per inference"); any other
# metric reads as its name with the unit suffix dropped and spaces for underscores.
_PHRASES = {
    "accuracy": "accuracy",
    "test_accuracy": "test accuracy",
    "latency_ms": "latency",
    "latency_p90_ms": "latency p90",
    "latency_p99_ms": "latency p99",
    "latency_stderr_ms": "latency std. error",
    "batch_latency_ms": "batch latency",
    "batch_throughput_per_s": "batch throughput",
    "inference_energy_j": "energy per inference",
    "inference_dynamic_energy_j": "dynamic energy per inference",
    "batch_inference_energy_j": "energy per inference in a batch",
    "batch_inference_dynamic_energy_j": "dynamic energy per inference in a batch",
    **{f"inference_{c}_energy_j": f"{c.upper()} energy per inference" for c in COMPONENTS},
    "model_bytes": "model size",
    "co2_g": "CO2e",
    "trial_energy_j": "trial energy",
    "trial_seconds": "trial time",
}
_BEST_WORDS = {"model_bytes": "smallest model"}


def metric_phrase(name: str) -> str:
    """``energy per inference`` for ``inference_energy_j``; ``train energy`` for ``train_energy_j``."""
    if name in _PHRASES:
        return _PHRASES[name]
    stem = re.sub(r"_(j|ms|s|g|bytes|per_s)$", "", name)
    return stem.replace("_", " ") + (" energy" if name.endswith("_energy_j") and "energy" not in stem else "")


def best_label(name: str) -> str:
    """``best accuracy`` for a maximised metric, ``lowest latency`` for a minimised one."""
    if name in _BEST_WORDS:
        return _BEST_WORDS[name]
    return f"{'best' if name in MAXIMIZED else 'lowest'} {metric_phrase(name)}"


def model_command(study: str, storage: str, trial: int, attrs: Mapping[str, Any] | None = None) -> str:
    """The shell command that writes trial ``trial``'s kept model: ``greenml model --study NAME
    [--storage URL] --trial N -o model-N``, quoted for a POSIX shell. ``storage`` is the URL as
    the report knows it (a password already ``***``); it is left out where it is the default.
    The ``--artifacts`` folder the search was given (its recorded ``command``) goes with it:
    the model is there, not beside the storage."""
    argv = ["greenml", "model", "--study", study]
    if storage and storage != default_storage():
        argv += ["--storage", storage]
    argv += ["--trial", str(trial), "-o", f"model-{trial}"]
    artifacts = _option(list((attrs or {}).get("command") or ()), "--artifacts")
    if artifacts is not None:
        argv += ["--artifacts", artifacts]
    return shlex.join(argv)


def _option(argv: Sequence[Any], name: str) -> str | None:
    """The value of ``name`` in a recorded argv (``--name VALUE`` or ``--name=VALUE``), the last one wins."""
    found = None
    for index, item in enumerate(map(str, argv)):
        if item == name and index + 1 < len(argv):
            found = str(argv[index + 1])
        elif item.startswith(name + "="):
            found = item.split("=", 1)[1]
    return found


def _component_of(name: str) -> str | None:
    """The component a per-component metric (``inference_cpu_energy_j``) is about, else None."""
    for component in COMPONENTS:
        if name.endswith(f"_{component}_energy_j"):
            return component
    return None


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
