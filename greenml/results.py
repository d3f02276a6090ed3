"""Trial records: one row per trial with state, parameters and every metric; CSV/JSON/Parquet."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from greenml.metrics import METRIC_NAMES

__all__ = [
    "ARTIFACT_KEY_ATTR",
    "COST_ATTR",
    "COST_FROM_ATTR",
    "CURVE_ATTR",
    "KNEE_RULE",
    "STALE_ERROR",
    "STOPPED_ATTR",
    "export_frame",
    "export_study",
    "is_stale",
    "knee_index",
    "retried_as",
    "trial_constraints",
    "trial_error",
    "trial_hardware",
    "trial_host",
    "trial_rows",
    "trial_worker",
    "write_atomic",
]

# A trial's learning curve (user attribute): after each training epoch, {"epoch", "accuracy" (the
# validation accuracy of the model as trained so far), "energy_j", "seconds" (cumulative, of the
# training epochs)}.
CURVE_ATTR = "learning_curve"
# The deployment cost measured before training, under early stopping (the cost metrics' names).
COST_ATTR = "early_cost"
# What decides the deployed artifact's cost (greenml.compress.artifact_key): trials with one key
# deploy artifacts of one shape, so a trial reuses the cost an earlier one measured for its key.
ARTIFACT_KEY_ATTR = "artifact_key"
# The trial whose measured cost a trial reused in its cost phase (early stopping).
COST_FROM_ATTR = "early_cost_from"
# Why the early-stopping rule stopped a trial (stored as PRUNED).
STOPPED_ATTR = "stopped"

# What a failed trial with no recorded error is: Optuna's heartbeat failed it, its worker having
# stopped pulsing (a kill -9, a lost machine), and the worker never reached its own error handler.
STALE_ERROR = "its worker stopped sending heartbeats (killed or lost)"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


KNEE_RULE = (
    "the knee is the front trial nearest the ideal point once each objective is scaled 0 (the "
    "front's best value) to 1 (its worst) over the front"
)


def knee_index(losses: Sequence[Sequence[float]]) -> int:
    """Index of the knee among Pareto-front points given as losses (every objective minimised).

    Each objective is min-max normalised across the front, so 0 is the front's best value and 1
    its worst whatever the units, and the knee is the point with the smallest Euclidean distance
    to (0, ..., 0); ties go to the earlier point. A front of one point is its own knee. The
    report marks this trial and ``greenml model --pick knee`` takes it.
    """
    if not losses:
        raise ValueError("knee_index() needs at least one point")
    width = len(losses[0])
    lows = [min(p[i] for p in losses) for i in range(width)]
    highs = [max(p[i] for p in losses) for i in range(width)]

    def distance(point: Sequence[float]) -> float:
        scaled = [
            (v - lo) / (hi - lo) if hi > lo else 0.0 for v, lo, hi in zip(point, lows, highs, strict=True)
        ]
        return math.sqrt(sum(x * x for x in scaled))

    return min(range(len(losses)), key=lambda i: (distance(losses[i]), i))


def trial_constraints(trial: Any) -> dict[str, float]:
    """The constraint values ``Trial.set_constraint`` stored, by name (<= 0 is satisfied)."""
    return {
        key.split(":", 1)[1]: float(value)
        for key, value in trial.system_attrs.items()
        if key.startswith("constraints:")
    }


def trial_worker(trial: Any) -> dict[str, Any] | None:
    """The worker that ran the trial (``number``, ``host``, ``pid``): None in a study from before
    workers were recorded, and for a waiting trial, whose attributes are a copy of the dead
    trial it retries (Optuna's retry copies them; the worker that runs it writes its own)."""
    if trial.state.name == "WAITING":
        return None
    worker = trial.user_attrs.get("worker")
    return worker if isinstance(worker, dict) else None


def trial_hardware(trial: Any) -> dict[str, Any] | None:
    """The machine the trial ran on (cpu, cpu_count, gpus, meter, ...); None as for the worker."""
    if trial.state.name == "WAITING":
        return None
    hardware = trial.user_attrs.get("hardware")
    return hardware if isinstance(hardware, dict) else None


def trial_host(trial: Any) -> str | None:
    """The host the trial ran on, from its worker record or else its hardware record."""
    host = (trial_worker(trial) or {}).get("host") or (trial_hardware(trial) or {}).get("host")
    return str(host) if host else None


def retried_as(trials: Iterable[Any]) -> dict[int, int]:
    """Trial number -> the number of the trial that retried it after its worker died.

    Optuna's retry callback gives the new trial the ``retry_history`` of the series (the first
    trial first); its last item is the trial the new one directly retries.
    """
    retries: dict[int, int] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        history = trial.system_attrs.get("retry_history") or []
        if history:
            retries.setdefault(int(history[-1]), trial.number)
    return retries


def is_stale(trial: Any) -> bool:
    """Failed with no recorded error: Optuna's heartbeat failed it after its worker died."""
    return trial.state.name == "FAIL" and trial.user_attrs.get("error") is None


def trial_error(trial: Any, retry: int | None = None) -> str | None:
    """The trial's recorded error; for a stale trial, that its worker stopped sending
    heartbeats, and the trial that retried it (``retry``) if any."""
    if is_stale(trial):
        return STALE_ERROR if retry is None else f"{STALE_ERROR}; retried as trial {retry}"
    error = trial.user_attrs.get("error")
    return None if error is None else str(error)


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """Every trial: number, state, the worker and host that ran it, the trial it retries
    (``retry_of``), seconds, feasibility, parameters (``param_*``), metrics, error."""
    rows = []
    trials = study.get_trials(deepcopy=False)
    retries = retried_as(trials)
    for trial in trials:
        metrics = trial.user_attrs.get("metrics", {})
        constraints = trial_constraints(trial).values()
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "worker": (trial_worker(trial) or {}).get("number"),
            "host": trial_host(trial),
            "retry_of": trial.system_attrs.get("failed_trial"),
            "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
            "seconds": trial.duration.total_seconds() if trial.duration else None,
            "feasible": all(value <= 0 for value in constraints) if trial.state.name == "COMPLETE" else None,
        }
        row.update({f"param_{name}": value for name, value in trial.params.items()})
        for name in METRIC_NAMES:
            row[name] = metrics.get(name)
        if row.get("trial_energy_j") is None:
            row["trial_energy_j"] = trial.user_attrs.get("trial_energy_j")
        row["energy_basis"] = trial.user_attrs.get("provenance", {}).get("energy_basis")
        row["device"] = trial.user_attrs.get("device")
        row["deploy_device"] = trial.user_attrs.get("deploy_device")
        row["notes"] = "; ".join(trial.user_attrs.get("notes", [])) or None
        row["stopped"] = trial.user_attrs.get(STOPPED_ATTR)
        row["learning_curve"] = trial.user_attrs.get(CURVE_ATTR)
        row["artifact_key"] = trial.user_attrs.get(ARTIFACT_KEY_ATTR)
        row["error"] = trial_error(trial, retries.get(trial.number))
        rows.append(row)
    return rows


