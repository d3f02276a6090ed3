"""ONNX Runtime says where it ran: a session that fell back to the CPU is never measured as a GPU.

ONNX Runtime asked for ``[CUDA, CPU]`` falls back to the CPU when its CUDA provider cannot load.
Without a GPU the fallback is made here by asking for the CPU's providers while the device is
``cuda:0`` (patching :func:`greenml.devices.ort_providers`): the real session then runs on
``CPUExecutionProvider``, as a fallen-back one does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import optuna
import pytest
from onnx import TensorProto, helper

from greenml import devices
from greenml.data import load_dataset
from greenml.errors import MeasurementError
from greenml.measure import Meter, inference
from greenml.measure.inference import benchmark_inference
from greenml.spaces import load_space
from greenml.testing.sources import ConstantPowerSource
from greenml.training import predictor
from greenml.trial import TrialContext, partial_result, run_trial

FAST: dict[str, Any] = {"warmup_iters": 1, "latency_iters": 5, "min_latency_s": 0, "blocks": 2}
FELL_BACK = "ONNX Runtime ran on CPUExecutionProvider, not CUDAExecutionProvider, for {option} cuda:0"


def linear_model() -> bytes:
    """y = x @ W with a dynamic batch dimension, as ONNX bytes."""
    weight = helper.make_tensor("W", TensorProto.FLOAT, [8, 4], np.ones(32, dtype=np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


X = np.ones((1, 8), dtype=np.float32)


@pytest.fixture
def cuda_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """``cuda:N`` gets the CPU's providers, as an onnxruntime-gpu whose CUDA provider did not load."""
    real = devices.ort_providers

    def cpu_providers(device: str | None) -> tuple[list[Any], str]:
        providers, _ = real("cpu")
        return providers, devices.parse_device(device or "cpu")

    monkeypatch.setattr(devices, "ort_providers", cpu_providers)


class _Reporting:
    """A real CPU session that reports the providers it is told to (a CUDA one, say)."""

    def __init__(self, providers: list[str], device_id: str = "0", switch_after: int | None = None) -> None:
        self.session = ort.InferenceSession(linear_model(), providers=["CPUExecutionProvider"])
        self.providers = providers
        self.device_id = device_id
        self.switch_after = switch_after  # calls after which it reports the CPU only
        self.calls = 0

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_providers(self) -> list[str]:
        if self.switch_after is not None and self.calls >= self.switch_after:
            return ["CPUExecutionProvider"]
        return self.providers

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        return {"CUDAExecutionProvider": {"device_id": self.device_id}, "CPUExecutionProvider": {}}

    def run(self, outputs: Any, feed: dict[str, Any]) -> Any:
        self.calls += 1
        return self.session.run(outputs, feed)


def _sessions_named_cuda0(monkeypatch: pytest.MonkeyPatch, **reporting: Any) -> None:
    def open_session(model: Any, threads: int, device: str | None, notes: list[str]) -> tuple[Any, str]:
        return _Reporting(**reporting), "cuda:0"

    monkeypatch.setattr(inference, "_ort_session", open_session)


# -- benchmark_inference -----------------------------------------------------------------------


def test_a_cpu_session_records_the_cpu_provider() -> None:
    result = benchmark_inference(linear_model(), X, batch_size=4, **FAST)
    assert (result.device, result.providers) == ("cpu", ("CPUExecutionProvider",))
    assert result.to_dict()["providers"] == ["CPUExecutionProvider"]


@pytest.mark.usefixtures("cuda_falls_back")
def test_a_session_that_fell_back_to_the_cpu_is_refused_for_cuda() -> None:
    with pytest.raises(MeasurementError, match=FELL_BACK.format(option="device")) as refused:
        benchmark_inference(linear_model(), X, device="cuda:0", batch_size=4, **FAST)
    assert "\n" not in str(refused.value)
    # the same session is fine where the CPU was asked for
    assert benchmark_inference(linear_model(), X, device="cpu", batch_size=4, **FAST).device == "cpu"


def test_a_session_that_says_cuda_is_measured_as_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    _sessions_named_cuda0(monkeypatch, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    result = benchmark_inference(linear_model(), X, device="cuda:0", batch_size=4, **FAST)
    assert result.device == "cuda:0"
    assert result.to_dict()["providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_a_session_on_another_gpu_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _sessions_named_cuda0(
        monkeypatch, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], device_id="1"
    )
    with pytest.raises(MeasurementError, match="CUDAExecutionProvider device_id 1, not 0, for device cuda:0"):
        benchmark_inference(linear_model(), X, device="cuda:0", batch_size=4, **FAST)


def test_a_session_moved_to_the_cpu_while_measured_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime moves a session to the CPU when a call fails on CUDA (its run-time fallback)."""
    _sessions_named_cuda0(
        monkeypatch, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], switch_after=5
    )
    with pytest.raises(MeasurementError, match=FELL_BACK.format(option="device")):
        benchmark_inference(linear_model(), X, device="cuda:0", batch_size=4, **FAST)


def test_ort_fallback_reads_the_session() -> None:
    cpu = ort.InferenceSession(linear_model(), providers=["CPUExecutionProvider"])
    assert devices.ort_fallback(cpu, "cpu") is None
    assert devices.ort_fallback(cpu, None) is None
    assert devices.ort_fallback(cpu, "cuda", "--deploy-device") == (
        "ONNX Runtime ran on CPUExecutionProvider, not CUDAExecutionProvider, for --deploy-device "
        "cuda:0: its CUDA provider did not load here (onnxruntime-gpu needs the CUDA and cuDNN "
        "libraries it was built for), and a figure measured on CPUExecutionProvider is not one of cuda:0"
    )
    cuda = _Reporting(["CUDAExecutionProvider", "CPUExecutionProvider"], device_id="2")
    assert devices.ort_fallback(cuda, "cuda:2") is None


# -- the trial ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("cuda_falls_back")
def test_predictor_refuses_a_session_that_fell_back() -> None:
    with pytest.raises(MeasurementError, match=FELL_BACK.format(option="--deploy-device")):
        predictor(linear_model(), "onnxruntime", "cuda:0", "--deploy-device")


PARAMS: dict[str, Any] = {
    "n_layers": 1,
    "width": 32,
    "dropout": 0.0,
    "lr": 3e-3,
    "epochs": 1,
    "batch_size": 128,
    "distill": False,
    "pruning": "none",
    "runtime": "onnxruntime",
    "quantization": "none",
}


def _context(deploy_device: str) -> TrialContext:
    return TrialContext(
        space=load_space("mlp"),
        dataset=load_dataset("digits", 0),
        meter=Meter([ConstantPowerSource({"cpu": 10.0})]),
        deploy_device=deploy_device,
        latency_s=0.02,
        energy_window_s=0.02,
        epochs=(1, 1),
    )


@pytest.mark.usefixtures("cuda_falls_back")
def test_a_trial_deployed_on_cuda_whose_session_fell_back_fails() -> None:
    with pytest.raises(MeasurementError, match=FELL_BACK.format(option="--deploy-device")) as failed:
        run_trial(optuna.trial.FixedTrial(PARAMS), _context("cuda:0"))
    partial = partial_result(failed.value)
    assert partial is not None and partial.inference is None and not partial.metrics


def test_a_cpu_trial_records_its_session_providers() -> None:
    result = run_trial(optuna.trial.FixedTrial(PARAMS), _context("cpu"))
    assert result.inference is not None
    assert result.inference["providers"] == ["CPUExecutionProvider"]
    assert result.inference["device"] == "cpu"
