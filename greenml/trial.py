"""One trial: build -> train -> compress -> fine-tune -> deploy -> evaluate -> benchmark.

Every phase runs inside a measurement window nested in the trial's window, so each trial stores
its phases' seconds and energy. Accuracy, latency, energy per inference and size are measured on
the artifact that would be deployed (the pruned, quantized, exported model), not on the model as
trained.

:func:`run_trial` takes a :class:`TrialContext` (what the trial is given: the space, the data,
the meter, its settings and callbacks) and returns a :class:`TrialResult` (everything it
measured and made). A trial that is stopped (:class:`TrialStopped`) or fails hands what it got
as far as (its window, learning curve, early cost...) on its exception: :func:`partial_result`.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from greenml.data import Dataset
from greenml.measure import Meter, Window, WindowResult
from greenml.metrics import PHASES
from greenml.spaces import SearchSpace
from greenml.training import (
    FINETUNE_EPOCHS,
    TrialFailed,
    accuracy,
    predictor,
    prune,
    suggest_settings,
    train,
)

__all__ = [
    "BENCHMARK_SETTINGS",
    "COST_WINDOW_S",
    "EarlyStopping",
    "TrialContext",
    "TrialFailed",
    "TrialResult",
    "TrialStopped",
    "deployed_key",
    "partial_result",
    "run_trial",
    "trial_window",
    "window_metrics",
]

# How a search benchmarks each deployed artifact (with ``TrialContext.latency_s`` as
# ``min_latency_s``); benchmarks/latency_stability.py measures with the same settings.
BENCHMARK_SETTINGS: dict[str, Any] = {
    "batch_size": 32,
    "threads": 1,
    "warmup_iters": 10,
    "latency_iters": 50,
    "blocks": 20,
    # A round whose p50 sits over 5% above its fastest tenth of blocks (a slow spell over most
    # of it) is timed again, up to 3 rounds; the least disturbed is kept.
    "max_rounds": 3,
    "settle_rel": 0.05,
}


# The cost phase's longest latency and energy window, in seconds (``--cost-window``).
COST_WINDOW_S = 0.25


@dataclass(frozen=True)
class TrialResult(Mapping[str, float]):
    """What one trial gives back: everything it measured and made.

    It reads as its metrics (``result["accuracy"]``, ``"latency_ms" in result``): every figure
    by its :mod:`greenml.metrics` name, absent where not measured. A trial that was stopped or
    failed hands a partial result on its exception (:func:`partial_result`), with no metrics:
    as a mapping it is empty, so test it against None, never for truth.
    """

    metrics: Mapping[str, float] = field(default_factory=dict)
    # The trial's measurement window, its phases as children (None: it never took one).
    window: WindowResult | None = None
    # What makes the trial's record less than it looks (a pruning step that did nothing).
    notes: tuple[str, ...] = ()
    # The inference benchmark's details (greenml.measure.inference's result, as a dict), with the
    # execution providers ONNX Runtime's session ran on (``providers``; None for torch).
    inference: Mapping[str, Any] | None = None
    # After each training epoch: the validation accuracy of the model as trained so far and the
    # cumulative energy (J) and time (s) of its epochs (and the test accuracy, with test_curve).
    curve: tuple[Mapping[str, float], ...] = ()
    # The deployment cost measured before training (early stopping only), and the trial that
    # measured it when it was reused (another trial's artifact of the same key).
    early_cost: Mapping[str, float] | None = None
    cost_from: int | None = None
    # The deployed artifact's key (greenml.compress.artifact_key).
    artifact_key: str | None = None
    # The deployable file, kept with ``TrialContext.save_models``: the ONNX bytes as measured, or
    # the torch model as a torch.export program ({"runtime", "quantization", "format", "data"}).
    model: Mapping[str, Any] | None = field(default=None, repr=False)

    def __getitem__(self, name: str) -> float:
        return self.metrics[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)


class TrialStopped(Exception):
    """The early-stopping rule stopped the trial; the search stores it as pruned, with ``reason``.

    ``result`` is what the trial measured before it was stopped (set by :func:`run_trial`).
    """

    def __init__(self, reason: str, result: TrialResult | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if result is not None:
            _attach(self, result)

    @property
    def result(self) -> TrialResult | None:
        return partial_result(self)


_PARTIAL = "greenml_trial_result"


def _attach(error: BaseException, result: TrialResult) -> None:
    with contextlib.suppress(AttributeError, TypeError):
        setattr(error, _PARTIAL, result)


def partial_result(error: BaseException) -> TrialResult | None:
    """What a trial that raised ``error`` had measured before it did (its window, learning curve,
    early cost, notes), or None when the error did not come out of :func:`run_trial`."""
    result = getattr(error, _PARTIAL, None)
    return result if isinstance(result, TrialResult) else None


class EarlyStopping(Protocol):
    """What a trial asks the search's early-stopping rule (:mod:`greenml.search._rungs`)."""

    def rungs(self, epochs: int) -> tuple[int, ...]:
        """The epochs, of a trial that trains ``epochs`` in all, after which the rule decides."""
        ...

    def known_cost(self, key: str) -> tuple[dict[str, float], int] | None:
        """The cost another trial measured for an artifact of key ``key``, and that trial's number."""
        ...

    def before_training(self, cost: dict[str, float]) -> str | None:
        """A reason to stop a trial whose deployment cost is ``cost``, before it trains, or None."""
        ...

    def at_rung(self, epoch: int, curve: list[dict[str, float]], cost: dict[str, float]) -> str | None:
        """A reason to stop the trial at rung ``epoch`` given its learning curve so far, or None."""
        ...


