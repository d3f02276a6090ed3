"""GPU energy through NVML (the ``pynvml`` module of nvidia-ml-py).

Two paths, chosen per device:

* **energy counter** (Volta and newer): ``nvmlDeviceGetTotalEnergyConsumption``, millijoules since
  the driver loaded. A window's energy is the difference of two readings.
  The counter moves in steps (tens of milliseconds, 100 ms on some boards). Every reading is
  kept (:class:`~greenml.measure._power_sampler.CounterTicks`), a thread reads the counters
  around each expected step, and a window's edges are interpolated across the step that holds
  them, so any window is exact to a small share of one step. :meth:`NvmlSource.update_period_s`
  measures the step once, for windows that begin and end on a step besides.
* **power sampling** (older boards, where the counter is not supported): a background thread reads
  ``nvmlDeviceGetPowerUsage`` and integrates it (:mod:`greenml.measure._power_sampler`, which
  says how averaged and instantaneous readings are told apart).

Which GPUs, and how they are matched to CUDA's numbering, is :mod:`greenml.measure._nvml_devices`.
Its names and the sampler's are importable from here too, and :class:`NvmlSource` looks them up
here when it runs, so a test that patches ``greenml.measure.nvml.power_averaging_s`` reaches it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greenml.errors import MeasurementError, MeterUnavailableError
from greenml.measure._nvml_devices import GpuDevice, init, load_nvml, nvml_text, select_gpus
from greenml.measure._power_sampler import (
    AVERAGING_WINDOW_S,
    CounterTicks,
    PowerSampler,
    power_averaging_s,
)
from greenml.measure._types import ComponentSource

__all__ = ["GpuDevice", "NvmlSource", "power_averaging_s", "select_gpus"]

DEFAULT_SAMPLE_HZ = 20.0


@dataclass
class _Snapshot:
    """One window edge: the time, every counter (mJ, as read), and who else was on each GPU."""

    time: float
    counters: list[int]
    others: dict[str, tuple[int, ...]]
    notes: list[str] = field(default_factory=list)
    # How many power readings had failed by this edge (a window that spans one has no figure).
    failures: int = 0


class NvmlSource:
    """GPU energy of the chosen GPUs, summed into the ``gpu`` component.

    ``cuda_indices`` picks GPUs by their CUDA index among those visible to this process (what
    ``--device cuda:N`` names); ``None`` meters every visible GPU. Visible GPUs left out are
    listed in :meth:`notes`.
    """

    name = "nvml"

    def __init__(
        self,
        nvml: Any | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        cuda_indices: Sequence[int] | None = None,
        sample_hz: float = DEFAULT_SAMPLE_HZ,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        start_sampler: bool = True,
    ) -> None:
        if sample_hz < 10:
            raise ValueError(f"sample_hz must be >= 10, got {sample_hz}")
        if nvml is None:
            nvml = load_nvml()
        else:
            init(nvml)
        self._nvml = nvml
        self._clock = clock
        self._sleep = sleep
        visible, self._warnings = select_gpus(nvml, environ)
        self._notes: list[str] = []
        if cuda_indices is None:
            self.devices = visible
        else:
            wanted = list(dict.fromkeys(cuda_indices))
            bad = [i for i in wanted if not 0 <= i < len(visible)]
            if bad:
                with contextlib.suppress(nvml.NVMLError):
                    nvml.nvmlShutdown()
                valid = ", ".join(f"cuda:{i}" for i in range(len(visible)))
                raise MeterUnavailableError(
                    f"cuda:{bad[0]} is not a GPU this process can see; valid: {valid}"
                )
            self.devices = [visible[i] for i in wanted]
            chosen = {d.uuid for d in self.devices}
            self._notes = [
                f"GPU {d.label} is visible but not metered: the work does not use it"
                for d in visible
                if d.uuid not in chosen
            ]
        self._counter_devices: list[GpuDevice] = []
        self._sampled_devices: list[GpuDevice] = []
        for device in self.devices:
            try:
                nvml.nvmlDeviceGetTotalEnergyConsumption(device.handle)
                self._counter_devices.append(device)
            except nvml.NVMLError_NotSupported:
                self._sampled_devices.append(device)
            except nvml.NVMLError as error:
                with contextlib.suppress(nvml.NVMLError):
                    nvml.nvmlShutdown()
                raise MeterUnavailableError(
                    f"NVML could not read the energy counter of {device.label}: {error} ({type(error).__name__})"
                ) from error
        for device in self.devices:
            try:
                current, _pending = nvml.nvmlDeviceGetMigMode(device.handle)
            except nvml.NVMLError:
                continue
            if current == nvml.NVML_DEVICE_MIG_ENABLE:
                self._warnings.append(
                    f"{device.label} has MIG enabled: NVML reports the whole GPU's energy, "
                    "shared by all its instances"
                )
        self._averaging_s: list[float] = []
        for device in self._sampled_devices:
            seconds, warning = power_averaging_s(nvml, device.handle, device.name)
            self._averaging_s.append(seconds)
            if warning:
                self._warnings.append(warning)
        self._sampler: PowerSampler | None = None
        if self._sampled_devices:
            self._sampler = PowerSampler(nvml, self._sampled_devices, sample_hz, self._averaging_s, clock)
            if start_sampler:
                self._sampler.start()
            else:
                self._sampler.sample()
            try:
                self._sampler.check()
            except MeasurementError as error:
                self._sampler.stop()
                with contextlib.suppress(nvml.NVMLError):
                    nvml.nvmlShutdown()
                raise MeterUnavailableError(str(error)) from error
        self._sample_hz = sample_hz
        self._ticks = CounterTicks(len(self._counter_devices))
        self._stop_ticks = threading.Event()
        self._tick_thread: threading.Thread | None = None
        if self._counter_devices and start_sampler:
            self._tick_thread = threading.Thread(
                target=self._poll_ticks, name="greenml-nvml-ticks", daemon=True
            )
            self._tick_thread.start()
        self._update_period_s: float | None = None
        self._update_period_known = False
        try:
            self._driver = nvml_text(nvml.nvmlSystemGetDriverVersion())
        except nvml.NVMLError:
            self._driver = "unknown"

    @property
    def sampler(self) -> PowerSampler | None:
        return self._sampler

    def sources(self) -> tuple[ComponentSource, ...]:
        methods = []
        if self._counter_devices:
            methods.append("total-energy counter")
        averaged = sum(1 for seconds in self._averaging_s if seconds > 0)
        if self._sampled_devices:
            how = []
            if averaged:
                how.append(f"{AVERAGING_WINDOW_S:g} s averaged readings shifted back by half that")
            if averaged < len(self._sampled_devices):
                how.append("instantaneous readings")
            methods.append(f"power sampled at {self._sample_hz:g} Hz and integrated ({'; '.join(how)})")
        return (
            ComponentSource(
                component="gpu",
                kind="measured",
                backend="nvml",
                method="; ".join(methods),
                devices=tuple(d.label for d in self.devices),
            ),
        )

    def _counter_mj(self, device: GpuDevice) -> int:
        """One reading of ``device``'s energy counter; MeasurementError naming it where NVML refuses."""
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(device.handle))
        except self._nvml.NVMLError as error:
            raise MeasurementError(
                f"NVML could not read the energy counter of {device.label}: {error} ({type(error).__name__})"
            ) from error

    def counter_reading(self) -> tuple[int, ...]:
        """The energy counters in millijoules, as NVML gives them (they move in steps)."""
        values = tuple(self._counter_mj(d) for d in self._counter_devices)
        self._ticks.record(self._clock(), values)
        return values

    def poll(self) -> None:
        """Read the counters once, to place their steps (the thread calls this; tests may too)."""
        if self._counter_devices:
            self.counter_reading()

    def _poll_ticks(self) -> None:
        # A reading that fails here is not lost: the next window edge reads again and says why.
        while True:
            with contextlib.suppress(MeasurementError):
                self.poll()
            if self._stop_ticks.wait(self._ticks.next_poll_in(self._clock())):
                return

    def update_period_s(self, timeout_s: float = 1.0) -> float | None:
        """How often the energy counter moves, measured once by polling it; None without a counter.

        Polls the first counter until it has moved four times and averages the three gaps, so
        one late poll moves the figure by a third of its delay at most. Reads the source's clock
        and sleeps with its ``sleep``, so a test's clock drives it.
        """
        if self._update_period_known:
            return self._update_period_s
        period: float | None = None
        if self._counter_devices:
            last = self.counter_reading()[0]
            moves: list[float] = []
            start = self._clock()
            # Bounded in polls too, for a clock that does not move while this one sleeps.
            for _ in range(int(timeout_s / 0.0005) + 1):
                if len(moves) >= 4 or self._clock() - start >= timeout_s:
                    break
                self._sleep(0.0005)
                value = self.counter_reading()[0]
                if value != last:
                    moves.append(self._clock())
                    last = value
            # A counter that did not move within the timeout is coarser than any window here.
            period = (moves[-1] - moves[0]) / (len(moves) - 1) if len(moves) > 1 else timeout_s
        self._update_period_s, self._update_period_known = period, True
        return period

    def snapshot(self) -> _Snapshot:
        """One window edge. Raises MeasurementError, naming the GPU and NVML's error, where a
        counter cannot be read, the latest power reading failed or the sampling thread died."""
        failures = 0
        if self._sampler is not None:
            self._sampler.check()
            failures = self._sampler.failures
        now = self._clock()
        counters = [self._counter_mj(d) for d in self._counter_devices]
        self._ticks.record(now, counters)
        return _Snapshot(now, counters, self._other_processes(), failures=failures)

    def energy_between(self, start: _Snapshot, end: _Snapshot) -> dict[str, float]:
        t0, t1 = start.time, end.time
        # Each edge is placed within its counter step, between the step's two readings in time.
        joules = sum(
            self._ticks.energy_at(i, t1, b) - self._ticks.energy_at(i, t0, a)
            for i, (a, b) in enumerate(zip(start.counters, end.counters, strict=True))
        )
        if self._sampler is not None:
            # Averaged samples trail real time by half NVML's averaging window. Wait for them to
            # cover the window's end, unless the power was steady, when the last reading holds.
            covered = self._sampler.covered_until() >= t1 or self._sampler.steady_before(t1)
            if not covered:
                covered = self._sampler.wait_until_covered(t1, timeout_s=self._sampler.period_s * 4 + 1.0)
            # A reading that failed within the window leaves a gap no interpolation may bridge.
            failure = self._sampler.failure_since(start.failures)
            if failure is not None:
                raise MeasurementError(failure)
            if not covered:
                # The last reading may stand for the final sampling interval of a sampler that
                # is still reading, never for a dead thread or a failing device.
                self._sampler.check()
                stale = self._sampler.stale_before(t1)
                if stale is not None:
                    raise MeasurementError(stale)
                end.notes.append(
                    "power samples did not cover this window's end; its last moment was extrapolated"
                )
            for i in range(len(self._sampled_devices)):
                joules += self._sampler.energy_at(i, t1) - self._sampler.energy_at(i, t0)
        return {"gpu": joules}

    def window_warnings(self, start: _Snapshot, end: _Snapshot) -> tuple[str, ...]:
        """Caveats of one window: other processes seen on a metered GPU at either edge, extrapolation."""
        warnings = list(end.notes)
        for device in self.devices:
            others = sorted(set(start.others.get(device.uuid, ())) | set(end.others.get(device.uuid, ())))
            if others:
                warnings.append(
                    f"other processes were using {device.label} (pids {', '.join(map(str, others))}): "
                    "its energy includes their work"
                )
        return tuple(warnings)

    def _other_processes(self) -> dict[str, tuple[int, ...]]:
        own_pid = os.getpid()
        descendants: set[int] | None = None
        found: dict[str, tuple[int, ...]] = {}
        for device in self.devices:
            try:
                processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(device.handle)
            except self._nvml.NVMLError:
                continue
            pids = {p.pid for p in processes} - {own_pid}
            if pids and descendants is None:
                descendants = _child_pids(own_pid)  # only read /proc when it matters
            others = tuple(sorted(pids - (descendants or set())))
            if others:
                found[device.uuid] = others
        return found

    def drivers(self) -> dict[str, str]:
        return {"nvidia": self._driver}

    def warnings(self) -> tuple[str, ...]:
        return tuple(self._warnings)

    def notes(self) -> tuple[str, ...]:
        return tuple(self._notes)

    def close(self) -> None:
        self._stop_ticks.set()
        if self._tick_thread is not None:
            self._tick_thread.join(timeout=2.0)
            self._tick_thread = None
        if self._sampler is not None:
            self._sampler.stop()
        with contextlib.suppress(self._nvml.NVMLError):
            self._nvml.nvmlShutdown()


def _child_pids(pid: int) -> set[int]:
    """Descendants of ``pid`` (Linux /proc); empty where /proc is not readable."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found
