"""The NVML meter against a simulated NVML: known power traces, both paths, device selection."""

from __future__ import annotations

import time

import pynvml
import pytest

from greenml.errors import MeterUnavailableError
from greenml.measure import Meter
from greenml.measure import nvml as nvml_module
from greenml.measure.nvml import NvmlSource, select_gpus
from greenml.testing.fake_nvml import FakeClock, FakeGpu, FakeNvml, PowerTrace

# A trace with ramps and steps: 60 W idle, a ramp to 300 W, a plateau, a drop, a second burst.
BUSY = PowerTrace(
    (
        (1000.0, 60.0),
        (1003.0, 60.0),
        (1005.0, 300.0),
        (1015.0, 300.0),
        (1015.5, 120.0),
        (1022.0, 120.0),
        (1024.0, 250.0),
        (1030.0, 250.0),
        (1031.0, 60.0),
    )
)


def _drive(source: NvmlSource, clock: FakeClock, until: float, step: float = 0.05) -> None:
    """Advance the fake clock to ``until``, taking power samples at ``step`` as the thread would."""
    while clock.now + step <= until + 1e-9:
        clock.advance(step)
        if source.sampler is not None:
            source.sampler.sample()


def _window_energy(source: NvmlSource, clock: FakeClock, start: float, end: float) -> float:
    meter = Meter([source], clock=clock, sync=lambda: None)
    _drive(source, clock, start)
    window = meter.begin("w")
    _drive(source, clock, end)
    if source.sampler is not None:
        # The sampler shifts samples back by half NVML's averaging window; let it see past the end.
        _drive(source, clock, end + 0.6)
        clock.now = end
    return window.end().energy_j.gpu or 0.0


@pytest.mark.parametrize(("start", "end"), [(1001.0, 1032.0), (1002.3, 1027.9), (1010.05, 1030.5)])
def test_counter_path_matches_trace_integral(clock: FakeClock, start: float, end: float) -> None:
    nvml = FakeNvml([FakeGpu(trace=BUSY)], clock=clock)
    source = NvmlSource(nvml, clock=clock, environ={}, start_sampler=False)
    assert source.sampler is None, "a Volta+ board must use the energy counter"
    measured = _window_energy(source, clock, start, end)
    expected = BUSY.energy_j(start, end)
    assert measured == pytest.approx(expected, rel=0.01)
    assert "total-energy counter" in source.sources()[0].method


@pytest.mark.parametrize(("start", "end"), [(1001.0, 1032.0), (1002.3, 1027.9), (1010.05, 1030.5)])
def test_sampling_path_matches_trace_integral(clock: FakeClock, start: float, end: float) -> None:
    gpu = FakeGpu(trace=BUSY, name="Tesla P100-PCIE-16GB", architecture=PASCAL, counter_supported=False)
    nvml = FakeNvml([gpu], clock=clock)
    source = NvmlSource(nvml, clock=clock, environ={}, start_sampler=False)
    assert source.sampler is not None, "a pre-Volta board must fall back to power sampling"
    measured = _window_energy(source, clock, start, end)
    assert measured == pytest.approx(BUSY.energy_j(start, end), rel=0.01)
    assert "power sampled at 20 Hz" in source.sources()[0].method
    assert "instantaneous readings" in source.sources()[0].method


# -- power readings as each board documents them -------------------------------------------------

PASCAL = pynvml.NVML_DEVICE_ARCH_PASCAL
AMPERE = pynvml.NVML_DEVICE_ARCH_AMPERE
# A 1 s burst from 50 W to 250 W, inside a 3 s window.
BURST = PowerTrace(((1000.0, 50.0), (1011.0, 50.0), (1011.001, 250.0), (1012.0, 250.0), (1012.001, 50.0)))
INSTANTANEOUS_BOARD = {"name": "Tesla P100-PCIE-16GB", "architecture": PASCAL}
AVERAGING_BOARD = {"name": "NVIDIA A10", "architecture": AMPERE}


