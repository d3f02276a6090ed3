"""Hand-made benchmark tables and a quiet `greenml` run, shared by the bench tests."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from greenml.bench.table import TABLE_VERSION, write_table
from greenml.cli import main

OBJECTIVES = ["accuracy", "inference_energy_j", "latency_ms"]


def make_table(path: Path, rows: list[dict[str, Any]], epochs: int = 3) -> Path:
    """A table of ``rows``: each gives ``kind`` ('a'/'b'), ``size`` (int 1..4), ``lr`` (log float),
    ``acc`` (final deployed accuracy), ``curve`` (validation accuracy per epoch), ``energy``
    (inference J), ``latency`` (ms), ``epoch_j`` (per-epoch training J), ``trial_j`` and,
    optionally, ``key`` (the artifact key) and ``propose_j`` (the propose phase's J)."""
    records = []
    for index, row in enumerate(rows):
        records.append(
            {
                **({"artifact_key": row["key"]} if "key" in row else {}),
                "config": index,
                "param_kind": row["kind"],
                "param_size": row["size"],
                "param_lr": row["lr"],
                "param_epochs": epochs,
                "val_accuracy_curve": list(row.get("curve", [row["acc"]] * epochs)),
                "test_accuracy_curve": list(row.get("curve", [row["acc"]] * epochs)),
                "epoch_energy_j": [row.get("epoch_j", 1.0)] * epochs,
                "epoch_seconds": [0.1] * epochs,
                "accuracy": row["acc"],
                "test_accuracy": row["acc"],
                "inference_energy_j": row["energy"],
                "latency_ms": row["latency"],
                "trial_energy_j": row.get("trial_j", 10.0),
                "train_energy_j": row.get("epoch_j", 1.0) * epochs,
                "compress_energy_j": row.get("compress_j", 0.5),
                "benchmark_energy_j": row.get("benchmark_j", 1.5),
                **({"propose_energy_j": row["propose_j"]} if "propose_j" in row else {}),
                "energy_basis": "estimated",
                "cpu": "Test CPU",
                "deploy_device": "cpu",
                "trial": index,
            }
        )
    grid = {
        "kind": sorted({r["kind"] for r in rows}),
        "size": sorted({r["size"] for r in rows}),
        "lr": sorted({r["lr"] for r in rows}),
        "epochs": [epochs],
    }
    meta = {
        "version": TABLE_VERSION,
        "space": "hand-made",
        "dataset": "none",
        "grid": grid,
        "distributions": {
            "kind": distribution_to_json(CategoricalDistribution(["a", "b", "c"])),
            "size": distribution_to_json(IntDistribution(1, 4)),
            "lr": distribution_to_json(FloatDistribution(1e-3, 1e-1, log=True)),
        },
        "grid_size": len(rows),
        "missing": 0,
        # As fast as the cost phase's windows: the cost phase is estimated as the row's whole
        # compress and benchmark energy.
        "benchmark_windows_s": {"latency": 0.25, "energy": 0.25},
        "objectives": OBJECTIVES,
        "footprint": {"energy_j": 1.0, "energy_basis": "estimated"},
        "command": ["hand", "made"],
    }
    write_table(pd.DataFrame(records), meta, path)
    return path


def four(path: Path) -> Path:
    # Losses (-accuracy, energy, latency):
    #   row 0: (-0.90, 2, 2)   row 1: (-0.80, 1, 1)   row 2: (-0.85, 3, 3)   row 3: (-0.95, 4, 1.5)
    # Row 2 is dominated by row 0 (worse on all three); 0, 1 and 3 are mutually non-dominated.
    return make_table(
        path,
        [
            {"kind": "a", "size": 1, "lr": 0.001, "acc": 0.90, "energy": 2.0, "latency": 2.0},
            {"kind": "a", "size": 2, "lr": 0.01, "acc": 0.80, "energy": 1.0, "latency": 1.0},
            {"kind": "b", "size": 1, "lr": 0.001, "acc": 0.85, "energy": 3.0, "latency": 3.0},
            {"kind": "b", "size": 2, "lr": 0.01, "acc": 0.95, "energy": 4.0, "latency": 1.5},
        ],
    )


def _greenml(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
    return code, out.getvalue(), err.getvalue()
