"""GPU power sampled in the background, for boards without NVML's energy counter.

A background thread reads ``nvmlDeviceGetPowerUsage`` at ``sample_hz`` (>= 10 Hz) and integrates
it with the trapezoid rule. What that reading is depends on the board (NVML's documentation of
nvmlDeviceGetPowerUsage): on Ampere and newer, except GA100, the power averaged over the last
second, which lags the true power by half a second, so those samples are shifted back by half a
second and a window's end waits until the samples cover it; on GA100 and older architectures,
instantaneous power, taken as it is.
"""

from __future__ import annotations

import bisect
import threading
import time
from array import array
from collections.abc import Callable
from typing import Any

from greenml.measure._nvml_devices import GpuDevice

__all__ = ["AVERAGING_WINDOW_S", "PowerSampler", "power_averaging_s"]

# nvmlDeviceGetPowerUsage on Ampere and newer (except GA100): the average over the last second.
AVERAGING_WINDOW_S = 1.0
# GA100 boards report instantaneous power although they are Ampere.
_GA100_NAMES = ("A100", "A30", "A800")


def power_averaging_s(nvml: Any, handle: Any, name: str) -> tuple[float, str | None]:
    """Seconds over which this board's nvmlDeviceGetPowerUsage averages (0: instantaneous).

    Returns a warning too where the architecture is unknown (then instantaneous is assumed: the
    sampling path runs on boards without an energy counter, which are older than Volta).
    """
    try:
        architecture = int(nvml.nvmlDeviceGetArchitecture(handle))
    except (nvml.NVMLError, AttributeError):
        architecture = -1
    known = (
        nvml.NVML_DEVICE_ARCH_KEPLER,
        nvml.NVML_DEVICE_ARCH_MAXWELL,
        nvml.NVML_DEVICE_ARCH_PASCAL,
        nvml.NVML_DEVICE_ARCH_VOLTA,
        nvml.NVML_DEVICE_ARCH_TURING,
    )
    if architecture in known:
        return 0.0, None
    if architecture >= nvml.NVML_DEVICE_ARCH_AMPERE and architecture != nvml.NVML_DEVICE_ARCH_UNKNOWN:
        if any(part in name for part in _GA100_NAMES):
            return 0.0, None
        return AVERAGING_WINDOW_S, None
    return 0.0, (
        f"{name}: NVML does not report its architecture; its power readings were taken as "
        "instantaneous (as on boards older than Ampere)"
    )


class PowerSampler:
    """Integrates sampled power of several devices on one background thread."""

    def __init__(
        self,
        nvml: Any,
        devices: list[GpuDevice],
        sample_hz: float,
        averaging_s: list[float],
        clock: Callable[[], float],
    ) -> None:
        self._nvml = nvml
        self._devices = devices
        self.period_s = 1.0 / sample_hz
        # An averaged reading describes the power half its window ago; an instantaneous one, now.
        self._shift_s = [seconds / 2.0 for seconds in averaging_s]
        self._clock = clock
        self._lock = threading.Condition()
        # Per device: sample times (shifted to when the power was drawn) and cumulative joules.
        self._times = [array("d") for _ in devices]
        self._energy = [array("d") for _ in devices]
        self._power = [array("d") for _ in devices]
        self._last_power = [0.0 for _ in devices]
        self.averaging_s = list(averaging_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="greenml-nvml-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.sample()

    def sample(self) -> None:
        """Read every device's power once (the thread calls this; tests may call it directly)."""
        now = self._clock()
        with self._lock:
            for i, device in enumerate(self._devices):
                power_w = self._nvml.nvmlDeviceGetPowerUsage(device.handle) / 1000.0
                at = now - self._shift_s[i]
                times, energy = self._times[i], self._energy[i]
                if times and at <= times[-1]:
                    continue
                joules = 0.0
                if times:
                    joules = energy[-1] + (self._last_power[i] + power_w) / 2.0 * (at - times[-1])
                times.append(at)
                energy.append(joules)
                self._power[i].append(power_w)
                self._last_power[i] = power_w
            self._lock.notify_all()

    def steady_before(self, instant: float, tolerance: float = 0.02) -> bool:
        """Whether every device's readings over the averaging window before ``instant`` agree.

        Then the power in the not-yet-covered last moments is the power read last, and a window
        may end without waiting for the samples to catch up.
        """
        with self._lock:
            for i, (times, power) in enumerate(zip(self._times, self._power, strict=True)):
                # The readings that still describe moments before ``instant``: a second's worth.
                since = instant - max(self.averaging_s[i], 2 * self.period_s) - self._shift_s[i]
                k = bisect.bisect_left(times, since)
                recent = power[k:]
                if len(recent) < 2 or times[0] > since:
                    return False
                if max(recent) - min(recent) > tolerance * max(max(recent), 1e-9):
                    return False
        return True

    def covered_until(self) -> float:
        with self._lock:
            return min((t[-1] for t in self._times if t), default=float("-inf"))

    def wait_until_covered(self, instant: float, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.covered_until() < instant:
            if self._thread is None:
                return False  # nothing will add samples: driven by hand
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._lock:
                self._lock.wait(min(remaining, self.period_s))
        return True

    def energy_at(self, index: int, instant: float) -> float:
        """Cumulative joules of device ``index`` at ``instant``, interpolating between samples."""
        with self._lock:
            times, energy = self._times[index], self._energy[index]
            if not times:
                return 0.0
            if instant <= times[0]:
                return energy[0]
            if instant >= times[-1]:
                return energy[-1] + self._last_power[index] * (instant - times[-1])
            k = bisect.bisect_right(times, instant)
            t0, t1 = times[k - 1], times[k]
            e0, e1 = energy[k - 1], energy[k]
            return e0 + (e1 - e0) * (instant - t0) / (t1 - t0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
