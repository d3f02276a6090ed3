"""Deployable models: each trial's artifact kept in the study's artifact store, and taken away.

A complete trial's deployed artifact is uploaded through :mod:`optuna.artifacts` as the trial's
artifact (the same store as the distillation teacher, :func:`greenml.storage.artifact_location`):

- ONNX Runtime trials: the ONNX file exactly as it was measured (quantized where it was);
- torch trials: the model as a ``torch.export`` program (``.pt2``), which reloads without the
  space's code: ``torch.export.load(path).module()``.

The trial's ``model`` attribute (:mod:`greenml.records`) names it (artifact id, format, size, sha256). At the end of
a search, ``--keep-models front`` (the default) deletes the files of trials off the Pareto front
(a dominated trial stays dominated, so this is safe while other workers still run); ``all`` keeps
every one; ``none`` saves none.

``greenml model`` writes a trial's model and its model card (JSON: parameters, metrics,
provenance, the data's shape, classes and preprocessing, and how to run it), chosen by number or
by a rule (:func:`pick_trial`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from greenml import records
from greenml.errors import ConfigError
from greenml.metrics import MAXIMIZED, parse_pick
from greenml.records import record_model, trial_constraints, trial_metrics, trial_model
from greenml.storage import scratch_file

__all__ = [
    "KEEP_CHOICES",
    "export_model",
    "knee_trial",
    "pick_trial",
    "prune_models",
    "save_model",
]

KEEP_CHOICES = ("front", "all", "none")
SUFFIX = {"onnx": ".onnx", "torch.export": ".pt2"}


def save_model(trial: Any, model: dict[str, Any], store: Any) -> dict[str, Any]:
    """Upload a trial's deployable file (from ``TrialContext.last_model``) and record it on the trial."""
    import optuna

    data: bytes = model["data"]
    with scratch_file(f"trial-{trial.number}{SUFFIX[model['format']]}") as path:
        path.write_bytes(data)
        artifact_id = optuna.artifacts.upload_artifact(
            artifact_store=store, file_path=str(path), study_or_trial=trial
        )
    record = {
        "artifact_id": artifact_id,
        "format": model["format"],
        "runtime": model["runtime"],
        "quantization": model["quantization"],
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    record_model(trial, record)
    return record


def prune_models(study: Any, store: Any, keep: str) -> int:
    """Delete the stored models of complete trials off the feasible front (``keep='front'``).

    Returns how many files were deleted. Files already gone (another worker pruned them) count
    as deleted by nobody.
    """
    from optuna.artifacts.exceptions import ArtifactNotFound

    if keep != "front":
        return 0
    front = {t.number for t in study.best_trials}
    removed = 0
    for trial in study.get_trials(deepcopy=False):
        record = trial_model(trial)
        if not record or trial.number in front or not trial.state.is_finished():
            continue
        try:
            store.remove(record["artifact_id"])
            removed += 1
        except ArtifactNotFound:
            pass
    return removed


def pick_trial(study: Any, rule: str) -> Any:
    """The complete feasible trial a rule picks: ``knee``, or ``max|min METRIC [where C [and C]...]``.

    Conditions are constraints in ``--constraint`` syntax (``latency_ms<1``), parsed by
    :func:`greenml.metrics.parse_pick`. Ties go to the lowest trial number. A rule that matches
    no trial is a one-line ConfigError.
    """
    trials = _feasible(study)
    if not trials:
        raise ConfigError(f"study {study.study_name!r} has no complete feasible trial to pick from")
    parsed = parse_pick(rule)
    if parsed.knee:
        return knee_trial(study)
    candidates = [t for t in trials if parsed.admits(trial_metrics(t))]
    if not candidates:
        raise ConfigError(f"no complete feasible trial of {study.study_name!r} satisfies {rule!r}")
    return min(candidates, key=lambda t: (parsed.loss(trial_metrics(t)), t.number))


def _feasible(study: Any) -> list[Any]:
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE" and all(v <= 0 for v in trial_constraints(t).values())
    ]


def knee_trial(study: Any) -> Any:
    """The front's knee (:func:`greenml.results.knee_index`: nearest the ideal point, each
    objective scaled 0..1 over the front)."""
    from greenml.results import knee_index

    front = sorted(study.best_trials, key=lambda t: t.number)
    if not front:
        raise ConfigError(f"study {study.study_name!r} has no Pareto front yet")
    signs = [-1.0 if d.name == "MAXIMIZE" else 1.0 for d in study.directions]
    return front[knee_index([[s * v for s, v in zip(signs, t.values, strict=True)] for t in front])]