@pytest.mark.parametrize("board", [INSTANTANEOUS_BOARD, AVERAGING_BOARD], ids=["pascal", "ampere"])
@pytest.mark.parametrize("phase", [0.0, 0.013, 0.031])
def test_burst_within_2_percent_on_each_kind_of_board(clock: FakeClock, board: dict, phase: float) -> None:
    gpu = FakeGpu(trace=BURST, counter_supported=False, **board)
    nvml = FakeNvml([gpu], clock=clock)
    source = NvmlSource(nvml, clock=clock, environ={}, start_sampler=False)
    start, end = 1010.0 + phase, 1013.0 + phase
    measured = _window_energy(source, clock, start, end)
    truth = BURST.energy_j(start, end)
    assert truth == pytest.approx(350.0, rel=1e-3)
    assert measured == pytest.approx(truth, rel=0.02)


@pytest.mark.parametrize(
    ("board", "wrong_averaging_s"),
    [(INSTANTANEOUS_BOARD, 1.0), (AVERAGING_BOARD, 0.0)],
    ids=["pascal-shifted", "ampere-unshifted"],
)
def test_the_wrong_reading_model_misses_the_burst(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, board: dict, wrong_averaging_s: float
) -> None:
    """Shifting instantaneous readings (the old code), or not shifting averaged ones, is >2% off."""
    monkeypatch.setattr(nvml_module, "power_averaging_s", lambda *_: (wrong_averaging_s, None))
    gpu = FakeGpu(trace=BURST, counter_supported=False, **board)
    source = NvmlSource(FakeNvml([gpu], clock=clock), clock=clock, environ={}, start_sampler=False)
    # The window that holds the burst exactly, as a trial phase would.
    measured = _window_energy(source, clock, 1011.0, 1012.05)
    truth = BURST.energy_j(1011.0, 1012.05)
    assert abs(measured / truth - 1) > 0.05


@pytest.mark.parametrize(
    ("name", "architecture", "averaging_s"),
    [
        ("Tesla K80", pynvml.NVML_DEVICE_ARCH_KEPLER, 0.0),
        ("Tesla P100-PCIE-16GB", PASCAL, 0.0),
        ("Tesla V100-SXM2-16GB", pynvml.NVML_DEVICE_ARCH_VOLTA, 0.0),
        ("Tesla T4", pynvml.NVML_DEVICE_ARCH_TURING, 0.0),
        ("NVIDIA A100-SXM4-40GB", AMPERE, 0.0),  # GA100: instantaneous
        ("NVIDIA A30", AMPERE, 0.0),  # GA100 too
        ("NVIDIA A10", AMPERE, 1.0),
        ("NVIDIA L4", pynvml.NVML_DEVICE_ARCH_ADA, 1.0),
        ("NVIDIA H100 80GB HBM3", pynvml.NVML_DEVICE_ARCH_HOPPER, 1.0),
    ],
)
def test_averaging_is_decided_per_architecture(name: str, architecture: int, averaging_s: float) -> None:
    nvml = FakeNvml([FakeGpu(name=name, architecture=architecture)])
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml_module.power_averaging_s(nvml, handle, name) == (averaging_s, None)


def test_unknown_architecture_is_taken_as_instantaneous_with_a_warning() -> None:
    gpu = FakeGpu(name="Quadro Mystery", architecture=None, counter_supported=False)
    source = NvmlSource(FakeNvml([gpu]), environ={}, start_sampler=False)
    assert any("does not report its architecture" in w for w in source.warnings())
    assert "instantaneous readings" in source.sources()[0].method


