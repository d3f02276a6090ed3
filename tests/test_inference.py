"""The inference benchmark, on tiny torch models and their ONNX exports, with a test energy source."""

from __future__ import annotations

import gc
import json
import math
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from greenml.errors import ConfigError
from greenml.measure import Meter, inference
from greenml.measure.inference import InferenceBenchmark, LatencyStats, benchmark_inference
from greenml.testing.sources import ConstantPowerSource

FAST: dict[str, Any] = {
    "warmup_iters": 3,
    "latency_iters": 30,
    "min_latency_s": 0,
    "min_energy_window_s": 0.2,
}
BUSY_W = 50.0
IDLE_W = 20.0


def make_mlp() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 4),
    )


def make_convnet() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 12 * 12, 10),
    )


class Probe(torch.nn.Module):
    """Wraps a model and records, per call, the batch size and the state the benchmark set up."""

    def __init__(self, inner: torch.nn.Sequential) -> None:
        super().__init__()
        self.inner = inner
        self.batch_sizes: list[int] = []
        self.states: set[tuple[int, bool, bool]] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(x.shape[0])
        self.states.add((torch.get_num_threads(), self.training, torch.is_inference_mode_enabled()))
        return self.inner(x)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MLP exported with the default (dynamo) exporter and a dynamic batch dimension."""
    path = tmp_path_factory.mktemp("onnx") / "mlp.onnx"
    model = make_mlp().eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():  # the exporter's own deprecation chatter, not ours
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            model,
            (torch.randn(2, 8),),
            str(path),
            dynamo=True,
            external_data=False,  # one self-contained file, so it also loads from bytes
            dynamic_shapes=({0: batch},),
            input_names=["x"],
            output_names=["y"],
        )
    leading = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert leading.dim_param, "the export should have a symbolic batch dimension"
    return path


@pytest.fixture
def power() -> ConstantPowerSource:
    return ConstantPowerSource({"cpu": BUSY_W})


def fixed_batch_model() -> onnx.ModelProto:
    """y = x @ W + b with the input pinned to shape (1, 8), as a fixed-shape export would be."""
    weight = helper.make_tensor("W", TensorProto.FLOAT, [8, 4], np.ones(32, dtype=np.float32).tolist())
    bias = helper.make_tensor("b", TensorProto.FLOAT, [4], [0.5] * 4)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def assert_latency(stats: LatencyStats | None, iterations: int) -> None:
    assert stats is not None
    assert 0 < stats.p50_ms <= stats.p90_ms <= stats.p99_ms
    assert stats.mean_ms > 0
    assert stats.iterations == iterations


# -- latency -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make_model, shape", [(make_mlp, (1, 8)), (make_convnet, (1, 1, 16, 16))])
def test_torch_latency_percentiles(make_model: Any, shape: tuple[int, ...]) -> None:
    result = benchmark_inference(make_model(), torch.randn(*shape), batch_size=16, threads=1, **FAST)
    assert result.runtime == "torch"
    assert result.device == "cpu"
    assert (result.threads, result.batch_size) == (1, 16)
    assert_latency(result.latency_ms, 30)
    assert_latency(result.batch_latency_ms, 30)
    assert result.energy_per_inference_j is None
    assert result.batch_energy_per_inference_j is None
    assert result.provenance is None
    assert json.loads(result.to_json()) == result.to_dict()


def test_torch_sets_threads_eval_and_inference_mode_then_restores_them(power: ConstantPowerSource) -> None:
    probe = Probe(make_mlp())
    probe.train()
    probe.inner[1].eval()  # a mixed state must come back as it was, not as all-train
    torch.set_num_threads(2)
    try:
        result = benchmark_inference(
            probe, torch.randn(1, 8), meter=Meter([power]), batch_size=8, threads=1, **FAST
        )
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert probe.states == {(1, False, True)}
    assert probe.training and probe.inner.training and probe.inner[0].training
    assert not probe.inner[1].training
    # One checking call, the warm-up, the timed calls, then the energy window's calls.
    assert result.energy_inferences is not None and result.batch_energy_inferences is not None
    assert probe.batch_sizes.count(1) == 1 + 3 + 30 + result.energy_inferences
    assert probe.batch_sizes.count(8) * 8 == (3 + 30) * 8 + result.batch_energy_inferences
    assert len(probe.batch_sizes) == probe.batch_sizes.count(1) + probe.batch_sizes.count(8)


def test_numpy_input_runs_the_torch_model() -> None:
    result = benchmark_inference(make_mlp(), np.random.rand(1, 8).astype(np.float32), batch_size=4, **FAST)
    assert_latency(result.latency_ms, 30)
    assert_latency(result.batch_latency_ms, 30)


# -- the interleaved-block statistic --------------------------------------------------------------


class FakeClock:
    """Stands in for ``time`` in the inference module: time moves only when a fake model runs."""

    def __init__(self) -> None:
        self.ns = 0

    def perf_counter_ns(self) -> int:
        return self.ns


class FakeTimed(torch.nn.Module):
    """Takes no real time: each call moves the fake clock on by ``duration_ns(now_ns, batch)``."""

    def __init__(self, clock: FakeClock, duration_ns: Callable[[int, int], int]) -> None:
        super().__init__()
        self.clock = clock
        self.duration_ns = duration_ns
        self.batch_sizes: list[int] = []
        self.gc_enabled: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(x.shape[0])
        self.gc_enabled.append(gc.isenabled())
        self.clock.ns += self.duration_ns(self.clock.ns, x.shape[0])
        return x


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(inference, "time", types.SimpleNamespace(perf_counter_ns=fake.perf_counter_ns))
    return fake


def runs(values: list[int]) -> list[tuple[int, int]]:
    """``[1, 1, 4, 1]`` -> ``[(1, 2), (4, 1), (1, 1)]``: each value with the length of its run."""
    collapsed: list[tuple[int, int]] = []
    for value in values:
        if collapsed and collapsed[-1][0] == value:
            collapsed[-1] = (value, collapsed[-1][1] + 1)
        else:
            collapsed.append((value, 1))
    return collapsed


def test_from_blocks_is_the_median_of_block_medians_with_its_standard_error() -> None:
    ms = 1_000_000
    stats = LatencyStats.from_blocks(
        [[1 * ms, 2 * ms, 3 * ms], [10 * ms, 20 * ms, 30 * ms, 40 * ms], [5 * ms]]
    )
    # Block medians 2, 25 and 5 ms: their median is 5, their MAD median(3, 20, 0) = 3.
    assert stats.p50_ms == pytest.approx(5.0)
    assert stats.stderr_ms == pytest.approx(1.2533 * 1.4826 * 3 / math.sqrt(3))
    assert (stats.iterations, stats.blocks) == (8, 3)
    pooled = [1, 2, 3, 10, 20, 30, 40, 5]
    assert stats.mean_ms == pytest.approx(np.mean(pooled))
    assert (stats.p90_ms, stats.p99_ms) == pytest.approx(tuple(np.percentile(pooled, [90, 99])))
    assert stats.to_dict() == {
        "p50_ms": stats.p50_ms,
        "p90_ms": stats.p90_ms,
        "p99_ms": stats.p99_ms,
        "mean_ms": stats.mean_ms,
        "iterations": 8,
        "stderr_ms": stats.stderr_ms,
        "blocks": 3,
        "block_p10_ms": pytest.approx(np.percentile([2, 25, 5], 10)),
    }
    with pytest.raises(ValueError, match="no empty block"):
        LatencyStats.from_blocks([[1], []])


def test_stderr_matches_the_spread_of_repeated_p50s() -> None:
    """Over many simulated measurements of skewed, noisy calls, stderr_ms is about the p50s' SD."""
    rng = np.random.default_rng(0)
    measurements = [
        LatencyStats.from_blocks((rng.lognormal(np.log(1e4), 0.4, size=(20, 30))).astype(np.int64).tolist())
        for _ in range(300)
    ]
    spread = np.std([m.p50_ms for m in measurements], ddof=1)
    stderr = np.mean([m.stderr_ms for m in measurements])
    assert 0.75 < stderr / spread < 1.33


