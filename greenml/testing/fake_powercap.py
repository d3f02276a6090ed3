"""A fake ``/sys/class/powercap`` tree under a temporary directory, for testing the RAPL meter.

The default layout is a typical one-socket Intel server: ``package-0`` with its ``core`` and
``dram`` subzones, a ``psys`` platform zone (which overlaps the package and DRAM), and an
``intel-rapl-mmio`` zone that repeats ``package-0``. Tests move counters with :meth:`add`, which
wraps at ``max_energy_range_uj`` exactly as the hardware does. A counter can become unreadable
while measuring, as on the real tree: :meth:`make_unreadable` (its read bits taken away; tests
that may run as root read through the ``as_non_root`` fixture) or :meth:`remove` (the driver
unloaded).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["DEFAULT_ZONES", "FakePowercap"]

# directory name -> zone name
DEFAULT_ZONES: dict[str, str] = {
    "intel-rapl:0": "package-0",
    "intel-rapl:0:0": "core",
    "intel-rapl:0:1": "dram",
    "intel-rapl:1": "psys",
    "intel-rapl-mmio:0": "package-0",
}


class FakePowercap:
    def __init__(
        self,
        root: Path,
        zones: dict[str, str] | None = None,
        *,
        max_energy_range_uj: int = 262_143_328_850,
        start_uj: int = 123_456_789,
    ) -> None:
        self.root = Path(root)
        self.max_energy_range_uj = max_energy_range_uj
        self.zones = dict(DEFAULT_ZONES if zones is None else zones)
        for directory, name in self.zones.items():
            path = self.root / directory
            path.mkdir(parents=True, exist_ok=True)
            (path / "name").write_text(name + "\n")
            (path / "max_energy_range_uj").write_text(f"{max_energy_range_uj}\n")
            (path / "energy_uj").write_text(f"{start_uj}\n")

    def energy_uj(self, directory: str) -> int:
        return int((self.root / directory / "energy_uj").read_text())

    def set_energy_uj(self, directory: str, value: int) -> None:
        # Replaced whole, as sysfs does: a reader (the poller thread) never sees an empty file.
        path = self.root / directory / "energy_uj"
        tmp = path.with_name(f".energy_uj.{os.getpid()}.tmp")
        tmp.write_text(f"{value}\n")
        os.replace(tmp, path)

    def add(self, directory: str, joules: float) -> None:
        """The zone draws ``joules`` more; the counter wraps at max_energy_range_uj."""
        value = (self.energy_uj(directory) + round(joules * 1e6)) % self.max_energy_range_uj
        self.set_energy_uj(directory, value)

    def make_unreadable(self, directory: str) -> Path:
        """Take read permission off a zone's counter (as the kernel does for non-root users)."""
        path = self.root / directory / "energy_uj"
        os.chmod(path, 0)
        return path

    def remove(self, directory: str) -> None:
        """Take a zone away, as unloading the ``intel_rapl`` driver does: its files are gone."""
        path = self.root / directory
        for entry in path.iterdir():
            entry.unlink()
        path.rmdir()


def is_unreadable(path: Path) -> bool:
    """Whether ``path`` has no read bit at all: root would still read it, a user would not."""
    return stat.S_IMODE(path.stat().st_mode) & 0o444 == 0
