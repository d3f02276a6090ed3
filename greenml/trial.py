"""One trial: build -> train -> compress -> fine-tune -> deploy -> evaluate -> benchmark.

Every phase runs inside a measurement window nested in the trial's window, so each trial stores
its phases' seconds and energy. Accuracy, latency, energy per inference and size are measured on
the artifact that would be deployed (the pruned, quantized, exported model), not on the model as
trained.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from greenml.data import Dataset
from greenml.errors import GreenMLError
from greenml.measure import Meter, Window, WindowResult
from greenml.metrics import PHASES
from greenml.spaces import SearchSpace

__all__ = [
    "BENCHMARK_SETTINGS",
    "COST_WINDOW_S",
    "EarlyStopping",
    "TrialContext",
    "TrialFailed",
    "TrialStopped",
    "run_trial",
    "trial_window",
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


class TrialFailed(GreenMLError):
    """The trial cannot go on (NaN loss, say); it is stored as failed and the search goes on."""


class TrialStopped(Exception):
    """The early-stopping rule stopped the trial; the search stores it as pruned, with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    """What every trial of one search shares."""

    space: SearchSpace
    dataset: Dataset
    meter: Meter
    device: str = "cpu"
    deploy_device: str = "cpu"
    seed: int = 0
    epochs: tuple[int, int] = (5, 30)
    finetune_epochs: tuple[int, int] = (0, 5)
    latency_s: float = 1.0
    energy_window_s: float = 1.0
    # The cost phase (early stopping) times shorter windows: its figures only rank trials, and
    # it runs for every trial, stopped or not. (Each window is the shorter of this and the above.)
    cost_window_s: float = COST_WINDOW_S
    teacher: Callable[[], Any] | None = None
    last_window: WindowResult | None = field(default=None, repr=False)
    # What makes the running trial's record less than it looks (a pruning step that did nothing).
    notes: list[str] = field(default_factory=list, repr=False)
    last_inference: dict[str, Any] | None = field(default=None, repr=False)
    # Called with the trial's energy so far after each phase (the search stores it, so the
    # study's budget counts running trials).
    on_phase: Callable[[float], None] | None = field(default=None, repr=False)
    # Called as (phase, epoch, epochs) when a phase starts (epoch 0) and after each training
    # epoch; the search stores and shows it (greenml.search._progress).
    on_progress: Callable[[str, int, int], None] | None = field(default=None, repr=False)
    # Set by the search when other workers shared this host's machine-wide meters.
    shared_host_note: str | None = field(default=None, repr=False)
    # Keep each trial's deployable file (ctx.last_model): the ONNX bytes as measured, or the
    # torch model as a torch.export program, made in the compress phase.
    save_models: bool = False
    last_model: dict[str, Any] | None = field(default=None, repr=False)
    # Multi-objective early stopping (None: every trial trains to its last epoch).
    early_stopping: EarlyStopping | None = field(default=None, repr=False)
    # The running trial's learning curve: after each training epoch, the validation accuracy of
    # the model as trained so far and the cumulative energy (J) and time (s) of its epochs.
    curve: list[dict[str, float]] = field(default_factory=list, repr=False)
    # Also record the test accuracy after each epoch (greenml bench build), outside the epoch's
    # measurement window, so the curve's energy is a search's.
    test_curve: bool = False
    # The deployment cost measured before training (early stopping only), and the trial that
    # measured it when it was reused (another trial's artifact of the same key).
    early_cost: dict[str, float] | None = field(default=None, repr=False)
    cost_from: int | None = field(default=None, repr=False)
    # The deployed artifact's key (greenml.compress.artifact_key).
    artifact_key: str | None = field(default=None, repr=False)
    # The trial's window, opened by the search before it asked the sampler for this trial, its
    # "propose" phase already ended (trial_window takes it).
    open_window: Window | None = field(default=None, repr=False)


def _suggest_settings(trial: Any, ctx: TrialContext) -> dict[str, Any]:
    """Training and compression settings, shared by every space."""
    settings: dict[str, Any] = {
        "lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True),
        "epochs": trial.suggest_int("epochs", *ctx.epochs),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
        "distill": trial.suggest_categorical("distill", [False, True]) if ctx.teacher else False,
    }
    if settings["distill"]:
        settings["kd_temperature"] = trial.suggest_float("kd_temperature", 1.0, 8.0)
        settings["kd_alpha"] = trial.suggest_float("kd_alpha", 0.1, 0.9)
    settings["pruning"] = trial.suggest_categorical("pruning", ["none", "unstructured", "structured"])
    if settings["pruning"] != "none":
        settings["prune_amount"] = trial.suggest_float("prune_amount", 0.1, 0.8)
        settings["finetune_epochs"] = trial.suggest_int("finetune_epochs", *ctx.finetune_epochs)
    else:
        settings["finetune_epochs"] = 0
    settings["runtime"] = trial.suggest_categorical("runtime", ["torch", "onnxruntime"])
    settings["quantization"] = (
        trial.suggest_categorical("quantization", ["none", "dynamic", "static"])
        if settings["runtime"] == "onnxruntime"
        else "none"
    )
    return settings


