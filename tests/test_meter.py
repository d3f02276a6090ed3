"""Measurement windows: nesting, idle baseline, measured vs estimated, meter selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from greenml.config import MeasureConfig
from greenml.errors import ConfigError, MeasurementError, MeterUnavailableError
from greenml.measure import Meter, build_meter, probe_meters
from greenml.testing.fake_nvml import FakeClock, FakeGpu, FakeNvml, PowerTrace
from greenml.testing.fake_powercap import FakePowercap
from greenml.testing.sources import ConstantPowerSource


def _meter(clock: FakeClock, **sources: tuple[dict[str, float], str]) -> Meter:
    return Meter(
        [ConstantPowerSource(w, kind=k, name=n, clock=clock) for n, (w, k) in sources.items()],  # type: ignore[arg-type]
        clock=clock,
        sleep=clock.advance,
        sync=lambda: None,
    )


def test_the_total_includes_every_component_and_says_it_is_partly_estimated(clock: FakeClock) -> None:
    meter = _meter(clock, nvml=({"gpu": 200.0}, "measured"), estimate=({"cpu": 30.0}, "estimated"))
    meter.measure_idle(1.0)
    window = meter.begin()
    clock.advance(10.0)
    result = window.end()
    assert result.energy_j.gpu == pytest.approx(2000.0)
    assert result.energy_j.cpu == pytest.approx(300.0)
    assert result.total_energy_j == pytest.approx(2300.0)  # the CPU did work too: it counts
    assert result.provenance.energy_basis == "partly estimated"
    assert result.provenance.total_components == ("gpu", "cpu")
    assert result.provenance.kind_of("cpu") == "estimated"
    assert result.to_dict()["energy_j"] == {
        "gpu": pytest.approx(2000.0),
        "cpu": pytest.approx(300.0),
        "dram": None,
    }


def test_estimate_alone_is_the_total(clock: FakeClock) -> None:
    meter = _meter(clock, estimate=({"cpu": 30.0}, "estimated"))
    window = meter.begin()
    clock.advance(2.0)
    result = window.end()
    assert result.total_energy_j == pytest.approx(60.0)
    assert result.provenance.energy_basis == "estimated"


def test_idle_baseline_gives_dynamic_energy(clock: FakeClock) -> None:
    source = ConstantPowerSource({"gpu": 70.0, "cpu": 20.0}, clock=clock)
    meter = Meter([source], clock=clock, sleep=clock.advance, sync=lambda: None)
    idle = meter.measure_idle(5.0)
    assert idle is not None and idle.seconds == pytest.approx(5.0)
    assert idle.power_w.gpu == pytest.approx(70.0) and idle.power_w.dram is None
    source.set_watts({"gpu": 250.0, "cpu": 50.0})  # the workload starts
    window = meter.begin()
    clock.advance(4.0)
    result = window.end()
    assert result.energy_j.gpu == pytest.approx(1000.0)
    assert result.dynamic_energy_j.gpu == pytest.approx((250 - 70) * 4.0)
    assert result.dynamic_energy_j.cpu == pytest.approx((50 - 20) * 4.0)
    assert result.dynamic_energy_j.dram is None
    assert result.dynamic_total_energy_j == pytest.approx(180 * 4 + 30 * 4)
    assert result.provenance.idle == idle


def test_dynamic_is_signed_and_absent_without_baseline(clock: FakeClock) -> None:
    source = ConstantPowerSource({"gpu": 70.0}, clock=clock)
    meter = Meter([source], clock=clock, sleep=clock.advance, sync=lambda: None)
    assert meter.measure_idle(0) is None
    window = meter.begin()
    clock.advance(1.0)
    result = window.end()
    assert result.dynamic_total_energy_j is None and result.dynamic_energy_j.gpu is None
    meter.measure_idle(1.0)
    source.set_watts({"gpu": 60.0})  # below idle: kept negative, so noise averages out
    window = meter.begin()
    clock.advance(1.0)
    result = window.end()
    assert result.dynamic_energy_j.gpu == pytest.approx(-10.0)
    assert result.dynamic_total_energy_j == pytest.approx(-10.0)
    with pytest.raises(MeasurementError):
        meter.measure_idle(-1)


def test_windows_nest_and_misuse_is_an_error(clock: FakeClock) -> None:
    meter = _meter(clock, constant=({"cpu": 10.0}, "measured"))
    trial = meter.begin("trial")
    train = meter.begin("train")
    clock.advance(3.0)
    with pytest.raises(MeasurementError, match="nested window"):
        trial.end()
    with pytest.raises(MeasurementError, match="still open"):
        _ = train.result
    train.end()
    with meter.window("evaluate") as evaluate:
        clock.advance(1.0)
    clock.advance(0.5)
    result = trial.end()
    assert [c.name for c in result.children] == ["train", "evaluate"]
    assert result.child("evaluate") is evaluate.result
    assert result.seconds == pytest.approx(4.5)
    assert result.energy_j.cpu == pytest.approx(45.0)
    with pytest.raises(MeasurementError, match="already ended"):
        train.end()
    with pytest.raises(KeyError, match="train, evaluate"):
        result.child("finetune")


def test_result_round_trips_through_json(clock: FakeClock) -> None:
    meter = _meter(clock, constant=({"gpu": 10.0}, "measured"))
    with meter.window("outer"), meter.window("inner"):
        clock.advance(1.0)
    document = json.loads(meter.begin().end().to_json())
    assert set(document) >= {"seconds", "energy_j", "dynamic_energy_j", "co2_g", "provenance"}
    assert document["provenance"]["components"]["gpu"]["kind"] == "measured"
    assert document["provenance"]["components"]["dram"] is None


def test_a_component_cannot_have_two_sources(clock: FakeClock) -> None:
    with pytest.raises(MeasurementError, match="covered by both"):
        _meter(clock, a=({"cpu": 1.0}, "measured"), b=({"cpu": 1.0}, "estimated"))


def test_cuda_sync_is_called_at_both_edges(clock: FakeClock) -> None:
    calls: list[float] = []
    meter = Meter(
        [ConstantPowerSource({"gpu": 1.0}, clock=clock)], clock=clock, sync=lambda: calls.append(clock.now)
    )
    window = meter.begin()
    clock.advance(1.0)
    window.end()
    assert calls == [1000.0, 1001.0]


# -- choosing the meter ---------------------------------------------------------------------------


def test_auto_takes_nvml_and_rapl(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path)
    nvml = FakeNvml([FakeGpu(trace=PowerTrace.constant(100.0))])
    meter = build_meter(MeasureConfig(), nvml=nvml, powercap_root=tmp_path)
    try:
        assert [s.name for s in meter.sources] == ["nvml", "rapl"]
        window = meter.begin()
        tree.add("intel-rapl:0", 5.0)
        result = window.end()
        assert result.provenance.total_components == ("gpu", "cpu", "dram")
        assert result.energy_j.cpu == pytest.approx(5.0)
        assert result.provenance.carbon is not None
    finally:
        meter.close()


def test_auto_falls_back_to_estimate_for_cpu(tmp_path: Path, as_non_root: None) -> None:
    FakePowercap(tmp_path).make_unreadable("intel-rapl:0")
    meter = build_meter(MeasureConfig(), nvml=FakeNvml([FakeGpu()]), powercap_root=tmp_path)
    try:
        assert [s.name for s in meter.sources] == ["nvml", "estimate"]
        provenance = meter.provenance()
        assert provenance.total_components == ("gpu", "cpu")
        assert provenance.kind_of("cpu") == "estimated"
        assert provenance.energy_basis == "partly estimated"
    finally:
        meter.close()


def test_gpu_machine_without_rapl_adds_the_cpu_estimate_to_the_total(tmp_path: Path) -> None:
    """An ONNX Runtime model on the CPU beside an idle GPU is charged its CPU time too."""
    from greenml.measure.estimate import cpu_seconds

    nvml = FakeNvml([FakeGpu(trace=PowerTrace.constant(60.0))])
    config = MeasureConfig(watts_per_core=10.0, gpus=(0,))
    meter = build_meter(config, nvml=nvml, powercap_root=tmp_path / "no-powercap")
    try:
        window = meter.begin()
        cpu_before = cpu_seconds()
        while cpu_seconds() - cpu_before < 0.3:  # CPU work, as ONNX Runtime on the CPU would do
            sum(i * i for i in range(10_000))
        result = window.end()
    finally:
        meter.close()
    assert result.energy_j.cpu is not None and result.energy_j.cpu >= 10.0 * 0.3
    assert result.energy_j.gpu is not None and result.energy_j.gpu > 0
    assert result.total_energy_j == pytest.approx(result.energy_j.gpu + result.energy_j.cpu)
    assert result.provenance.energy_basis == "partly estimated"


def test_a_cpu_only_search_on_a_gpu_machine_leaves_the_gpus_out(tmp_path: Path) -> None:
    nvml = FakeNvml([FakeGpu(name="NVIDIA H100 80GB HBM3")])
    meter = build_meter(MeasureConfig(gpus=()), nvml=nvml, powercap_root=tmp_path / "no-powercap")
    try:
        assert [s.name for s in meter.sources] == ["estimate"]
        provenance = meter.provenance()
        assert provenance.total_components == ("cpu",)
        assert len(provenance.notes) == 1 and "H100" in provenance.notes[0]
        assert "not metered" in provenance.notes[0]
    finally:
        meter.close()
    with pytest.raises(MeterUnavailableError, match="runs on the CPU only"):
        build_meter(MeasureConfig(meter="nvml", gpus=()), nvml=nvml)


@pytest.mark.parametrize("gpus", [(0,), (0, 1)])
def test_gpu_work_no_meter_can_read_is_refused(tmp_path: Path, gpus: tuple[int, ...]) -> None:
    """--meter auto never quietly measures the CPU alone while a GPU does the work."""
    no_nvml = FakeNvml(library_present=False)
    with pytest.raises(ConfigError) as caught:
        build_meter(MeasureConfig(gpus=gpus), nvml=no_nvml, powercap_root=tmp_path / "none")
    message = str(caught.value)
    assert "\n" not in message
    assert f"the work runs on {', '.join(f'cuda:{i}' for i in gpus)}, but no meter can read it" in message
    assert "no NVML library" in message and "pass --meter estimate" in message
    assert no_nvml.initialised == 0


def test_a_gpu_nvml_cannot_see_is_refused_under_auto(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cuda:3 is not a GPU this process can see.*--meter estimate"):
        build_meter(MeasureConfig(gpus=(3,)), nvml=FakeNvml([FakeGpu()]), powercap_root=tmp_path / "none")


def test_estimate_goes_on_and_says_the_gpu_is_not_metered(tmp_path: Path) -> None:
    config = MeasureConfig(meter="estimate", gpus=(0,))
    with build_meter(config, nvml=FakeNvml(library_present=False), powercap_root=tmp_path) as meter:
        assert [s.name for s in meter.sources] == ["estimate"]
        notes = meter.begin().end().provenance.notes
    assert len(notes) == 1 and "the GPU is not metered" in notes[0] and "cuda:0" in notes[0]
    assert "--meter estimate reads no GPU" in notes[0]


def test_measure_on_the_gpus_cuda_visible_devices_names_is_refused_without_nvml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """greenml measure (gpus=None) runs on what CUDA_VISIBLE_DEVICES names."""
    no_nvml = FakeNvml(library_present=False)
    for visible in ("0", "GPU-1234,1", "MIG-abcd"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        with pytest.raises(ConfigError, match=r"CUDA_VISIBLE_DEVICES=.*--meter estimate"):
            build_meter(MeasureConfig(), nvml=no_nvml, powercap_root=tmp_path / "none")
    for hidden in ("", "-1", "none"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        with build_meter(MeasureConfig(), nvml=no_nvml, powercap_root=tmp_path / "none") as meter:
            assert [s.name for s in meter.sources] == ["estimate"] and meter.notes == ()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with build_meter(MeasureConfig(), nvml=no_nvml, powercap_root=tmp_path / "none") as meter:
        assert [s.name for s in meter.sources] == ["estimate"]
    # `greenml meters` lists the meters all the same, with none chosen for auto.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    statuses = probe_meters(MeasureConfig(), nvml=no_nvml, powercap_root=tmp_path / "none")
    assert not any(s.chosen for s in statuses)


def test_named_meter_unavailable_says_why(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailableError, match="'nvml' is unavailable here: no NVML library"):
        build_meter(MeasureConfig(meter="nvml"), nvml=FakeNvml(library_present=False))
    with pytest.raises(MeterUnavailableError, match="'rapl' is unavailable here"):
        build_meter(MeasureConfig(meter="rapl"), powercap_root=tmp_path / "none")


def test_probe_lists_every_meter_with_reasons(tmp_path: Path) -> None:
    statuses = probe_meters(
        MeasureConfig(), nvml=FakeNvml(library_present=False), powercap_root=tmp_path / "none"
    )
    by_name = {s.name: s for s in statuses}
    assert list(by_name) == ["nvml", "rapl", "estimate"]
    assert not by_name["nvml"].available and "NVML library" in by_name["nvml"].detail
    assert not by_name["rapl"].available and "does not exist" in by_name["rapl"].detail
    assert by_name["estimate"].available and by_name["estimate"].chosen
    assert by_name["estimate"].kind == "estimated"

    FakePowercap(tmp_path)
    statuses = probe_meters(MeasureConfig(), nvml=FakeNvml([FakeGpu()]), powercap_root=tmp_path)
    assert [(s.name, s.available, s.chosen) for s in statuses] == [
        ("nvml", True, True),
        ("rapl", True, True),
        ("estimate", True, False),
    ]
