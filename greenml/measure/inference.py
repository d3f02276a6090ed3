"""Latency and energy per inference of a deployable model: eager torch or ONNX Runtime.

A search compares models by what they cost to *serve*, so the benchmark pins what would
otherwise drift between trials: the thread count, eval mode, no autograd, a warm-up, and enough
repetitions that one slow call does not decide a percentile. Energy comes from a
:class:`~greenml.measure.Meter` window held open long enough for the meter's resolution
(RAPL and NVML counters update every few milliseconds) to be small next to the total.

torch, onnx and onnxruntime are imported inside the functions that use them, so importing
:mod:`greenml.measure` stays fast.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenml.errors import ConfigError

if TYPE_CHECKING:
    from greenml.measure._meter import Meter
    from greenml.measure._types import WindowResult

__all__ = ["InferenceBenchmark", "LatencyStats", "benchmark_inference"]

# Sessions of one ONNX model that the latency timing rotates over, a round each.
ORT_COPIES = 3

_MODEL_CHOICES = (
    "a torch.nn.Module, a path to an .onnx file (str or Path), ONNX model bytes, "
    "an onnx.ModelProto or an onnxruntime.InferenceSession"
)
# ONNX tensor element types an example input may be cast to, as numpy dtype names.
_ONNX_NUMPY_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


# A normal distribution's standard deviation over its median absolute deviation (MAD).
_MAD_TO_SD = 1.4826
# sqrt(pi / 2): the standard error of a median of n normal values over that of their mean.
_MEDIAN_OVER_MEAN_SE = 1.2533


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock latency of single calls, in milliseconds, timed in interleaved blocks.

    The calls were timed in ``blocks`` blocks that took turns with the other batch size's
    (see :func:`_time_interleaved`). ``p50_ms`` is the median of the blocks' medians: a slow
    spell moves only the medians of the blocks it overlaps, so it cannot move ``p50_ms`` off the
    usual level unless it lasts about half the timed period. ``stderr_ms`` is the standard error
    of ``p50_ms`` estimated from the spread of the block medians,
    ``1.2533 * 1.4826 * MAD / sqrt(blocks)``: 1.4826 × MAD (the median absolute deviation of
    the block medians from their median) is a robust estimate of their standard deviation, and
    1.2533 = sqrt(pi/2) is how much wider a median's sampling spread is than a mean's for normal
    data. It is 0 when the block medians agree exactly, and it cannot see a change of level that
    lasts the whole measurement (another tenant busy throughout, say). ``p90_ms``, ``p99_ms``
    and ``mean_ms`` pool every timed call (numpy's linear percentiles); ``iterations`` counts them.
    """

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    iterations: int
    stderr_ms: float
    blocks: int
    block_p10_ms: float = math.nan

    @property
    def disturbance(self) -> float:
        """How far ``p50_ms`` sits above the fast blocks, relative to it (0: all blocks agree).

        A slow spell over most of the timed period moves the median of block medians with it
        while the blocks' spread (``stderr_ms``) stays small; the blocks outside the spell still
        show the usual level in ``block_p10_ms``.
        """
        return (self.p50_ms - self.block_p10_ms) / self.p50_ms if self.p50_ms > 0 else 0.0

    @classmethod
    def from_blocks(cls, blocks_ns: Sequence[Sequence[int]]) -> LatencyStats:
        """Statistics of per-call durations in nanoseconds, one sequence per block (none empty)."""
        import numpy as np

        if not blocks_ns or not all(blocks_ns):
            raise ValueError("LatencyStats needs at least one block, and no empty block")
        medians_ms = np.array([np.median(block) for block in blocks_ns], dtype=np.float64) / 1e6
        samples_ms = np.concatenate([np.asarray(block, dtype=np.float64) for block in blocks_ns]) / 1e6
        p50 = float(np.median(medians_ms))
        mad = float(np.median(np.abs(medians_ms - p50)))
        p90, p99 = np.percentile(samples_ms, [90, 99])
        return cls(
            p50_ms=p50,
            p90_ms=float(p90),
            p99_ms=float(p99),
            mean_ms=float(samples_ms.mean()),
            iterations=len(samples_ms),
            stderr_ms=_MEDIAN_OVER_MEAN_SE * _MAD_TO_SD * mad / math.sqrt(len(medians_ms)),
            blocks=len(medians_ms),
            block_p10_ms=float(np.percentile(medians_ms, 10)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms,
            "iterations": self.iterations,
            "stderr_ms": self.stderr_ms,
            "blocks": self.blocks,
            "block_p10_ms": self.block_p10_ms,
        }


@dataclass(frozen=True)
class InferenceBenchmark:
    """What one model costs to serve, at batch 1 and at ``batch_size``.

    ``batch_latency_ms`` is the latency of one call carrying ``batch_size`` samples. Energies are
    per sample: ``batch_energy_per_inference_j`` divides the batch window's energy by calls ×
    ``batch_size``. ``energy_per_inference_by_component_j`` splits the batch-1 figure into
    ``gpu``, ``cpu`` and ``dram`` (``None`` for a component not metered). Energy fields are ``None`` without a meter, and batch fields are ``None`` when
    the model cannot take a larger batch (``notes`` says why). ``provenance`` is the meter's
    :class:`~greenml.measure.Provenance` as a dict: which backend, measured or estimated.
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "device": self.device,
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


@dataclass
class _Runner:
    """A model made ready to call: zero-argument calls at batch 1 and at the larger batch."""

    runtime: str
    device: str
    call_one: Callable[[], object]
    call_batch: Callable[[], object] | None
    notes: list[str]
    # Moves the calls to the next of several equal copies of the model (see _ort_runner).
    next_copy: Callable[[], None] | None = None


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
    the GPU (ONNX Runtime's CUDA execution provider).

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

    prepare = _torch_runner if _is_torch_module(model) else _ort_runner
    with prepare(model, example_input, batch_size, threads, device) as runner:
        _check_first_call(runner, example_input)
        to_time = [runner.call_one] if runner.call_batch is None else [runner.call_one, runner.call_batch]
        best: list[LatencyStats] | None = None
        rounds = 0
        while rounds < max_rounds:
            stats = _time_interleaved(
                to_time, warmup_iters, latency_iters, min_latency_s, blocks, runner.next_copy
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
        **energy,
    )


# -- checks ------------------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _is_torch_module(model: object) -> bool:
    torch = sys.modules.get("torch")  # a Module can only exist once torch is imported
    return torch is not None and isinstance(model, torch.nn.Module)


def _is_torch_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _check_example_input(example_input: object) -> None:
    import numpy as np

    if not (_is_torch_tensor(example_input) or isinstance(example_input, np.ndarray)):
        raise ConfigError(
            "example_input must be a torch.Tensor or a numpy.ndarray with a leading batch "
            f"dimension of 1, got {type(example_input).__name__}"
        )
    shape = tuple(example_input.shape)  # type: ignore[attr-defined]
    if not shape or shape[0] != 1:
        raise ConfigError(
            f"example_input must have a leading batch dimension of 1, shape (1, ...), got shape {shape}"
        )


def _check_first_call(runner: _Runner, example_input: Any) -> None:
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


def _time_interleaved(
    calls: Sequence[Callable[[], object]],
    warmup_iters: int,
    iterations: int,
    min_seconds: float,
    blocks: int,
    next_copy: Callable[[], None] | None = None,
) -> list[LatencyStats]:
    """Time each of ``calls`` (batch 1, then the larger batch) in ``blocks`` interleaved blocks.

    After ``warmup_iters`` untimed calls of each, the timed period is ``blocks`` rounds, and each
    round runs one block of every call in turn: batch 1, the larger batch, batch 1, ... So both
    batch sizes sample the machine's slow spells, frequency changes and busy neighbours over the
    whole period, rather than one getting its first half and the other its second, and
    :meth:`LatencyStats.from_blocks` can take the median of the block medians. Each call is
    timed separately. Block ``r`` of a call lasts until it has its share of ``iterations`` calls
    (the shares add up to ``iterations``; at least one call a block) *and* ``min_seconds /
    blocks`` seconds have passed, so every batch size gets at least ``iterations`` timed calls
    and at least ``min_seconds`` of them in all.

    The calling thread is not pinned to a CPU: on a 2-vCPU VM pinning did not narrow the spread
    when the machine was quiet, and when a neighbour kept the pinned CPU busy the scheduler could
    no longer move the thread to the idle one (single calls then stalled for up to 0.4 s).
    The collector is paused so its pauses are not a model's p99.
    """
    for call in calls:
        for _ in range(warmup_iters):
            call()
    clock = time.perf_counter_ns
    block_ns = int(min_seconds * 1e9 / blocks)
    shares = [max(1, (r + 1) * iterations // blocks - r * iterations // blocks) for r in range(blocks)]
    timed: list[list[list[int]]] = [[] for _ in calls]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for share in shares:
            if next_copy is not None:
                next_copy()
            for call, call_blocks in zip(calls, timed, strict=True):
                call_blocks.append(_time_block(call, share, block_ns, clock))
    finally:
        if gc_was_enabled:
            gc.enable()
    return [LatencyStats.from_blocks(call_blocks) for call_blocks in timed]


def _time_block(call: Callable[[], object], count: int, min_ns: int, clock: Callable[[], int]) -> list[int]:
    """Durations of calls, in ns, made until there are ``count`` and ``min_ns`` have passed."""
    durations: list[int] = []
    deadline = clock() + min_ns
    while True:
        start = clock()
        call()
        end = clock()
        durations.append(end - start)
        if len(durations) >= count and end >= deadline:
            return durations


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


# -- torch -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _torch_runner(
    model: Any, example_input: Any, batch_size: int, threads: int, device: str | None
) -> Iterator[_Runner]:
    """Eval mode, ``threads`` intra-op threads and inference mode; all restored on the way out."""
    import numpy as np
    import torch

    target = _torch_device(model, device)
    sample = (
        torch.from_numpy(np.ascontiguousarray(example_input))
        if isinstance(example_input, np.ndarray)
        else example_input.detach()
    ).to(target)
    modes = [(module, module.training) for module in model.modules()]
    previous_threads = torch.get_num_threads()
    cuda = target.type == "cuda"
    try:
        torch.set_num_threads(threads)
        model.eval()
        with torch.inference_mode():
            batch = sample.repeat(batch_size, *([1] * (sample.dim() - 1)))

            def call_one() -> object:
                output = model(sample)
                if cuda:  # the kernels are only queued until the device is synchronised
                    torch.cuda.synchronize(target)
                return output

            def call_batch() -> object:
                output = model(batch)
                if cuda:
                    torch.cuda.synchronize(target)
                return output

            yield _Runner("torch", str(target), call_one, call_batch, [])
    finally:
        for module, training in modes:
            module.training = training
        torch.set_num_threads(previous_threads)


def _torch_device(model: Any, device: str | None) -> Any:
    import torch

    tensors = [*model.parameters(), *model.buffers()]
    model_device = tensors[0].device if tensors else None
    if device is None:
        return model_device or torch.device("cpu")
    try:
        target = torch.device(device)
    except RuntimeError as error:
        raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from error
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device; use 'cpu'")
        if target.index is None:
            target = torch.device("cuda", torch.cuda.current_device())
    if model_device is not None and model_device != target:
        raise ConfigError(
            f"the model is on {model_device} but device={device!r}; move it with model.to({device!r}) "
            "or leave device=None"
        )
    return target


# -- ONNX Runtime ------------------------------------------------------------------------------


@contextlib.contextmanager
def _ort_runner(
    model: Any, example_input: Any, batch_size: int, threads: int, device: str | None
) -> Iterator[_Runner]:
    import numpy as np

    notes: list[str] = []
    session, device_name = _ort_session(model, threads, device, notes)
    # Each InferenceSession of one model runs at a level of its own (seen here: sessions of one
    # 64-256-256-10 MLP differed with a CV of 2-3% and each kept its level within 0.3%, likely
    # where its buffers landed in memory). Timing rotates over ORT_COPIES sessions, so a model's
    # latency is not one memory layout's luck.
    sessions = [session]
    if not _is_ort_session(model):
        sessions += [_ort_session(model, threads, device, [])[0] for _ in range(ORT_COPIES - 1)]
    current = [0]
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise ConfigError(
            f"the ONNX model has {len(inputs)} inputs ({names}); benchmark_inference supports models "
            "with exactly one input"
        )
    spec = inputs[0]
    sample = example_input.detach().cpu().numpy() if _is_torch_tensor(example_input) else example_input
    wanted = _ONNX_NUMPY_TYPES.get(spec.type)
    if wanted is not None and sample.dtype != np.dtype(wanted):
        notes.append(f"example_input cast from {sample.dtype} to {wanted}, the ONNX input's type")
        sample = sample.astype(wanted)
    sample = np.ascontiguousarray(sample)
    feed_one = {spec.name: sample}

    leading = spec.shape[0] if spec.shape else None
    call_batch: Callable[[], object] | None = None
    if isinstance(leading, int) and leading != 1:
        raise ConfigError(
            f"the ONNX model's input {spec.name!r} has a fixed batch dimension of {leading}; "
            "benchmark_inference needs batch 1 (export with a dynamic batch dimension)"
        )
    if leading == 1 and batch_size != 1:
        notes.append(
            f"the ONNX model's input {spec.name!r} has a fixed batch dimension of 1, so there are "
            f"no batch-{batch_size} figures; export it with a dynamic batch dimension to get them"
        )
    else:
        feed_batch = {spec.name: np.ascontiguousarray(np.repeat(sample, batch_size, axis=0))}

        def call_batch() -> object:
            return sessions[current[0]].run(None, feed_batch)

    def call_one() -> object:
        return sessions[current[0]].run(None, feed_one)

    def next_copy() -> None:
        current[0] = (current[0] + 1) % len(sessions)

    for _ in sessions:  # a session's first calls allocate: keep them out of every timed block
        next_copy()
        call_one()
        if call_batch is not None:
            call_batch()
    yield _Runner("onnxruntime", device_name, call_one, call_batch, notes, next_copy)


def _is_ort_session(model: object) -> bool:
    ort = sys.modules.get("onnxruntime")
    return ort is not None and isinstance(model, ort.InferenceSession)


def _ort_providers(device: str | None) -> tuple[list[Any], str]:
    """Execution providers for ``device``: the CPU by default, ``cuda[:N]`` for the GPU."""
    import onnxruntime as ort

    name = (device or "cpu").strip().lower()
    if name == "cpu":
        return ["CPUExecutionProvider"], "cpu"
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            available = ", ".join(ort.get_available_providers())
            raise ConfigError(
                f"device {device!r} needs onnxruntime's CUDAExecutionProvider, which this onnxruntime "
                f"lacks (it has: {available}); install onnxruntime-gpu or use 'cpu'"
            )
        index = int(name[5:]) if ":" in name else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"], f"cuda:{index}"
    raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def _ort_options(threads: int, optimization_level: Any = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimization_level is None else optimization_level
    )
    options.log_severity_level = 3  # errors only: provider chatter is not a benchmark result
    return options


def _ort_session(model: Any, threads: int, device: str | None, notes: list[str]) -> tuple[Any, str]:
    """An InferenceSession whose thread settings are ours; a given session is rebuilt if they differ."""
    import onnxruntime as ort

    if isinstance(model, ort.InferenceSession):
        return _reuse_session(model, threads, device, notes)

    source: str | bytes
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise ConfigError(f"model path {str(model)!r} is not a file; expected an .onnx file")
        source = str(path)
    elif isinstance(model, (bytes, bytearray)):
        source = bytes(model)
    elif _is_onnx_model_proto(model):
        source = model.SerializeToString()
    else:
        raise ConfigError(f"unsupported model type {type(model).__name__}; expected {_MODEL_CHOICES}")
    providers, device_name = _ort_providers(device)
    try:
        session = ort.InferenceSession(source, sess_options=_ort_options(threads), providers=providers)
    except Exception as error:  # onnxruntime raises its own untyped errors for a bad model
        what = f"from {source!r}" if isinstance(source, str) else "from the given model"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"onnxruntime could not load the ONNX model {what}: {first_line}") from error
    return session, device_name


def _is_onnx_model_proto(model: object) -> bool:
    onnx = sys.modules.get("onnx")
    return onnx is not None and isinstance(model, onnx.ModelProto)


def _reuse_session(session: Any, threads: int, device: str | None, notes: list[str]) -> tuple[Any, str]:
    """Keep the caller's providers and optimisation level; rebuild only to pin the thread count."""
    import onnxruntime as ort

    providers = session.get_providers()
    device_name = "cuda" if providers and providers[0] == "CUDAExecutionProvider" else "cpu"
    if device_name == "cuda":
        device_id = session.get_provider_options().get("CUDAExecutionProvider", {}).get("device_id", "0")
        device_name = f"cuda:{device_id}"
    if device is not None:
        _, wanted = _ort_providers(device)
        if wanted != device_name:
            raise ConfigError(
                f"the given InferenceSession runs on {device_name} but device={device!r}; "
                "leave device=None or pass the model itself (path, bytes or ModelProto)"
            )
    options = session.get_session_options()
    if (
        options.intra_op_num_threads == threads
        and options.inter_op_num_threads == 1
        and options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    ):
        return session, device_name
    # The public API cannot change a live session's threads; onnxruntime keeps what it was built from.
    source = getattr(session, "_model_bytes", None) or getattr(session, "_model_path", None)
    if source is None:
        notes.append(
            f"the given InferenceSession could not be rebuilt, so its own thread settings "
            f"(intra_op_num_threads={options.intra_op_num_threads}) were used, not threads={threads}"
        )
        return session, device_name
    rebuilt = ort.InferenceSession(
        source,
        sess_options=_ort_options(threads, options.graph_optimization_level),
        providers=providers,
        provider_options=[session.get_provider_options().get(name, {}) for name in providers],
    )
    notes.append(
        f"the given InferenceSession was rebuilt with intra_op_num_threads={threads}, "
        "inter_op_num_threads=1 and sequential execution (its optimisation level kept)"
    )
    return rebuilt, device_name
