"""A benchmark table: every configuration of a grid, measured once, in one Parquet file.

Schema (one row per grid point that completed; ``TABLE_VERSION`` 1)
    ``config``
        The grid point's index in the grid's expanded order (from 0).
    ``param_<name>``
        The parameters the trial asked for, as a search stores them; a parameter the
        configuration did not ask for (``prune_amount`` of an unpruned one) is null.
    ``val_accuracy_curve``, ``test_accuracy_curve``
        Lists, one value per training epoch (epoch 1 first, up to the grid's ``epochs``): the
        validation and test accuracy of the model as trained so far, before compression.
    ``epoch_energy_j``, ``epoch_seconds``
        Lists, each epoch's own training energy and time (the validation pass included, the test
        pass not: a search's epochs do not run it).
    The metrics of :mod:`greenml.metrics`
        ``accuracy`` and ``test_accuracy`` of the deployed artifact after all epochs, its
        deployment cost (``latency_ms``, ``inference_energy_j``, ``model_bytes`` ... every
        figure the trial measured), and the trial's footprint: ``trial_energy_j``,
        ``trial_seconds``, and per phase ``train_energy_j``, ``compress_energy_j``,
        ``finetune_energy_j``, ``evaluate_energy_j``, ``benchmark_energy_j`` (and ``_seconds``);
        tables built since the propose phase was metered also hold ``propose_energy_j``: for a
        queued grid point, the storage's work only (no sampler proposed it).
    ``artifact_key``
        The deployed artifact's key (:func:`greenml.compress.artifact_key`): rows with one key
        deploy artifacts of one shape, so a replay charges the cost phase once per key.
    ``energy_basis``, ``device``, ``deploy_device``, ``host``, ``cpu``
        How the energy was obtained (measured, estimated ...) and where the trial ran.
    ``trial``
        The trial's number in the build's study.

File metadata (Parquet key ``greenml.bench``, JSON)
    ``version``; ``space``, ``dataset``; ``grid`` (the values per parameter) and
    ``distributions`` (each parameter's Optuna distribution, as JSON); ``grid_size`` and
    ``missing`` (grid points with no row: their trials failed); ``objectives`` (the default
    ones); ``hardware`` (the build's hosts); ``meter``; ``footprint`` (the whole build's energy,
    basis and seconds, failed trials included); ``study``, ``storage`` (password removed),
    ``command``, ``greenml_version``, ``built_at``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from greenml.errors import ConfigError
from greenml.metrics import metric, sign

__all__ = ["CURVES", "META_KEY", "TABLE_VERSION", "Table", "load_table", "write_table"]

TABLE_VERSION = 1
META_KEY = b"greenml.bench"
CURVES = ("val_accuracy_curve", "test_accuracy_curve", "epoch_energy_j", "epoch_seconds")
REQUIRED = ("config", *CURVES, "accuracy", "trial_energy_j")


def write_table(frame: Any, meta: dict[str, Any], path: Path) -> None:
    """Write ``frame`` with ``meta`` as a table, atomically (a reader never sees half a file)."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    arrow = arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), META_KEY: json.dumps(meta).encode()}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(arrow, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_table(path: Path | str) -> Table:
    """The table in ``path``; a missing, corrupt, foreign or empty file is a one-line ConfigError."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no table at {str(path)!r}; build one with greenml bench build")
    try:
        arrow = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise ConfigError(
            f"{str(path)!r} is not a readable Parquet file ({str(error).splitlines()[0]})"
        ) from None
    raw = (arrow.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise ConfigError(
            f"{str(path)!r} is a Parquet file but not a greenml benchmark table (no {META_KEY.decode()} metadata)"
        )
    try:
        meta = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{str(path)!r}: its {META_KEY.decode()} metadata is not JSON") from None
    if meta.get("version") != TABLE_VERSION:
        raise ConfigError(
            f"{str(path)!r} is a version {meta.get('version')!r} table; this greenml reads version {TABLE_VERSION}"
        )
    if arrow.num_rows == 0:
        raise ConfigError(f"{str(path)!r} has no rows: no grid point of its build completed")
    missing = [c for c in REQUIRED if c not in arrow.column_names]
    if missing:
        raise ConfigError(f"{str(path)!r} lacks the column {missing[0]!r}")
    return Table(arrow.to_pandas(), meta, str(path))


@dataclass
class Table:
    """A loaded table: ``frame`` (pandas, one row per grid point) and ``meta`` (the file metadata)."""

    frame: Any
    meta: dict[str, Any]
    source: str = "the table"

    def __post_init__(self) -> None:
        from optuna.distributions import json_to_distribution

        self.distributions = {
            name: json_to_distribution(text) for name, text in self.meta["distributions"].items()
        }
        self.params = [name for name in self.distributions if f"param_{name}" in self.frame.columns]
        self.epochs = int(self.meta["grid"]["epochs"][0])
        lengths = {len(curve) for column in CURVES for curve in self.frame[column]}
        if lengths != {self.epochs}:
            raise ConfigError(f"{self.source}: its curves are not all {self.epochs} epochs long")
        self.val_curves = np.array([list(c) for c in self.frame["val_accuracy_curve"]], dtype=float)
        self.epoch_energy = np.array([list(c) for c in self.frame["epoch_energy_j"]], dtype=float)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def hardware(self) -> str:
        """Where the table was measured, in words, for labels on replayed figures."""
        cpus = sorted({str(c) for c in self.frame.get("cpu", []) if c is not None})
        devices = sorted({str(d) for d in self.frame.get("deploy_device", []) if d is not None})
        return f"{', '.join(cpus) or 'unknown CPU'}; deployed on {', '.join(devices) or 'unknown device'}"

    def config_params(self, row: int) -> dict[str, Any]:
        """The parameters row ``row`` was built with (a parameter it did not ask for is left out)."""
        values = self.frame.iloc[row]
        out = {}
        for name in self.params:
            value = values[f"param_{name}"]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            out[name] = value.item() if hasattr(value, "item") else value
        return out

    def losses(self, objectives: Sequence[str]) -> np.ndarray:
        """Each row's objectives as losses to minimise (maximised ones negated), rows x objectives."""
        columns = []
        for name in objectives:
            if name not in self.frame.columns or metric(name) is None:
                raise ConfigError(
                    f"{self.source} has no metric {name!r}; valid: "
                    + ", ".join(c for c in self.frame.columns if getattr(metric(c), "objective", False))  # type: ignore[union-attr]
                )
            values = self.frame[name].to_numpy(dtype=float)
            columns.append(sign(name) * values)
        return np.column_stack(columns)

    def reference_point(self, objectives: Sequence[str]) -> np.ndarray:
        """One fixed hypervolume reference point for the table, in losses: the true front's nadir
        plus a tenth of the front's range on each objective.

        Set just beyond the front, so the hypervolume measures how much of the front a search
        found. (A loose point, such as accuracy 0, fills most of the volume with what any trained
        model covers: on the shipped table every strategy reached 95% of it within its first 4
        random trials.) An objective on which the front has no spread gets a tenth of its value,
        or 1e-12 at 0.
        """
        front = self.losses(objectives)[self.true_front(objectives)]
        nadir, ideal = front.max(axis=0), front.min(axis=0)
        spread = nadir - ideal
        spread = np.where(spread > 0, spread, np.where(nadir != 0, np.abs(nadir), 1e-11))
        reference: np.ndarray = nadir + 0.1 * spread
        return reference

    def true_front(self, objectives: Sequence[str]) -> np.ndarray:
        """The rows on the table's Pareto front, by exhaustive non-dominated sorting of every row."""
        import moocore

        return np.flatnonzero(moocore.is_nondominated(self.losses(objectives)))

    def hypervolume(
        self, rows: Sequence[int], objectives: Sequence[str], reference: np.ndarray | None = None
    ) -> float:
        """The hypervolume of ``rows`` (losses) against ``reference`` (default: the table's)."""
        return hypervolume(
            self.losses(objectives)[list(rows)],
            self.reference_point(objectives) if reference is None else reference,
        )


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """moocore's hypervolume of the points that beat ``reference`` on every loss (0 if none)."""
    import moocore

    points = np.asarray(points, dtype=float).reshape(-1, len(reference))
    points = points[(points < reference).all(axis=1)]
    if len(points) == 0:
        return 0.0
    return float(moocore.hypervolume(points, ref=reference))
