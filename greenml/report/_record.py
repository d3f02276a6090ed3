"""A study read once into plain values: :class:`StudyRecord` and its :class:`TrialRecord` s.

Every stored attribute is read through :mod:`greenml.records`, the study's schema; nothing
here keeps a storage handle, so every number of a report is a pure function of these records
and can be tested on its own.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from greenml import records
from greenml.metrics import PHASES, TRAINING_SETTINGS
from greenml.storage import redact_url
from greenml.units import co2_g

__all__ = [
    "EPOCHS_PARAM",
    "CurvePoint",
    "StudyRecord",
    "TrialRecord",
    "architecture",
    "load_record",
    "planned_epochs",
]

EPOCHS_PARAM = "epochs"  # a trial's sampled training epochs
# The metric the whole trial's energy was stored under before it was an attribute of its own.
_ENERGY_METRIC = "trial_energy_j"


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
    # Its learning curve (greenml.records.CURVE), by epoch: after each training epoch the
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
        return co2_g(float(energy), float(carbon["intensity_g_per_kwh"]), float(carbon["pue"]))


def planned_epochs(trial: TrialRecord) -> int | None:
    """E: the training epochs the trial sampled; None where it has no such parameter."""
    value = trial.params.get(EPOCHS_PARAM)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def architecture(trial: TrialRecord) -> dict[str, Any]:
    """The trial's architecture parameters: those its space sampled (every parameter but
    greenml's own training and compression settings, :data:`TRAINING_SETTINGS`)."""
    return {name: value for name, value in trial.params.items() if name not in TRAINING_SETTINGS}


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
    objectives = tuple(study.user_attrs.get(records.OBJECTIVES) or study.metric_names or ())
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    retries = records.retried_as(trials)
    return StudyRecord(
        name=study.study_name,
        storage=redact_url(storage_url),
        attrs=dict(study.user_attrs),
        objectives=objectives,
        trials=tuple(_trial_record(trial, objectives, retries.get(trial.number)) for trial in trials),
    )


def _trial_record(trial: Any, objectives: Sequence[str], retry: int | None) -> TrialRecord:
    attrs = trial.user_attrs
    stored = records.trial_metrics(trial)
    metrics = {k: float(v) for k, v in stored.items() if isinstance(v, (int, float))}
    if not metrics and trial.values is not None and len(trial.values) == len(objectives):
        metrics = dict(zip(objectives, map(float, trial.values), strict=True))
    # A trial from before per-phase records has its phases among its metrics.
    phases = records.trial_phases(trial) or {
        phase: {"seconds": metrics[f"{phase}_seconds"], "energy_j": metrics[f"{phase}_energy_j"]}
        for phase in PHASES
        if f"{phase}_energy_j" in metrics
    }
    # The whole window once written; a study from before the attribute has it among the metrics
    # (a retried trial's cleared attribute is "not written yet", not "look in the metrics").
    energy = records.trial_energy_j(trial) if records.ENERGY in attrs else metrics.get(_ENERGY_METRIC)
    if energy is None and records.ENERGY_SO_FAR in attrs and trial.state.name != "WAITING":
        # A running trial, or one whose worker died: what it recorded so far, as the ledger counts it.
        energy = records.trial_spent_j(trial)
    split = attrs.get(records.ENERGY_COMPONENTS) or {}
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        params=dict(trial.params),
        metrics=metrics,
        constraints=records.trial_constraints(trial),
        energy_j=float(energy) if energy is not None else None,
        phases=phases,
        started=trial.datetime_start,
        completed=trial.datetime_complete,
        error=records.trial_error(trial, retry),
        traceback=attrs.get(records.TRACEBACK),
        # None (not {}) where it recorded none: an unfinished trial has not written it yet.
        provenance=attrs.get(records.PROVENANCE),
        device=_text(attrs.get(records.DEVICE)),
        deploy_device=_text(attrs.get(records.DEPLOY_DEVICE)),
        notes=tuple(str(note) for note in records.trial_notes(trial)),
        energy_components_j={
            str(c): float(v) if isinstance(v, (int, float)) else None for c, v in split.items()
        },
        worker=records.trial_worker(trial),
        hardware=records.trial_hardware(trial),
        retry_of=records.trial_retry_of(trial),
        stale=records.is_stale(trial),
        model=records.trial_model(trial) or None,
        stopped=records.trial_stopped(trial) if trial.state.name == "PRUNED" else None,
        curve=_curve(records.trial_curve(trial)),
    )


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
