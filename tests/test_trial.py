"""One trial, in process, with fixed parameters: every phase measured on the deployed artifact."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
import torch
from torch import nn

from greenml.data import load_dataset
from greenml.measure import Meter
from greenml.metrics import PHASES
from greenml.spaces import load_space
from greenml.testing.sources import ConstantPowerSource
from greenml.trial import TrialContext, TrialFailed, run_trial

BASE: dict[str, Any] = {
    "n_layers": 2,
    "width": 128,
    "dropout": 0.0,
    "lr": 3e-3,
    "epochs": 3,
    "batch_size": 64,
    "distill": False,
    "pruning": "none",
    "runtime": "torch",
}


@pytest.fixture(scope="module")
def digits() -> Any:
    return load_dataset("digits", 0)


def _context(digits: Any, teacher: Any = None) -> TrialContext:
    meter = Meter([ConstantPowerSource({"cpu": 10.0})])
    return TrialContext(
        space=load_space("mlp"),
        dataset=digits,
        meter=meter,
        latency_s=0.05,
        energy_window_s=0.05,
        teacher=teacher,
        epochs=(1, 5),
        finetune_epochs=(0, 2),
    )


def _run(ctx: TrialContext, **params: Any) -> dict[str, float]:
    trial: Any = optuna.trial.FixedTrial({**BASE, **params})
    return run_trial(trial, ctx)


def test_phases_and_energy_add_up(digits: Any) -> None:
    ctx = _context(digits)
    metrics = _run(ctx)
    assert metrics["accuracy"] > 0.8
    for phase in PHASES:
        assert metrics[f"{phase}_seconds"] >= 0
    assert metrics["train_seconds"] > 0 and metrics["benchmark_seconds"] > 0
    # 10 W from the test source: every energy is 10 W x its seconds
    assert metrics["trial_energy_j"] == pytest.approx(10.0 * metrics["trial_seconds"], rel=1e-3)
    assert metrics["train_energy_j"] == pytest.approx(10.0 * metrics["train_seconds"], rel=1e-3)
    phases_j = sum(metrics[f"{phase}_energy_j"] for phase in PHASES)
    assert phases_j <= metrics["trial_energy_j"] * (1 + 1e-3)
    assert ctx.last_window is not None and {c.name for c in ctx.last_window.children} >= set(PHASES)


def test_structured_pruning_makes_the_deployed_model_smaller(digits: Any) -> None:
    ctx = _context(digits)
    dense = _run(ctx)
    pruned = _run(ctx, pruning="structured", prune_amount=0.5, finetune_epochs=1)
    assert pruned["model_bytes"] < 0.6 * dense["model_bytes"]
    assert pruned["finetune_seconds"] > 0


def test_quantized_onnx_artifact_is_smaller_and_still_accurate(digits: Any) -> None:
    ctx = _context(digits)
    float_onnx = _run(ctx, runtime="onnxruntime", quantization="none")
    dynamic = _run(ctx, runtime="onnxruntime", quantization="dynamic")
    static = _run(ctx, runtime="onnxruntime", quantization="static")
    assert dynamic["model_bytes"] < 0.5 * float_onnx["model_bytes"]
    assert static["model_bytes"] < 0.5 * float_onnx["model_bytes"]
    for metrics in (dynamic, static):
        assert abs(metrics["accuracy"] - float_onnx["accuracy"]) < 0.05


def test_distillation_uses_the_teacher_trained_once(digits: Any) -> None:
    calls = []
    teacher_model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def teacher() -> nn.Module:
        calls.append(1)
        return teacher_model

    ctx = _context(digits, teacher=teacher)
    metrics = _run(ctx, distill=True, kd_temperature=4.0, kd_alpha=0.5)
    assert metrics["accuracy"] > 0.5
    assert calls == [1]
    assert _run(ctx, distill=False)["accuracy"] > 0.5
    assert calls == [1]  # not asked for when the trial does not distil


class NanSpace:
    name = "nan"
    description = "produces NaN logits"

    def build(self, trial: Any, data: Any) -> nn.Module:
        class Nan(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.linear = nn.Linear(64, 10)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.linear(x.flatten(1)) * float("nan")

        return Nan()


def test_nan_loss_fails_the_trial_and_keeps_its_energy(digits: Any) -> None:
    ctx = _context(digits)
    ctx.space = NanSpace()
    with pytest.raises(TrialFailed, match="loss became nan"):
        _run(ctx)
    assert ctx.last_window is not None and ctx.last_window.total_energy_j > 0
