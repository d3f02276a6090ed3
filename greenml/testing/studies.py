"""Synthetic studies with the records ``greenml search`` writes, for report tests and benchmarks.

A real 1,000-trial search takes hours on a CPU; the report only reads stored records, so a study
whose trials have the same attributes (parameters, metrics with their per-component split,
per-phase and per-component energy, provenance, devices, notes, constraints, errors) exercises
every part of it. The numbers are made up and say so: the provenance's method reads "synthetic".

``basis`` picks the measurement set-up: ``estimated`` (the CPU-time estimate alone, as on a
machine with no GPU and no RAPL), ``measured`` (RAPL: CPU and DRAM) or ``partly estimated``
(a GPU measured through NVML beside the CPU estimated from CPU time; torch artifacts deployed on
the GPU, ONNX Runtime ones on the CPU).

Without ``workers`` a study looks like one from before workers were recorded: its trials carry
no ``worker`` or ``hardware`` and only the study's ``hardware`` attribute says where it ran.
With ``workers`` (see :func:`worker`) the trials go round the workers, each recording its worker
and machine, and each worker measuring on its own basis. ``ledger`` books study-level entries
(``teacher``: the distillation teacher, with the study's ``teacher`` attribute) as worker 0.
``stale`` trials die with their worker: failed by the heartbeat with no error, what they spent
so far recorded, and retried by the next trial as Optuna's retry callback does it (the last
trial's retry is left waiting, with a copy of the dead trial's attributes).

``curves`` gives every trial that trained a learning curve (``learning_curve``: per epoch,
validation accuracy and cumulative training energy and time) and the per-phase metrics of every
phase, the cost phase at 0 where it did not run, as today's search writes them. ``stop_every``
runs the study under early stopping (``mo-asha``; implies ``curves``): every trial measures its
deployment cost first (the ``cost`` phase, ``early_cost``), and every ``stop_every``-th trial
that does not fail is stopped by the rule the way the search stores it: PRUNED, with ``stopped``
(the rule's reason), ``early_cost``, its curve up to the rung, its energy and phases, and
``metrics`` holding its early cost and its window's figures. The first stopped trial, and every
third after it, is stopped before training (no curve) once a trial has completed; the others at
a rung (epoch 1, 3 or 9) before their last epoch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from greenml import records
from greenml.metrics import COMPONENTS, MAXIMIZED, PHASES
from greenml.records import TrialOutcome, WindowRecord, outcome_attrs
from greenml.units import co2_g

__all__ = ["BASES", "PROVENANCE", "RUNGS", "make_study", "provenance", "worker"]

BASES = ("estimated", "measured", "partly estimated")
BATCH = 32  # the synthetic "larger batch"
GPU = "GPU-00000000-0000-0000-0000-000000000000 (synthetic GPU)"
NO_PRUNABLE_LAYER = (
    "pruning changed nothing: torch-pruning found no prunable layer in a one-layer MLP (synthetic)"
)


def _source(component: str, kind: str, backend: str, devices: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "component": component,
        "kind": kind,
        "backend": backend,
        "method": "synthetic (greenml.testing.studies)",
        "devices": list(devices),
    }


def provenance(basis: str = "estimated") -> dict[str, Any]:
    """The ``provenance`` a trial of a study on ``basis`` records (see the module docstring)."""
    if basis not in BASES:
        raise ValueError(f"unknown basis {basis!r}; valid: {', '.join(BASES)}")
    components: dict[str, Any] = dict.fromkeys(COMPONENTS)
    idle: dict[str, float | None] = dict.fromkeys(COMPONENTS)
    drivers: dict[str, str] = {}
    notes: list[str] = []
    if basis == "estimated":
        components["cpu"] = _source("cpu", "estimated", "estimate")
        idle["cpu"] = 0.5
    elif basis == "measured":
        components["cpu"] = _source("cpu", "measured", "rapl", ["package-0"])
        components["dram"] = _source("dram", "measured", "rapl", ["package-0"])
        idle.update(cpu=5.0, dram=1.0)
    else:
        components["gpu"] = _source("gpu", "measured", "nvml", [GPU])
        components["cpu"] = _source("cpu", "estimated", "estimate")
        idle.update(gpu=30.0, cpu=0.5)
        drivers["nvidia"] = "synthetic"
        notes.append("DRAM not metered: no readable RAPL on this synthetic machine")
    metered = [c for c in COMPONENTS if components[c] is not None]
    return {
        "meter": "+".join(dict.fromkeys(components[c]["backend"] for c in metered)),
        "energy_basis": basis,
        "total_components": metered,
        "components": components,
        "drivers": drivers,
        "warnings": [],
        "notes": notes,
        "idle": {"seconds": 1.0, "power_w": idle},
        "carbon": {"country": None, "intensity_g_per_kwh": 475.0, "pue": 1.0, "source": "synthetic"},
    }


PROVENANCE: dict[str, Any] = provenance("estimated")

# How a trial's energy, and a deployed artifact's energy per inference, splits over the metered
# components: (whole trial, inference on the GPU, inference on the CPU).
_SPLITS: dict[str, tuple[dict[str, float], dict[str, float], dict[str, float]]] = {
    "estimated": ({"cpu": 1.0}, {"cpu": 1.0}, {"cpu": 1.0}),
    "measured": ({"cpu": 0.8, "dram": 0.2}, {"cpu": 0.8, "dram": 0.2}, {"cpu": 0.8, "dram": 0.2}),
    "partly estimated": ({"gpu": 0.75, "cpu": 0.25}, {"gpu": 0.8, "cpu": 0.2}, {"gpu": 0.35, "cpu": 0.65}),
}


def worker(
    host: str = "synthetic-host",
    cpu: str = "synthetic CPU",
    cpu_count: int = 2,
    gpus: Sequence[str] | None = None,
    basis: str | None = None,
) -> dict[str, Any]:
    """A worker for ``make_study(workers=...)``: its machine, and its measurement set-up
    (``basis``, default the study's; a worker on ``partly estimated`` has a GPU by default)."""
    return {"host": host, "cpu": cpu, "cpu_count": cpu_count, "gpus": gpus, "basis": basis}


def _hardware(spec: Mapping[str, Any], basis: str) -> dict[str, Any]:
    """The ``hardware`` record of a worker, as ``greenml search`` writes it (host info and meter)."""
    gpus = spec.get("gpus")
    if gpus is None:
        gpus = ["cuda:0 synthetic GPU"] if basis == "partly estimated" else []
    return {
        "host": spec.get("host", "synthetic-host"),
        "cpu": spec.get("cpu", "synthetic CPU"),
        "cpu_count": spec.get("cpu_count", 2),
        "gpus": list(gpus),
        "platform": "synthetic",
        "python": "synthetic",
        "torch": "synthetic",
        "onnxruntime": "synthetic",
        "optuna": "synthetic",
        "meter": provenance(basis)["meter"],
    }


def _split(total: float, fractions: dict[str, float]) -> dict[str, float | None]:
    return {c: total * fractions[c] if c in fractions else None for c in COMPONENTS}


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


def _notes(params: dict[str, Any]) -> list[str]:
    """Structured pruning of a one-layer MLP finds nothing to prune (as torch-pruning would not)."""
    return [NO_PRUNABLE_LAYER] if params["pruning"] == "structured" and params["n_layers"] == 1 else []


WATTS = 8.0  # the synthetic trials' power, by default


def _metrics(params: dict[str, Any], rng: random.Random, watts: float = WATTS) -> dict[str, float]:
    pruned = 0.0 if _notes(params) else params.get("prune_amount", 0.0)
    size = params["n_layers"] * params["width"] * (1 - pruned)
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
        "latency_p90_ms": latency * 1.15,
        "latency_p99_ms": latency * 1.6,
        "latency_stderr_ms": latency * 0.01,
        "batch_latency_ms": latency * 6.0,
        "batch_throughput_per_s": BATCH / (latency * 6.0e-3),
        "inference_dynamic_energy_j": energy_per_inference * 0.8,
        "batch_inference_energy_j": energy_per_inference * 0.25,
        "batch_inference_dynamic_energy_j": energy_per_inference * 0.2,
    }
    for phase, seconds in phases.items():
        metrics[f"{phase}_seconds"] = seconds
        metrics[f"{phase}_energy_j"] = seconds * watts
    metrics["trial_seconds"] = sum(phases.values()) + 0.05
    metrics["trial_energy_j"] = metrics["trial_seconds"] * watts
    metrics["co2_g"] = co2_g(metrics["trial_energy_j"], 475.0)
    return metrics


