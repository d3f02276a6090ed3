"""On a real NVIDIA GPU: the NVML meter against the driver. Skipped where NVML is absent."""

from __future__ import annotations

import time

import pytest

from greenml.errors import MeterUnavailableError
from greenml.measure import Meter
from greenml.measure.nvml import NvmlSource

pytestmark = pytest.mark.gpu


@pytest.fixture
def source() -> NvmlSource:
    try:
        return NvmlSource()
    except MeterUnavailableError as error:
        pytest.skip(f"no NVIDIA GPU here: {error}")


def test_idle_power_is_plausible(source: NvmlSource) -> None:
    meter = Meter([source])
    idle = meter.measure_idle(1.0)
    meter.close()
    assert idle is not None and idle.power_w.gpu is not None
    assert 5.0 < idle.power_w.gpu / len(source.devices) < 1000.0  # watts per board


def test_gpu_work_costs_more_than_idle(source: NvmlSource) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    meter = Meter([source])
    meter.measure_idle(1.0)
    a = torch.randn(8192, 8192, device="cuda")
    with meter.window("matmul") as window:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            a = (a @ a).clamp_(-1, 1)
    meter.close()
    result = window.result
    assert result.energy_j.gpu is not None and result.dynamic_energy_j.gpu is not None
    assert result.dynamic_energy_j.gpu > 0.1 * result.energy_j.gpu
    assert result.seconds >= 3.0


def test_counter_step_is_measured_and_aligned_windows_agree(source: NvmlSource) -> None:
    """The counter's step on this board, and per-inference energy from aligned windows."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    from greenml.measure.inference import benchmark_inference

    step = source.update_period_s()
    assert step is not None and 0.0 < step < 1.0
    model = torch.nn.Sequential(
        torch.nn.Linear(1024, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 10)
    ).cuda()
    with Meter([source]) as meter:
        runs = [
            benchmark_inference(model, torch.zeros(1, 1024, device="cuda"), meter=meter, min_latency_s=0.2)
            for _ in range(3)
        ]
    values = [r.energy_per_inference_j for r in runs]
    assert all(v is not None and v > 0 for v in values)
    assert max(values) / min(values) < 1.10, values  # type: ignore[type-var, operator]


def test_a_search_on_the_gpu_meters_only_its_gpu_and_the_cpu(tmp_path: object) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    import optuna

    from greenml.cli import main

    storage = f"sqlite:///{tmp_path}/gpu.db"
    args = ["search", "--device", "cuda:0", "--deploy-device", "cpu", "--trials", "2", "--epochs", "1:2"]
    assert main([*args, "--storage", storage, "--study", "gpu", "--no-report", "--no-distillation"]) == 0
    trials = optuna.load_study(study_name="gpu", storage=storage).trials
    for trial in trials:
        provenance = trial.user_attrs["provenance"]
        assert provenance["components"]["gpu"]["devices"], "the training GPU is metered"
        assert len(provenance["components"]["gpu"]["devices"]) == 1
        assert provenance["energy_basis"] in {"measured", "partly estimated"}
        assert trial.user_attrs["deploy_device"] == "cpu"
        assert trial.user_attrs["trial_energy_components_j"]["cpu"] > 0