def test_a_slow_stretch_moves_neither_p50_when_it_covers_less_than_half_the_timing(clock: FakeClock) -> None:
    """Calls take 3x as long for the first 0.8 s of about 2 s of timing (1 s per batch size).

    Timed one batch size after the other, batch 1 would spend 80% of its second in the stretch
    and report the slow level; interleaved, 8 rounds of 20 are slow and the p50s stay fast.
    """
    slow_until_ns = 800_000_000

    def duration_ns(now_ns: int, batch: int) -> int:
        fast = 10_000 if batch == 1 else 40_000
        return 3 * fast if now_ns < slow_until_ns else fast

    model = FakeTimed(clock, duration_ns)
    result = benchmark_inference(
        model,
        torch.zeros(1, 8),
        batch_size=4,
        warmup_iters=10,
        latency_iters=50,
        min_latency_s=1.0,
        blocks=20,
    )
    assert result.latency_ms.p50_ms == pytest.approx(0.010)
    assert result.batch_latency_ms is not None
    assert result.batch_latency_ms.p50_ms == pytest.approx(0.040)
    assert result.latency_ms.p99_ms == pytest.approx(0.030)  # the pooled tail still shows the stretch
    assert result.latency_ms.blocks == result.batch_latency_ms.blocks == 20


def _spell_then_calm(slow_until_ns: int) -> Callable[[int, int], int]:
    """Calls 1.7x slower until ``slow_until_ns``, jittered so block medians differ a little."""

    def duration_ns(now_ns: int, batch: int) -> int:
        fast = (10_000 if batch == 1 else 40_000) + (now_ns // 7_919) % 50
        return int(1.7 * fast) if now_ns < slow_until_ns else fast

    return duration_ns


@pytest.mark.parametrize(("max_rounds", "expected_p50_us", "rounds"), [(1, 17.0, 1), (3, 10.0, 2)])
def test_a_round_inside_a_long_slow_spell_is_timed_again(
    clock: FakeClock, max_rounds: int, expected_p50_us: float, rounds: int
) -> None:
    """A spell over 60% of the first round moves its p50 (the stderr stays small: most blocks agree);
    the fast blocks show the usual level, so the round is timed again, and round 2 is calm."""
    model = FakeTimed(clock, _spell_then_calm(slow_until_ns=1_200_000_000))
    result = benchmark_inference(
        model,
        torch.zeros(1, 8),
        batch_size=4,
        warmup_iters=0,
        latency_iters=50,
        min_latency_s=1.0,
        blocks=20,
        max_rounds=max_rounds,
        settle_rel=0.05,
    )
    assert result.latency_rounds == rounds
    assert result.latency_ms.p50_ms * 1e3 == pytest.approx(expected_p50_us, rel=0.02)
    if max_rounds == 1:
        assert result.latency_ms.disturbance > 0.3
        assert result.latency_ms.stderr_ms / result.latency_ms.p50_ms < 0.05  # the stderr cannot see it
    else:
        assert result.latency_ms.disturbance <= 0.05
    assert result.to_dict()["latency_rounds"] == rounds


def test_batch_sizes_take_turns_block_by_block(clock: FakeClock) -> None:
    model = FakeTimed(clock, lambda now_ns, batch: 1_000_000 * batch)  # 1 ms a sample
    result = benchmark_inference(
        model, torch.zeros(1, 8), batch_size=4, warmup_iters=2, latency_iters=10, min_latency_s=0.02, blocks=5
    )
    timed = model.batch_sizes[1 + 2 + 2 :]  # after the checking call and each size's warm-up
    assert model.batch_sizes[:5] == [1, 1, 1, 4, 4]
    blocks = runs(timed)
    assert [size for size, _ in blocks] == [1, 4] * 5
    # Each block has its share of latency_iters (2 calls) and lasts min_latency_s / blocks (4 ms).
    assert [count for _, count in blocks] == [4, 2] * 5
    assert result.latency_ms.iterations == timed.count(1) == 20
    assert result.batch_latency_ms is not None
    assert result.batch_latency_ms.iterations == timed.count(4) == 10
    # The collector is paused for the timed calls only, and back on afterwards.
    assert model.gc_enabled[:5] == [True] * 5 and not any(model.gc_enabled[5:])
    assert gc.isenabled()


def test_latency_iters_and_min_latency_s_are_floors_for_each_batch_size(clock: FakeClock) -> None:
    model = FakeTimed(clock, lambda now_ns, batch: 300_000 * batch)
    result = benchmark_inference(
        model, torch.zeros(1, 8), batch_size=2, warmup_iters=0, latency_iters=7, min_latency_s=0.1, blocks=3
    )
    assert result.batch_latency_ms is not None
    for stats in (result.latency_ms, result.batch_latency_ms):
        assert stats.iterations >= 7
        assert stats.iterations * stats.mean_ms >= 100.0
        assert stats.blocks == 3
    # Without a time floor the shares of latency_iters add up to exactly latency_iters.
    exact = benchmark_inference(
        model, torch.zeros(1, 8), batch_size=2, warmup_iters=0, latency_iters=7, min_latency_s=0, blocks=3
    )
    assert exact.latency_ms.iterations == 7
    assert exact.batch_latency_ms is not None and exact.batch_latency_ms.iterations == 7


def test_stderr_is_positive_for_noisy_calls_and_shrinks_with_more_blocks(clock: FakeClock) -> None:
    """Calls of 10 µs × lognormal noise, 25 a block: 9 times the blocks, about a third the stderr."""
    rng = np.random.default_rng(1)
    model = FakeTimed(clock, lambda now_ns, batch: int(rng.lognormal(np.log(10_000 * batch), 0.3)))
    mean_stderr = {}
    for blocks in (12, 108):
        stderrs = []
        for _ in range(8):  # a MAD over 12 values is itself noisy: average a few measurements
            result = benchmark_inference(
                model,
                torch.zeros(1, 8),
                batch_size=2,
                warmup_iters=0,
                latency_iters=25 * blocks,
                min_latency_s=0,
                blocks=blocks,
            )
            stats = result.latency_ms
            assert stats.blocks == blocks and stats.iterations == 25 * blocks
            assert stats.stderr_ms > 0
            assert abs(stats.p50_ms - 0.010) < 6 * stats.stderr_ms
            assert result.to_dict()["latency_ms"]["stderr_ms"] == stats.stderr_ms
            assert result.to_dict()["batch_latency_ms"]["blocks"] == blocks
            stderrs.append(stats.stderr_ms)
        mean_stderr[blocks] = float(np.mean(stderrs))
    # sqrt(108 / 12) = 3 (2.8 with a small sample's MAD); simulated, the ratio never fell below
    # 1.8 over 1,000 seeds.
    assert mean_stderr[108] < mean_stderr[12] / 1.6


def test_a_constant_call_has_zero_stderr(clock: FakeClock) -> None:
    model = FakeTimed(clock, lambda now_ns, batch: 50_000)
    result = benchmark_inference(model, torch.zeros(1, 8), batch_size=2, **FAST)
    assert result.latency_ms.p50_ms == pytest.approx(0.050)
    assert result.latency_ms.stderr_ms == 0.0
    assert result.latency_ms.blocks == 20


# -- energy ------------------------------------------------------------------------------------


def test_energy_per_inference_is_window_energy_over_inferences(clock: FakeClock) -> None:
    """On the fake clock, which moves only while the model runs (and the meter sleeps), so the
    power source, the meter, the timing and the energy window all read one time that a busy
    machine cannot stretch: every figure below is exact."""

    def seconds() -> float:
        return clock.ns / 1e9

    def sleep(s: float) -> None:
        clock.ns += round(s * 1e9)

    power = ConstantPowerSource({"cpu": IDLE_W}, clock=seconds)
    meter = Meter([power], clock=seconds, sleep=sleep)
    meter.measure_idle(0.05)
    power.set_watts({"cpu": BUSY_W})
    batch_size = 32
    # 100 us a call plus 10 us a sample: a batch-32 call is 420 us, 13.125 us a sample
    call_ns = {1: 110_000, batch_size: 420_000}
    model = FakeTimed(clock, lambda now, batch: call_ns[batch])
    result = benchmark_inference(model, torch.randn(1, 4), meter=meter, batch_size=batch_size, **FAST)
    _, window_j, batch_window_j = (w["cpu"] for w in power.windows_j)
    n, samples = result.energy_inferences, result.batch_energy_inferences
    assert n is not None and samples is not None
    assert result.energy_per_inference_j is not None and result.batch_energy_per_inference_j is not None
    assert result.energy_window_s is not None and result.batch_energy_window_s is not None
    assert result.energy_window_s >= 0.2 and result.batch_energy_window_s >= 0.2
    assert n > 1 and samples % batch_size == 0 and samples > batch_size
    # The counts are the calls the model saw inside each window (after the check, warm-up and
    # timing: 1 + 3 + 30 at batch 1, 3 + 30 at batch 32), and the windows last just those calls.
    assert model.batch_sizes.count(1) == 1 + 3 + 30 + n
    assert model.batch_sizes.count(batch_size) == 3 + 30 + samples // batch_size
    assert result.energy_window_s == pytest.approx(n * call_ns[1] / 1e9, rel=1e-9)
    assert result.batch_energy_window_s == pytest.approx(
        samples // batch_size * call_ns[batch_size] / 1e9, rel=1e-9
    )

    # Exactly the window's energy divided by the number of samples.
    assert result.energy_per_inference_j == pytest.approx(window_j / n, rel=1e-9)
    assert result.batch_energy_per_inference_j == pytest.approx(batch_window_j / samples, rel=1e-9)
    # The source's power times the window's length, shared among the samples.
    assert result.energy_per_inference_j == pytest.approx(BUSY_W * result.energy_window_s / n, rel=1e-9)
    assert result.batch_energy_per_inference_j == pytest.approx(
        BUSY_W * result.batch_energy_window_s / samples, rel=1e-9
    )
    # Dynamic energy subtracts the idle power over the same window.
    assert result.dynamic_energy_per_inference_j == pytest.approx(
        (BUSY_W - IDLE_W) * result.energy_window_s / n, rel=1e-9
    )
    assert result.batch_dynamic_energy_per_inference_j == pytest.approx(
        (BUSY_W - IDLE_W) * result.batch_energy_window_s / samples, rel=1e-9
    )
    # And, independently of the window, the power times one call's latency (per sample at the
    # larger batch): a division left out, or by calls instead of samples, is off by 32 or more.
    assert result.latency_ms.mean_ms == pytest.approx(call_ns[1] / 1e6, rel=1e-9)
    assert result.batch_latency_ms is not None
    assert result.batch_latency_ms.mean_ms == pytest.approx(call_ns[batch_size] / 1e6, rel=1e-9)
    per_call_j = BUSY_W * result.latency_ms.mean_ms / 1e3
    assert result.energy_per_inference_j == pytest.approx(per_call_j, rel=1e-9)
    per_sample_j = BUSY_W * result.batch_latency_ms.mean_ms / 1e3 / batch_size
    assert result.batch_energy_per_inference_j == pytest.approx(per_sample_j, rel=1e-9)

    assert result.provenance is not None
    assert result.provenance["energy_basis"] == "measured"
    assert result.provenance["meter"] == "constant"
    assert result.provenance["idle"]["power_w"]["cpu"] == pytest.approx(IDLE_W, rel=1e-9)
    assert json.loads(result.to_json())["provenance"] == result.provenance


def test_no_idle_baseline_means_no_dynamic_energy(power: ConstantPowerSource) -> None:
    result = benchmark_inference(make_mlp(), torch.randn(1, 8), meter=Meter([power]), batch_size=4, **FAST)
    assert result.energy_per_inference_j is not None and result.energy_per_inference_j > 0
    assert result.dynamic_energy_per_inference_j is None
    assert result.batch_dynamic_energy_per_inference_j is None


# -- ONNX Runtime ------------------------------------------------------------------------------


def test_onnx_and_torch_give_the_same_structure(mlp_onnx: Path, power: ConstantPowerSource) -> None:
    meter = Meter([power])
    x = torch.randn(1, 8)
    eager = benchmark_inference(make_mlp(), x, meter=meter, batch_size=16, **FAST)
    exported = benchmark_inference(mlp_onnx, x, meter=meter, batch_size=16, **FAST)
    assert (eager.runtime, exported.runtime) == ("torch", "onnxruntime")
    assert exported.device == "cpu"
    # where each ran: ONNX Runtime's session says its providers; torch has none
    assert (eager.providers, exported.providers) == (None, ("CPUExecutionProvider",))
    assert exported.to_dict()["providers"] == ["CPUExecutionProvider"]
    for result in (eager, exported):
        assert isinstance(result, InferenceBenchmark)
        assert_latency(result.latency_ms, 30)
        assert_latency(result.batch_latency_ms, 30)
        assert result.energy_per_inference_j is not None and result.energy_per_inference_j > 0
        assert result.batch_energy_per_inference_j is not None and result.batch_energy_per_inference_j > 0
    eager_dict, exported_dict = eager.to_dict(), exported.to_dict()
    assert eager_dict.keys() == exported_dict.keys()
    assert eager_dict["latency_ms"].keys() == exported_dict["latency_ms"].keys()
    assert exported_dict["batch_latency_ms"].keys() == eager_dict["batch_latency_ms"].keys()
    assert exported.notes == ()


@pytest.mark.parametrize("form", ["str", "path", "bytes", "proto"])
def test_onnx_model_forms(mlp_onnx: Path, form: str) -> None:
    model: Any = {
        "str": str(mlp_onnx),
        "path": mlp_onnx,
        "bytes": mlp_onnx.read_bytes(),
        "proto": onnx.load(str(mlp_onnx)),
    }[form]
    result = benchmark_inference(model, np.zeros((1, 8), dtype=np.float32), batch_size=4, threads=2, **FAST)
    assert result.runtime == "onnxruntime"
    assert result.threads == 2
    assert_latency(result.latency_ms, 30)
    assert_latency(result.batch_latency_ms, 30)
    assert result.notes == ()


def test_given_session_is_rebuilt_only_when_its_threads_differ(mlp_onnx: Path) -> None:
    default = ort.InferenceSession(str(mlp_onnx), providers=["CPUExecutionProvider"])
    result = benchmark_inference(default, torch.randn(1, 8), batch_size=4, **FAST)
    assert any("rebuilt with intra_op_num_threads=1" in note for note in result.notes)

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    pinned = ort.InferenceSession(str(mlp_onnx), sess_options=options, providers=["CPUExecutionProvider"])
    result = benchmark_inference(pinned, torch.randn(1, 8), batch_size=4, **FAST)
    assert result.notes == ()
    assert_latency(result.batch_latency_ms, 30)


def test_onnx_input_is_cast_to_the_model_type_with_a_note(mlp_onnx: Path) -> None:
    result = benchmark_inference(mlp_onnx, np.zeros((1, 8), dtype=np.float64), batch_size=4, **FAST)
    assert result.notes == ("example_input cast from float64 to float32, the ONNX input's type",)


def test_fixed_batch_onnx_has_no_batch_figures(power: ConstantPowerSource) -> None:
    result = benchmark_inference(
        fixed_batch_model(), np.ones((1, 8), dtype=np.float32), meter=Meter([power]), batch_size=8, **FAST
    )
    assert_latency(result.latency_ms, 30)
    assert result.energy_per_inference_j is not None
    assert result.batch_latency_ms is None
    assert result.batch_energy_per_inference_j is None
    assert result.batch_dynamic_energy_per_inference_j is None
    assert result.batch_energy_window_s is None
    assert result.batch_energy_inferences is None
    assert len(power.windows_j) == 1
    assert any("fixed batch dimension of 1" in note for note in result.notes)
    assert result.to_dict()["batch_latency_ms"] is None


# -- bad arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1"),
        ({"threads": 0}, "threads must be an integer >= 1"),
        ({"latency_iters": 0}, "latency_iters must be an integer >= 1"),
        ({"blocks": 1}, "blocks must be an integer >= 2"),
        ({"blocks": 4.0}, "blocks must be an integer >= 2"),
        ({"min_latency_s": -1}, "min_latency_s must be a number of seconds >= 0"),
        ({"warmup_iters": -1}, "warmup_iters must be an integer >= 0"),
        ({"min_energy_window_s": 0}, "min_energy_window_s must be a number of seconds > 0"),
        ({"min_energy_window_s": -1.0}, "min_energy_window_s must be a number of seconds > 0"),
        ({"meter": object()}, "meter must be a greenml.measure.Meter"),
        ({"example_input": torch.randn(2, 8)}, "leading batch dimension of 1"),
        ({"example_input": torch.tensor(1.0)}, "leading batch dimension of 1"),
        ({"example_input": [[0.0] * 8]}, "must be a torch.Tensor or a numpy.ndarray"),
        ({"example_input": torch.randn(1, 5)}, "the torch model failed on example_input of shape"),
        ({"device": "tpu"}, "device must be 'cpu', 'cuda' or 'cuda:N'"),
        ({"model": 42}, "unsupported model type int; expected a torch.nn.Module"),
        ({"model": "no/such/model.onnx"}, "is not a file"),
        ({"model": b"not an onnx model"}, "onnxruntime could not load the ONNX model"),
    ],
)
def test_bad_arguments_raise_config_error(overrides: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"model": make_mlp(), "example_input": torch.randn(1, 8), **FAST, **overrides}
    with pytest.raises(ConfigError, match=message):
        benchmark_inference(**arguments)


