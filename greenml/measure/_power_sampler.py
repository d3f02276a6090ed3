"""GPU power sampled in the background, for boards without NVML's energy counter.

A background thread reads ``nvmlDeviceGetPowerUsage`` at ``sample_hz`` (>= 10 Hz) and integrates
it with the trapezoid rule. What that reading is depends on the board (NVML's documentation of
nvmlDeviceGetPowerUsage): on Ampere and newer, except GA100, the power averaged over the last
second, which lags the true power by half a second, so those samples are shifted back by half a
second and a window's end waits until the samples cover it; on GA100 and older architectures,
instantaneous power, taken as it is.

A reading NVML refuses (``NVMLError``: the GPU fell off the bus, an unknown error) is never
bridged over. The sampler counts it and keeps trying; a window during which a reading failed,
or that ends while the latest reading of a device failed or after the thread died, has no
energy figure: :meth:`PowerSampler.check` and :meth:`PowerSampler.failure_since` say why.
"""

from __future__ import annotations

import bisect
import threading
import time
from array import array
from collections.abc import Callable
from typing import Any

from greenml.errors import MeasurementError
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
        # Every reading NVML refused, in order: why (device and error). A window compares the
        # count at its two edges. Per device, the failure since its last good reading, if any.
        self._failures: list[str] = []
        self._pending: list[str | None] = [None for _ in devices]
        self._died: str | None = None

    def start(self) -> None:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="greenml-nvml-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.period_s):
                self.sample()
        except Exception as error:  # noticed at the next window edge, never extrapolated over
            with self._lock:
                self._died = f"the NVML power sampling thread stopped: {type(error).__name__}: {error}"
                self._lock.notify_all()

    @property
    def failures(self) -> int:
        """How many readings failed so far (a window's edges compare it)."""
        with self._lock:
            return len(self._failures)

    def failure_since(self, count: int) -> str | None:
        """Why the first reading after the ``count``-th failure failed, or None if none has."""
        with self._lock:
            return self._failures[count] if len(self._failures) > count else None

    def check(self) -> None:
        """Raise MeasurementError if the sampler cannot account for the present moment.

        That is when its thread died, or when the latest reading of a device failed (its power
        since the last good reading is unknown).
        """
        with self._lock:
            thread = self._thread
            stopped = thread is not None and not thread.is_alive() and not self._stop.is_set()
            if stopped and self._died is None:
                self._died = "the NVML power sampling thread stopped"
            if self._died is not None:
                raise MeasurementError(self._died)
            for reason in self._pending:
                if reason is not None:
                    raise MeasurementError(reason)

    def sample(self) -> None:
        """Read every device's power once (the thread calls this; tests may call it directly).

        A device whose reading fails gets no sample: the failure is counted instead, and the
        windows that span it fail.
        """
        now = self._clock()
        with self._lock:
            for i, device in enumerate(self._devices):
                try:
                    power_w = self._nvml.nvmlDeviceGetPowerUsage(device.handle) / 1000.0
                except self._nvml.NVMLError as error:
                    reason = (
                        f"NVML could not read the power of {device.label}: {error} ({type(error).__name__})"
                    )
                    self._failures.append(reason)
                    if self._pending[i] is None:
                        self._pending[i] = reason
                    continue
                self._pending[i] = None
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
            thread = self._thread
            if thread is None:
                return False  # nothing will add samples: driven by hand
            with self._lock:
                if self._died is not None or not thread.is_alive() or any(self._pending):
                    return False  # no sample is coming: the caller's check says why
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._lock:
                self._lock.wait(min(remaining, self.period_s))
        return True

    def stale_before(self, instant: float) -> str | None:
        """Why the last readings cannot stand for the moments up to ``instant``, or None.

        The last reading may stand in for the last sampling interval (two, for a late thread),
        and for the averaging window's lag on boards that average; never for longer.
        """
        with self._lock:
            for i, (device, times) in enumerate(zip(self._devices, self._times, strict=True)):
                allowed = self._shift_s[i] + 2 * self.period_s
                last = times[-1] if times else float("-inf")
                if instant - last > allowed:
                    return (
                        f"NVML power readings of {device.label} stopped {instant - last:.3g} s before "
                        f"the window's end (the last reading may stand for {allowed:.3g} s at most)"
                    )
        return None

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


