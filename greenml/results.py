"""Trial records: one row per trial with state, parameters and every metric; CSV/JSON/Parquet."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from greenml.trial import METRICS

__all__ = ["export_study", "trial_rows"]


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """Every trial: number, state, seconds, feasibility, parameters (``param_*``), metrics, error."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        metrics = trial.user_attrs.get("metrics", {})
        constraints = [value for key, value in trial.system_attrs.items() if key.startswith("constraints:")]
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
            "seconds": trial.duration.total_seconds() if trial.duration else None,
            "feasible": all(value <= 0 for value in constraints) if trial.state.name == "COMPLETE" else None,
        }
        row.update({f"param_{name}": value for name, value in trial.params.items()})
        for name in METRICS:
            row[name] = metrics.get(name)
        if row.get("trial_energy_j") is None:
            row["trial_energy_j"] = trial.user_attrs.get("trial_energy_j")
        row["energy_basis"] = trial.user_attrs.get("provenance", {}).get("energy_basis")
        row["error"] = trial.user_attrs.get("error")
        rows.append(row)
    return rows


def export_study(name: str, storage_url: str, fmt: str, output: Path | None) -> str | None:
    """Write the study's trials in ``fmt``; return the text when there is no ``output`` file."""
    import pandas as pd

    from greenml.search._study import open_study

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
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, output)
    return None