def export_model(study: Any, trial: Any, output: Path, store: Any, storage_label: str) -> tuple[Path, Path]:
    """Write ``trial``'s model to ``output`` (its format's suffix added if missing) and its card beside it."""
    import optuna
    from optuna.artifacts.exceptions import ArtifactNotFound

    from greenml import __version__

    record = trial_model(trial)
    if trial.state.name != "COMPLETE":
        raise ConfigError(
            f"trial {trial.number} is {trial.state.name.lower()}: only complete trials have models"
        )
    if not record:
        raise ConfigError(
            f"trial {trial.number} kept no model (the search ran with --keep-models none, or before greenml kept models)"
        )
    suffix = SUFFIX[record["format"]]
    path = output if output.suffix == suffix else output.with_name(output.name + suffix)
    if not path.parent.is_dir():
        raise ConfigError(f"-o: directory {str(path.parent)!r} does not exist")
    card_path = path.with_suffix(".card.json")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        optuna.artifacts.download_artifact(
            artifact_store=store, file_path=str(tmp), artifact_id=record["artifact_id"]
        )
    except ArtifactNotFound:
        tmp.unlink(missing_ok=True)
        raise ConfigError(
            f"the model of trial {trial.number} is no longer stored: --keep-models front deletes the models "
            "of trials off the Pareto front (or the artifacts are elsewhere; give --artifacts DIR|URL)"
        ) from None
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    if digest != record["sha256"]:
        tmp.unlink()
        raise ConfigError(f"the stored model of trial {trial.number} does not match its recorded sha256")
    card = model_card(study, trial, record, path.name, storage_label, __version__)
    from greenml.results import write_atomic

    os.replace(tmp, path)
    write_atomic(card_path, json.dumps(card, indent=2, default=str) + "\n")
    return path, card_path


def model_card(
    study: Any, trial: Any, record: dict[str, Any], filename: str, storage_label: str, version: str
) -> dict[str, Any]:
    """Everything needed to trust, load and run the model, as one JSON object."""
    attrs = study.user_attrs
    data = attrs.get(records.DATA_SPEC) or {}
    shape = ["batch", *data.get("input_shape", [])]
    metrics = records.trial_metrics(trial)
    usage = {
        "onnx": (
            "import numpy as np, onnxruntime as ort\n"
            f"session = ort.InferenceSession({filename!r}, providers=['CPUExecutionProvider'])\n"
            "x = ...  # float32 array shaped like data.input_shape with a batch first, preprocessed as below\n"
            "logits = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]\n"
            "predicted = np.asarray(card['data']['classes'])[logits.argmax(axis=1)]"
        ),
        "torch.export": (
            "import torch\n"
            f"model = torch.export.load({filename!r}).module()\n"
            "x = ...  # float32 tensor shaped like data.input_shape with a batch first, preprocessed as below\n"
            "with torch.no_grad():\n    logits = model(x)\n"
            "predicted = [card['data']['classes'][i] for i in logits.argmax(dim=1).tolist()]"
        ),
    }[record["format"]]
    return {
        "greenml_version": version,
        "study": study.study_name,
        "storage": storage_label,
        "trial": trial.number,
        "model": {
            "file": filename,
            "format": record["format"],
            "runtime": record["runtime"],
            "quantization": record["quantization"],
            "bytes": record["bytes"],
            "sha256": record["sha256"],
            "input": {"shape": shape, "dtype": "float32"},
            "output": {
                "shape": ["batch", data.get("num_classes")],
                "meaning": "logits; argmax indexes data.classes",
            },
        },
        "data": {
            "dataset": attrs.get(records.DATASET),
            "seed": attrs.get(records.SEED),
            **data,
        },
        "preprocessing": attrs.get(records.PREPROCESSING),
        "params": dict(trial.params),
        "metrics": metrics,
        "objectives": list(attrs.get(records.OBJECTIVES, [])),
        "maximized": sorted(name for name in metrics if name in MAXIMIZED),
        "device": trial.user_attrs.get(records.DEVICE),
        "deploy_device": trial.user_attrs.get(records.DEPLOY_DEVICE),
        "provenance": trial.user_attrs.get(records.PROVENANCE),
        "hardware": records.trial_hardware(trial) or attrs.get(records.HARDWARE),
        "notes": records.trial_notes(trial),
        "usage": usage,
    }