# The counter steps kept per device: about 5.5 hours of a 100 ms counter.
MAX_STEPS = 200_000


class CounterTicks:
    """When each energy counter last moved, so a window edge can be placed between two steps.

    NVML's total-energy counter moves once per driver period (tens of milliseconds, 100 ms on
    some boards): read at an arbitrary moment it holds the energy up to its last step, so a window
    edge is off by up to one step's energy. Every reading of the counters is recorded here (the
    polling thread's, window edges', alignment loops'); a change between two readings is a step,
    placed at the midpoint of the two reading times. :meth:`energy_at` then interpolates linearly
    across the step that holds an edge (the step after it is known by the window's end), and past
    the last known step extrapolates with the power of the step before: exact at constant power,
    and off by at most the power's change over one step otherwise. Only steps placed to within a
    fifth of their spacing are used (readings far apart may hide several steps); an edge without
    them is the counter's reading, as before.
    """

    def __init__(self, devices: int) -> None:
        self._lock = threading.Lock()
        # Per device: step times and the counter's value (mJ) from that step on.
        self._times = [array("d") for _ in range(devices)]
        self._gaps = [array("d") for _ in range(devices)]  # the time between the two readings
        self._values = [array("q") for _ in range(devices)]
        self._last_seen: list[tuple[float, int] | None] = [None] * devices

    def record(self, at: float, values_mj: list[int] | tuple[int, ...]) -> None:
        """Counter readings taken at ``at`` (readings from before the latest one are ignored)."""
        with self._lock:
            for i, value in enumerate(values_mj):
                seen = self._last_seen[i]
                if seen is not None and at < seen[0]:
                    continue
                if seen is not None and value != seen[1]:
                    self._times[i].append((seen[0] + at) / 2.0)
                    self._gaps[i].append(at - seen[0])
                    self._values[i].append(value)
                    if len(self._times[i]) > MAX_STEPS:
                        # Bounded memory on a long search: the oldest half goes. An edge whose
                        # step went with it is the counter's reading (at most one step off, over
                        # a window that has lasted hours by then).
                        for steps in (self._times[i], self._gaps[i], self._values[i]):
                            del steps[: MAX_STEPS // 2]
                self._last_seen[i] = (at, value)

    def energy_at(self, index: int, at: float, value_mj: int) -> float:
        """Joules device ``index`` had used by ``at``, when its counter read ``value_mj`` then."""
        with self._lock:
            times, gaps, values = self._times[index], self._gaps[index], self._values[index]
            k = bisect.bisect_right(values, value_mj) - 1
            if k < 0 or values[k] != value_mj or times[k] > at:
                return value_mj / 1000.0  # the step that set this value was not seen

            def placed(a: int, b: int) -> bool:  # steps a and b (a < b) are placed well enough
                spacing = times[b] - times[a]
                return spacing > 0 and max(gaps[a], gaps[b]) <= 0.2 * spacing

            if k + 1 < len(values) and placed(k, k + 1):
                step_mj = values[k + 1] - values[k]
                share = min(1.0, (at - times[k]) / (times[k + 1] - times[k]))
                return (value_mj + step_mj * share) / 1000.0
            if k + 1 == len(values) and k >= 1 and placed(k - 1, k):
                spacing = times[k] - times[k - 1]
                if at - times[k] <= 1.5 * spacing:  # still within the step the last one began
                    power_mw = (values[k] - values[k - 1]) / spacing
                    return (value_mj + power_mw * (at - times[k])) / 1000.0
            return value_mj / 1000.0

    def period_s(self) -> float | None:
        """The median gap between the last steps seen (None before four steps)."""
        with self._lock:
            times = self._times[0] if self._times else array("d")
            if len(times) < 4:
                return None
            gaps = sorted(b - a for a, b in zip(times[-9:-1], times[-8:], strict=False))
            return gaps[len(gaps) // 2]

    def next_poll_in(self, now: float, fine_s: float = 0.001) -> float:
        """How long the polling thread may sleep: until just before the next step is due.

        Polls every ``fine_s`` around an expected step and sleeps between steps, so a 100 ms
        counter costs tens of readings a second, not a thousand.
        """
        period = self.period_s()
        with self._lock:
            times = self._times[0] if self._times else array("d")
            if period is None or not times:
                return fine_s
            due = times[-1] + period
        return min(max(due - 0.15 * period - now, fine_s), 0.05)