@dataclass
class TrialContext:
    """What a trial is given: what every trial of one search shares, and the callbacks and window
    the search hands each trial. A trial only reads it; what it measures is its
    :class:`TrialResult`."""

    space: SearchSpace
    dataset: Dataset
    meter: Meter
    device: str = "cpu"
    deploy_device: str = "cpu"
    seed: int = 0
    epochs: tuple[int, int] = (5, 30)
    finetune_epochs: tuple[int, int] = FINETUNE_EPOCHS
    latency_s: float = 1.0
    energy_window_s: float = 1.0
    # The cost phase (early stopping) times shorter windows: its figures only rank trials, and
    # it runs for every trial, stopped or not. (Each window is the shorter of this and the above.)
    cost_window_s: float = COST_WINDOW_S
    teacher: Callable[[], Any] | None = None
    # Keep each trial's deployable file (TrialResult.model): the ONNX bytes as measured, or the
    # torch model as a torch.export program, made in the compress phase.
    save_models: bool = False
    # Also record the test accuracy after each epoch (greenml bench build), outside the epoch's
    # measurement window, so the curve's energy is a search's.
    test_curve: bool = False
    # Called with the trial's energy so far after each phase (the search stores it, so the
    # study's budget counts running trials).
    on_phase: Callable[[float], None] | None = field(default=None, repr=False)
    # Called as (phase, epoch, epochs) when a phase starts (epoch 0) and after each training
    # epoch; the search stores and shows it (greenml.search._progress).
    on_progress: Callable[[str, int, int], None] | None = field(default=None, repr=False)
    # Multi-objective early stopping (None: every trial trains to its last epoch).
    early_stopping: EarlyStopping | None = field(default=None, repr=False)
    # The trial's window, opened by the search before it asked the sampler for this trial, its
    # "propose" phase already ended (trial_window takes it).
    open_window: Window | None = field(default=None, repr=False)


@dataclass
class _Outputs:
    """What the running trial has measured and made so far."""

    notes: list[str] = field(default_factory=list)
    curve: list[dict[str, float]] = field(default_factory=list)
    early_cost: dict[str, float] | None = None
    cost_from: int | None = None
    artifact_key: str | None = None
    window: WindowResult | None = None
    inference: dict[str, Any] | None = None
    model: dict[str, Any] | None = None

    def result(self, metrics: Mapping[str, float] | None = None) -> TrialResult:
        return TrialResult(
            metrics=dict(metrics or {}),
            window=self.window,
            notes=tuple(self.notes),
            inference=self.inference,
            curve=tuple(dict(point) for point in self.curve),
            early_cost=None if self.early_cost is None else dict(self.early_cost),
            cost_from=self.cost_from,
            artifact_key=self.artifact_key,
            model=self.model,
        )