def test_onnx_device_must_be_known(mlp_onnx: Path) -> None:
    with pytest.raises(ConfigError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        benchmark_inference(mlp_onnx, torch.randn(1, 8), device="gpu0", **FAST)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is absent")
def test_cuda_device_without_cuda_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no CUDA device"):
        benchmark_inference(make_mlp(), torch.randn(1, 8), device="cuda", **FAST)


class _CountingSession:
    """Wraps an InferenceSession and counts its calls by batch size."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.calls: dict[int, int] = {}

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_providers(self) -> list[str]:
        return self.session.get_providers()  # type: ignore[no-any-return]

    def run(self, outputs: Any, feed: dict[str, Any]) -> Any:
        batch = next(iter(feed.values())).shape[0]
        self.calls[batch] = self.calls.get(batch, 0) + 1
        return self.session.run(outputs, feed)


def test_onnx_timing_rotates_over_copies_of_the_session(
    mlp_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each session of a model runs at its own level; latency spreads over several, round by round."""
    made: list[_CountingSession] = []
    real = inference._ort_session

    def counting(*args: Any) -> tuple[Any, str]:
        session, device = real(*args)
        made.append(_CountingSession(session))
        return made[-1], device

    monkeypatch.setattr(inference, "_ort_session", counting)
    benchmark_inference(
        str(mlp_onnx),
        np.zeros((1, 8), dtype=np.float32),
        batch_size=4,
        warmup_iters=0,
        latency_iters=60,
        min_latency_s=0,
        blocks=6,
    )
    assert len(made) == inference.ORT_COPIES == 3
    # 6 rounds over 3 sessions: each times 2 blocks of 10 calls at batch 1, plus its warm-up call.
    assert [s.calls.get(1, 0) for s in made] == [pytest.approx(21, abs=1)] * 3
    assert all(s.calls.get(4, 0) >= 20 for s in made)