# MO-ASHA's rungs with --min-epochs 1 and --reduction-factor 3 (the defaults), up to 30 epochs.
RUNGS = (1, 3, 9, 27)
REDUCTION_FACTOR = 3
COST_SECONDS = 2.0  # the cost phase: deploy an untrained copy and benchmark it
CHANCE = 0.1  # digits: ten classes
# What the search measures before training, under early stopping (greenml.trial._cost_metrics).
_COST_METRICS = (
    "latency_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_stderr_ms",
    "inference_energy_j",
    "inference_dynamic_energy_j",
    "batch_inference_energy_j",
    "batch_inference_dynamic_energy_j",
    "model_bytes",
    "batch_latency_ms",
    "batch_throughput_per_s",
    *(f"inference_{c}_energy_j" for c in COMPONENTS),
)


def _learning_curve(
    params: dict[str, Any], metrics: dict[str, float], rng: random.Random
) -> list[dict[str, float]]:
    """A curve over the trial's sampled epochs that rises from chance towards its final accuracy;
    its epochs take 90% of the train phase's energy and time (the rest: moving data, the teacher)."""
    epochs = params["epochs"]
    energy = seconds = 0.0
    points = []
    for epoch in range(1, epochs + 1):
        progress = (1 - math.exp(-3 * epoch / epochs)) / (1 - math.exp(-3))
        accuracy = CHANCE + (metrics["accuracy"] - CHANCE) * progress + rng.gauss(0, 0.005)
        energy += 0.9 * metrics["train_energy_j"] / epochs * rng.uniform(0.95, 1.05)
        seconds += 0.9 * metrics["train_seconds"] / epochs * rng.uniform(0.95, 1.05)
        points.append(
            {"epoch": epoch, "accuracy": min(1.0, max(0.0, accuracy)), "energy_j": energy, "seconds": seconds}
        )
    return points


