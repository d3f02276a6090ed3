"""A meter that fails while measuring says so: the window has no figure, never an extrapolated one.

NVML may refuse a reading at any time (``NVMLError``: the GPU fell off the bus, an unknown
error), and a RAPL counter may become unreadable (its permissions change, the driver is
unloaded). A window during which that happened ends with a MeasurementError naming the device
and the error, and a search trial measured by it is stored as failed with that message.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pynvml
import pytest

from greenml.cli import main
from greenml.config import MeasureConfig
from greenml.errors import MeasurementError
from greenml.measure import Meter
from greenml.measure.nvml import NvmlSource
from greenml.measure.rapl import RaplSource
from greenml.testing.fake_nvml import FakeClock, FakeGpu, FakeNvml, PowerTrace
from greenml.testing.fake_powercap import FakePowercap

PASCAL = pynvml.NVML_DEVICE_ARCH_PASCAL
P100 = "Tesla P100-PCIE-16GB"


def _sampled_board(**fields: Any) -> FakeGpu:
    """A pre-Volta board: no energy counter, instantaneous power readings, sampled."""
    return FakeGpu(
        trace=PowerTrace.constant(250.0),
        name=P100,
        uuid="GPU-0000dead-beef",
        architecture=PASCAL,
        counter_supported=False,
        **fields,
    )


def _drive(source: NvmlSource, clock: FakeClock, seconds: float, step: float = 0.05) -> None:
    """Let ``seconds`` pass on the fake clock, sampling as the thread would."""
    assert source.sampler is not None
    for _ in range(round(seconds / step)):
        clock.advance(step)
        source.sampler.sample()


def _until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Wait for a background thread to do something (generous: the machine may be loaded)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the background thread did not get there"
        time.sleep(0.01)


def _raises(call: Callable[[], object]) -> bool:
    try:
        call()
    except MeasurementError:
        return True
    return False


# -- NVML ---------------------------------------------------------------------------------------


def test_a_power_reading_error_fails_the_window(clock: FakeClock) -> None:
    gpu = _sampled_board()
    source = NvmlSource(FakeNvml([gpu], clock=clock), clock=clock, environ={}, start_sampler=False)
    meter = Meter([source], clock=clock, sync=lambda: None)
    window = meter.begin("train")
    _drive(source, clock, 1.0)
    gpu.fails_from_s = clock.now  # the board falls off the bus mid-window
    _drive(source, clock, 1.0)
    with pytest.raises(MeasurementError) as caught:
        window.end()
    message = str(caught.value)
    assert "window 'train' has no energy figure" in message
    assert f"{P100} (GPU-0000dead-beef)" in message and "GPU is lost" in message
    assert not window.is_open and window.failure == message
    with pytest.raises(MeasurementError, match="GPU is lost"):
        _ = window.result
    # The board is still lost: the next window cannot begin.
    with pytest.raises(MeasurementError, match="GPU is lost"):
        meter.begin("next")


def test_a_transient_error_fails_only_the_windows_that_span_it(clock: FakeClock) -> None:
    gpu = _sampled_board(fail_code=pynvml.NVML_ERROR_UNKNOWN)
    source = NvmlSource(FakeNvml([gpu], clock=clock), clock=clock, environ={}, start_sampler=False)
    meter = Meter([source], clock=clock, sync=lambda: None)
    trial = meter.begin("trial")
    before = meter.begin("before")
    _drive(source, clock, 1.0)
    assert before.end().energy_j.gpu == pytest.approx(250.0)
    train = meter.begin("train")
    _drive(source, clock, 0.5)
    gpu.fails_from_s, gpu.fails_until_s = clock.now, clock.now + 0.3
    _drive(source, clock, 1.0)  # readings fail for 0.3 s, then the board answers again
    with pytest.raises(MeasurementError, match=r"power of Tesla P100.*Unknown Error"):
        train.end()
    after = meter.begin("after")
    _drive(source, clock, 1.0)
    assert after.end().energy_j.gpu == pytest.approx(250.0)
    # The trial spans the failed phase: it has no figure either, for the same reason.
    with pytest.raises(MeasurementError, match=r"window 'trial' has no energy figure: NVML could not read"):
        trial.end()
    assert meter.begin("later").end().energy_j.gpu == 0.0


def test_an_energy_counter_error_fails_the_window(clock: FakeClock) -> None:
    gpu = FakeGpu(name="NVIDIA H100 80GB HBM3", uuid="GPU-cafe")
    meter = Meter(
        [NvmlSource(FakeNvml([gpu], clock=clock), clock=clock, environ={})], clock=clock, sync=lambda: None
    )
    window = meter.begin("benchmark")
    clock.advance(2.0)
    gpu.fails_from_s = clock.now
    with pytest.raises(
        MeasurementError, match=r"energy counter of NVIDIA H100 80GB HBM3 \(GPU-cafe\).*GPU is lost"
    ):
        window.end()


def test_samples_that_stop_long_before_the_end_are_not_extrapolated(clock: FakeClock) -> None:
    """The last reading may stand for the last sampling interval, not for seconds after it."""
    source = NvmlSource(
        FakeNvml([_sampled_board()], clock=clock), clock=clock, environ={}, start_sampler=False
    )
    meter = Meter([source], clock=clock, sync=lambda: None)
    window = meter.begin("w")
    _drive(source, clock, 1.0)
    clock.advance(0.06)  # within the final interval: extrapolated, as a live thread's would be
    assert window.end().energy_j.gpu == pytest.approx(250.0 * 1.06)
    window = meter.begin("w")
    _drive(source, clock, 1.0)
    clock.advance(3.0)  # no reading for 3 s
    with pytest.raises(MeasurementError, match="stopped 3 s before the window's end"):
        window.end()


def test_the_sampling_thread_survives_an_nvml_error_and_the_window_fails() -> None:
    """The real thread: an NVMLError mid-window used to kill it, and every later window was the
    last reading extrapolated, labelled measured."""
    clock = FakeClock(1000.0)
    gpu = _sampled_board()
    nvml = FakeNvml([gpu], clock=clock)
    source = NvmlSource(nvml, clock=clock, environ={}, sample_hz=100)
    sampler = source.sampler
    assert sampler is not None
    try:
        meter = Meter([source], clock=clock, sync=lambda: None)
        window = meter.begin("train")
        gpu.fails_from_s = clock.now
        _until(lambda: sampler.failures >= 3)
        with pytest.raises(MeasurementError, match=r"power of Tesla P100.*GPU is lost"):
            window.end()
        gpu.fails_from_s = None  # the board answers again: the thread, still alive, reads it
        _until(lambda: not _raises(sampler.check))
        clock.advance(1.0)
        _until(lambda: sampler.covered_until() >= clock.now)
        assert meter.begin("after").end().energy_j.gpu is not None
    finally:
        source.close()


def test_a_dead_sampling_thread_is_noticed_at_the_next_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(1000.0)
    source = NvmlSource(FakeNvml([_sampled_board()], clock=clock), clock=clock, environ={}, sample_hz=100)
    sampler = source.sampler
    assert sampler is not None
    try:
        meter = Meter([source], clock=clock, sync=lambda: None)
        window = meter.begin("train")

        def broken() -> None:
            raise RuntimeError("a bug in the sampler")

        monkeypatch.setattr(sampler, "sample", broken)
        _until(lambda: _raises(sampler.check))
        with pytest.raises(
            MeasurementError, match="sampling thread stopped: RuntimeError: a bug in the sampler"
        ):
            window.end()
        with pytest.raises(MeasurementError, match="sampling thread stopped"):
            meter.begin("next")
    finally:
        source.close()


# -- RAPL ---------------------------------------------------------------------------------------


def test_a_counter_that_becomes_unreadable_fails_the_window(tmp_path: Path, as_non_root: None) -> None:
    tree = FakePowercap(tmp_path)
    source = RaplSource(tmp_path, start_poller=False)
    meter = Meter([source], sync=lambda: None)
    window = meter.begin("train")
    tree.add("intel-rapl:0", 10.0)
    path = tree.make_unreadable("intel-rapl:0")
    with pytest.raises(MeasurementError) as caught:
        window.end()
    assert f"RAPL counter {path} (package-0) could not be read" in str(caught.value)
    assert "Permission denied" in str(caught.value)
    with pytest.raises(MeasurementError, match="could not be read"):
        meter.begin("next")


def test_a_failed_poll_fails_the_window_even_if_the_counter_comes_back(
    tmp_path: Path, as_non_root: None
) -> None:
    """A missed read may hide a wrap: the window that spans it has no figure."""
    tree = FakePowercap(tmp_path, max_energy_range_uj=1_000_000_000)
    source = RaplSource(tmp_path, start_poller=False)
    meter = Meter([source], sync=lambda: None)
    window = meter.begin("train")
    tree.add("intel-rapl:0", 800.0)
    path = tree.make_unreadable("intel-rapl:0")
    assert source.update() is not None  # the poller's read fails
    path.chmod(0o444)
    tree.add("intel-rapl:0", 800.0)  # two wraps' worth between good reads: one is lost
    with pytest.raises(MeasurementError, match=r"RAPL counter .*intel-rapl:0/energy_uj \(package-0\)"):
        window.end()
    after = meter.begin("after")
    tree.add("intel-rapl:0", 5.0)
    assert after.end().energy_j.cpu == pytest.approx(5.0)


def test_the_poller_thread_sees_a_zone_disappear(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path)
    source = RaplSource(tmp_path, poll_s=0.01)
    try:
        meter = Meter([source], sync=lambda: None)
        window = meter.begin("train")
        tree.remove("intel-rapl:0:1")  # the dram zone goes, as when the driver is unloaded
        _until(lambda: source.failures > 0)
        with pytest.raises(MeasurementError, match=r"intel-rapl:0:1/energy_uj \(dram\) could not be read"):
            window.end()
    finally:
        source.close()


def test_a_dead_poller_thread_is_noticed_at_the_next_edge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FakePowercap(tmp_path)
    source = RaplSource(tmp_path, poll_s=0.01)
    try:
        meter = Meter([source], sync=lambda: None)

        update = source.update

        def broken() -> str | None:
            if threading.current_thread().name == "greenml-rapl-poller":
                raise RuntimeError("a bug in the poller")
            return update()

        monkeypatch.setattr(source, "update", broken)
        _until(lambda: _raises(source.snapshot))
        with pytest.raises(
            MeasurementError, match="RAPL polling thread stopped: RuntimeError: a bug in the poller"
        ):
            meter.begin("next")
    finally:
        source.close()


# -- a search trial on a failing meter ------------------------------------------------------------


def test_a_search_trial_on_a_failing_gpu_is_stored_failed_with_the_reason(tmp_path: Path) -> None:
    from greenml.search import SearchConfig, prepare, run
    from greenml.storage import open_storage
    from greenml.testing.synthetic import evaluate

    clock = FakeClock(1000.0)
    gpu = _sampled_board()
    source = NvmlSource(FakeNvml([gpu], clock=clock), clock=clock, environ={}, start_sampler=False)
    meter = Meter([source], clock=clock, sync=lambda: None)
    calls = []

    def evaluate_on_a_failing_board(trial: Any, ctx: Any) -> Any:
        """The board refuses one reading inside the first trial's window, then answers again."""
        if not calls:
            gpu.fails_from_s = clock.now
            _drive(source, clock, 0.1)
            gpu.fails_from_s = None
            _drive(source, clock, 0.1)
        calls.append(trial.number)
        _drive(source, clock, 0.5)
        return evaluate(trial, ctx)

    config = SearchConfig(
        storage=f"sqlite:///{tmp_path}/failing.db",
        study=f"failing-{uuid.uuid4().hex[:8]}",
        trials=2,
        measure=MeasureConfig(meter="estimate", idle_seconds=0, watts_per_core=10.0),
        distillation=False,
        artifacts=str(tmp_path / "artifacts"),
    )
    search = prepare(config, evaluate=evaluate_on_a_failing_board)
    search.meter.close()
    search.meter = meter
    search.context = dataclasses.replace(search.context, meter=meter)
    try:
        run(search)
    finally:
        search.close()
    study = optuna.load_study(study_name=config.study_name, storage=open_storage(config.storage_url))
    trials = study.get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]  # 2 complete
    error = trials[0].user_attrs["error"]
    assert error.startswith("MeasurementError: window 'trial 0' has no energy figure")
    assert f"NVML could not read the power of {P100} (GPU-0000dead-beef): GPU is lost" in error
    assert trials[1].user_attrs["metrics"]["trial_energy_j"] > 0


# -- greenml measure on a GPU nothing can meter ---------------------------------------------------


def test_measure_refuses_a_gpu_it_cannot_meter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(library_present=False))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("GREENML_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    assert main(["measure", "--idle-seconds", "0", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "CUDA_VISIBLE_DEVICES='0'" in err and "no NVML library" in err
    assert "--meter estimate" in err

    out = tmp_path / "measured.json"
    assert main(["measure", "--meter", "estimate", "--idle-seconds", "0", "-o", str(out), "--", "true"]) == 0
    import json

    notes = json.loads(out.read_text())["provenance"]["notes"]
    assert any("GPU is not metered" in note and "CUDA_VISIBLE_DEVICES='0'" in note for note in notes)


@pytest.mark.parametrize("visible", ["", "-1"])
def test_measure_with_no_gpu_visible_is_not_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, visible: str
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(library_present=False))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.setenv("GREENML_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    assert main(["measure", "--idle-seconds", "0", "--", "true"]) == 0
