"""Trial records: one row per trial with state, parameters and every metric; CSV/JSON/Parquet."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from greenml import records
from greenml.metrics import METRIC_NAMES

__all__ = [
    "KNEE_RULE",
    "export_frame",
    "export_study",
    "knee_index",
    "trial_rows",
    "write_atomic",
]


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


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """Every trial: number, state, the worker and host that ran it, the trial it retries
    (``retry_of``), seconds, feasibility, parameters (``param_*``), metrics, error."""
    rows = []
    trials = study.get_trials(deepcopy=False)
    retries = records.retried_as(trials)
    for trial in trials:
        metrics = records.trial_metrics(trial)
        constraints = records.trial_constraints(trial).values()
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "worker": (records.trial_worker(trial) or {}).get("number"),
            "host": records.trial_host(trial),
            "retry_of": records.trial_retry_of(trial),
            "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
            "seconds": trial.duration.total_seconds() if trial.duration else None,
            "feasible": all(value <= 0 for value in constraints) if trial.state.name == "COMPLETE" else None,
        }
        row.update({f"param_{name}": value for name, value in trial.params.items()})
        for name in METRIC_NAMES:
            row[name] = metrics.get(name)
        if row.get("trial_energy_j") is None:
            row["trial_energy_j"] = records.trial_energy_j(trial)
        row["energy_basis"] = records.trial_provenance(trial).get("energy_basis")
        row["device"] = trial.user_attrs.get(records.DEVICE)
        row["deploy_device"] = trial.user_attrs.get(records.DEPLOY_DEVICE)
        row["notes"] = "; ".join(records.trial_notes(trial)) or None
        row["stopped"] = records.trial_stopped(trial)
        row["learning_curve"] = records.trial_curve(trial)
        row["artifact_key"] = records.trial_artifact_key(trial)
        row["error"] = records.trial_error(trial, retries.get(trial.number))
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