def _train(
    model: Any,
    ctx: TrialContext,
    epochs: int,
    settings: dict[str, Any],
    generator: Any,
    teacher: Any | None,
    phase: str = "train",
    curve: list[dict[str, float]] | None = None,
) -> None:
    """Train ``epochs`` epochs. With ``curve``, each epoch runs in a measurement window of its own,
    ends with the validation accuracy of the model as it stands, and is appended to ``curve``
    (cumulative energy and time); at each of the early-stopping rule's rungs the rule may stop
    the trial (:class:`TrialStopped`)."""
    import torch

    from greenml.compress import distillation_loss

    x, y = ctx.dataset.tensors("train")
    x, y = x.to(ctx.device), y.to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    model.train()
    teacher_logits = None
    if teacher is not None:
        with torch.inference_mode():
            teacher_logits = teacher(x).detach().clone()
    rungs = set(ctx.early_stopping.rungs(epochs)) if ctx.early_stopping and curve is not None else set()
    energy_j = seconds = 0.0
    for epoch in range(epochs):
        with ctx.meter.window("epoch") if curve is not None else contextlib.nullcontext() as window:
            order = torch.randperm(len(x), generator=generator).to(ctx.device)
            for batch in torch.split(order, settings["batch_size"]):
                optimizer.zero_grad()
                logits = model(x[batch])
                if teacher_logits is not None:
                    loss = distillation_loss(
                        logits,
                        teacher_logits[batch],
                        y[batch],
                        temperature=settings["kd_temperature"],
                        alpha=settings["kd_alpha"],
                    )
                else:
                    loss = torch.nn.functional.cross_entropy(logits, y[batch])
                if not torch.isfinite(loss):
                    raise TrialFailed(f"loss became {loss.item()} in epoch {epoch + 1}")
                loss.backward()
                optimizer.step()
            if curve is not None:
                model.eval()
                accuracy = _accuracy(_predictor(model, "torch", ctx.device), ctx, "val")
                model.train()
        if curve is not None:
            assert window is not None
            energy_j += window.result.total_energy_j
            seconds += window.result.seconds
            point = {"epoch": epoch + 1, "accuracy": accuracy, "energy_j": energy_j, "seconds": seconds}
            if ctx.test_curve:
                model.eval()
                point["test_accuracy"] = _accuracy(_predictor(model, "torch", ctx.device), ctx, "test")
                model.train()
            curve.append(point)
        if ctx.on_progress is not None:
            ctx.on_progress(phase, epoch + 1, epochs)
        if epoch + 1 in rungs:
            assert ctx.early_stopping is not None and curve is not None
            reason = ctx.early_stopping.at_rung(epoch + 1, curve, ctx.early_cost or {})
            if reason:
                raise TrialStopped(reason)
    model.eval()


def _accuracy(predict: Callable[[np.ndarray], np.ndarray], ctx: TrialContext, split: str) -> float:
    x, y = getattr(ctx.dataset, f"x_{split}"), getattr(ctx.dataset, f"y_{split}")
    correct = 0
    for start in range(0, len(x), 256):
        logits = predict(x[start : start + 256])
        if not np.isfinite(logits).all():
            # argmax of NaNs picks class 0, which scores by chance: never a score.
            raise TrialFailed(f"the deployed model's outputs on the {split} split are not all finite")
        correct += int((logits.argmax(axis=1) == y[start : start + 256]).sum())
    return correct / len(x)


def _predictor(artifact: Any, runtime: str, device: str) -> Callable[[np.ndarray], np.ndarray]:
    if runtime == "onnxruntime":
        import onnxruntime as ort

        from greenml.devices import ort_providers

        providers, _ = ort_providers(device)
        session = ort.InferenceSession(artifact, providers=providers)
        name = session.get_inputs()[0].name
        return lambda x: np.asarray(session.run(None, {name: x})[0])

    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return artifact(torch.from_numpy(x).to(device)).cpu().numpy()  # type: ignore[no-any-return]

    return predict


def _prune(model: Any, settings: dict[str, Any], example: Any, notes: list[str]) -> None:
    from greenml import compress

    if settings["pruning"] == "none":
        return
    if settings["pruning"] == "unstructured":
        report = compress.prune_unstructured(model, settings["prune_amount"])
    else:
        report = compress.prune_structured(model, settings["prune_amount"], example)
    unchanged = (
        report.params_after == report.params_before
        and report.nonzero_params_after == report.nonzero_params_before
    )
    if unchanged:
        why = "; ".join(report.notes) or "no parameter was removed or zeroed"
        notes.append(f"{report.kind} pruning changed nothing: {why}")


