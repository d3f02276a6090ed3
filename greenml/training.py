"""Training a trial's model: the settings every trial samples, the training loop, pruning, accuracy.

What a trial (:mod:`greenml.trial`), the study's distillation teacher (:mod:`greenml.search`)
and a benchmark table's grid (:mod:`greenml.bench`) share. Every function takes what it needs
explicitly (the data, the device, the meter, the callbacks), never a trial's context, so each
of them runs on its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection
from typing import Any, Protocol

import numpy as np

from greenml.data import Dataset
from greenml.errors import GreenMLError, MeasurementError
from greenml.measure import Meter

__all__ = [
    "FINETUNE_EPOCHS",
    "SettingRanges",
    "TrialFailed",
    "accuracy",
    "predictor",
    "prune",
    "suggest_settings",
    "train",
]

# The range of fine-tuning epochs after pruning that every search samples from.
FINETUNE_EPOCHS: tuple[int, int] = (0, 5)


class TrialFailed(GreenMLError):
    """The trial cannot go on (NaN loss, say); it is stored as failed and the search goes on."""


class SettingRanges(Protocol):
    """What :func:`suggest_settings` samples within (a :class:`greenml.trial.TrialContext` is one)."""

    @property
    def epochs(self) -> tuple[int, int]: ...

    @property
    def finetune_epochs(self) -> tuple[int, int]: ...

    @property
    def teacher(self) -> Any:
        """Anything true when a distillation teacher is available (``distill`` is then sampled)."""
        ...


def suggest_settings(trial: Any, ranges: SettingRanges) -> dict[str, Any]:
    """Training and compression settings, shared by every space."""
    settings: dict[str, Any] = {
        "lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True),
        "epochs": trial.suggest_int("epochs", *ranges.epochs),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
        "distill": trial.suggest_categorical("distill", [False, True]) if ranges.teacher else False,
    }
    if settings["distill"]:
        settings["kd_temperature"] = trial.suggest_float("kd_temperature", 1.0, 8.0)
        settings["kd_alpha"] = trial.suggest_float("kd_alpha", 0.1, 0.9)
    settings["pruning"] = trial.suggest_categorical("pruning", ["none", "unstructured", "structured"])
    if settings["pruning"] != "none":
        settings["prune_amount"] = trial.suggest_float("prune_amount", 0.1, 0.8)
        settings["finetune_epochs"] = trial.suggest_int("finetune_epochs", *ranges.finetune_epochs)
    else:
        settings["finetune_epochs"] = 0
    settings["runtime"] = trial.suggest_categorical("runtime", ["torch", "onnxruntime"])
    settings["quantization"] = (
        trial.suggest_categorical("quantization", ["none", "dynamic", "static"])
        if settings["runtime"] == "onnxruntime"
        else "none"
    )
    return settings


def train(
    model: Any,
    dataset: Dataset,
    epochs: int,
    settings: dict[str, Any],
    generator: Any,
    *,
    device: str = "cpu",
    teacher: Any | None = None,
    phase: str = "train",
    meter: Meter | None = None,
    curve: list[dict[str, float]] | None = None,
    test_curve: bool = False,
    rungs: Collection[int] = (),
    at_rung: Callable[[int, list[dict[str, float]]], None] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> None:
    """Train ``model`` on ``dataset``'s train split for ``epochs`` epochs (``settings``: ``lr``,
    ``batch_size``, and ``kd_temperature``, ``kd_alpha`` when distilling from ``teacher``).

    With ``curve`` (and ``meter``), each epoch runs in a measurement window of its own, ends with
    the validation accuracy of the model as it stands (and the test accuracy, outside the window,
    with ``test_curve``), and is appended to ``curve`` with the cumulative energy and time of the
    epochs. After each epoch in ``rungs``, ``at_rung(epoch, curve)`` is called: it raises to stop
    the training (the early-stopping rule's stop). ``on_progress(phase, epoch, epochs)`` is called
    after each epoch. A loss that is not finite fails the trial (:class:`TrialFailed`).
    """
    import torch

    from greenml.compress import distillation_loss

    x, y = dataset.tensors("train")
    x, y = x.to(device), y.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    model.train()
    teacher_logits = None
    if teacher is not None:
        with torch.inference_mode():
            teacher_logits = teacher(x).detach().clone()
    rung_epochs = set(rungs) if curve is not None else set()
    epoch_meter = meter if curve is not None else None
    energy_j = seconds = 0.0
    for epoch in range(epochs):
        with epoch_meter.window("epoch") if epoch_meter is not None else contextlib.nullcontext() as window:
            order = torch.randperm(len(x), generator=generator).to(device)
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
                validation = accuracy(predictor(model, "torch", device), dataset, "val")
                model.train()
        if curve is not None:
            if window is not None:
                energy_j += window.result.total_energy_j
                seconds += window.result.seconds
            point = {"epoch": epoch + 1, "accuracy": validation, "energy_j": energy_j, "seconds": seconds}
            if test_curve:
                model.eval()
                point["test_accuracy"] = accuracy(predictor(model, "torch", device), dataset, "test")
                model.train()
            curve.append(point)
        if on_progress is not None:
            on_progress(phase, epoch + 1, epochs)
        if epoch + 1 in rung_epochs and at_rung is not None:
            assert curve is not None
            at_rung(epoch + 1, curve)
    model.eval()


def accuracy(predict: Callable[[np.ndarray], np.ndarray], dataset: Dataset, split: str) -> float:
    """The share of ``split`` (train, val or test) of ``dataset`` that ``predict`` classifies right.

    Outputs that are not all finite fail the trial (argmax of NaNs picks class 0, which scores by
    chance: never a score).
    """
    x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
    correct = 0
    for start in range(0, len(x), 256):
        logits = predict(x[start : start + 256])
        if not np.isfinite(logits).all():
            raise TrialFailed(f"the deployed model's outputs on the {split} split are not all finite")
        correct += int((logits.argmax(axis=1) == y[start : start + 256]).sum())
    return correct / len(x)


def predictor(
    artifact: Any, runtime: str, device: str, option: str = "device"
) -> Callable[[np.ndarray], np.ndarray]:
    """A function from inputs to logits for ``artifact``: ONNX bytes (``runtime`` onnxruntime) or a
    torch model, run on ``device``. An ONNX Runtime session that fell back to the CPU for a CUDA
    ``device`` is a MeasurementError naming ``option`` (:func:`greenml.devices.ort_fallback`)."""
    if runtime == "onnxruntime":
        import onnxruntime as ort

        from greenml import devices

        providers, _ = devices.ort_providers(device)
        session = ort.InferenceSession(artifact, providers=providers)
        reason = devices.ort_fallback(session, device, option)
        if reason is not None:
            raise MeasurementError(reason)
        session.disable_fallback()  # a call that fails on CUDA raises, not reruns on the CPU
        name = session.get_inputs()[0].name
        return lambda x: np.asarray(session.run(None, {name: x})[0])

    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return artifact(torch.from_numpy(x).to(device)).cpu().numpy()  # type: ignore[no-any-return]

    return predict


def prune(model: Any, settings: dict[str, Any], example: Any) -> list[str]:
    """Prune ``model`` in place as ``settings`` say (``pruning``, ``prune_amount``); ``example`` is an
    input batch (structured pruning traces the model). Returns the notes that make the trial's
    record less than it looks: a pruning step that removed or zeroed nothing."""
    from greenml import compress

    if settings["pruning"] == "none":
        return []
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
        return [f"{report.kind} pruning changed nothing: {why}"]
    return []
