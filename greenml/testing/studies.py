"""Synthetic studies with the records ``greenml search`` writes, for report tests and benchmarks.

A real 1,000-trial search takes hours on a CPU; the report only reads stored records, so a study
whose trials have the same attributes (parameters, metrics, per-phase energy, provenance,
constraints, errors) exercises every part of it. The numbers are made up and say so: the
provenance's method reads "synthetic".
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from greenml.trial import MAXIMIZED, PHASES

__all__ = ["make_study"]

PROVENANCE: dict[str, Any] = {
    "meter": "estimate",
    "energy_basis": "estimated",
    "total_components": ["cpu"],
    "components": {
        "gpu": None,
        "cpu": {
            "component": "cpu",
            "kind": "estimated",
            "backend": "estimate",
            "method": "synthetic (greenml.testing.studies)",
            "devices": [],
        },
        "dram": None,
    },
    "drivers": {},
    "warnings": [],
    "idle": {"seconds": 1.0, "power_w": {"gpu": None, "cpu": 0.5, "dram": None}},
    "carbon": {"country": None, "intensity_g_per_kwh": 475.0, "pue": 1.0, "source": "synthetic"},
}


def _distributions() -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    return {
        "n_layers": IntDistribution(1, 3),
        "width": CategoricalDistribution((32, 64, 128, 256)),
        "lr": FloatDistribution(1e-3, 1e-2, log=True),
        "epochs": IntDistribution(5, 30),
        "pruning": CategoricalDistribution(("none", "unstructured", "structured")),
        "prune_amount": FloatDistribution(0.1, 0.8),
        "runtime": CategoricalDistribution(("torch", "onnxruntime")),
        "quantization": CategoricalDistribution(("none", "dynamic", "static")),
    }


def _params(rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {
        "n_layers": rng.randint(1, 3),
        "width": rng.choice((32, 64, 128, 256)),
        "lr": math.exp(rng.uniform(math.log(1e-3), math.log(1e-2))),
        "epochs": rng.randint(5, 30),
        "pruning": rng.choice(("none", "unstructured", "structured")),
        "runtime": rng.choice(("torch", "onnxruntime")),
    }
    if params["pruning"] != "none":
        params["prune_amount"] = rng.uniform(0.1, 0.8)
    if params["runtime"] == "onnxruntime":
        params["quantization"] = rng.choice(("none", "dynamic", "static"))
    return params


def _metrics(params: dict[str, Any], rng: random.Random) -> dict[str, float]:
    size = params["n_layers"] * params["width"] * (1 - params.get("prune_amount", 0.0))
    capacity = 1 - math.exp(-size / 60)
    accuracy = min(0.995, 0.55 + 0.42 * capacity * min(1.0, params["epochs"] / 15) + rng.gauss(0, 0.01))
    quantized = params.get("quantization", "none") != "none"
    latency = (0.004 + size * 2e-5) * (0.6 if quantized else 1.0) * rng.uniform(0.9, 1.1)
    energy_per_inference = latency * 1e-3 * 4.0 * rng.uniform(0.9, 1.1)
    model_bytes = 4.0 * (64 * params["width"] + size * params["width"]) / (4 if quantized else 1)
    phases = {
        "train": 0.05 * params["epochs"] * params["width"] / 64,
        "compress": 0.3 if params["pruning"] != "none" else 0.05,
        "finetune": 0.1,
        "evaluate": 0.01,
        "benchmark": 2.0,
    }
    metrics = {
        "accuracy": accuracy,
        "test_accuracy": accuracy + rng.gauss(0, 0.01),
        "inference_energy_j": energy_per_inference,
        "latency_ms": latency,
        "model_bytes": model_bytes,
    }
    for phase, seconds in phases.items():
        metrics[f"{phase}_seconds"] = seconds
        metrics[f"{phase}_energy_j"] = seconds * 8.0
    metrics["trial_seconds"] = sum(phases.values()) + 0.05
    metrics["trial_energy_j"] = metrics["trial_seconds"] * 8.0
    metrics["co2_g"] = metrics["trial_energy_j"] / 3.6e6 * 475.0
    return metrics


def make_study(
    storage: Any,
    name: str = "synthetic",
    n_trials: int = 40,
    objectives: Sequence[str] = ("accuracy", "inference_energy_j", "latency_ms"),
    constraints: Sequence[tuple[str, float]] = (("accuracy", 0.7),),
    fail_every: int = 9,
    error: str = "RuntimeError: CUDA out of memory (synthetic)",
    seed: int = 0,
    attrs: dict[str, Any] | None = None,
) -> Any:
    """Create a study of ``n_trials`` synthetic trials in ``storage`` (every ``fail_every``-th
    fails with ``error``); ``constraints`` are (metric, lower bound) pairs on maximised metrics
    or upper bounds on the others, stored the way ``Trial.set_constraint`` stores them."""
    import optuna
    from optuna.trial import TrialState

    rng = random.Random(seed)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=["maximize" if m in MAXIMIZED else "minimize" for m in objectives],
    )
    labels = [f"{m}>={v:g}" if m in MAXIMIZED else f"{m}<={v:g}" for m, v in constraints]
    defaults = {
        "greenml_version": "synthetic",
        "space": "mlp",
        "space_spec": "mlp",
        "dataset": "digits",
        "sampler": "random",
        "seed": seed,
        "objectives": list(objectives),
        "constraints": labels,
        "device": "cpu",
        "command": ["greenml", "search", "--study", name],
        "hardware": {"cpu": "synthetic CPU", "cpu_count": 2, "gpus": [], "platform": "synthetic"},
    }
    for key, value in {**defaults, **(attrs or {})}.items():
        study.set_user_attr(key, value)
    distributions = _distributions()
    clock = datetime(2026, 1, 1, tzinfo=timezone.utc).replace(tzinfo=None)
    trials = []
    for number in range(n_trials):
        params = _params(rng)
        used = {key: distributions[key] for key in params}
        failed = fail_every > 0 and number % fail_every == fail_every - 1
        metrics = _metrics(params, rng)
        start = clock
        clock += timedelta(seconds=metrics["trial_seconds"])
        user_attrs: dict[str, Any] = {"provenance": PROVENANCE}
        if failed:
            energy = metrics["train_energy_j"] * 0.5
            user_attrs.update(
                trial_energy_j=energy,
                phases={"train": {"seconds": metrics["train_seconds"] * 0.5, "energy_j": energy}},
                error=error,
                traceback=f'Traceback (most recent call last):\n  File "space.py", line 1\n{error}\n',
            )
            trial = optuna.trial.create_trial(
                state=TrialState.FAIL, params=params, distributions=used, user_attrs=user_attrs
            )
        else:
            user_attrs.update(
                metrics=metrics,
                trial_energy_j=metrics["trial_energy_j"],
                phases={
                    p: {"seconds": metrics[f"{p}_seconds"], "energy_j": metrics[f"{p}_energy_j"]}
                    for p in PHASES
                },
            )
            values = [metrics[m] for m in objectives]
            violations = {
                label: (bound - metrics[m]) if m in MAXIMIZED else (metrics[m] - bound)
                for label, (m, bound) in zip(labels, constraints, strict=True)
            }
            trial = optuna.trial.create_trial(
                values=values,
                params=params,
                distributions=used,
                user_attrs=user_attrs,
                constraints=violations,
            )
        trial.datetime_start = start
        trial.datetime_complete = clock
        trials.append(trial)
    study.add_trials(trials)
    return study
