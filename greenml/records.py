"""The study's schema: every attribute greenml stores on a study and its trials, written and read here.

What a search stores in its Optuna study *is* greenml's dataset: the report, the export, the
ledger, the early-stopping rule, ``greenml model`` and the benchmark tables all read it back.
This module names every attribute once, writes them (:func:`begin_trial`, :func:`record_outcome`
and the other ``record_*`` functions, used by the search) and reads them (the ``trial_*`` and
``study_*`` functions, used by everyone else), so a reader and a writer cannot disagree on a name
or a shape. :mod:`greenml.testing.studies` builds its synthetic studies through
:func:`outcome_attrs` and :func:`study_attrs` too, so a test study has the real study's records.

A figure that was not measured is absent, never 0. Energies are joules, times seconds, sizes
bytes; a metric's unit is the one :mod:`greenml.metrics` gives it.

Trial attributes (Optuna user attributes of each trial of the study)

==================================  ============  ======  ==============================================================
name                                type          unit    what it holds, and who writes it
==================================  ============  ======  ==============================================================
``metrics``                         dict          mixed   every measured metric by its :mod:`greenml.metrics` name (complete
                                                          trials; a stopped trial: its early cost and window). search
``trial_energy_j``                  float         J       the trial's whole window, every metered component (any state). search
``trial_energy_so_far_j``           float         J       what the trial has spent so far, after each phase (running trials;
                                                          the whole window once written). search
``trial_energy_components_j``       dict          J       ``trial_energy_j`` by component (gpu, cpu, dram; None unmetered). search
``phases``                          dict          s, J    per phase (propose, cost, train, ...): ``{"seconds", "energy_j"}``. search
``provenance``                      dict          -       the window's provenance (greenml.measure.Provenance.to_dict). search
``device``                          str           -       the training device (``cpu``, ``cuda:N``). search
``deploy_device``                   str           -       the device the artifact was deployed and measured on. search
``notes``                           list[str]     -       what makes the record less than it looks (a no-op pruning step,
                                                          other workers on a machine-wide meter). search
``inference``                       dict          -       the inference benchmark's details (runtime, providers, rounds). search
``learning_curve``                  list[dict]    -       per epoch: ``{"epoch", "accuracy", "energy_j", "seconds"}``
                                                          (cumulative training energy and time). search, early stopping
``early_cost``                      dict          mixed   the deployment cost measured before training (cost metrics). early
                                                          stopping
``early_cost_from``                 int           -       the trial whose measured cost this trial reused. search
``artifact_key``                    str           -       what decides the deployed artifact's cost (greenml.compress.
                                                          artifact_key). early stopping, search
``stopped``                         str           -       why the early-stopping rule stopped the trial (state PRUNED). search
``surplus``                         str           -       why the trial ended before sampling (one trial too many; PRUNED). search
``error``                           str           -       ``Type: message`` of what failed the trial (at most 2,000 chars). search
``traceback``                       str           -       the failure's traceback (its last 10,000 chars). search
``worker``                          dict          -       ``{"number", "host", "pid"}`` of the worker that ran it. search
``hardware``                        dict          -       the machine it ran on (devices.host_info + ``meter``). search
``progress``                        dict          -       the latest step: ``{"phase", "epoch", "epochs", "at", ...}``. search
``model``                           dict          bytes   the kept artifact: ``{"artifact_id", "format", "runtime",
                                                          "quantization", "bytes", "sha256"}``. greenml.models
==================================  ============  ======  ==============================================================

Trial system attributes greenml reads (Optuna writes them): ``constraints:NAME`` (<= 0 is
satisfied; ``Trial.set_constraint``), ``failed_trial`` and ``retry_history`` (the retry
callback's), ``fixed_params`` (a queued trial's). greenml writes one system attribute:
``greenml:heartbeat`` (the time of a trial's last heartbeat through the gRPC storage proxy).

Study attributes (Optuna user attributes of the study)

==================================  ============  ======  ==============================================================
name                                type          unit    what it holds, and who writes it
==================================  ============  ======  ==============================================================
``comparable``                      dict          -       every comparable setting (below) in one attribute, written first. search
``space``, ``dataset``, ``target``  str           -       the space's name, the dataset, a table's label column. search
``dataset_fingerprint``             str           -       the data's fingerprint (a changed file is refused on resume). search
``objectives``, ``constraints``     list[str]     -       objective metric names; constraints as text (``accuracy>=0.9``). search
``device``, ``deploy_device``       str           -       the training and deployment devices asked for. search
``meter``, ``pue``                  str, float    -       the meter's name; the data-centre PUE. search
``cpu_watts_per_core``              float         W       the CPU estimate's power per core, if given. search
``epochs``                          list[int]     -       the training epochs' range. search
``distillation``                    bool          -       whether trials may distil from a teacher. search
``energy_window_s``, ``latency_s``  float         s       the minimum energy and latency windows. search
``heartbeat``                       list[float]   s       heartbeat interval and grace period. search
``early_stopping``                  str | list    -       ``"none"``, or the rule and its settings. search
``greenml_version``                 str           -       the greenml that created the study. search
``space_spec``                      str           -       the space as given (a name, a file, MODULE:NAME). search
``sampler``, ``seed``               str, int      -       the sampler and the study's seed. search
``command``                         list[str]     -       the command line that created the study. search
``hardware``                        dict          -       the first worker's machine. search
``data_spec``                       dict          -       the data's name, kind, input shape, classes, features. search
``preprocessing``                   dict          -       how the data was prepared (for the model card). search
``artifacts``                       str           -       where models and the teacher are stored. search
``teacher``                         dict          -       the distillation teacher: artifact id, space, params, epochs,
                                                          validation accuracy. search
``ledger:NAME``                     dict          J, s    a study-level cost (``teacher``): ``{"energy_j", "seconds",
                                                          "energy_basis", "energy_components_j", "worker", "hardware"}``. search
==================================  ============  ======  ==============================================================

Helper studies (``NAME::greenml-workers``, ``NAME::greenml-claims``): each record is a trial with
``kind`` (``worker`` or ``claim:KIND``), ``host``, ``pid``, ``hardware``, ``worker`` and
``alive_at`` (seconds since the epoch, renewed by its pulse). Written and read by the search.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Every name here without a leading underscore is public: the constants name attributes, the
# ``record_*`` functions (and begin_trial, study_attrs) write them, the ``trial_*``/``study_*`` read.

# --- trial attributes ----------------------------------------------------------------------------
METRICS = "metrics"
ENERGY = "trial_energy_j"
ENERGY_SO_FAR = "trial_energy_so_far_j"
ENERGY_COMPONENTS = "trial_energy_components_j"
PHASES = "phases"
PROVENANCE = "provenance"
DEVICE = "device"
DEPLOY_DEVICE = "deploy_device"
NOTES = "notes"
INFERENCE = "inference"
CURVE = "learning_curve"
EARLY_COST = "early_cost"
EARLY_COST_FROM = "early_cost_from"
ARTIFACT_KEY = "artifact_key"
STOPPED = "stopped"
SURPLUS = "surplus"
ERROR = "error"
TRACEBACK = "traceback"
WORKER = "worker"
HARDWARE = "hardware"
PROGRESS = "progress"
MODEL = "model"

TRIAL_ATTRIBUTES: tuple[str, ...] = (
    METRICS,
    ENERGY,
    ENERGY_SO_FAR,
    ENERGY_COMPONENTS,
    PHASES,
    PROVENANCE,
    DEVICE,
    DEPLOY_DEVICE,
    NOTES,
    INFERENCE,
    CURVE,
    EARLY_COST,
    EARLY_COST_FROM,
    ARTIFACT_KEY,
    STOPPED,
    SURPLUS,
    ERROR,
    TRACEBACK,
    WORKER,
    HARDWARE,
    PROGRESS,
    MODEL,
)

# Optuna's system attributes that greenml reads.
_CONSTRAINT_PREFIX = "constraints:"
FAILED_TRIAL = "failed_trial"
RETRY_HISTORY = "retry_history"
_FIXED_PARAMS = "fixed_params"
# greenml's own system attribute: a trial's last heartbeat through the gRPC storage proxy, whose
# client keeps heartbeats this way (greenml.storage).
GRPC_HEARTBEAT = "greenml:heartbeat"

# --- study attributes ----------------------------------------------------------------------------
COMPARABLE = "comparable"
ARTIFACTS = "artifacts"
TEACHER = "teacher"
LEDGER_PREFIX = "ledger:"
# The ledger entry of the distillation teacher (``ledger:teacher``).
TEACHER_ENTRY = "teacher"
# The settings a resumed study must share (all of them also inside ``comparable``).
SPACE = "space"
DATASET = "dataset"
TARGET = "target"
DATASET_FINGERPRINT = "dataset_fingerprint"
OBJECTIVES = "objectives"
CONSTRAINTS = "constraints"
METER = "meter"
PUE = "pue"
CPU_WATTS_PER_CORE = "cpu_watts_per_core"
EPOCHS = "epochs"
DISTILLATION = "distillation"
ENERGY_WINDOW_S = "energy_window_s"
LATENCY_S = "latency_s"
HEARTBEAT = "heartbeat"
EARLY_STOPPING = "early_stopping"
COMPARABLE_SETTINGS: tuple[str, ...] = (
    SPACE,
    DATASET,
    TARGET,
    DATASET_FINGERPRINT,
    OBJECTIVES,
    CONSTRAINTS,
    DEVICE,
    DEPLOY_DEVICE,
    METER,
    PUE,
    CPU_WATTS_PER_CORE,
    EPOCHS,
    DISTILLATION,
    ENERGY_WINDOW_S,
    LATENCY_S,
    HEARTBEAT,
    EARLY_STOPPING,
)
# The rest of what a study records when it is created (HARDWARE, the first worker's machine,
# shares its name with the trial attribute).
GREENML_VERSION = "greenml_version"
SPACE_SPEC = "space_spec"
SAMPLER = "sampler"
SEED = "seed"
COMMAND = "command"
DATA_SPEC = "data_spec"
PREPROCESSING = "preprocessing"
STUDY_ATTRIBUTES: tuple[str, ...] = (
    COMPARABLE,
    *COMPARABLE_SETTINGS,
    GREENML_VERSION,
    SPACE_SPEC,
    SAMPLER,
    SEED,
    COMMAND,
    HARDWARE,
    DATA_SPEC,
    PREPROCESSING,
    ARTIFACTS,
    TEACHER,
    LEDGER_PREFIX + "NAME",
)

# --- helper studies (workers and claims) ---------------------------------------------------------
KIND = "kind"
HOST = "host"
PID = "pid"
ALIVE_AT = "alive_at"

# What a failed trial with no recorded error is: Optuna's heartbeat failed it, its worker having
# stopped pulsing (a kill -9, a lost machine), and the worker never reached its own error handler.
STALE_ERROR = "its worker stopped sending heartbeats (killed or lost)"

# A retried trial starts with a copy of its dead original's attributes: not its outcome, curve or
# cost, which the new run writes again.
_NOT_INHERITED = (ERROR, TRACEBACK, ENERGY, CURVE, EARLY_COST, EARLY_COST_FROM, ARTIFACT_KEY)


# --- writing -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowRecord:
    """A trial's measured window as stored: its energy, split by component and by phase."""

    energy_j: float
    energy_components_j: Mapping[str, float | None]
    provenance: Mapping[str, Any]
    phases: Mapping[str, Mapping[str, float]]

    @classmethod
    def from_window(cls, window: Any) -> WindowRecord:
        """The record of a trial's window (a :class:`greenml.measure.WindowResult`): per phase,
        the seconds and energy of its child windows."""
        phases: dict[str, dict[str, float]] = {}
        for child in window.children:
            part = phases.setdefault(child.name, {"seconds": 0.0, "energy_j": 0.0})
            part["seconds"] += child.seconds
            part["energy_j"] += child.total_energy_j
        return cls(
            energy_j=window.total_energy_j,
            energy_components_j=window.energy_j.to_dict(),
            provenance=window.provenance.to_dict(),
            phases=phases,
        )


