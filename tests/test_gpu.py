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