def run_trial(trial: Any, ctx: TrialContext) -> TrialResult:
    """Run one trial; return every metric it measured (names from :mod:`greenml.metrics`) and what
    else it recorded (:class:`TrialResult`).

    A figure that could not be measured fails the trial rather than scoring 0. With
    ``ctx.early_stopping``, the deployment cost is measured first (phase ``cost``) on an artifact
    of the final shape, and the rule may stop the trial (:class:`TrialStopped`) before training
    or at a rung. A stopped or failed trial's exception carries what it measured so far
    (:func:`partial_result`): its window, notes and learning curve, and its early cost.
    """
    import torch

    from greenml import compress

    out = _Outputs()
    window = trial_window(ctx, trial)

    @contextlib.contextmanager
    def phase(name: str, epochs: int = 0, announce: bool = True) -> Iterator[None]:
        if ctx.on_progress is not None and announce:
            ctx.on_progress(name, 0, epochs)
        with ctx.meter.window(name):
            yield
        if ctx.on_phase is not None:
            ctx.on_phase(window.spent_j())

    try:
        try:
            torch.manual_seed(ctx.seed * 100_003 + trial.number)
            generator = torch.Generator().manual_seed(ctx.seed * 100_003 + trial.number)
            model = ctx.space.build(trial, ctx.dataset.spec)
            if not isinstance(model, torch.nn.Module):
                raise TrialFailed(
                    f"space {ctx.space.name!r} built a {type(model).__name__}, not a torch.nn.Module"
                )
            model = model.to(ctx.device)
            settings = suggest_settings(trial, ctx)
            example = torch.from_numpy(ctx.dataset.x_val[:1]).to(ctx.device)
            stopping = ctx.early_stopping

            if stopping is not None:
                with phase("cost"):
                    # The cost objectives depend on the artifact's shape (architecture, structured
                    # pruning, quantization, runtime), not on what its weights learn: measure them on
                    # an untrained copy compressed the same way, before paying for training.
                    # An artifact of a shape already measured in this study is not measured again:
                    # its cost is that measurement's (same key: same shape, runtime, quantization).
                    shaped = copy.deepcopy(model)
                    prune(shaped, settings, example)
                    out.artifact_key = deployed_key(shaped, settings, ctx.deploy_device)
                    known = stopping.known_cost(out.artifact_key)
                    if known is not None:
                        out.early_cost, out.cost_from = dict(known[0]), known[1]
                    else:
                        artifact, model_bytes = _deploy(shaped, settings, ctx, example)
                        bench = _benchmark(artifact, settings, ctx, example, window_s=ctx.cost_window_s)
                        out.early_cost = _cost_metrics(bench, model_bytes)
                        del artifact
                    del shaped
                reason = stopping.before_training(out.early_cost)
                if reason:
                    raise TrialStopped(reason)

            def at_rung(epoch: int, curve: list[dict[str, float]]) -> None:
                assert stopping is not None
                reason = stopping.at_rung(epoch, curve, out.early_cost or {})
                if reason:
                    raise TrialStopped(reason)

            with phase("train", settings["epochs"]):
                # The study's teacher was trained (or downloaded) before the first trial.
                teacher = ctx.teacher() if settings["distill"] and ctx.teacher else None
                train(
                    model,
                    ctx.dataset,
                    settings["epochs"],
                    settings,
                    generator,
                    device=ctx.device,
                    teacher=teacher,
                    meter=ctx.meter,
                    curve=out.curve,
                    test_curve=ctx.test_curve,
                    rungs=stopping.rungs(settings["epochs"]) if stopping is not None else (),
                    at_rung=at_rung,
                    on_progress=ctx.on_progress,
                )
            with phase("compress"):
                out.notes.extend(prune(model, settings, example))
            with phase("finetune", settings["finetune_epochs"], announce=settings["finetune_epochs"] > 0):
                if settings["finetune_epochs"]:
                    train(
                        model,
                        ctx.dataset,
                        settings["finetune_epochs"],
                        settings,
                        generator,
                        device=ctx.device,
                        teacher=teacher,
                        phase="finetune",
                        on_progress=ctx.on_progress,
                    )
            with phase("compress"):
                model.eval()
                out.artifact_key = deployed_key(model, settings, ctx.deploy_device)
                artifact, model_bytes = _deploy(model, settings, ctx, example)
                if ctx.save_models:
                    out.model = {
                        "runtime": settings["runtime"],
                        "quantization": settings["quantization"],
                        "format": "onnx" if settings["runtime"] == "onnxruntime" else "torch.export",
                        "data": artifact
                        if settings["runtime"] == "onnxruntime"
                        else compress.export_torch_program(model.cpu(), example.cpu()),
                    }
                    model.to(ctx.deploy_device)
            with phase("evaluate"):
                predict = predictor(artifact, settings["runtime"], ctx.deploy_device, "--deploy-device")
                val_accuracy = accuracy(predict, ctx.dataset, "val")
                test_accuracy = accuracy(predict, ctx.dataset, "test")
            with phase("benchmark"):
                bench = _benchmark(artifact, settings, ctx, example)
        finally:
            if window.is_open:
                out.window = window.end()
        result = out.window
        assert result is not None
        out.notes.extend(bench.notes)
        out.inference = bench.to_dict()
        metrics = _metrics(val_accuracy, test_accuracy, model_bytes, bench, result)
    except BaseException as error:
        _attach(error, out.result())
        raise
    return out.result(metrics)


def deployed_key(model: Any, settings: dict[str, Any], deploy_device: str) -> str:
    """The key of the artifact ``model`` (pruned) deploys to under ``settings``
    (:func:`greenml.compress.artifact_key`)."""
    from greenml import compress

    return compress.artifact_key(model, settings["runtime"], settings["quantization"], deploy_device)


