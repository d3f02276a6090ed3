"""Trial records: one row per trial with state, parameters and every metric; CSV/JSON/Parquet."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from greenml.metrics import METRIC_NAMES

__all__ = ["export_study", "trial_constraints", "trial_rows", "write_atomic"]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def trial_constraints(trial: Any) -> dict[str, float]:
    """The constraint values ``Trial.set_constraint`` stored, by name (<= 0 is satisfied)."""
    return {
        key.split(":", 1)[1]: float(value)
        for key, value in trial.system_attrs.items()
        if key.startswith("constraints:")
    }


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """Every trial: number, state, seconds, feasibility, parameters (``param_*``), metrics, error."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        metrics = trial.user_attrs.get("metrics", {})
        constraints = trial_constraints(trial).values()
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
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
        row["error"] = trial.user_attrs.get("error")
        rows.append(row)
    return rows


def export_study(name: str, storage_url: str, fmt: str, output: Path | None) -> str | None:
    """Write the study's trials in ``fmt``; return the text when there is no ``output`` file."""
    import pandas as pd

    from greenml.storage import open_study

    frame = pd.DataFrame(trial_rows(open_study(name, storage_url)))
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