@dataclass(frozen=True)
class TrialOutcome:
    """Everything a trial records when it ends, complete, stopped or failed.

    ``metrics`` is written for a complete trial and (its early cost and window's figures) for a
    stopped one; ``stopped`` is the rule's reason; ``error`` and ``traceback`` a failure's.
    """

    device: str
    deploy_device: str
    notes: Sequence[str] = ()
    inference: Mapping[str, Any] | None = None
    learning_curve: Sequence[Mapping[str, float]] = ()
    early_cost: Mapping[str, float] | None = None
    early_cost_from: int | None = None
    artifact_key: str | None = None
    window: WindowRecord | None = None
    stopped: str | None = None
    metrics: Mapping[str, float] | None = None
    error: str | None = None
    traceback: str | None = None


def outcome_attrs(outcome: TrialOutcome) -> dict[str, Any]:
    """The trial attributes an outcome stores, in the order the search writes them."""
    attrs: dict[str, Any] = {DEVICE: outcome.device, DEPLOY_DEVICE: outcome.deploy_device}
    if outcome.notes:
        attrs[NOTES] = list(outcome.notes)
    if outcome.inference is not None:
        attrs[INFERENCE] = dict(outcome.inference)
    if outcome.learning_curve:
        attrs[CURVE] = [dict(point) for point in outcome.learning_curve]
    if outcome.early_cost is not None:
        attrs[EARLY_COST] = dict(outcome.early_cost)
    if outcome.early_cost_from is not None:
        attrs[EARLY_COST_FROM] = outcome.early_cost_from
    if outcome.artifact_key is not None:
        attrs[ARTIFACT_KEY] = outcome.artifact_key
    window = outcome.window
    if window is not None:
        attrs[ENERGY] = window.energy_j
        attrs[ENERGY_SO_FAR] = window.energy_j
        attrs[ENERGY_COMPONENTS] = dict(window.energy_components_j)
        attrs[PROVENANCE] = dict(window.provenance)
        # Per phase for every trial, failed ones too (their metrics are never written).
        attrs[PHASES] = {name: dict(part) for name, part in window.phases.items()}
    if outcome.stopped is not None:
        attrs[STOPPED] = outcome.stopped
    if outcome.error is not None:
        attrs[ERROR] = outcome.error[:2000]
    if outcome.traceback is not None:
        attrs[TRACEBACK] = outcome.traceback[-10_000:]
    if outcome.metrics is not None:
        attrs[METRICS] = dict(outcome.metrics)
    return attrs


