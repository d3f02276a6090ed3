"""Latency and energy per inference of a deployable model: eager torch or ONNX Runtime.

A search compares models by what they cost to *serve*, so the benchmark pins what would
otherwise drift between trials: the thread count, eval mode, no autograd, a warm-up, and enough
repetitions that one slow call does not decide a percentile. Energy comes from a
:class:`~greenml.measure.Meter` window held open long enough for the meter's resolution
(RAPL and NVML counters update every few milliseconds) to be small next to the total.

Here: :func:`benchmark_inference` and what it returns. The timing and its statistics are in
:mod:`greenml.measure._timing`, the torch and ONNX Runtime runners in
:mod:`greenml.measure._runners`. torch, onnx and onnxruntime are imported inside the functions
that use them, so importing :mod:`greenml.measure` stays fast.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greenml.errors import ConfigError
from greenml.measure._runners import ORT_COPIES as ORT_COPIES  # sessions the timing rotates over
from greenml.measure._runners import (
    Runner,
    is_torch_module,
    is_torch_tensor,
    ort_runner,
    ort_session,
    torch_runner,
)
from greenml.measure._timing import LatencyStats, time_interleaved

if TYPE_CHECKING:
    from greenml.measure._meter import Meter
    from greenml.measure._types import WindowResult

__all__ = ["InferenceBenchmark", "LatencyStats", "benchmark_inference"]

# benchmark_inference opens ONNX Runtime sessions through this name and reads the clock through
# this module's ``time``, so a test can count the sessions or drive the clock.
_ort_session = ort_session


@dataclass(frozen=True)
class InferenceBenchmark:
    """What one model costs to serve, at batch 1 and at ``batch_size``.

    ``batch_latency_ms`` is the latency of one call carrying ``batch_size`` samples. Energies are
    per sample: ``batch_energy_per_inference_j`` divides the batch window's energy by calls ×
    ``batch_size``. ``energy_per_inference_by_component_j`` splits the batch-1 figure into
    ``gpu``, ``cpu`` and ``dram`` (``None`` for a component not metered). Energy fields are ``None`` without a meter, and batch fields are ``None`` when
    the model cannot take a larger batch (``notes`` says why). ``provenance`` is the meter's
    :class:`~greenml.measure.Provenance` as a dict: which backend, measured or estimated.
    ``providers`` are the execution providers ONNX Runtime's session ran on, in its order
    (``["CPUExecutionProvider"]`` on the CPU; ``None`` for torch): a session that fell back to the
    CPU for a CUDA ``device`` is refused, never measured as the GPU.
    """

    runtime: str
    device: str
    threads: int
    batch_size: int
    latency_ms: LatencyStats
    batch_latency_ms: LatencyStats | None
    energy_per_inference_j: float | None = None
    energy_per_inference_by_component_j: dict[str, float | None] | None = None
    dynamic_energy_per_inference_j: float | None = None
    energy_window_s: float | None = None
    energy_inferences: int | None = None
    batch_energy_per_inference_j: float | None = None
    batch_dynamic_energy_per_inference_j: float | None = None
    batch_energy_window_s: float | None = None
    batch_energy_inferences: int | None = None
    provenance: dict[str, Any] | None = None
    notes: tuple[str, ...] = field(default=())
    latency_rounds: int = 1
    providers: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "device": self.device,
            "providers": None if self.providers is None else list(self.providers),
            "threads": self.threads,
            "batch_size": self.batch_size,
            "latency_ms": self.latency_ms.to_dict(),
            "batch_latency_ms": self.batch_latency_ms.to_dict() if self.batch_latency_ms else None,
            "energy_per_inference_j": self.energy_per_inference_j,
            "energy_per_inference_by_component_j": self.energy_per_inference_by_component_j,
            "dynamic_energy_per_inference_j": self.dynamic_energy_per_inference_j,
            "energy_window_s": self.energy_window_s,
            "energy_inferences": self.energy_inferences,
            "batch_energy_per_inference_j": self.batch_energy_per_inference_j,
            "batch_dynamic_energy_per_inference_j": self.batch_dynamic_energy_per_inference_j,
            "batch_energy_window_s": self.batch_energy_window_s,
            "batch_energy_inferences": self.batch_energy_inferences,
            "provenance": self.provenance,
            "notes": list(self.notes),
            "latency_rounds": self.latency_rounds,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def benchmark_inference(
    model: Any,
    example_input: Any,
    *,
    meter: Meter | None = None,
    batch_size: int = 32,
    threads: int = 1,
    warmup_iters: int = 10,
    latency_iters: int = 200,
    min_latency_s: float = 1.0,
    min_energy_window_s: float = 1.0,
    device: str | None = None,
    blocks: int = 20,
    max_rounds: int = 1,
    settle_rel: float = 0.05,
) -> InferenceBenchmark:
    """Measure latency percentiles and, with a ``meter``, energy per inference.

    ``model`` is a ``torch.nn.Module`` (run eagerly) or an ONNX model run with ONNX Runtime:
    a path, bytes, an ``onnx.ModelProto`` or an ``onnxruntime.InferenceSession``.
    ``example_input`` is one sample with a leading batch dimension of 1 (torch tensor or numpy
    array); the larger batch repeats it along dim 0. ``device`` defaults to where the torch
    model's parameters are, and to the CPU for ONNX Runtime; ``"cuda"`` / ``"cuda:N"`` selects
    the GPU (ONNX Runtime's CUDA execution provider); an ONNX Runtime session that fell back to
    the CPU for it is a MeasurementError naming the provider it ran on.

    Latency timing runs at least ``latency_iters`` calls *and* at least ``min_latency_s``
    seconds of timed calls for each batch size, so that a fast model's percentiles span more than
    one of the machine's slow spells (on a shared 2-vCPU VM, 200 calls of a 45 µs model fit
    inside one 100 ms hiccup). The calls are timed in ``blocks`` blocks per batch size, batch 1
    and the larger batch taking turns over the whole timed period (about 2 × ``min_latency_s``);
    ``p50_ms`` is the median of the block medians and ``stderr_ms`` its standard error (see
    :class:`LatencyStats`).

    A slow spell of the machine that lasts over half the timed period moves even a median of
    block medians, but the blocks outside it still show the usual level
    (:attr:`LatencyStats.disturbance`). With ``max_rounds`` > 1, while the batch-1 ``p50_ms``
    sits more than ``settle_rel`` above its fastest tenth of blocks, the whole interleaved timing
    is done again, up to ``max_rounds`` rounds, and the least disturbed round is kept
    (``latency_rounds`` says how many ran).
    """
    _check_int("batch_size", batch_size, 1)
    _check_int("threads", threads, 1)
    _check_int("warmup_iters", warmup_iters, 0)
    _check_int("latency_iters", latency_iters, 1)
    _check_int("blocks", blocks, 2)
    _check_int("max_rounds", max_rounds, 1)
    if isinstance(settle_rel, bool) or not isinstance(settle_rel, (int, float)) or not settle_rel >= 0:
        raise ConfigError(f"settle_rel must be a number >= 0, got {settle_rel!r}")
    if (
        isinstance(min_latency_s, bool)
        or not isinstance(min_latency_s, (int, float))
        or not math.isfinite(min_latency_s)
        or min_latency_s < 0
    ):
        raise ConfigError(f"min_latency_s must be a number of seconds >= 0, got {min_latency_s!r}")
    if (
        isinstance(min_energy_window_s, bool)
        or not isinstance(min_energy_window_s, (int, float))
        or not math.isfinite(min_energy_window_s)
        or min_energy_window_s <= 0
    ):
        raise ConfigError(f"min_energy_window_s must be a number of seconds > 0, got {min_energy_window_s!r}")
    if meter is not None and not callable(getattr(meter, "begin", None)):
        raise ConfigError(f"meter must be a greenml.measure.Meter or None, got {type(meter).__name__}")
    if device is not None and not isinstance(device, str):
        device = str(device)  # a torch.device, say
    _check_example_input(example_input)

    if is_torch_module(model):
        runner_context = torch_runner(model, example_input, batch_size, threads, device)
    else:
        runner_context = ort_runner(
            model, example_input, batch_size, threads, device, open_session=_ort_session
        )
    with runner_context as runner:
        _check_first_call(runner, example_input)
        to_time = [runner.call_one] if runner.call_batch is None else [runner.call_one, runner.call_batch]
        best: list[LatencyStats] | None = None
        rounds = 0
        while rounds < max_rounds:
            stats = time_interleaved(
                to_time,
                warmup_iters,
                latency_iters,
                min_latency_s,
                blocks,
                runner.next_copy,
                clock=time.perf_counter_ns,
            )
            rounds += 1
            if best is None or stats[0].disturbance < best[0].disturbance:
                best = stats
            if stats[0].disturbance <= settle_rel:
                break
        assert best is not None
        latency, *batch_stats = best
        batch_latency = batch_stats[0] if batch_stats else None
        energy: dict[str, Any] = {}
        if meter is not None:
            one, one_calls = _energy_window(meter, "inference", runner.call_one, min_energy_window_s)
            energy.update(
                energy_per_inference_j=one.total_energy_j / one_calls,
                energy_per_inference_by_component_j={
                    name: _per(joules, one_calls) for name, joules in one.energy_j.items()
                },
                dynamic_energy_per_inference_j=_per(one.dynamic_total_energy_j, one_calls),
                energy_window_s=one.seconds,
                energy_inferences=one_calls,
                provenance=one.provenance.to_dict(),
            )
            if runner.call_batch is not None:
                batch, calls = _energy_window(
                    meter, "inference_batch", runner.call_batch, min_energy_window_s
                )
                samples = calls * batch_size
                energy.update(
                    batch_energy_per_inference_j=batch.total_energy_j / samples,
                    batch_dynamic_energy_per_inference_j=_per(batch.dynamic_total_energy_j, samples),
                    batch_energy_window_s=batch.seconds,
                    batch_energy_inferences=samples,
                )
    return InferenceBenchmark(
        runtime=runner.runtime,
        device=runner.device,
        threads=threads,
        batch_size=batch_size,
        latency_ms=latency,
        batch_latency_ms=batch_latency,
        latency_rounds=rounds,
        notes=tuple(runner.notes),
        providers=runner.providers,
        **energy,
    )


# -- checks ------------------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_example_input(example_input: object) -> None:
    import numpy as np

    if not (is_torch_tensor(example_input) or isinstance(example_input, np.ndarray)):
        raise ConfigError(
            "example_input must be a torch.Tensor or a numpy.ndarray with a leading batch "
            f"dimension of 1, got {type(example_input).__name__}"
        )
    shape = tuple(example_input.shape)  # type: ignore[attr-defined]
    if not shape or shape[0] != 1:
        raise ConfigError(
            f"example_input must have a leading batch dimension of 1, shape (1, ...), got shape {shape}"
        )


def _check_first_call(runner: Runner, example_input: Any) -> None:
    """One call before timing, so a model/input mismatch is a one-line error, not a traceback."""
    try:
        runner.call_one()
    except ConfigError:
        raise
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"the {runner.runtime} model failed on example_input of shape "
            f"{tuple(example_input.shape)}: {first_line}"
        ) from error


def _per(joules: float | None, count: int) -> float | None:
    return None if joules is None else joules / count


# -- measuring ---------------------------------------------------------------------------------


def _energy_window(
    meter: Meter, name: str, call: Callable[[], object], min_seconds: float
) -> tuple[WindowResult, int]:
    """Call repeatedly inside one window until it has lasted ``min_seconds``; return it and the count.

    Where an energy counter moves in coarse steps (NVML's, every few tens of milliseconds), the
    window begins right after a step and, once ``min_seconds`` have passed, goes on calling until
    the next step: it then covers whole counter periods and the steps no longer set its error.
    """
    meter.wait_for_step(call)  # calls before the first step are not counted
    window = meter.begin(name)
    calls = 0
    try:
        deadline = time.perf_counter_ns() + int(min_seconds * 1e9)
        while True:
            call()
            calls += 1
            if time.perf_counter_ns() >= deadline:
                break
        calls += meter.wait_for_step(call)
    finally:
        result = window.end()
    return result, calls
