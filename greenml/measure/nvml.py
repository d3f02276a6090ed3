"""GPU energy through NVML (the ``pynvml`` module of nvidia-ml-py).

Two paths, chosen per device:

* **energy counter** (Volta and newer): ``nvmlDeviceGetTotalEnergyConsumption``, millijoules since
  the driver loaded. A window's energy is the difference of two readings.
  The counter moves in steps (tens of milliseconds); :meth:`NvmlSource.update_period_s` measures
  the step once, so windows that must be exact can begin and end on a step.
* **power sampling** (older boards, where the counter is not supported): a background thread reads
  ``nvmlDeviceGetPowerUsage`` at ``sample_hz`` (>= 10 Hz) and integrates it with the trapezoid rule.
  What that reading is depends on the board (NVML's documentation of nvmlDeviceGetPowerUsage):
  on Ampere and newer, except GA100, the power averaged over the last second, which lags the
  true power by half a second, so those samples are shifted back by half a second and a window's
  end waits until the samples cover it; on GA100 and older architectures, instantaneous power,
  taken as it is.

Which GPUs: the ones this process's CUDA sees (``greenml measure``), or the ones a search uses
(``cuda_indices``). ``CUDA_VISIBLE_DEVICES`` may hold CUDA indices, ``GPU-<uuid>`` prefixes or
``MIG-<uuid>`` instances; CUDA numbers devices differently from NVML, so every device is matched
by UUID.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import sys
import threading
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greenml.errors import MeterUnavailableError
from greenml.measure._types import ComponentSource

__all__ = ["GpuDevice", "NvmlSource", "power_averaging_s", "select_gpus"]

DEFAULT_SAMPLE_HZ = 20.0
# nvmlDeviceGetPowerUsage on Ampere and newer (except GA100): the average over the last second.
AVERAGING_WINDOW_S = 1.0
# GA100 boards report instantaneous power although they are Ampere.
_GA100_NAMES = ("A100", "A30", "A800")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def load_nvml() -> Any:
    """Import pynvml and initialise NVML, or say why that is impossible here."""
    try:
        import pynvml
    except ImportError as error:  # pragma: no cover - nvidia-ml-py is a dependency
        raise MeterUnavailableError("the pynvml module (nvidia-ml-py) is not installed") from error
    init(pynvml)
    return pynvml


def init(nvml: Any) -> None:
    try:
        nvml.nvmlInit()
    except nvml.NVMLError_LibraryNotFound as error:
        raise MeterUnavailableError(
            "no NVML library (libnvidia-ml.so): the NVIDIA driver is not installed"
        ) from error
    except nvml.NVMLError_DriverNotLoaded as error:
        raise MeterUnavailableError("the NVIDIA driver is not loaded") from error
    except nvml.NVMLError as error:
        raise MeterUnavailableError(f"NVML failed to initialise: {error}") from error


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


@dataclass(frozen=True)
class GpuDevice:
    """One physical GPU as NVML sees it."""

    handle: Any
    nvml_index: int
    uuid: str
    name: str
    pci_bus_id: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.uuid})"


def _devices(nvml: Any) -> list[GpuDevice]:
    devices = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        devices.append(
            GpuDevice(
                handle=handle,
                nvml_index=index,
                uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                name=_text(nvml.nvmlDeviceGetName(handle)),
                pci_bus_id=_text(nvml.nvmlDeviceGetPciInfo(handle).busId).upper(),
            )
        )
    return devices


def _torch_visible_uuids() -> list[str] | None:
    """UUIDs of the CUDA devices, in CUDA order, if this process already initialised CUDA."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is None or not cuda.is_initialized():
        return None
    uuids = []
    for index in range(cuda.device_count()):
        uuid = getattr(cuda.get_device_properties(index), "uuid", None)
        if uuid is None:
            return None
        text = str(uuid)
        uuids.append(text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}")
    return uuids


