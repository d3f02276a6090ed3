"""One trial, in process, with fixed parameters: every phase measured on the deployed artifact."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
import torch
from torch import nn

from greenml.data import load_dataset
from greenml.measure import Components, ComponentSource, Meter, Provenance, WindowResult
from greenml.metrics import PHASES
from greenml.records import WindowRecord
from greenml.spaces import load_space
from greenml.testing.sources import ConstantPowerSource
from greenml.trial import TrialContext, TrialFailed, TrialResult, partial_result, run_trial, window_metrics

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


def _run(ctx: TrialContext, **params: Any) -> TrialResult:
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
    # (the cost phase runs with early stopping only; the propose phase in the search's loop)
    assert metrics.window is not None and {c.name for c in metrics.window.children} >= set(PHASES) - {
        "cost",
        "propose",
    }
    # The trial compresses twice (pruning, then the deployed artifact): both windows are its cost.
    compress = [c for c in metrics.window.children if c.name == "compress"]
    assert len(compress) == 2
    assert metrics["compress_energy_j"] == pytest.approx(sum(c.total_energy_j for c in compress))
    assert metrics["compress_seconds"] == pytest.approx(sum(c.seconds for c in compress))


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
    with pytest.raises(TrialFailed, match="loss became nan") as failed:
        _run(ctx)
    partial = partial_result(failed.value)
    assert partial is not None and partial.window is not None and partial.window.total_energy_j > 0


def test_every_measured_figure_is_stored(digits: Any) -> None:
    ctx = _context(digits)
    ctx.meter.measure_idle(0.05)
    metrics = _run(ctx)
    for name in (
        "latency_ms",
        "latency_p90_ms",
        "latency_p99_ms",
        "latency_stderr_ms",
        "batch_latency_ms",
        "batch_throughput_per_s",
        "inference_energy_j",
        "inference_dynamic_energy_j",
        "batch_inference_energy_j",
        "batch_inference_dynamic_energy_j",
        "inference_cpu_energy_j",
    ):
        assert name in metrics, name
    assert metrics["latency_ms"] <= metrics["latency_p90_ms"] <= metrics["latency_p99_ms"]
    assert metrics["batch_throughput_per_s"] == pytest.approx(32 / (metrics["batch_latency_ms"] / 1e3))
    # The test source meters the CPU only, so the split's CPU part is the whole.
    assert metrics["inference_cpu_energy_j"] == pytest.approx(metrics["inference_energy_j"])
    assert "inference_gpu_energy_j" not in metrics  # not metered: absent, never 0
    assert metrics.inference is not None and metrics.inference["batch_size"] == 32


def test_a_metric_without_an_idle_baseline_is_absent_not_zero(digits: Any) -> None:
    metrics = _run(_context(digits))
    assert "inference_dynamic_energy_j" not in metrics and "inference_energy_j" in metrics


class _NoEnergySource(ConstantPowerSource):
    """A meter that measured nothing for the deployed model's windows."""

    def energy_between(self, start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
        return {"cpu": float("nan")}


def test_a_missing_energy_figure_fails_the_trial(digits: Any) -> None:
    ctx = _context(digits)
    ctx.meter = Meter([_NoEnergySource({"cpu": 10.0})])
    with pytest.raises(TrialFailed, match="no energy per inference was measured"):
        _run(ctx)


class NanOutputSpace:
    """Trains normally (the loss is finite) but its deployed outputs are NaN in eval mode."""

    name = "nan-output"
    description = "NaN outputs once deployed"

    def build(self, trial: Any, data: Any) -> nn.Module:
        class NanAtEval(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.linear = nn.Linear(64, 10)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                out = self.linear(x.flatten(1))
                return out if self.training else out * float("nan")

        return NanAtEval()


def test_non_finite_outputs_fail_the_trial(digits: Any) -> None:
    ctx = _context(digits)
    ctx.space = NanOutputSpace()
    with pytest.raises(TrialFailed, match="outputs on the val split are not all finite"):
        _run(ctx)


class GruSpace:
    """A GRU classifier: torch-pruning's structured pruning leaves recurrent layers alone."""

    name = "gru"
    description = "GRU over the 8 rows of a digit"

    def build(self, trial: Any, data: Any) -> nn.Module:
        class Gru(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.gru = nn.GRU(8, 16, batch_first=True)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                _, hidden = self.gru(x.reshape(x.shape[0], 8, 8))
                return hidden[-1][:, :10]

        return Gru()


def test_a_pruning_step_that_changed_nothing_is_noted(digits: Any) -> None:
    ctx = _context(digits)
    ctx.space = GruSpace()
    notes = _run(ctx, pruning="structured", prune_amount=0.5, finetune_epochs=0).notes
    assert len(notes) == 1 and notes[0].startswith("structured pruning changed nothing")
    assert list(_run(ctx, pruning="none").notes) == []
    ctx.space = load_space("mlp")
    notes = _run(ctx, pruning="structured", prune_amount=0.5, finetune_epochs=0).notes
    assert list(notes) == [], "pruning that removed channels is not flagged"


def _window(
    name: str, seconds: float, joules: float, children: tuple[WindowResult, ...] = ()
) -> WindowResult:
    provenance = Provenance(
        sources=(ComponentSource("cpu", "measured", "constant", "power set by the test"),),
        energy_basis="measured",
        total_components=("cpu",),
    )
    return WindowResult(
        name=name,
        seconds=seconds,
        energy_j=Components(cpu=joules),
        dynamic_energy_j=Components(),
        total_energy_j=joules,
        dynamic_total_energy_j=None,
        co2_g=None,
        provenance=provenance,
        children=children,
    )


# A trial's window as run_trial leaves it: two ``compress`` windows (prune; then export and
# quantize the artifact), with the fine-tuning between them. The numbers are chosen so that the
# first compress (3 J, 0.5 s), the last (1.5 J, 0.25 s) and the sum (4.5 J, 0.75 s) all differ.
TWO_COMPRESSES = _window(
    "trial 0",
    6.0,
    60.0,
    (
        _window("propose", 0.25, 2.5),
        _window("train", 2.0, 20.0),
        _window("compress", 0.5, 3.0),
        _window("finetune", 1.0, 10.0),
        _window("compress", 0.25, 1.5),
        _window("evaluate", 0.5, 5.0),
        _window("benchmark", 1.0, 10.0),
    ),
)


def test_a_phase_run_twice_counts_both_windows_in_the_trials_metrics() -> None:
    metrics = window_metrics(TWO_COMPRESSES)
    assert (metrics["compress_energy_j"], metrics["compress_seconds"]) == (4.5, 0.75)
    assert (metrics["train_energy_j"], metrics["finetune_energy_j"]) == (20.0, 10.0)
    assert (metrics["trial_energy_j"], metrics["trial_seconds"]) == (60.0, 6.0)


def test_a_phase_run_twice_counts_both_windows_in_the_stored_phases() -> None:
    phases = WindowRecord.from_window(TWO_COMPRESSES).phases
    assert phases["compress"] == {"seconds": 0.75, "energy_j": 4.5}
    assert phases["train"] == {"seconds": 2.0, "energy_j": 20.0}
    assert sum(p["energy_j"] for p in phases.values()) == 52.0  # the phases, less the window's gaps
