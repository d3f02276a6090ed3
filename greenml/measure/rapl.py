"""CPU package and DRAM energy from Linux powercap (RAPL): ``/sys/class/powercap``.

* Counters (``energy_uj``) wrap at ``max_energy_range_uj``. Every reading adds the difference to
  the last one, adding the range back when the counter went down; a background thread reads at
  least every ``poll_s`` seconds so a long window cannot hide a whole wrap.
* Overlapping domains are not double-counted: ``cpu`` is the sum of the ``package-N`` zones and
  ``dram`` the sum of the ``dram`` zones. ``core``/``uncore`` (parts of a package) and ``psys``
  (the whole platform, packages included) are left out, and an ``intel-rapl-mmio`` zone that
  repeats an MSR zone of the same name is skipped.
* A counter that cannot be read (root-only since Linux 5.10) makes the meter unavailable with
  that reason; it is never read as zero.
* A counter that becomes unreadable while measuring (its permissions change, the driver is
  unloaded) fails every window it was needed for: a missed reading may hide a wrap, so the
  energy of a window during which a read failed is unknown (MeasurementError naming the zone
  and the error), as is a window edge where the poller thread has died.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from greenml.errors import MeasurementError, MeterUnavailableError
from greenml.measure._types import ComponentSource

__all__ = ["DEFAULT_POWERCAP_ROOT", "RaplSource", "RaplZone", "discover_zones"]

DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")
DEFAULT_POLL_S = 10.0
_ZONE_DIR = re.compile(r"^intel-rapl(-mmio)?:\d+(:\d+)?$")


@dataclass
class RaplZone:
    path: Path
    name: str
    component: str
    max_range_uj: int
    _last_uj: int = 0
    accumulated_uj: int = field(default=0)

    def read_uj(self) -> int:
        return int(_read_text(self.path / "energy_uj"))

    def update(self) -> None:
        raw = self.read_uj()
        delta = raw - self._last_uj
        if delta < 0:
            delta += self.max_range_uj
        self.accumulated_uj += delta
        self._last_uj = raw


def _read_text(path: Path) -> str:
    """One sysfs read (the single place tests replace to act as a non-root user)."""
    return path.read_text().strip()


def _component(name: str) -> str | None:
    if name.startswith("package"):
        return "cpu"
    if name == "dram":
        return "dram"
    return None  # core, uncore (inside a package), psys (contains packages and DRAM)


def discover_zones(root: Path = DEFAULT_POWERCAP_ROOT) -> list[RaplZone]:
    """The non-overlapping package and DRAM zones under ``root``; raises if none can be read."""
    if not root.is_dir():
        raise MeterUnavailableError(f"no RAPL: {root} does not exist (not Linux, or no powercap driver)")
    candidates = sorted(
        (p for p in root.iterdir() if _ZONE_DIR.match(p.name)),
        key=lambda p: (p.name.startswith("intel-rapl-mmio"), p.name),
    )
    zones: list[RaplZone] = []
    seen: set[str] = set()
    for path in candidates:
        try:
            name = (path / "name").read_text().strip()
        except OSError:
            continue
        component = _component(name)
        if component is None:
            continue
        # Zone names are unique per socket ("package-0", "package-1"), but dram zones all share
        # one name, so key DRAM by its parent package directory.
        parent = path.name.rsplit(":", 1)[0] if path.name.count(":") == 2 else path.name
        key = f"{name}@{parent.replace('-mmio', '')}" if name == "dram" else name
        if key in seen:
            continue  # the MMIO interface repeating an MSR zone
        energy_file = path / "energy_uj"
        try:
            raw = int(_read_text(energy_file))
            max_range = int(_read_text(path / "max_energy_range_uj"))
        except PermissionError as error:
            raise MeterUnavailableError(
                f"RAPL permission denied reading {energy_file} (root-only since Linux 5.10; "
                f"`sudo chmod a+r {root}/intel-rapl:*/energy_uj` grants it)"
            ) from error
        except (OSError, ValueError) as error:
            raise MeterUnavailableError(f"RAPL counter {energy_file} is unreadable: {error}") from error
        seen.add(key)
        zones.append(
            RaplZone(path=path, name=name, component=component, max_range_uj=max_range, _last_uj=raw)
        )
    if not zones:
        raise MeterUnavailableError(f"no RAPL package or DRAM zones under {root}")
    return zones


@dataclass(frozen=True)
class _Snapshot:
    """One window edge: microjoules per component, and how many reads had failed by then."""

    totals: dict[str, int]
    failures: int


class RaplSource:
    """``cpu`` (packages) and ``dram`` energy from powercap counters, wraparound corrected."""

    name = "rapl"

    def __init__(
        self,
        root: Path | str = DEFAULT_POWERCAP_ROOT,
        *,
        poll_s: float = DEFAULT_POLL_S,
        start_poller: bool = True,
    ) -> None:
        self.root = Path(root)
        self.zones = discover_zones(self.root)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Every failed read, in order (a window compares the count at its two edges).
        self._failures: list[str] = []
        self._died: str | None = None
        if start_poller:
            self._thread = threading.Thread(
                target=self._poll, args=(poll_s,), name="greenml-rapl-poller", daemon=True
            )
            self._thread.start()

    def _poll(self, poll_s: float) -> None:
        try:
            while not self._stop.wait(poll_s):
                self.update()
        except Exception as error:  # noticed at the next window edge
            with self._lock:
                self._died = f"the RAPL polling thread stopped: {type(error).__name__}: {error}"

    @property
    def failures(self) -> int:
        """How many counter reads failed so far (a window's edges compare it)."""
        with self._lock:
            return len(self._failures)

    def update(self) -> str | None:
        """Read every counter once; returns why a read failed (also counted), or None."""
        failed: str | None = None
        with self._lock:
            for zone in self.zones:
                try:
                    zone.update()
                except (OSError, ValueError) as error:
                    reason = (
                        f"RAPL counter {zone.path / 'energy_uj'} ({zone.name}) could not be read: {error}"
                    )
                    self._failures.append(reason)
                    failed = failed or reason
        return failed

    def components(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(zone.component for zone in self.zones))

    def sources(self) -> tuple[ComponentSource, ...]:
        return tuple(
            ComponentSource(
                component=component,
                kind="measured",
                backend="rapl",
                method="powercap energy_uj counters, wraparound corrected",
                devices=tuple(f"{z.name} ({z.path.name})" for z in self.zones if z.component == component),
            )
            for component in self.components()
        )

    def snapshot(self) -> _Snapshot:
        """One window edge; MeasurementError where a counter cannot be read now or the poller died."""
        failed = self.update()
        if failed is not None:
            raise MeasurementError(failed)
        with self._lock:
            thread = self._thread
            stopped = thread is not None and not thread.is_alive() and not self._stop.is_set()
            if stopped and self._died is None:
                self._died = "the RAPL polling thread stopped"
            if self._died is not None:
                raise MeasurementError(self._died)
            totals: dict[str, int] = {}
            for zone in self.zones:
                totals[zone.component] = totals.get(zone.component, 0) + zone.accumulated_uj
            return _Snapshot(totals, len(self._failures))

    def energy_between(self, start: _Snapshot, end: _Snapshot) -> dict[str, float]:
        if end.failures > start.failures:
            # A read within the window failed: a wrap may have gone unseen.
            with self._lock:
                raise MeasurementError(self._failures[start.failures])
        return {
            component: (end.totals[component] - start.totals[component]) / 1e6 for component in end.totals
        }

    def drivers(self) -> dict[str, str]:
        return {}

    def warnings(self) -> tuple[str, ...]:
        return ()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None


def powercap_root_from_env() -> Path:
    """``GREENML_POWERCAP_ROOT`` overrides the sysfs path (containers that mount it elsewhere)."""
    return Path(os.environ.get("GREENML_POWERCAP_ROOT", str(DEFAULT_POWERCAP_ROOT)))
