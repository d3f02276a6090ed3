"""Add the ``artifact_key`` column to a table built before greenml recorded it.

The key is what a build records today for each row (greenml.bench.build.artifact_key_of: the
configuration's model built untrained and pruned, as a trial's cost phase does), so a replay
charges the cost phase once per artifact shape. Nothing measured changes; the metadata notes the
addition. Usage:

    python benchmarks/add_artifact_keys.py benchmarks/tables/mlp-digits.parquet
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pandas as pd

from greenml.bench.build import artifact_key_of
from greenml.bench.table import load_table, write_table
from greenml.data import load_dataset
from greenml.spaces import load_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path)
    args = parser.parse_args()
    table = load_table(args.table)
    space = load_space(table.meta["space"])
    spec = load_dataset(table.meta["dataset"], 0).spec
    frame = table.frame.copy()
    devices = frame["deploy_device"] if "deploy_device" in frame.columns else ["cpu"] * len(frame)
    columns = [c for c in frame.columns if c.startswith("param_")]

    def params(row: int) -> dict[str, object]:
        values = {c.removeprefix("param_"): frame[c].iloc[row] for c in columns}
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in values.items() if not pd.isna(v)}

    frame["artifact_key"] = [
        artifact_key_of(space, spec, params(row), device or "cpu")
        for row, device in zip(range(len(frame)), devices, strict=True)
    ]
    meta = {
        **table.meta,
        "artifact_key_added": f"{dt.date.today().isoformat()} by benchmarks/add_artifact_keys.py",
    }
    write_table(frame, meta, args.table)
    print(f"{args.table}: {frame['artifact_key'].nunique()} artifact keys over {len(frame)} rows")


if __name__ == "__main__":
    main()