def run_trial(trial: Any, ctx: TrialContext) -> dict[str, float]:
    """Run one trial; return every metric it measured (names from :mod:`greenml.metrics`).

    The trial's window is kept in ``ctx.last_window``, its notes in ``ctx.notes`` and its learning
    curve in ``ctx.curve``, failed and stopped trials included. A figure that could not be
    measured fails the trial rather than scoring 0. With ``ctx.early_stopping``, the deployment
    cost is measured first (phase ``cost``) on an artifact of the final shape, and the rule may
    stop the trial (:class:`TrialStopped`) before training or at a rung; ``ctx.early_cost`` then
    holds that cost.
    """
    import torch

    from greenml import compress

    ctx.last_window = None
    ctx.last_inference = None
    ctx.last_model = None
    ctx.notes = []
    ctx.curve = []
    ctx.early_cost = None
    ctx.cost_from = None
    ctx.artifact_key = None
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
        torch.manual_seed(ctx.seed * 100_003 + trial.number)
        generator = torch.Generator().manual_seed(ctx.seed * 100_003 + trial.number)
        model = ctx.space.build(trial, ctx.dataset.spec)
        if not isinstance(model, torch.nn.Module):
            raise TrialFailed(
                f"space {ctx.space.name!r} built a {type(model).__name__}, not a torch.nn.Module"
            )
        model = model.to(ctx.device)
        settings = _suggest_settings(trial, ctx)
        example = torch.from_numpy(ctx.dataset.x_val[:1]).to(ctx.device)

        if ctx.early_stopping is not None:
            with phase("cost"):
                # The cost objectives depend on the artifact's shape (architecture, structured
                # pruning, quantization, runtime), not on what its weights learn: measure them on
                # an untrained copy compressed the same way, before paying for training.
                # An artifact of a shape already measured in this study is not measured again:
                # its cost is that measurement's (same key: same shape, runtime, quantization).
                shaped = copy.deepcopy(model)
                _prune(shaped, settings, example, [])
                ctx.artifact_key = deployed_key(shaped, settings, ctx.deploy_device)
                known = ctx.early_stopping.known_cost(ctx.artifact_key)
                if known is not None:
                    ctx.early_cost, ctx.cost_from = dict(known[0]), known[1]
                else:
                    artifact, model_bytes = _deploy(shaped, settings, ctx, example)
                    bench = _benchmark(artifact, settings, ctx, example, window_s=ctx.cost_window_s)
                    ctx.early_cost = _cost_metrics(bench, model_bytes)
                    del artifact
                del shaped
            reason = ctx.early_stopping.before_training(ctx.early_cost)
            if reason:
                raise TrialStopped(reason)

        with phase("train", settings["epochs"]):
            # The study's teacher was trained (or downloaded) before the first trial.
            teacher = ctx.teacher() if settings["distill"] and ctx.teacher else None
            _train(model, ctx, settings["epochs"], settings, generator, teacher, curve=ctx.curve)
        with phase("compress"):
            _prune(model, settings, example, ctx.notes)
        with phase("finetune", settings["finetune_epochs"], announce=settings["finetune_epochs"] > 0):
            if settings["finetune_epochs"]:
                _train(model, ctx, settings["finetune_epochs"], settings, generator, teacher, "finetune")
        with phase("compress"):
            model.eval()
            ctx.artifact_key = deployed_key(model, settings, ctx.deploy_device)
            artifact, model_bytes = _deploy(model, settings, ctx, example)
            if ctx.save_models:
                ctx.last_model = {
                    "runtime": settings["runtime"],
                    "quantization": settings["quantization"],
                    "format": "onnx" if settings["runtime"] == "onnxruntime" else "torch.export",
                    "data": artifact
                    if settings["runtime"] == "onnxruntime"
                    else compress.export_torch_program(model.cpu(), example.cpu()),
                }
                model.to(ctx.deploy_device)
        with phase("evaluate"):
            predict = _predictor(artifact, settings["runtime"], ctx.deploy_device)
            accuracy = _accuracy(predict, ctx, "val")
            test_accuracy = _accuracy(predict, ctx, "test")
        with phase("benchmark"):
            bench = _benchmark(artifact, settings, ctx, example)
    finally:
        if window._result is None:
            ctx.last_window = window.end()
    result = ctx.last_window
    assert result is not None
    ctx.notes.extend(bench.notes)
    ctx.last_inference = bench.to_dict()
    return _metrics(accuracy, test_accuracy, model_bytes, bench, result)


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
    window = getattr(ctx, "open_window", None)  # a stand-in context may not have one
    if window is not None:
        ctx.open_window = None
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