def test_a_counter_stepping_every_100_ms_does_not_set_per_inference_error(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per-inference energy from a 1 s window on a 100 ms counter, within 1% of the truth.

    The GPU draws a constant 200 W, so the truth per inference is 200 W x the window's seconds /
    its calls. Unaligned, the counter's steps alone put a 1 s window off by up to 10%. Time is the
    fake's own clock: each inference takes 1.3 ms of it, so a busy machine cannot move the result.
    """
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    from greenml.measure import inference

    monkeypatch.setattr(inference, "time", SimpleNamespace(perf_counter_ns=lambda: round(clock.now * 1e9)))

    class Timed(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(16, 4)

        def forward(self, x: object) -> object:
            clock.advance(0.0013)
            return self.linear(x)

    gpu = FakeGpu(trace=PowerTrace.constant(200.0), counter_step_s=0.1, counter_phase_s=0.037)
    source = NvmlSource(
        FakeNvml([gpu], clock=clock), clock=clock, sleep=clock.advance, environ={}, start_sampler=False
    )
    assert source.update_period_s() == pytest.approx(0.1, rel=0.05)
    errors = []
    with Meter([source], clock=clock, sleep=clock.advance, sync=lambda: None) as meter:
        for _ in range(4):
            result = inference.benchmark_inference(
                Timed(), torch.zeros(1, 16), meter=meter, min_latency_s=0, latency_iters=5, batch_size=1
            )
            assert result.energy_per_inference_j is not None and result.energy_inferences
            truth = 200.0 * result.energy_window_s / result.energy_inferences
            errors.append(result.energy_per_inference_j / truth - 1)
    assert max(abs(e) for e in errors) < 0.01, errors


# -- which GPUs a search meters, and warnings per window -----------------------------------------


def test_only_the_studys_gpu_is_metered(clock: FakeClock) -> None:
    boards = [
        FakeGpu(trace=PowerTrace.constant(100.0), uuid="GPU-aaaa", pci_bus_id="00000000:01:00.0"),
        FakeGpu(trace=PowerTrace.constant(100.0), uuid="GPU-bbbb", pci_bus_id="00000000:02:00.0"),
    ]
    nvml = FakeNvml(boards, clock=clock)
    every = NvmlSource(nvml, clock=clock, environ={}, start_sampler=False)
    assert _window_energy(every, clock, 1000.0, 1010.0) == pytest.approx(2000.0, rel=0.01)
    second = NvmlSource(nvml, clock=clock, environ={}, start_sampler=False, cuda_indices=[1])
    assert [d.uuid for d in second.devices] == ["GPU-bbbb"]
    assert _window_energy(second, clock, 1010.0, 1020.0) == pytest.approx(1000.0, rel=0.01)
    assert len(second.notes()) == 1 and "GPU-aaaa" in second.notes()[0]
    assert "not metered" in second.notes()[0]


def test_a_gpu_index_that_is_not_visible_is_refused() -> None:
    nvml = FakeNvml([FakeGpu()])
    with pytest.raises(
        MeterUnavailableError, match="cuda:3 is not a GPU this process can see; valid: cuda:0"
    ):
        NvmlSource(nvml, environ={}, cuda_indices=[3])
    assert nvml.initialised == 0


def test_a_process_seen_then_gone_warns_only_in_its_window(clock: FakeClock) -> None:
    gpu = FakeGpu(processes=(999_999_991,))
    meter = Meter(
        [NvmlSource(FakeNvml([gpu], clock=clock), clock=clock, environ={})], clock=clock, sync=lambda: None
    )
    outer = meter.begin("trial")
    first = meter.begin("first").end()
    gpu.processes = ()
    second = meter.begin("second").end()
    trial = outer.end()
    assert any("999999991" in w for w in first.provenance.warnings)
    assert not any("999999991" in w for w in second.provenance.warnings)
    assert any("999999991" in w for w in trial.provenance.warnings), "the outer window saw it too"
    later = meter.begin("later").end()
    assert later.provenance.warnings == ()


def test_a_process_seen_at_the_start_only_still_warns(clock: FakeClock) -> None:
    """Its work before it left is in the window's energy: the warning must name it."""
    gpu = FakeGpu(processes=(999_999_992,))
    meter = Meter(
        [NvmlSource(FakeNvml([gpu], clock=clock), clock=clock, environ={})], clock=clock, sync=lambda: None
    )
    window = meter.begin("train")
    clock.advance(5.0)
    gpu.processes = ()  # gone before the window ends
    result = window.end()
    assert any("999999992" in w and "includes their work" in w for w in result.provenance.warnings)


def test_sampled_power_is_integrated_with_trapezoids(clock: FakeClock) -> None:
    """A ramp up only, sampled every 62.5 ms: trapezoids are exact, left rectangles 3% low."""
    ramp = PowerTrace(((1000.0, 0.0), (1002.0, 320.0)))
    gpu = FakeGpu(trace=ramp, counter_supported=False, **INSTANTANEOUS_BOARD)
    source = NvmlSource(FakeNvml([gpu], clock=clock), clock=clock, environ={}, start_sampler=False)
    meter = Meter([source], clock=clock, sync=lambda: None)
    window = meter.begin("ramp")
    _drive(source, clock, 1002.0, step=0.0625)
    result = window.end()
    assert ramp.energy_j(1000.0, 1002.0) == pytest.approx(320.0)
    assert result.energy_j.gpu == pytest.approx(320.0, rel=1e-9)


def test_sampling_thread_in_real_time() -> None:
    """The real background thread: 1.2 s at 150 W then 1.2 s at 250 W, within 1%."""
    origin = time.monotonic()
    trace = PowerTrace(((origin + 1.5, 150.0), (origin + 1.5001, 250.0)))
    gpu = FakeGpu(trace=trace, counter_supported=False)
    nvml = FakeNvml([gpu], clock=time.monotonic)
    source = NvmlSource(nvml, environ={})
    try:
        meter = Meter([source], sync=lambda: None)
        time.sleep(max(0.0, origin + 0.3 - time.monotonic()))
        begin = time.monotonic()
        window = meter.begin("w")
        time.sleep(max(0.0, origin + 2.7 - time.monotonic()))
        result = window.end()
    finally:
        source.close()
    expected = trace.energy_j(begin, begin + result.seconds)
    assert result.energy_j.gpu == pytest.approx(expected, rel=0.01)
    assert nvml.calls["nvmlDeviceGetPowerUsage"] >= 10 * 2.4, "sampling must run at >= 10 Hz"


def test_counter_offset_is_subtracted(clock: FakeClock) -> None:
    nvml = FakeNvml([FakeGpu(trace=PowerTrace.constant(200.0), counter_offset_mj=10**15)], clock=clock)
    source = NvmlSource(nvml, clock=clock, environ={}, start_sampler=False)
    assert _window_energy(source, clock, 1010.0, 1020.0) == pytest.approx(2000.0, rel=0.01)


def test_nested_windows_on_gpu(clock: FakeClock) -> None:
    nvml = FakeNvml([FakeGpu(trace=BUSY)], clock=clock)
    meter = Meter([NvmlSource(nvml, clock=clock, environ={})], clock=clock, sync=lambda: None)
    clock.now = 1001.0
    outer = meter.begin("trial")
    clock.now = 1004.0
    inner = meter.begin("train")
    clock.now = 1014.0
    train = inner.end()
    clock.now = 1030.0
    trial = outer.end()
    assert trial.child("train") is train
    assert train.energy_j.gpu == pytest.approx(BUSY.energy_j(1004.0, 1014.0), rel=0.01)
    assert trial.energy_j.gpu == pytest.approx(BUSY.energy_j(1001.0, 1030.0), rel=0.01)
    assert trial.energy_j.gpu > train.energy_j.gpu  # type: ignore[operator]


def test_two_gpus_are_summed(clock: FakeClock) -> None:
    a = FakeGpu(trace=PowerTrace.constant(100.0), uuid="GPU-aaaa", pci_bus_id="00000000:01:00.0")
    b = FakeGpu(
        trace=PowerTrace.constant(50.0),
        uuid="GPU-bbbb",
        pci_bus_id="00000000:02:00.0",
        counter_supported=False,
    )
    nvml = FakeNvml([a, b], clock=clock)
    source = NvmlSource(nvml, clock=clock, environ={}, start_sampler=False)
    assert _window_energy(source, clock, 1005.0, 1015.0) == pytest.approx(1500.0, rel=0.01)
    assert len(source.sources()[0].devices) == 2


# -- which GPUs ---------------------------------------------------------------------------------


def _boards() -> list[FakeGpu]:
    # NVML's order here is not PCI order, so a naive index mapping would pick the wrong board.
    return [
        FakeGpu(uuid="GPU-bbbb-0002", pci_bus_id="00000000:81:00.0"),
        FakeGpu(uuid="GPU-aaaa-0001", pci_bus_id="00000000:01:00.0", mig_uuids=("MIG-1234-5678",)),
        FakeGpu(uuid="GPU-cccc-0003", pci_bus_id="00000000:C1:00.0"),
    ]


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, ["GPU-bbbb-0002", "GPU-aaaa-0001", "GPU-cccc-0003"]),
        ("0", ["GPU-aaaa-0001"]),
        ("1", ["GPU-bbbb-0002"]),
        ("2,0", ["GPU-cccc-0003", "GPU-aaaa-0001"]),
        ("GPU-cccc", ["GPU-cccc-0003"]),
        ("GPU-aaaa-0001,1", ["GPU-aaaa-0001", "GPU-bbbb-0002"]),
        ("1,7,0", ["GPU-bbbb-0002"]),  # CUDA ignores an invalid entry and all after it
        ("1,GPU-zzzz,0", ["GPU-bbbb-0002"]),
    ],
)
def test_cuda_visible_devices_map_by_uuid(visible: str | None, expected: list[str]) -> None:
    nvml = FakeNvml(_boards())
    nvml.nvmlInit()
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    devices, warnings = select_gpus(nvml, environ)
    assert [d.uuid for d in devices] == expected
    assert warnings == []