def _write(target: Any, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        target.set_user_attr(key, value)


def begin_trial(trial: Any, hardware: Mapping[str, Any], worker: Mapping[str, Any] | None = None) -> None:
    """What a trial records before it runs: 0 J spent so far, its worker and its machine.

    A retried trial carries a copy of its dead original's attributes: its outcome, curve and
    cost are cleared, so only the new run's are ever read.
    """
    trial.set_user_attr(ENERGY_SO_FAR, 0.0)
    if worker is not None:
        trial.set_user_attr(WORKER, dict(worker))
    trial.set_user_attr(HARDWARE, dict(hardware))
    for key in _NOT_INHERITED:
        if key in trial.user_attrs:
            trial.set_user_attr(key, None)


def record_energy_so_far(trial: Any, joules: float) -> None:
    """A running trial's energy so far (after each phase): the study's budget counts it."""
    trial.set_user_attr(ENERGY_SO_FAR, joules)


def record_outcome(trial: Any, outcome: TrialOutcome) -> None:
    """Store a trial's outcome (:func:`outcome_attrs`)."""
    _write(trial, outcome_attrs(outcome))


def record_surplus(trial: Any, reason: str) -> None:
    """The trial ended before sampling anything: one trial too many, or no queued trial left."""
    trial.set_user_attr(SURPLUS, reason)


def record_step(trial: Any, step: Mapping[str, Any]) -> None:
    """The trial's latest step (phase, epoch), for watchers in other processes."""
    trial.set_user_attr(PROGRESS, dict(step))


def record_artifact_key(trial: Any, key: str) -> None:
    """The trial's artifact key, as soon as it is known (other workers reuse its cost)."""
    trial.set_user_attr(ARTIFACT_KEY, key)


def record_early_cost(trial: Any, cost: Mapping[str, float]) -> None:
    """The deployment cost measured before training, as soon as it is measured."""
    trial.set_user_attr(EARLY_COST, dict(cost))


def record_curve(trial: Any, curve: Sequence[Mapping[str, float]]) -> None:
    """The learning curve so far, at each rung (other workers rank against it)."""
    trial.set_user_attr(CURVE, [dict(point) for point in curve])


def record_model(trial: Any, model: Mapping[str, Any]) -> None:
    """The trial's kept artifact (greenml.models)."""
    trial.set_user_attr(MODEL, dict(model))


def study_attrs(comparable: Mapping[str, Any], **settings: Any) -> dict[str, Any]:
    """The attributes a new study records, in the order the search writes them.

    ``comparable`` holds the settings :data:`COMPARABLE_SETTINGS` names; ``settings`` the rest of
    :data:`STUDY_ATTRIBUTES` (``greenml_version``, ``space_spec``, ``sampler``, ``seed``,
    ``command``, ``hardware``, ``data_spec``, ``preprocessing``). A name outside the schema is a
    bug, and raises.
    """
    unknown = sorted({*comparable, *settings} - set(STUDY_ATTRIBUTES) - {ARTIFACTS, TEACHER, COMPARABLE})
    if unknown:
        raise ValueError(f"not study attributes of greenml.records: {', '.join(unknown)}")
    attrs: dict[str, Any] = {COMPARABLE: dict(comparable)}
    order = (GREENML_VERSION, SPACE_SPEC, SAMPLER, SEED)
    attrs.update({key: settings[key] for key in order if key in settings})
    attrs.update(comparable)
    attrs.update({key: value for key, value in settings.items() if key not in order})
    return attrs


def record_study(study: Any, attrs: Mapping[str, Any]) -> None:
    """Write a new study's attributes (:func:`study_attrs`), ``comparable`` first: a worker
    joining while the study is being created compares against all of it or waits for it."""
    _write(study, attrs)


def record_artifacts(study: Any, location: str) -> None:
    """Where the study's models and teacher are stored (written when it changes)."""
    if study.user_attrs.get(ARTIFACTS) != location:
        study.set_user_attr(ARTIFACTS, location)


def record_teacher(study: Any, teacher: Mapping[str, Any], ledger_entry: Mapping[str, Any]) -> None:
    """The study's distillation teacher, and its cost booked in the study's ledger."""
    record_ledger_entry(study, TEACHER_ENTRY, ledger_entry)
    study.set_user_attr(TEACHER, dict(teacher))


def record_ledger_entry(study: Any, name: str, entry: Mapping[str, Any]) -> None:
    """A study-level cost (``energy_j``, ``seconds``, basis, components, worker, hardware)."""
    study.set_user_attr(LEDGER_PREFIX + name, dict(entry))


# --- reading -------------------------------------------------------------------------------------
def _waiting(trial: Any) -> bool:
    return bool(trial.state.name == "WAITING")


def trial_metrics(trial: Any) -> dict[str, float]:
    """The trial's metrics by name; empty for a trial that recorded none."""
    metrics = trial.user_attrs.get(METRICS)
    return metrics if isinstance(metrics, dict) else {}


def trial_energy_j(trial: Any) -> float | None:
    """The trial's whole window in joules, once written (any state)."""
    value = trial.user_attrs.get(ENERGY)
    return None if value is None else float(value)


def trial_spent_j(trial: Any) -> float:
    """What one trial has spent: its whole window once written, else what it recorded so far.

    A waiting trial (a dead worker's parameters queued again) has spent nothing yet, though it
    carries a copy of the dead trial's attributes.
    """
    if _waiting(trial):
        return 0.0
    value = trial.user_attrs.get(ENERGY)
    if value is None:
        value = trial.user_attrs.get(ENERGY_SO_FAR, 0.0)
    return float(value)


def trial_phases(trial: Any) -> dict[str, dict[str, float]]:
    """Per phase, ``{"seconds", "energy_j"}``; empty for a trial that recorded no window."""
    phases = trial.user_attrs.get(PHASES)
    return phases if isinstance(phases, dict) else {}


def trial_provenance(trial: Any) -> dict[str, Any]:
    """The window's provenance; empty for a trial that recorded no window."""
    provenance = trial.user_attrs.get(PROVENANCE)
    return provenance if isinstance(provenance, dict) else {}


def trial_notes(trial: Any) -> list[str]:
    return list(trial.user_attrs.get(NOTES) or [])


def trial_curve(trial: Any) -> list[dict[str, float]] | None:
    """The learning curve, or None for a trial that trained no epoch (or a study without curves)."""
    curve = trial.user_attrs.get(CURVE)
    return None if curve is None else list(curve)


def trial_early_cost(trial: Any) -> dict[str, float] | None:
    cost = trial.user_attrs.get(EARLY_COST)
    return cost if isinstance(cost, dict) else None


def trial_early_cost_from(trial: Any) -> int | None:
    value = trial.user_attrs.get(EARLY_COST_FROM)
    return None if value is None else int(value)


def trial_artifact_key(trial: Any) -> str | None:
    value = trial.user_attrs.get(ARTIFACT_KEY)
    return None if value is None else str(value)


def trial_stopped(trial: Any) -> str | None:
    """Why the early-stopping rule stopped the trial, or None."""
    value = trial.user_attrs.get(STOPPED)
    return None if value is None else str(value)


def trial_surplus(trial: Any) -> str | None:
    """Why the trial ended before sampling (one too many), or None."""
    value = trial.user_attrs.get(SURPLUS)
    return None if value is None else str(value)


def trial_progress(trial: Any) -> dict[str, Any] | None:
    value = trial.user_attrs.get(PROGRESS)
    return value if isinstance(value, dict) else None


def trial_model(trial: Any) -> dict[str, Any] | None:
    """The kept artifact's record, or None (none kept, or a study from before models were kept)."""
    value = trial.user_attrs.get(MODEL)
    return value if isinstance(value, dict) else None


def trial_worker(trial: Any) -> dict[str, Any] | None:
    """The worker that ran the trial (``number``, ``host``, ``pid``): None in a study from before
    workers were recorded, and for a waiting trial, whose attributes are a copy of the dead
    trial it retries (Optuna's retry copies them; the worker that runs it writes its own)."""
    if _waiting(trial):
        return None
    worker = trial.user_attrs.get(WORKER)
    return worker if isinstance(worker, dict) else None


def trial_hardware(trial: Any) -> dict[str, Any] | None:
    """The machine the trial ran on (cpu, cpu_count, gpus, meter, ...); None as for the worker."""
    if _waiting(trial):
        return None
    hardware = trial.user_attrs.get(HARDWARE)
    return hardware if isinstance(hardware, dict) else None


def trial_host(trial: Any) -> str | None:
    """The host the trial ran on, from its worker record or else its hardware record."""
    host = (trial_worker(trial) or {}).get("host") or (trial_hardware(trial) or {}).get("host")
    return str(host) if host else None


def trial_constraints(trial: Any) -> dict[str, float]:
    """The constraint values ``Trial.set_constraint`` stored, by name (<= 0 is satisfied)."""
    return {
        key[len(_CONSTRAINT_PREFIX) :]: float(value)
        for key, value in trial.system_attrs.items()
        if key.startswith(_CONSTRAINT_PREFIX)
    }


def trial_retry_of(trial: Any) -> int | None:
    """The first trial of the retry series this trial belongs to (Optuna's ``failed_trial``)."""
    value = trial.system_attrs.get(FAILED_TRIAL)
    return None if value is None else int(value)


def trial_retry_history(trial: Any) -> list[int]:
    """The trials of the retry series before this one, the first first (Optuna's ``retry_history``)."""
    return [int(number) for number in trial.system_attrs.get(RETRY_HISTORY) or []]


def was_queued(system_attrs: Mapping[str, Any]) -> bool:
    """Whether a trial's parameters were fixed when it was enqueued (the sampler is not asked)."""
    return _FIXED_PARAMS in system_attrs


def is_retry(system_attrs: Mapping[str, Any]) -> bool:
    """Whether a trial retries a trial whose worker died (Optuna's retry callback made it)."""
    return FAILED_TRIAL in system_attrs


def retried_as(trials: Iterable[Any]) -> dict[int, int]:
    """Trial number -> the number of the trial that retried it after its worker died.

    Optuna's retry callback gives the new trial the ``retry_history`` of the series (the first
    trial first); its last item is the trial the new one directly retries.
    """
    retries: dict[int, int] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        history = trial.system_attrs.get(RETRY_HISTORY) or []
        if history:
            retries.setdefault(int(history[-1]), trial.number)
    return retries


def is_stale(trial: Any) -> bool:
    """Failed with no recorded error: Optuna's heartbeat failed it after its worker died."""
    return bool(trial.state.name == "FAIL" and trial.user_attrs.get(ERROR) is None)


def trial_error(trial: Any, retry: int | None = None) -> str | None:
    """The trial's recorded error; for a stale trial, that its worker stopped sending
    heartbeats, and the trial that retried it (``retry``) if any."""
    if is_stale(trial):
        return STALE_ERROR if retry is None else f"{STALE_ERROR}; retried as trial {retry}"
    error = trial.user_attrs.get(ERROR)
    return None if error is None else str(error)


def study_comparable(study_user_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The study's comparable settings: the one ``comparable`` attribute, or, in a study from
    before it, the separate attributes (whatever the study holds of them)."""
    return {**study_user_attrs, **(study_user_attrs.get(COMPARABLE) or {})}


def study_artifacts(study: Any) -> str | None:
    """Where the study's artifacts are stored, or None (a study from before they were kept)."""
    value = study.user_attrs.get(ARTIFACTS)
    return None if value is None else os.fspath(value)


def study_teacher(study: Any) -> dict[str, Any] | None:
    value = study.user_attrs.get(TEACHER)
    return value if isinstance(value, dict) else None


def ledger_entries(study_user_attrs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The study's own entries by name ('teacher'), each with at least ``energy_j`` and ``seconds``."""
    return {
        key[len(LEDGER_PREFIX) :]: value
        for key, value in sorted(study_user_attrs.items())
        if key.startswith(LEDGER_PREFIX) and isinstance(value, dict)
    }