def _deploy(model: Any, settings: dict[str, Any], ctx: TrialContext, example: Any) -> tuple[Any, int]:
    """The artifact that would be deployed, and its size: ONNX (quantized as asked) or the model."""
    from greenml import compress

    model.eval()
    if settings["runtime"] == "onnxruntime":
        artifact: Any = compress.export_onnx(model.cpu(), example.cpu())
        if settings["quantization"] == "dynamic":
            artifact = compress.quantize_onnx_dynamic(artifact)
        elif settings["quantization"] == "static":
            artifact = compress.quantize_onnx_static(artifact, ctx.dataset.x_train[:256])
        model.to(ctx.device)
        return artifact, len(artifact)
    artifact = model.to(ctx.deploy_device)
    return artifact, compress.serialized_size_bytes(artifact)


def _benchmark(
    artifact: Any, settings: dict[str, Any], ctx: TrialContext, example: Any, window_s: float | None = None
) -> Any:
    """Benchmark the artifact; ``window_s`` shortens the latency and energy windows to at most that."""
    from greenml.measure.inference import benchmark_inference

    return benchmark_inference(
        artifact,
        example.to(ctx.deploy_device) if settings["runtime"] == "torch" else example.cpu().numpy(),
        meter=ctx.meter,
        device=ctx.deploy_device,
        min_latency_s=ctx.latency_s if window_s is None else min(ctx.latency_s, window_s),
        min_energy_window_s=ctx.energy_window_s if window_s is None else min(ctx.energy_window_s, window_s),
        **BENCHMARK_SETTINGS,
    )


def _cost_metrics(bench: Any, model_bytes: int) -> dict[str, float]:
    """The deployed artifact's cost: latency, energy per inference and size (absent where not measured)."""
    if bench.energy_per_inference_j is None or not math.isfinite(bench.energy_per_inference_j):
        raise TrialFailed("no energy per inference was measured for the deployed model")
    values: dict[str, float | None] = {
        "latency_ms": bench.latency_ms.p50_ms,
        "latency_p90_ms": bench.latency_ms.p90_ms,
        "latency_p99_ms": bench.latency_ms.p99_ms,
        "latency_stderr_ms": bench.latency_ms.stderr_ms,
        "inference_energy_j": bench.energy_per_inference_j,
        "inference_dynamic_energy_j": bench.dynamic_energy_per_inference_j,
        "batch_inference_energy_j": bench.batch_energy_per_inference_j,
        "batch_inference_dynamic_energy_j": bench.batch_dynamic_energy_per_inference_j,
        "model_bytes": float(model_bytes),
    }
    if bench.batch_latency_ms is not None:
        values["batch_latency_ms"] = bench.batch_latency_ms.p50_ms
        values["batch_throughput_per_s"] = bench.batch_size / (bench.batch_latency_ms.p50_ms / 1e3)
    for component, joules in (bench.energy_per_inference_by_component_j or {}).items():
        values[f"inference_{component}_energy_j"] = joules
    return {name: float(value) for name, value in values.items() if value is not None}


def trial_window(ctx: TrialContext, trial: Any) -> Window:
    """The trial's measurement window: the one :func:`greenml.search.run` opened before asking the
    sampler for this trial (so its first phase, ``propose``, is the sampler's own computation),
    or a new one where nothing opened it (a trial run outside the search loop)."""
    window: Window | None = getattr(ctx, "open_window", None)  # a stand-in context may not have one
    if window is None or not window.is_open:
        return ctx.meter.begin(f"trial {trial.number}")
    window.name = f"trial {trial.number}"
    return window


def window_metrics(result: WindowResult) -> dict[str, float]:
    """The trial's own footprint: its energy, time and CO2, in all and per phase."""
    values: dict[str, float | None] = {
        "co2_g": result.co2_g,
        "trial_energy_j": result.total_energy_j,
        "trial_seconds": result.seconds,
    }
    for phase in PHASES:
        parts = [child for child in result.children if child.name == phase]
        values[f"{phase}_seconds"] = sum(part.seconds for part in parts)
        values[f"{phase}_energy_j"] = sum(part.total_energy_j for part in parts)
    return {name: float(value) for name, value in values.items() if value is not None}


def _metrics(
    accuracy: float, test_accuracy: float, model_bytes: int, bench: Any, result: WindowResult
) -> dict[str, float]:
    """Every figure of a finished trial; absent where not measured, never 0 in its place."""
    if not math.isfinite(accuracy):
        raise TrialFailed("accuracy is not a number")
    return {
        "accuracy": float(accuracy),
        "test_accuracy": float(test_accuracy),
        **_cost_metrics(bench, model_bytes),
        **window_metrics(result),
    }
