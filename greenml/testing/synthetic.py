"""A stand-in trial for tests and benchmarks of the search's machinery (workers, storage, budget).

:func:`evaluate` takes the place of :func:`greenml.trial.run_trial`: it samples three parameters
the way a space does, then spends ``cpu_s`` seconds of CPU time and ``sleep_s`` seconds asleep
inside the trial's measurement window, so the meter measures (or estimates) real energy for it.
Its accuracy, latency and energy per inference are made-up functions of the parameters, in the
units :mod:`greenml.metrics` names. Pass it with :func:`functools.partial` to set the costs; it
pickles, so spawned worker processes can run it.
"""

from __future__ import annotations

import math
import time
from typing import Any

from greenml.trial import TrialResult, trial_window, window_metrics

__all__ = ["evaluate"]


def evaluate(trial: Any, ctx: Any, sleep_s: float = 0.0, cpu_s: float = 0.0) -> TrialResult:
    """A trial's :class:`~greenml.trial.TrialResult`: made-up figures, a really measured window."""
    window = trial_window(ctx, trial)
    try:
        x = trial.suggest_float("x", 0.0, 1.0)
        depth = trial.suggest_int("depth", 1, 8)
        kind = trial.suggest_categorical("kind", ["narrow", "wide", "deep"])
        on_progress = getattr(ctx, "on_progress", None)
        if on_progress is not None:
            on_progress("train", 0, 2)
        with ctx.meter.window("train"):
            for epoch in (1, 2):  # two "epochs", each half the CPU time
                end = time.process_time() + cpu_s / 2
                while time.process_time() < end:
                    math.sqrt(12345.0)
                if on_progress is not None:
                    on_progress("train", epoch, 2)
        on_phase = getattr(ctx, "on_phase", None)
        if on_phase is not None:
            on_phase(window.spent_j())
        if on_progress is not None:
            on_progress("benchmark", 0, 0)
        with ctx.meter.window("benchmark"):
            time.sleep(sleep_s)
    finally:
        result = window.end()
    width = {"narrow": 1.0, "wide": 2.0, "deep": 1.5}[kind]
    metrics = {
        "accuracy": 1.0 - (x - 0.3) ** 2 - 0.01 * abs(depth - 4),
        "test_accuracy": 1.0 - (x - 0.3) ** 2,
        "inference_energy_j": 1e-4 * depth * width * (1.0 + x),
        "latency_ms": 0.1 * depth * width,
        "model_bytes": 1000.0 * depth * width,
        **window_metrics(result),  # the trial's footprint, in all and per phase, as a real trial's
    }
    return TrialResult(metrics=metrics, window=result)
