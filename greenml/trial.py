"""One trial: build -> train -> compress -> fine-tune -> deploy -> evaluate -> benchmark.

Every phase runs inside a measurement window nested in the trial's window, so each trial stores
its phases' seconds and energy. Accuracy, latency, energy per inference and size are measured on
the artifact that would be deployed (the pruned, quantized, exported model), not on the model as
trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from greenml.data import Dataset
from greenml.errors import GreenMLError
from greenml.measure import Meter, WindowResult
from greenml.spaces import SearchSpace

__all__ = [
    "MAXIMIZED",
    "METRICS",
    "OBJECTIVE_METRICS",
    "PHASES",
    "TrialContext",
    "TrialFailed",
    "run_trial",
]

PHASES: tuple[str, ...] = ("train", "compress", "finetune", "evaluate", "benchmark")
OBJECTIVE_METRICS: tuple[str, ...] = ("accuracy", "inference_energy_j", "latency_ms", "model_bytes")
METRICS: tuple[str, ...] = (
    *OBJECTIVE_METRICS,
    "test_accuracy",
    "train_energy_j",
    "co2_g",
    "trial_energy_j",
    "trial_seconds",
    *(f"{phase}_{unit}" for phase in PHASES for unit in ("seconds", "energy_j")),
)
MAXIMIZED = frozenset({"accuracy", "test_accuracy"})


class TrialFailed(GreenMLError):
    """The trial cannot go on (NaN loss, say); it is stored as failed and the search goes on."""


@dataclass
class TrialContext:
    """What every trial of one search shares."""

    space: SearchSpace
    dataset: Dataset
    meter: Meter
    device: str = "cpu"
    seed: int = 0
    epochs: tuple[int, int] = (5, 30)
    finetune_epochs: tuple[int, int] = (0, 5)
    latency_s: float = 0.2
    energy_window_s: float = 1.0
    teacher: Callable[[], Any] | None = None
    last_window: WindowResult | None = field(default=None, repr=False)


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
) -> None:
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
    for epoch in range(epochs):
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
    model.eval()


def _accuracy(predict: Callable[[np.ndarray], np.ndarray], ctx: TrialContext, split: str) -> float:
    x, y = getattr(ctx.dataset, f"x_{split}"), getattr(ctx.dataset, f"y_{split}")
    correct = 0
    for start in range(0, len(x), 256):
        correct += int((predict(x[start : start + 256]).argmax(axis=1) == y[start : start + 256]).sum())
    return correct / len(x)


def _predictor(artifact: Any, runtime: str, device: str) -> Callable[[np.ndarray], np.ndarray]:
    if runtime == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: np.asarray(session.run(None, {name: x})[0])

    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return artifact(torch.from_numpy(x).to(device)).cpu().numpy()  # type: ignore[no-any-return]

    return predict


def run_trial(trial: Any, ctx: TrialContext) -> dict[str, float]:
    """Run one trial; return every metric. The trial's window is kept in ``ctx.last_window``."""
    import torch

    from greenml import compress
    from greenml.measure.inference import benchmark_inference

    meter = ctx.meter
    ctx.last_window = None
    window = meter.begin(f"trial {trial.number}")
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

        with meter.window("train"):
            # The first trial that distils trains the study's teacher, inside its train phase.
            teacher = ctx.teacher() if settings["distill"] and ctx.teacher else None
            _train(model, ctx, settings["epochs"], settings, generator, teacher)
        with meter.window("compress"):
            if settings["pruning"] == "unstructured":
                compress.prune_unstructured(model, settings["prune_amount"])
            elif settings["pruning"] == "structured":
                compress.prune_structured(model, settings["prune_amount"], example)
        with meter.window("finetune"):
            if settings["finetune_epochs"]:
                _train(model, ctx, settings["finetune_epochs"], settings, generator, teacher)
        with meter.window("compress"):
            model.eval()
            if settings["runtime"] == "onnxruntime":
                artifact: Any = compress.export_onnx(model.cpu(), example.cpu())
                if settings["quantization"] == "dynamic":
                    artifact = compress.quantize_onnx_dynamic(artifact)
                elif settings["quantization"] == "static":
                    artifact = compress.quantize_onnx_static(artifact, ctx.dataset.x_train[:256])
                model_bytes = len(artifact)
                deploy_device = "cpu"
            else:
                artifact = model
                model_bytes = compress.serialized_size_bytes(model)
                deploy_device = ctx.device
        with meter.window("evaluate"):
            predict = _predictor(artifact, settings["runtime"], deploy_device)
            accuracy = _accuracy(predict, ctx, "val")
            test_accuracy = _accuracy(predict, ctx, "test")
        with meter.window("benchmark"):
            bench = benchmark_inference(
                artifact,
                example.to(deploy_device) if settings["runtime"] == "torch" else example.cpu().numpy(),
                meter=meter,
                min_latency_s=ctx.latency_s,
                min_energy_window_s=ctx.energy_window_s,
                warmup_iters=10,
                latency_iters=50,
            )
    finally:
        if window._result is None:
            ctx.last_window = window.end()
    result = ctx.last_window
    assert result is not None
    if not math.isfinite(accuracy):
        raise TrialFailed("accuracy is not a number")

    metrics: dict[str, float] = {
        "accuracy": accuracy,
        "test_accuracy": test_accuracy,
        "inference_energy_j": float(bench.energy_per_inference_j or 0.0),
        "latency_ms": bench.latency_ms.p50_ms,
        "model_bytes": float(model_bytes),
        "co2_g": float(result.co2_g or 0.0),
        "trial_energy_j": result.total_energy_j,
        "trial_seconds": result.seconds,
    }
    for phase in PHASES:
        parts = [child for child in result.children if child.name == phase]
        metrics[f"{phase}_seconds"] = sum(part.seconds for part in parts)
        metrics[f"{phase}_energy_j"] = sum(part.total_energy_j for part in parts)
    return metrics