def select_gpus(nvml: Any, environ: Mapping[str, str] | None = None) -> tuple[list[GpuDevice], list[str]]:
    """The GPUs CUDA would use in this process, matched to NVML devices by UUID.

    Returns the devices and warnings for the provenance. Raises MeterUnavailableError when no GPU
    is visible.
    """
    env = os.environ if environ is None else environ
    devices = _devices(nvml)
    if not devices:
        raise MeterUnavailableError("NVML found no NVIDIA GPU")
    by_uuid = {device.uuid: device for device in devices}
    warnings: list[str] = []

    torch_uuids = _torch_visible_uuids() if environ is None else None
    if torch_uuids is not None:
        chosen = [by_uuid[u] for u in torch_uuids if u in by_uuid]
        if chosen:
            return chosen, warnings

    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return devices, warnings

    # CUDA's own numbering: FASTEST_FIRST by default, ties broken by PCI bus id.
    cuda_order = sorted(devices, key=lambda d: d.pci_bus_id)
    order_setting = env.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST").upper()
    if order_setting != "PCI_BUS_ID" and len({d.name for d in devices}) > 1:
        warnings.append(
            "GPUs of different models with CUDA_VISIBLE_DEVICES given as indices: CUDA's "
            "FASTEST_FIRST order was assumed to follow the PCI bus; set CUDA_DEVICE_ORDER=PCI_BUS_ID "
            "or name GPUs by UUID to be sure the right GPU is measured"
        )
    chosen = []
    for raw in visible.split(","):
        entry = raw.strip()
        if not entry:
            break
        if entry.startswith("MIG-"):
            parent = _mig_parent(nvml, entry, by_uuid)
            if parent is None:
                break
            warnings.append(
                f"{entry} is a MIG instance: NVML measures the whole {parent.name} "
                f"({parent.uuid}), shared with every other instance on it"
            )
            chosen.append(parent)
            continue
        if entry.startswith("GPU-"):
            matches = [d for d in devices if d.uuid.startswith(entry)]
            if len(matches) != 1:
                break  # CUDA ignores this entry and every later one
            chosen.append(matches[0])
            continue
        try:
            index = int(entry)
        except ValueError:
            break
        if not 0 <= index < len(cuda_order):
            break
        chosen.append(cuda_order[index])
    chosen = list({device.uuid: device for device in chosen}.values())
    if not chosen:
        raise MeterUnavailableError(f"CUDA_VISIBLE_DEVICES={visible!r} leaves no GPU visible to this process")
    return chosen, warnings


def _mig_parent(nvml: Any, mig_uuid: str, by_uuid: dict[str, GpuDevice]) -> GpuDevice | None:
    try:
        handle = nvml.nvmlDeviceGetHandleByUUID(mig_uuid)
        parent = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
        return by_uuid.get(_text(nvml.nvmlDeviceGetUUID(parent)))
    except nvml.NVMLError:
        return None


class _PowerSampler:
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


@dataclass
class _Snapshot:
    """One window edge: the time, every counter (joules), and who else was on each GPU."""

    time: float
    counters: list[float]
    others: dict[str, tuple[int, ...]]
    notes: list[str] = field(default_factory=list)


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
        self._sampler: _PowerSampler | None = None
        if self._sampled_devices:
            self._sampler = _PowerSampler(nvml, self._sampled_devices, sample_hz, self._averaging_s, clock)
            if start_sampler:
                self._sampler.start()
            else:
                self._sampler.sample()
        self._sample_hz = sample_hz
        self._update_period_s: float | None = None
        self._update_period_known = False
        try:
            self._driver = _text(nvml.nvmlSystemGetDriverVersion())
        except nvml.NVMLError:
            self._driver = "unknown"

    @property
    def sampler(self) -> _PowerSampler | None:
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

    def counter_reading(self) -> tuple[int, ...]:
        """The energy counters in millijoules, as NVML gives them (they move in steps)."""
        return tuple(
            int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(d.handle)) for d in self._counter_devices
        )

    def update_period_s(self, timeout_s: float = 1.0) -> float | None:
        """How often the energy counter moves, measured once by polling it; None without a counter.

        Polls the first counter until it has moved four times and averages the three gaps, so
        one late poll moves the figure by a third of its delay at most.
        """
        if self._update_period_known:
            return self._update_period_s
        period: float | None = None
        if self._counter_devices:
            handle = self._counter_devices[0].handle
            read = self._nvml.nvmlDeviceGetTotalEnergyConsumption
            last = read(handle)
            moves: list[float] = []
            start = time.monotonic()
            while len(moves) < 4 and time.monotonic() - start < timeout_s:
                time.sleep(0.0005)
                value = read(handle)
                if value != last:
                    moves.append(time.monotonic())
                    last = value
            # A counter that did not move within the timeout is coarser than any window here.
            period = (moves[-1] - moves[0]) / (len(moves) - 1) if len(moves) > 1 else timeout_s
        self._update_period_s, self._update_period_known = period, True
        return period

    def snapshot(self) -> _Snapshot:
        counters = [
            self._nvml.nvmlDeviceGetTotalEnergyConsumption(d.handle) / 1000.0 for d in self._counter_devices
        ]
        return _Snapshot(self._clock(), counters, self._other_processes())

    def energy_between(self, start: _Snapshot, end: _Snapshot) -> dict[str, float]:
        t0, t1 = start.time, end.time
        joules = sum(b - a for a, b in zip(start.counters, end.counters, strict=True))
        if self._sampler is not None:
            # Averaged samples trail real time by half NVML's averaging window. Wait for them to
            # cover the window's end, unless the power was steady, when the last reading holds.
            covered = self._sampler.covered_until() >= t1 or self._sampler.steady_before(t1)
            if not covered:
                covered = self._sampler.wait_until_covered(t1, timeout_s=self._sampler.period_s * 4 + 1.0)
            if not covered:
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