def export_frame(rows: list[dict[str, Any]]) -> Any:
    """The rows as a DataFrame in a stable column order, integers kept integers.

    Order: ``number``; the parameters (``param_*``, by name); the metrics, in the vocabulary's
    order; then state, feasibility, worker, timing, energy basis, devices, notes and error. A
    column whose values are all whole numbers (an integer parameter, a worker number) is a
    nullable integer column, so a missing value does not turn it into floats.
    """
    import pandas as pd

    frame = pd.DataFrame(rows)
    params = sorted(c for c in frame.columns if c.startswith("param_"))
    metrics = [c for c in METRIC_NAMES if c in frame.columns]
    rest = [c for c in frame.columns if c != "number" and c not in params and c not in metrics]
    frame = frame[["number", *params, *metrics, *rest]] if len(frame) else frame
    for column in frame.columns:
        values = [row.get(column) for row in rows]  # before pandas turns int-and-None into floats
        given = [v for v in values if v is not None]
        if given and all(isinstance(v, int) and not isinstance(v, bool) for v in given):
            frame[column] = pd.array(values, dtype="Int64")
    return frame


def export_study(name: str, storage_url: str, fmt: str, output: Path | None) -> str | None:
    """Write the study's trials in ``fmt``; return the text when there is no ``output`` file."""

    from greenml.storage import open_study

    frame = export_frame(trial_rows(open_study(name, storage_url)))
    if fmt != "json" and "learning_curve" in frame.columns:
        # One cell per trial: the curve as JSON text (the JSON export keeps it a list).
        frame["learning_curve"] = [None if c is None else json.dumps(c) for c in frame["learning_curve"]]
    if fmt == "parquet":
        assert output is not None
        tmp = output.with_name(output.name + ".tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, output)
        return None
    text: str = (
        frame.to_csv(index=False) if fmt == "csv" else frame.to_json(orient="records", indent=2) + "\n"
    )
    if output is None:
        return text
    write_atomic(output, text)
    return None
