"""``greenml bench build``: measure every grid point once, as a normal greenml study, then write the table.

The build is a search whose trials are queued, not sampled: each grid point is queued in the
study (``Study.enqueue_trial``), and the search (``queued_only``) runs queued trials until none
is left. So a build is resumable (run the same command again: grid points with no complete trial
are queued again, failed ones included), several workers on one storage share it (each takes
the next queued trial; ``--workers N`` or more commands on other machines), and it has its own
footprint, like any study. Each trial trains to the grid's ``epochs`` and records its validation
and test accuracy after every epoch (the test pass outside the epoch's measurement window).
Distillation is off: a table row is one configuration's own training.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenml import records
from greenml.bench.grid import FIDELITY, Grid, expand
from greenml.bench.table import TABLE_VERSION, write_table
from greenml.errors import ConfigError

__all__ = [
    "BuildResult",
    "artifact_key_of",
    "build",
    "grid_configs",
    "queue_grid",
    "table_frame",
    "write_build_table",
]


@dataclass(frozen=True)
class BuildResult:
    rows: int
    grid_size: int
    missing: int
    energy_j: float
    seconds: float
    path: Path


def grid_configs(grid: Grid, space: Any, spec: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The grid's configurations for ``space`` on data ``spec``, and their distributions."""
    from types import SimpleNamespace

    from greenml.training import FINETUNE_EPOCHS, suggest_settings

    ctx = SimpleNamespace(epochs=(grid.epochs, grid.epochs), finetune_epochs=FINETUNE_EPOCHS, teacher=None)

    def suggest(trial: Any) -> None:
        space.build(trial, spec)
        suggest_settings(trial, ctx)

    return expand(grid, suggest)


def artifact_key_of(space: Any, spec: Any, params: dict[str, Any], deploy_device: str = "cpu") -> str:
    """The deployed artifact's key (:func:`greenml.compress.artifact_key`) of the configuration
    ``params``, found as a trial's cost phase finds it: the model built untrained and pruned.
    (For rows of a build whose trials did not record their key.)"""
    from types import SimpleNamespace

    import optuna
    import torch

    from greenml.training import prune, suggest_settings
    from greenml.trial import deployed_key

    trial = optuna.trial.FixedTrial(params)
    epochs = params.get("epochs", 1)
    finetune = params.get("finetune_epochs", 0)
    ctx = SimpleNamespace(epochs=(epochs, epochs), finetune_epochs=(finetune, finetune), teacher=None)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = space.build(trial, spec)
        settings = suggest_settings(trial, ctx)
        example = torch.zeros((1, *spec.input_shape), dtype=torch.float32)
        prune(model, settings, example)
    return deployed_key(model, settings, deploy_device)


def _key(params: dict[str, Any]) -> str:
    return json.dumps(sorted(params.items()), default=str)


def queue_grid(search: Any, configs: list[dict[str, Any]]) -> int:
    """Queue every grid point with no complete, running or queued trial; return how many were queued."""
    from optuna.trial import TrialState

    busy = {
        _key(t.params)
        for t in search.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
        )
    }
    queued = 0
    for config in configs:
        if _key(config) not in busy:
            search.study.enqueue_trial(config)
            busy.add(_key(config))
            queued += 1
    return queued


