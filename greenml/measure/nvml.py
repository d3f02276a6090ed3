"""GPU energy through NVML (the ``pynvml`` module of nvidia-ml-py).

Two paths, chosen per device:

* **energy counter** (Volta and newer): ``nvmlDeviceGetTotalEnergyConsumption``, millijoules since
  the driver loaded. A window's energy is the difference of two readings.
* **power sampling** (older boards, where the counter is not supported): a background thread reads
  ``nvmlDeviceGetPowerUsage`` at ``sample_hz`` (>= 10 Hz) and integrates it with the trapezoid rule.
  NVML reports power averaged over the last ``power_averaging_s`` seconds, which lags the true
  power by half that; samples are shifted back by that half, and a window's end waits until the
  samples cover it.

Which GPUs: the ones this process's CUDA sees. ``CUDA_VISIBLE_DEVICES`` may hold CUDA indices,
``GPU-<uuid>`` prefixes or ``MIG-<uuid>`` instances; CUDA numbers devices differently from NVML,
so every device is matched by UUID.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import sys
import threading
import time
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from greenml.errors import MeterUnavailableError
from greenml.measure._types import ComponentSource

__all__ = ["GpuDevice", "NvmlSource", "select_gpus"]

DEFAULT_SAMPLE_HZ = 20.0
DEFAULT_POWER_AVERAGING_S = 1.0


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
        averaging_s: float,
        clock: Callable[[], float],
    ) -> None:
        self._nvml = nvml
        self._devices = devices
        self.period_s = 1.0 / sample_hz
        self._shift_s = averaging_s / 2.0
        self._clock = clock
        self._lock = threading.Condition()
        # Per device: sample times (shifted to when the power was drawn) and cumulative joules.
        self._times = [array("d") for _ in devices]
        self._energy = [array("d") for _ in devices]
        self._power = [array("d") for _ in devices]
        self._last_power = [0.0 for _ in devices]
        self.averaging_s = averaging_s
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
                at = now - self._shift_s
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
        since = instant - self.averaging_s - self._shift_s
        with self._lock:
            for times, power in zip(self._times, self._power, strict=True):
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


class NvmlSource:
    """GPU energy of the visible GPUs, summed into the ``gpu`` component."""

    name = "nvml"

    def __init__(
        self,
        nvml: Any | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        sample_hz: float = DEFAULT_SAMPLE_HZ,
        power_averaging_s: float = DEFAULT_POWER_AVERAGING_S,
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
        self.devices, self._warnings = select_gpus(nvml, environ)
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
        self._sampler: _PowerSampler | None = None
        if self._sampled_devices:
            self._sampler = _PowerSampler(nvml, self._sampled_devices, sample_hz, power_averaging_s, clock)
            if start_sampler:
                self._sampler.start()
            else:
                self._sampler.sample()
        self._sample_hz = sample_hz
        self._power_averaging_s = power_averaging_s
        self._other_process_warnings: dict[str, str] = {}
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
        if self._sampled_devices:
            methods.append(
                f"power sampled at {self._sample_hz:g} Hz, integrated, "
                f"{self._power_averaging_s:g} s NVML averaging lag compensated"
            )
        return (
            ComponentSource(
                component="gpu",
                kind="measured",
                backend="nvml",
                method="; ".join(methods),
                devices=tuple(d.label for d in self.devices),
            ),
        )

    def snapshot(self) -> tuple[float, list[float]]:
        counters = [
            self._nvml.nvmlDeviceGetTotalEnergyConsumption(d.handle) / 1000.0 for d in self._counter_devices
        ]
        return self._clock(), counters

    def energy_between(
        self, start: tuple[float, list[float]], end: tuple[float, list[float]]
    ) -> dict[str, float]:
        (t0, c0), (t1, c1) = start, end
        joules = sum(b - a for a, b in zip(c0, c1, strict=True))
        if self._sampler is not None:
            # Samples trail real time by half NVML's averaging window. Wait for them to cover the
            # window's end, unless the power was steady, when the last reading holds until the end.
            covered = self._sampler.covered_until() >= t1 or self._sampler.steady_before(t1)
            if not covered:
                covered = self._sampler.wait_until_covered(t1, timeout_s=self._sampler.period_s * 4 + 1.0)
            if not covered:
                self._warnings.append(
                    "power samples did not cover a window's end; its last moment was extrapolated"
                )
            for i in range(len(self._sampled_devices)):
                joules += self._sampler.energy_at(i, t1) - self._sampler.energy_at(i, t0)
        self._check_other_processes()
        return {"gpu": joules}

    def _check_other_processes(self) -> None:
        own_pid = os.getpid()
        descendants: set[int] | None = None
        for device in self.devices:
            try:
                processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(device.handle)
            except self._nvml.NVMLError:
                continue
            pids = {p.pid for p in processes} - {own_pid}
            if pids and descendants is None:
                descendants = _child_pids(own_pid)  # only read /proc when it matters
            others = sorted(pids - (descendants or set()))
            if others:
                self._other_process_warnings[device.uuid] = (
                    f"other processes were using {device.label} (pids {', '.join(map(str, others))}): "
                    "its energy includes their work"
                )

    def drivers(self) -> dict[str, str]:
        return {"nvidia": self._driver}

    def warnings(self) -> tuple[str, ...]:
        return tuple(self._warnings) + tuple(self._other_process_warnings.values())

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
