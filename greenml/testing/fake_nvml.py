"""A simulated NVML, for testing the NVML meter where no NVIDIA GPU is present.

:class:`FakeNvml` stands in for the ``pynvml`` module: it implements the calls
:mod:`greenml.measure.nvml` makes and raises the real ``pynvml`` exception classes. Each
:class:`FakeGpu` draws a known power trace (piecewise linear in time), so a test knows the exact
energy any window should report:

* the total-energy counter is in millijoules, starts at a large offset and, as NVML documents
  ("updated at the driver's update period"), only moves once per period: at
  ``counter_phase_s + k * counter_step_s`` (every 100 ms by default), to the exact energy up to
  that moment; between steps it holds still;
* ``nvmlDeviceGetPowerUsage`` returns milliwatts as NVML's documentation says each board does:
  "On Ampere (except GA100) or newer GPUs, the API returns power averaged over 1 sec interval.
  On GA100 and older architectures, instantaneous power is returned." ``architecture`` (an
  ``NVML_DEVICE_ARCH_*`` value) and the name decide it, unless ``power_averaging_s`` is given;
* ``counter_supported=False`` makes the counter raise NotSupported, as on pre-Volta boards;
* ``mig_enabled`` and ``processes`` simulate a MIG board and other processes on the GPU;
* ``fails_from_s`` (and ``fails_until_s``, for a transient fault) make every query of the board
  raise ``NVMLError`` from that time on, as NVML documents for a board that "has fallen off the
  bus or has otherwise become inaccessible" (``NVML_ERROR_GPU_IS_LOST``, the default
  ``fail_code``) or on "any unexpected error" (``NVML_ERROR_UNKNOWN``);
* ``FakeNvml(library_present=False)`` behaves like a machine without the NVIDIA driver.

Nothing here was checked against a real GPU; it is a model of NVML's documented behaviour.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml

__all__ = ["FakeClock", "FakeGpu", "FakeNvml", "PowerTrace"]


class FakeClock:
    """A clock tests move by hand: ``clock.now = 12.5`` or ``clock.advance(0.05)``."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class PowerTrace:
    """Power in watts, linear between ``(seconds, watts)`` points, constant outside them."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        times = [t for t, _ in self.points]
        if not self.points or times != sorted(times):
            raise ValueError("a power trace needs at least one point, in time order")

    @classmethod
    def constant(cls, watts: float) -> PowerTrace:
        return cls(((0.0, watts),))

    def power_w(self, t: float) -> float:
        times = [p[0] for p in self.points]
        if t <= times[0]:
            return self.points[0][1]
        if t >= times[-1]:
            return self.points[-1][1]
        k = bisect.bisect_right(times, t)
        (t0, w0), (t1, w1) = self.points[k - 1], self.points[k]
        return w0 + (w1 - w0) * (t - t0) / (t1 - t0) if t1 > t0 else w1

    def energy_j(self, a: float, b: float) -> float:
        """The exact integral of power over [a, b] (what a perfect meter would report)."""
        if b < a:
            return -self.energy_j(b, a)
        cuts = sorted({a, b, *(t for t, _ in self.points if a < t < b)})
        return sum((self.power_w(x) + self.power_w(y)) / 2 * (y - x) for x, y in itertools.pairwise(cuts))


# The GA100 chip's boards: Ampere, but documented to report instantaneous power.
GA100_BOARDS = ("NVIDIA A100", "NVIDIA A30", "NVIDIA A800")


@dataclass
class FakeGpu:
    """One simulated board. The default is an H100 (Hopper: counter, 1 s averaged power)."""

    trace: PowerTrace = field(default_factory=lambda: PowerTrace.constant(100.0))
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-1111-2222-3333-444444444444"
    pci_bus_id: str = "00000000:07:00.0"
    architecture: int | None = pynvml.NVML_DEVICE_ARCH_HOPPER  # None: the query is not supported
    counter_supported: bool = True
    counter_offset_mj: int = 987_654_321_000
    counter_step_s: float = 0.1
    counter_phase_s: float = 0.0  # when the driver's steps fall within each period
    power_averaging_s: float | None = None  # None: as documented for the architecture
    mig_enabled: bool = False
    mig_uuids: tuple[str, ...] = ()
    processes: tuple[int, ...] = ()
    # From fails_from_s until fails_until_s (the clock's seconds) every query raises fail_code.
    fails_from_s: float | None = None
    fails_until_s: float = math.inf
    fail_code: int = pynvml.NVML_ERROR_GPU_IS_LOST

    def failing_at(self, t: float) -> bool:
        """Whether the board answers no query at ``t``."""
        return self.fails_from_s is not None and self.fails_from_s <= t < self.fails_until_s

    def counter_mj(self, t: float) -> int:
        step, phase = self.counter_step_s, self.counter_phase_s
        tick = math.floor((t - phase) / step) * step + phase
        return self.counter_offset_mj + int(self.trace.energy_j(0.0, tick) * 1000)

    @property
    def reading_window_s(self) -> float:
        """Seconds nvmlDeviceGetPowerUsage averages over on this board (0: instantaneous)."""
        if self.power_averaging_s is not None:
            return self.power_averaging_s
        ampere_or_newer = (
            self.architecture is not None
            and self.architecture >= pynvml.NVML_DEVICE_ARCH_AMPERE
            and self.architecture != pynvml.NVML_DEVICE_ARCH_UNKNOWN
        )
        return 1.0 if ampere_or_newer and not self.name.startswith(GA100_BOARDS) else 0.0

    def power_mw(self, t: float) -> int:
        window = self.reading_window_s
        if window <= 0:
            return int(self.trace.power_w(t) * 1000)
        return int(self.trace.energy_j(t - window, t) / window * 1000)


def _error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class FakeNvml:
    """Module-like stand-in for ``pynvml`` backed by :class:`FakeGpu` boards.

    Boards are listed in NVML's order; ``clock`` is the time the traces are read at (the real
    monotonic clock by default, a :class:`FakeClock` for exact tests).
    """

    def __init__(
        self,
        gpus: Sequence[FakeGpu] = (),
        *,
        clock: Callable[[], float] | None = None,
        library_present: bool = True,
        driver_version: str = "550.54.15",
    ) -> None:
        self.gpus = list(gpus)
        self.library_present = library_present
        self.driver_version = driver_version
        start = time.monotonic()
        self.clock: Callable[[], float] = clock if clock is not None else (lambda: time.monotonic() - start)
        self.initialised = 0
        self.calls: dict[str, int] = {}
        # The real module's exception classes and constants, so `except nvml.NVMLError_X` works.
        for attribute in dir(pynvml):
            if attribute.startswith(("NVMLError", "NVML_")):
                setattr(self, attribute, getattr(pynvml, attribute))

    # -- helpers -----------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def _gpu(self, handle: Any) -> FakeGpu:
        if self.initialised <= 0:
            raise _error(pynvml.NVML_ERROR_UNINITIALIZED)
        if not isinstance(handle, SimpleNamespace) or handle.gpu not in self.gpus:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu: FakeGpu = handle.gpu
        if gpu.failing_at(self.clock()):
            raise _error(gpu.fail_code)
        return gpu

    # -- the pynvml calls the NVML meter makes -------------------------------------------------

    def nvmlInit(self) -> None:
        self._count("nvmlInit")
        if not self.library_present:
            raise _error(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._count("nvmlShutdown")
        if self.initialised <= 0:
            raise _error(pynvml.NVML_ERROR_UNINITIALIZED)
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        if self.initialised <= 0:
            raise _error(pynvml.NVML_ERROR_UNINITIALIZED)
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimpleNamespace:
        if not 0 <= index < self.nvmlDeviceGetCount():
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return SimpleNamespace(gpu=self.gpus[index], mig=None)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> SimpleNamespace:
        self.nvmlDeviceGetCount()
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return SimpleNamespace(gpu=gpu, mig=None)
            if uuid in gpu.mig_uuids:
                return SimpleNamespace(gpu=gpu, mig=uuid)
        raise _error(pynvml.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: Any) -> SimpleNamespace:
        gpu = self._gpu(handle)
        if handle.mig is None:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return SimpleNamespace(gpu=gpu, mig=None)

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        gpu = self._gpu(handle)
        return handle.mig or gpu.uuid  # type: ignore[no-any-return]

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._gpu(handle).name

    def nvmlDeviceGetPciInfo(self, handle: Any) -> SimpleNamespace:
        return SimpleNamespace(busId=self._gpu(handle).pci_bus_id)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        self._count("nvmlDeviceGetTotalEnergyConsumption")
        gpu = self._gpu(handle)
        if not gpu.counter_supported:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.counter_mj(self.clock())

    def nvmlDeviceGetArchitecture(self, handle: Any) -> int:
        gpu = self._gpu(handle)
        if gpu.architecture is None:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.architecture

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        self._count("nvmlDeviceGetPowerUsage")
        return self._gpu(handle).power_mw(self.clock())

    def nvmlDeviceGetMigMode(self, handle: Any) -> tuple[int, int]:
        gpu = self._gpu(handle)
        if not gpu.name.startswith(("NVIDIA A100", "NVIDIA H100", "NVIDIA A30", "NVIDIA H200")):
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = pynvml.NVML_DEVICE_MIG_ENABLE if gpu.mig_enabled else pynvml.NVML_DEVICE_MIG_DISABLE
        return mode, mode

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=None) for pid in self._gpu(handle).processes]