def table_frame(study: Any, configs: list[dict[str, Any]], key_of: Any = None) -> Any:
    """The table's rows: the study's complete trials that are grid points, one per point.

    ``key_of(params, deploy_device)`` gives the artifact key of a trial that did not record one.
    """
    import pandas as pd

    from greenml.results import trial_rows

    index = {_key(config): i for i, config in enumerate(configs)}
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    rows: dict[int, dict[str, Any]] = {}
    for row in trial_rows(study):
        trial = by_number[row["number"]]
        config = index.get(_key(trial.params))
        if row["state"] != "COMPLETE" or config is None or config in rows:
            continue
        curve = records.trial_curve(trial) or []
        energies = [p["energy_j"] for p in curve]
        seconds = [p["seconds"] for p in curve]
        hardware = records.trial_hardware(trial) or {}
        out = {"config": config, **{k: v for k, v in row.items() if k.startswith("param_")}}
        out.update(
            val_accuracy_curve=[float(p["accuracy"]) for p in curve],
            test_accuracy_curve=[float(p.get("test_accuracy", float("nan"))) for p in curve],
            epoch_energy_j=[b - a for a, b in zip([0.0, *energies], energies, strict=False)],
            epoch_seconds=[b - a for a, b in zip([0.0, *seconds], seconds, strict=False)],
        )
        skip = {
            "number",
            "state",
            "worker",
            "retry_of",
            "started",
            "seconds",
            "feasible",
            "stopped",
            "learning_curve",
            "error",
        }
        out.update({k: v for k, v in row.items() if not k.startswith("param_") and k not in skip})
        if out.get("artifact_key") is None and key_of is not None:
            out["artifact_key"] = key_of(trial.params, row.get("deploy_device") or "cpu")
        out["cpu"] = hardware.get("cpu")
        out["trial"] = trial.number
        rows[config] = out
    frame = pd.DataFrame([rows[i] for i in sorted(rows)])
    return frame.dropna(axis=1, how="all") if len(frame) else frame


def write_build_table(
    search: Any, grid: Grid, configs: list[dict[str, Any]], distributions: dict[str, Any], path: Path
) -> BuildResult:
    """Write the build's table to ``path`` (atomically) and say what it holds."""
    from optuna.distributions import distribution_to_json

    from greenml import __version__
    from greenml.ledger import spent_energy_j
    from greenml.storage import redact_url

    study = search.study
    spec = search.dataset.spec
    frame = table_frame(
        study, configs, lambda params, device: artifact_key_of(search.space, spec, params, device)
    )
    if len(frame) == 0:
        raise ConfigError(f"no grid point of study {study.study_name!r} has completed yet; nothing to write")
    seconds = sum(t.duration.total_seconds() for t in study.get_trials(deepcopy=False) if t.duration)
    energy = spent_energy_j(study)
    bases = sorted({str(b) for b in frame.get("energy_basis", []) if b is not None})
    meta = {
        "version": TABLE_VERSION,
        "space": search.space.name,
        "dataset": search.config.dataset,
        "grid": {name: list(values) for name, values in grid.values.items()},
        "distributions": {
            name: distribution_to_json(d) for name, d in distributions.items() if name != FIDELITY
        },
        "grid_size": len(configs),
        "missing": len(configs) - len(frame),
        # The final benchmark's windows: a replay scales its estimate of the cost phase by them.
        "benchmark_windows_s": {"latency": search.config.latency_s, "energy": search.config.energy_window_s},
        "objectives": list(search.config.objectives),
        "hardware": study.user_attrs.get(records.HARDWARE),
        "meter": search.meter.name,
        "footprint": {
            "energy_j": energy,
            "energy_basis": ", ".join(bases) or "unknown",
            "trial_seconds": seconds,
        },
        "study": study.study_name,
        "storage": redact_url(search.config.storage_url),
        "command": search.command,
        "greenml_version": __version__,
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_table(frame, meta, path)
    return BuildResult(len(frame), len(configs), len(configs) - len(frame), energy, seconds, path)


def build(
    config: Any, grid: Grid, output: Path, command: list[str] | None = None, progress: Any = None
) -> BuildResult:
    """Expand the grid (a bad grid writes nothing), queue it in the study, run the queued
    trials (``config.workers`` processes), then write the table."""
    from greenml.data import load_dataset
    from greenml.search import prepare, run, run_workers
    from greenml.spaces import load_space

    configs, distributions = grid_configs(
        grid, load_space(config.space), load_dataset(config.dataset, config.seed, config.target).spec
    )
    search = prepare(config, command, register=config.workers == 1)
    try:
        queued = queue_grid(search, configs)
        print(
            f"greenml: grid of {len(configs)} configurations; {queued} queued now, "
            f"{len(configs) - queued} already complete, running or queued",
            file=sys.stderr,
        )
        if config.workers > 1:
            run_workers(search, progress)
        else:
            run(search, progress)
        return write_build_table(search, grid, configs, distributions, output)
    finally:
        search.close()
