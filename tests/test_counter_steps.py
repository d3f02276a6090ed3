"""Windows on an energy counter that steps every 100 ms: exact at any length, on the fake's clock.

The fake board draws a constant power, so every window's truth is power x seconds. Its counter
steps at 1000.037 + k x 0.1 s, so window edges fall anywhere within a step. Time is a FakeClock
moved by hand in 1 ms ticks, with the counters read at each, as the polling thread would.
"""

from __future__ import annotations

import random

import pytest

from greenml.measure import Meter
from greenml.measure import _power_sampler as power_sampler
from greenml.measure.nvml import NvmlSource
from greenml.testing.fake_nvml import FakeClock, FakeGpu, FakeNvml, PowerTrace

STEP_S = 0.1
POLL_S = 0.001


class _Board:
    """A 100 ms counter board, its source and a meter, all on one hand-driven clock."""

    def __init__(self, clock: FakeClock, watts: float = 200.0) -> None:
        self.clock = clock
        self.gpu = FakeGpu(trace=PowerTrace.constant(watts), counter_step_s=STEP_S, counter_phase_s=0.037)
        self.source = NvmlSource(
            FakeNvml([self.gpu], clock=clock), clock=clock, sleep=self.sleep, environ={}, start_sampler=False
        )
        self.meter = Meter([self.source], clock=clock, sleep=self.sleep, sync=lambda: None)

    def sleep(self, seconds: float) -> None:
        """Time passes; the counters are read every millisecond meanwhile."""
        end = self.clock.now + seconds
        while self.clock.now + POLL_S < end:
            self.clock.advance(POLL_S)
            self.source.poll()
        self.clock.now = end


@pytest.fixture
def board(clock: FakeClock) -> _Board:
    made = _Board(clock)
    made.sleep(0.5)  # the polling thread has seen a few steps before the first window
    return made


@pytest.mark.parametrize("seconds", [1.0, 1.05, 1.55, 3.07])
@pytest.mark.parametrize("offset", [0.0, 0.013, 0.049, 0.071, 0.094])
def test_a_window_of_any_length_is_within_1_percent(board: _Board, seconds: float, offset: float) -> None:
    board.sleep(offset)
    window = board.meter.begin("w")
    board.sleep(seconds)
    result = window.end()
    assert result.seconds == pytest.approx(seconds)
    assert result.energy_j.gpu == pytest.approx(200.0 * seconds, rel=0.01)


def test_phase_windows_nested_in_a_trial_are_within_1_percent(board: _Board) -> None:
    trial = board.meter.begin("trial")
    phases = [("propose", 1.013), ("train", 3.07), ("compress", 1.05), ("cost", 1.55), ("benchmark", 1.0)]
    for name, seconds in phases:
        board.sleep(0.0123)  # the trial's own work between phases
        with board.meter.window(name) as phase:
            board.sleep(seconds)
        assert phase.result.energy_j.gpu == pytest.approx(200.0 * seconds, rel=0.01), name
    board.sleep(0.031)
    result = trial.end()
    assert [c.name for c in result.children] == [name for name, _ in phases]
    assert result.energy_j.gpu == pytest.approx(200.0 * result.seconds, rel=0.01)


def test_the_idle_baseline_is_within_1_percent_and_carries_its_uncertainty(clock: FakeClock) -> None:
    for offset in (0.0, 0.021, 0.058, 0.083):
        board = _Board(clock, watts=100.0)
        board.sleep(0.5 + offset)
        idle = board.meter.measure_idle(1.05)
        assert idle is not None and idle.seconds >= 1.05
        assert idle.power_w.gpu == pytest.approx(100.0, rel=0.01)
        # One 100 ms step of 100 W over the idle window, as watts.
        assert idle.uncertainty_w.gpu == pytest.approx(100.0 * STEP_S / idle.seconds, rel=0.25)
        assert idle.to_dict()["uncertainty_w"]["gpu"] == idle.uncertainty_w.gpu


def test_without_edge_interpolation_a_1_05_s_window_is_off(
    board: _Board, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reading as it stands (no placing within a step) is up to a step off: 5% here."""
    monkeypatch.setattr(
        power_sampler.CounterTicks, "energy_at", lambda self, index, at, value_mj: value_mj / 1000.0
    )
    errors = []
    for offset in (0.013, 0.049, 0.094):
        board.sleep(offset)
        window = board.meter.begin("w")
        board.sleep(1.05)
        errors.append(abs(window.end().energy_j.gpu / (200.0 * 1.05) - 1))  # type: ignore[operator]
    assert max(errors) > 0.04


def test_sparse_readings_fall_back_to_the_counter_reading(clock: FakeClock) -> None:
    """Without readings between the edges, no step is placed: the raw difference, a step off at most."""
    board = _Board(clock)
    clock.advance(0.5)
    window = board.meter.begin("w")
    clock.advance(1.05)
    result = window.end()
    assert abs(result.energy_j.gpu - 210.0) <= 200.0 * STEP_S + 1e-6  # type: ignore[operator]


def test_dynamic_energy_at_idle_power_averages_to_zero(clock: FakeClock) -> None:
    """Windows at idle power over noise: the signed mean is ~0, and negative values are kept."""
    rng = random.Random(7)
    board = _Board(clock, watts=100.0)
    board.sleep(0.5)
    board.meter.measure_idle(2.0)
    dynamic, truth = [], []
    for _ in range(40):
        # Power noise of +-5 W around idle, constant within each window.
        watts = 100.0 + rng.uniform(-5.0, 5.0)
        start = clock.now
        board.gpu.trace = PowerTrace(
            ((start, 100.0), (start + 1e-6, watts), (start + 2.0, watts), (start + 2.000001, 100.0))
        )
        board.sleep(0.2)
        window = board.meter.begin("w")
        board.sleep(1.3)
        result = window.end()
        assert result.dynamic_energy_j.gpu == pytest.approx((watts - 100.0) * 1.3, abs=0.02 * 130)
        dynamic.append(result.dynamic_energy_j.gpu)
        truth.append((watts - 100.0) * 1.3)
        board.sleep(0.6)
    assert min(dynamic) < 0, "a window below idle keeps its negative dynamic energy"  # type: ignore[type-var]
    mean = sum(dynamic) / len(dynamic)  # type: ignore[arg-type]
    true_mean = sum(truth) / len(truth)
    # Clamping each window at zero would put the mean about +1.6 J above the truth here.
    assert abs(mean - true_mean) < 0.1, (
        f"dynamic energy at idle power is biased: {mean:.3f} J vs {true_mean:.3f} J"
    )
    assert abs(mean) < 1.5


def test_the_step_record_stays_bounded_and_an_old_edge_falls_back_to_the_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(power_sampler, "MAX_STEPS", 100)
    ticks = power_sampler.CounterTicks(1)
    for k in range(1200):  # a reading every 10 ms, a 10 mJ step every 100 ms (100 mW)
        ticks.record(k * 0.01, [10 * (k // 10)])
    assert len(ticks._times[0]) <= 100
    # A reading whose step was dropped is taken as it is ...
    assert ticks.energy_at(0, 0.015, 10) == pytest.approx(0.010)
    # ... and a recent edge is still placed between steps: the step to 1,100 mJ was placed at
    # 10.995 s, so at 11.0 s, 5 ms into it, 100 mW has added 0.5 mJ.
    assert ticks.energy_at(0, 11.0, 1100) == pytest.approx(1.1005, abs=1e-9)