def _window(phases: Mapping[str, tuple[float, float]], watts: float) -> dict[str, float]:
    """A trial's own footprint as greenml.trial.window_metrics writes it: every phase, 0 where it
    did not run, from {phase: (seconds, energy)}."""
    values: dict[str, float] = {}
    for phase in PHASES:
        values[f"{phase}_seconds"], values[f"{phase}_energy_j"] = phases.get(phase, (0.0, 0.0))
    values["trial_seconds"] = sum(seconds for seconds, _ in phases.values()) + 0.05
    values["trial_energy_j"] = values["trial_seconds"] * watts
    values["co2_g"] = co2_g(values["trial_energy_j"], 475.0)
    return values


def _stop_reason(number: int, rung: int, dominator: int | None, best_error: float) -> str:
    """The rule's reason, worded as greenml.search._stopping.MOASHA words it."""
    if rung == 0:
        return (
            f"stopped before training: complete trial {dominator}, with the best validation error "
            f"so far ({best_error:.4g}), costs no more on every cost objective and less on one, so "
            f"trial {number} would be dominated even at that accuracy"
        )
    entries = 3 + number % 4
    keep = -(-entries // REDUCTION_FACTOR)
    return (
        f"stopped at epoch {rung}: ranked {entries} of {entries} trials at this rung (Pareto front 2); "
        f"the best {keep} (1/η with η={REDUCTION_FACTOR:g}, rounded up) go on"
    )


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
    basis: str = "estimated",
    workers: Sequence[Mapping[str, Any]] = (),
    ledger: Mapping[str, float] | None = None,
    stale: Sequence[int] = (),
    curves: bool = False,
    stop_every: int = 0,
    watts: float = WATTS,
) -> Any:
    """Create a study of ``n_trials`` synthetic trials in ``storage`` (every ``fail_every``-th
    fails with ``error``); ``constraints`` are (metric, lower bound) pairs on maximised metrics
    or upper bounds on the others, stored the way ``Trial.set_constraint`` stores them;
    ``basis`` is the measurement set-up; ``workers`` (made with :func:`worker`), ``ledger``
    ({name: energy in J}), ``stale`` (trial numbers), ``curves`` and ``stop_every`` as the
    module docstring says; ``watts``: the trials' power, which scales their energy (a study in
    Wh rather than J). The defaults make the study they always made: the options add records
    and draw their numbers from a generator of their own."""
    import optuna
    from optuna.trial import TrialState

    for spec in workers:
        if spec.get("basis") not in (None, *BASES):
            provenance(spec["basis"])  # the error that names the valid bases
    # (basis, hardware record) of each worker
    machines = [(b, _hardware(spec, b)) for spec in workers for b in [spec.get("basis") or basis]]
    gpu = basis == "partly estimated"
    device = "cuda:0" if gpu else "cpu"
    rng = random.Random(seed)
    early = stop_every > 0
    curves = curves or early
    curve_rng = random.Random(f"curves-{seed}")  # apart from rng: the options change no other number
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=["maximize" if m in MAXIMIZED else "minimize" for m in objectives],
    )
    labels = [f"{m}>={v:g}" if m in MAXIMIZED else f"{m}<={v:g}" for m, v in constraints]
    comparable: dict[str, Any] = {
        records.SPACE: "mlp",
        records.DATASET: "digits",
        records.OBJECTIVES: list(objectives),
        records.CONSTRAINTS: labels,
        records.DEVICE: device,
        records.DEPLOY_DEVICE: device,
    }
    if curves:  # as the search's comparable settings record it
        comparable[records.EARLY_STOPPING] = (
            ["mo-asha", float(REDUCTION_FACTOR), 1, None] if early else "none"
        )
    settings: dict[str, Any] = {
        records.GREENML_VERSION: "synthetic",
        records.SPACE_SPEC: "mlp",
        records.SAMPLER: "random",
        records.SEED: seed,
        records.COMMAND: [
            "greenml",
            "search",
            "--study",
            name,
            *(["--early-stopping", "mo-asha"] if early else []),
        ],
        # written by the study's first worker
        records.HARDWARE: machines[0][1]
        if machines
        else {
            "cpu": "synthetic CPU",
            "cpu_count": 2,
            "gpus": ["synthetic GPU"] if gpu else [],
            "platform": "synthetic",
        },
    }
    # The search writes these through the same writer; ``attrs`` overrides any of them.
    overrides = dict(attrs or {})
    comparable.update({k: overrides.pop(k) for k in list(overrides) if k in records.COMPARABLE_SETTINGS})
    settings.update(overrides)
    records.record_study(study, records.study_attrs(comparable, **settings))
    for entry, energy in (ledger or {}).items():
        if entry == "teacher":
            teacher = {
                "artifact_id": "synthetic",
                "space": "mlp",
                "params": {"n_layers": 2, "width": 256},
                "epochs": 20,
                "val_accuracy": 0.97,
            }
            records.record_teacher(study, teacher, _ledger_entry(energy, machines, basis))
        else:
            records.record_ledger_entry(study, entry, _ledger_entry(energy, machines, basis))
    distributions = _distributions()
    clock = datetime(2026, 1, 1, tzinfo=timezone.utc).replace(tzinfo=None)
    trials = []
    retry: tuple[dict[str, Any], dict[str, Any]] | None = None  # (params, system attrs) of the next trial
    waiting: Any = None  # the last trial's retry, when its worker died
    stopped = 0  # trials stopped by the rule so far
    best: tuple[float, int] | None = None  # (best validation error, its trial) of the complete trials
    for number in range(n_trials):
        params = _params(rng) if retry is None else retry[0]
        system_attrs = {} if retry is None else retry[1]
        retry = None
        used = {key: distributions[key] for key in params}
        failed = fail_every > 0 and number % fail_every == fail_every - 1
        stop = early and not failed and number not in stale and number % stop_every == stop_every - 1
        metrics = _metrics(params, rng, watts)
        curve = _learning_curve(params, metrics, curve_rng) if curves else []
        if curves:  # every phase's figures, the cost phase's under early stopping
            ran = {
                p: (metrics[f"{p}_seconds"], metrics[f"{p}_energy_j"])
                for p in PHASES
                if f"{p}_seconds" in metrics
            }
            if early:
                ran["cost"] = (COST_SECONDS, COST_SECONDS * watts)
            metrics.update(_window(ran, watts))
        start = clock
        clock += timedelta(seconds=metrics["trial_seconds"])
        trial_basis, ran_by = basis, {}
        if machines:
            index = number % len(machines)
            trial_basis, hardware = machines[index]
            ran_by = {records.WORKER: _worker_record(index, hardware), records.HARDWARE: hardware}
        prov = provenance(trial_basis)
        trained_on = "cuda:0" if trial_basis == "partly estimated" else "cpu"
        trial_split, on_gpu, on_cpu = _SPLITS[trial_basis]
        user_attrs: dict[str, Any] = dict(ran_by)
        if number in stale:
            # Its worker died after the train phase: what it spent so far, no error, no window.
            dead = {**ran_by, records.ENERGY_SO_FAR: metrics["train_energy_j"]}
            history = [*system_attrs.get(records.RETRY_HISTORY, []), number]
            retry = (
                params,
                {
                    records.FAILED_TRIAL: system_attrs.get(records.FAILED_TRIAL, number),
                    records.RETRY_HISTORY: history,
                },
            )
            trial = optuna.trial.create_trial(
                state=TrialState.FAIL,
                params=params,
                distributions=used,
                user_attrs=dead,
                system_attrs=system_attrs,
            )
            clock = start + timedelta(seconds=metrics["train_seconds"])
            if number == n_trials - 1:  # queued again, not run yet: a copy of the dead trial's attributes
                waiting = optuna.trial.create_trial(
                    state=TrialState.WAITING,
                    params=params,
                    distributions=used,
                    user_attrs=dict(dead),
                    system_attrs=retry[1],
                )
        elif stop:
            deploy = trained_on if params["runtime"] == "torch" else "cpu"
            inference = _split(metrics["inference_energy_j"], on_gpu if deploy != "cpu" else on_cpu)
            metrics.update({f"inference_{c}_energy_j": v for c, v in inference.items() if v is not None})
            cost = {key: metrics[key] for key in _COST_METRICS if key in metrics}
            rungs = [r for r in RUNGS if r < params["epochs"]]
            rung = 0 if stopped % 3 == 0 and best is not None else curve_rng.choice(rungs[:3])
            stopped += 1
            ran = {"cost": (COST_SECONDS, COST_SECONDS * watts)}
            if rung:
                share = rung / params["epochs"]
                ran["train"] = (metrics["train_seconds"] * share, metrics["train_energy_j"] * share)
            window = _window(ran, watts)
            best_error, dominator = best or (1.0, None)
            user_attrs.update(
                outcome_attrs(
                    TrialOutcome(
                        device=trained_on,
                        deploy_device=deploy,
                        learning_curve=curve[:rung],  # a trial stopped before training has none
                        early_cost=cost,
                        window=WindowRecord(
                            energy_j=window["trial_energy_j"],
                            energy_components_j=_split(window["trial_energy_j"], trial_split),
                            provenance=prov,
                            phases={
                                p: {"seconds": sec, "energy_j": joules} for p, (sec, joules) in ran.items()
                            },
                        ),
                        stopped=_stop_reason(number, rung, dominator, best_error),
                        metrics={**cost, **window},
                    )
                )
            )
            trial = optuna.trial.create_trial(
                state=TrialState.PRUNED,
                params=params,
                distributions=used,
                user_attrs=user_attrs,
                system_attrs=system_attrs,
            )
            clock = start + timedelta(seconds=window["trial_seconds"])
        elif failed:
            energy = metrics["train_energy_j"] * 0.5
            user_attrs.update(
                outcome_attrs(
                    TrialOutcome(
                        device=trained_on,
                        deploy_device=trained_on,
                        learning_curve=curve[: len(curve) // 2],  # it failed halfway through training
                        window=WindowRecord(
                            energy_j=energy,
                            energy_components_j=_split(energy, trial_split),
                            provenance=prov,
                            phases={"train": {"seconds": metrics["train_seconds"] * 0.5, "energy_j": energy}},
                        ),
                        error=error,
                        traceback=f'Traceback (most recent call last):\n  File "space.py", line 1\n{error}\n',
                    )
                )
            )
            trial = optuna.trial.create_trial(
                state=TrialState.FAIL,
                params=params,
                distributions=used,
                user_attrs=user_attrs,
                system_attrs=system_attrs,
            )
        else:
            deploy = trained_on if params["runtime"] == "torch" else "cpu"
            inference = _split(metrics["inference_energy_j"], on_gpu if deploy != "cpu" else on_cpu)
            metrics.update({f"inference_{c}_energy_j": v for c, v in inference.items() if v is not None})
            user_attrs.update(
                outcome_attrs(
                    TrialOutcome(
                        device=trained_on,
                        deploy_device=deploy,
                        notes=_notes(params),
                        learning_curve=curve if curves else (),
                        early_cost={key: metrics[key] for key in _COST_METRICS if key in metrics}
                        if early
                        else None,
                        window=WindowRecord(
                            energy_j=metrics["trial_energy_j"],
                            energy_components_j=_split(metrics["trial_energy_j"], trial_split),
                            provenance=prov,
                            phases={
                                p: {"seconds": metrics[f"{p}_seconds"], "energy_j": metrics[f"{p}_energy_j"]}
                                for p in PHASES
                                if f"{p}_seconds" in metrics
                            },
                        ),
                        metrics=metrics,
                    )
                )
            )
            if best is None or 1 - metrics["accuracy"] < best[0]:
                best = (1 - metrics["accuracy"], number)
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
                system_attrs=system_attrs,
                constraints=violations,
            )
        trial.datetime_start = start
        trial.datetime_complete = clock
        trials.append(trial)
    if waiting is not None:
        trials.append(waiting)
    study.add_trials(trials)
    return study


def _worker_record(number: int, hardware: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's ``worker`` attribute: the worker's number, host and (made-up) process id."""
    return {"number": number, "host": hardware["host"], "pid": 1000 + number}


def _ledger_entry(
    energy_j: float, machines: Sequence[tuple[str, dict[str, Any]]], basis: str
) -> dict[str, Any]:
    """A ledger entry as the search books it, spent by worker 0 (by no recorded worker without workers)."""
    entry_basis, hardware = machines[0] if machines else (basis, None)
    return {
        "energy_j": energy_j,
        "seconds": energy_j / 8.0,  # the synthetic trials' 8 W
        "energy_basis": entry_basis,
        "energy_components_j": _split(energy_j, _SPLITS[entry_basis][0]),
        "worker": _worker_record(0, hardware) if hardware else None,
        "hardware": hardware,
    }