def test_mig_instance_measures_parent_with_warning() -> None:
    nvml = FakeNvml(_boards())
    source = NvmlSource(nvml, environ={"CUDA_VISIBLE_DEVICES": "MIG-1234-5678"}, start_sampler=False)
    assert [d.uuid for d in source.devices] == ["GPU-aaaa-0001"]
    assert any("MIG instance" in w and "whole" in w for w in source.warnings())


def test_mig_enabled_board_is_flagged() -> None:
    nvml = FakeNvml([FakeGpu(mig_enabled=True)])
    source = NvmlSource(nvml, environ={}, start_sampler=False)
    assert any("MIG enabled" in w for w in source.warnings())
    meter = Meter([source], sync=lambda: None)
    result = meter.begin().end()
    assert any("MIG enabled" in w for w in result.provenance.warnings)


def test_other_processes_on_the_gpu_are_flagged(clock: FakeClock) -> None:
    nvml = FakeNvml([FakeGpu(processes=(999_999_991,))], clock=clock)
    meter = Meter([NvmlSource(nvml, clock=clock, environ={})], clock=clock, sync=lambda: None)
    result = meter.begin().end()
    assert any("999999991" in w for w in result.provenance.warnings)


def test_heterogeneous_gpus_by_index_warn() -> None:
    boards = [
        FakeGpu(uuid="GPU-1", name="NVIDIA A100"),
        FakeGpu(uuid="GPU-2", name="Tesla T4", pci_bus_id="2"),
    ]
    nvml = FakeNvml(boards)
    nvml.nvmlInit()
    _devices, warnings = select_gpus(nvml, {"CUDA_VISIBLE_DEVICES": "0"})
    assert any("CUDA_DEVICE_ORDER" in w for w in warnings)
    _devices, warnings = select_gpus(nvml, {"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert warnings == []


@pytest.mark.parametrize(
    ("nvml", "environ", "reason"),
    [
        (FakeNvml(library_present=False), {}, "no NVML library"),
        (FakeNvml([]), {}, "no NVIDIA GPU"),
        (FakeNvml([FakeGpu()]), {"CUDA_VISIBLE_DEVICES": ""}, "leaves no GPU visible"),
        (FakeNvml([FakeGpu()]), {"CUDA_VISIBLE_DEVICES": "-1"}, "leaves no GPU visible"),
        (FakeNvml([FakeGpu()]), {"CUDA_VISIBLE_DEVICES": "GPU-nope"}, "leaves no GPU visible"),
    ],
)
def test_unavailable_reasons(nvml: FakeNvml, environ: dict[str, str], reason: str) -> None:
    with pytest.raises(MeterUnavailableError, match=reason):
        NvmlSource(nvml, environ=environ)


def test_provenance_names_driver_and_devices() -> None:
    nvml = FakeNvml([FakeGpu(name="NVIDIA H100 80GB HBM3")], driver_version="555.42.06")
    meter = Meter([NvmlSource(nvml, environ={}, start_sampler=False)], sync=lambda: None)
    provenance = meter.begin().end().provenance
    assert provenance.drivers == {"nvidia": "555.42.06"}
    assert provenance.energy_basis == "measured"
    assert provenance.sources[0].devices[0].startswith("NVIDIA H100 80GB HBM3")
    meter.close()
    assert nvml.initialised == 0, "closing the meter shuts NVML down"


def test_steady_power_ends_a_window_without_waiting() -> None:
    """Where the last second's readings agree, the end extrapolates instead of waiting ~0.5 s."""
    gpu = FakeGpu(trace=PowerTrace.constant(180.0), counter_supported=False)
    source = NvmlSource(FakeNvml([gpu], clock=time.monotonic), environ={})
    try:
        meter = Meter([source], sync=lambda: None)
        window = meter.begin("w")
        time.sleep(1.6)
        before_end = time.monotonic()
        result = window.end()
        ending_s = time.monotonic() - before_end
    finally:
        source.close()
    assert ending_s < 0.2
    assert result.energy_j.gpu == pytest.approx(180.0 * result.seconds, rel=0.01)
    assert not any("extrapolated" in w for w in result.provenance.warnings)
