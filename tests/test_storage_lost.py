"""A worker's heartbeat that loses the storage is recorded, then stops the worker with one line."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from greenml.config import MeasureConfig
from greenml.errors import GreenMLError, StorageLostError
from greenml.search import SearchConfig, _workers, prepare, run
from greenml.storage import Heartbeat, Pulse
from greenml.testing.fake_nvml import FakeClock
from greenml.testing.synthetic import evaluate


class Storage:
    """A beat's storage that can go away: the beat then raises as a lost database does."""

    def __init__(self) -> None:
        self.gone = False
        self.beats = 0

    def beat(self) -> None:
        self.beats += 1
        if self.gone:
            raise ConnectionError("server closed the connection unexpectedly\nmore detail")


def test_failed_beats_are_recorded_and_raised_after_the_grace_period(clock: FakeClock) -> None:
    storage = Storage()
    pulse = Pulse(storage.beat, interval_s=10, grace_s=60, clock=clock)
    pulse.beat()
    storage.gone = True
    for _ in range(5):
        clock.advance(10)
        pulse.beat()
    assert pulse.failures == 5 and isinstance(pulse.last_error, ConnectionError)
    assert pulse.failed is None  # 50 s of failures: within the grace period, a hiccup
    pulse.check()
    clock.advance(10)
    pulse.beat()
    with pytest.raises(StorageLostError) as lost:
        pulse.check()
    message = str(lost.value)
    assert message == (
        "lost the study's storage: 6 heartbeats in a row failed over 60 s (grace period 60 s), the last "
        "with ConnectionError: server closed the connection unexpectedly; this worker stops"
    )
    assert isinstance(lost.value, GreenMLError) and isinstance(lost.value.__cause__, ConnectionError)


def test_a_beat_that_gets_through_again_clears_the_failures(clock: FakeClock) -> None:
    storage = Storage()
    pulse = Pulse(storage.beat, interval_s=10, grace_s=60, clock=clock)
    storage.gone = True
    clock.advance(50)
    pulse.beat()
    storage.gone = False
    clock.advance(50)
    pulse.beat()
    assert pulse.failures == 0 and pulse.last_error is None and pulse.failed is None
    storage.gone = True
    clock.advance(59)
    pulse.beat()
    assert pulse.failures == 1 and pulse.failed is None  # the grace period counts from the last good beat


def test_the_pulse_thread_records_failures_until_the_storage_is_lost(clock: FakeClock) -> None:
    storage = Storage()

    def beat() -> None:
        clock.advance(20)  # each beat the thread sends is 20 s of the fake clock
        storage.beat()

    with Pulse(beat, interval_s=0.001, grace_s=60, clock=clock) as pulse:
        storage.gone = True
        _wait_for(lambda: pulse.failed is not None)
    assert pulse.failures >= 3
    with pytest.raises(StorageLostError, match="ConnectionError: server closed the connection"):
        pulse.check()


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_a_worker_whose_heartbeat_lost_the_storage_stops_before_its_next_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    storage = Storage()
    pulses: list[Pulse] = []

    def pulse(beat: Callable[[], None], interval_s: float, grace_s: float | None = None) -> Pulse:
        def beat_then_storage() -> None:
            storage.beat()
            beat()

        made = Pulse(beat_then_storage, 0.001, grace_s, clock=clock)
        pulses.append(made)
        return made

    monkeypatch.setattr(_workers, "Pulse", pulse)
    config = SearchConfig(
        storage=f"sqlite:///{tmp_path}/lost.db",
        study="lost",
        trials=3,
        measure=MeasureConfig(meter="estimate", idle_seconds=0, watts_per_core=10.0),
        heartbeat=Heartbeat(interval_s=1, grace_s=3),
        distillation=False,
        artifacts=str(tmp_path / "artifacts"),
    )
    search = prepare(config, evaluate=evaluate)
    try:
        (worker_pulse,) = pulses
        storage.gone = True
        clock.advance(10)
        _wait_for(lambda: worker_pulse.failed is not None)
        with pytest.raises(StorageLostError, match=r"lost the study's storage: .* ConnectionError") as lost:
            run(search)
        assert "\n" not in str(lost.value)
    finally:
        search.close()
    assert optuna.load_study(study_name="lost", storage=config.storage_url).trials == []
