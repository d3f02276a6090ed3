"""Readable figures: one unit per quantity, with a prefix chosen for the values shown together.

Every place that shows a stored figure to a person (the progress line, the front printed at the
end of a search, the report) formats it here, so a page never shows one energy in ``6.8e-05 J``
and the next in ``50 µkWh``. Stored values keep the base units :mod:`greenml.metrics` names
(joules, bytes, milliseconds, seconds, grams); only their display changes.

:func:`scale_for` picks one prefix for a set of values (a table column, an axis, a page) so that
their median reads between 1 and 1000; :func:`human` formats a single value with its own prefix.
Numbers keep three significant figures and are never written in scientific notation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from greenml.metrics import metric

__all__ = [
    "JOULES_PER_KWH",
    "QUANTITIES",
    "Scale",
    "co2_g",
    "human",
    "joules_to_kwh",
    "number",
    "plain",
    "quantity_of",
    "scale_for",
]

# One kilowatt-hour in joules: the one conversion between stored joules and grid figures.
JOULES_PER_KWH = 3.6e6


def joules_to_kwh(energy_j: float) -> float:
    """Joules as kilowatt-hours."""
    return energy_j / JOULES_PER_KWH


def co2_g(energy_j: float, intensity_g_per_kwh: float, pue: float = 1.0) -> float:
    """Grams of CO2e for ``energy_j`` at a grid intensity (g/kWh) and a data-centre PUE."""
    return joules_to_kwh(energy_j) * intensity_g_per_kwh * pue


# Each quantity's display units, smallest first, as (label, size of one of them in base units).
QUANTITIES: dict[str, tuple[tuple[str, float], ...]] = {
    # Energy of one inference: base joules.
    "inference_energy": (("nJ", 1e-9), ("µJ", 1e-6), ("mJ", 1e-3), ("J", 1.0)),
    # Energy of a trial, a phase or a search: base joules, shown as J up to an hour of a watt.
    "energy": (("J", 1.0), ("Wh", 3600.0), ("kWh", JOULES_PER_KWH)),
    "size": (("B", 1.0), ("kB", 1e3), ("MB", 1e6), ("GB", 1e9)),
    # Latency: base milliseconds.
    "latency": (("µs", 1e-3), ("ms", 1.0), ("s", 1e3)),
    # Durations: base seconds.
    "duration": (("s", 1.0), ("min", 60.0), ("h", 3600.0)),
    "mass": (("mg", 1e-3), ("g", 1.0), ("kg", 1e3)),
    "rate": (("/s", 1.0), ("k/s", 1e3), ("M/s", 1e6)),
    "fraction": (("", 1.0),),
}

_BY_UNIT = {"bytes": "size", "ms": "latency", "s": "duration", "g": "mass", "1/s": "rate", "": "fraction"}


def quantity_of(name: str) -> str | None:
    """The quantity a metric of :mod:`greenml.metrics` shows as, or None for a name outside it."""
    known = metric(name)
    if known is None:
        return None
    if known.unit == "J":
        return "inference_energy" if "inference" in name else "energy"
    return _BY_UNIT.get(known.unit)


def number(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant figures, thousands separated, never as ``1e-05``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—" if value is None else str(value)
    if value == 0:
        return "0"
    decimals = _decimals(value, digits)
    if decimals > 9:  # a value a billion times below the unit chosen for its neighbours
        return "≈0" if value > 0 else "≈-0"
    return f"{value:,.{decimals}f}"


def _decimals(value: float, digits: int) -> int:
    """Decimals that show ``digits`` significant figures of a non-zero ``value``."""
    return max(0, digits - 1 - math.floor(math.log10(abs(value))))


def plain(value: float, digits: int = 6) -> str:
    """``value`` with ``digits`` significant figures in plain decimals, for a figure a person may
    type back (a command-line argument, a parameter): no exponent, no thousands separator, no
    trailing zeros, and no rounding to zero however small (``plain(6.81894e-05)`` is
    ``"0.0000681894"``). Whole digits are all kept: ``plain(342812.3, 3)`` is ``"342812"``."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    text = f"{value:.{_decimals(value, digits)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Scale:
    """One display unit for a quantity: ``scale.text(0.0000412)`` gives ``"41.2 µJ"``."""

    quantity: str
    unit: str
    size: float  # one display unit in base units

    def value(self, base: float) -> float:
        return base / self.size

    def format(self, base: float | None, digits: int = 3) -> str:
        """The number alone, in this unit (for a table whose header carries the unit)."""
        if base is None:
            return "—"
        return number(self.value(base), digits)

    def text(self, base: float | None, digits: int = 3) -> str:
        shown = self.format(base, digits)
        return f"{shown} {self.unit}".rstrip() if base is not None else shown

    def label(self, title: str) -> str:
        """An axis or column title with the unit: ``"energy per inference (µJ)"``."""
        return f"{title} ({self.unit})" if self.unit else title


def scale_for(quantity: str, values: Iterable[float | None]) -> Scale:
    """The unit that shows the median of ``values`` between 1 and 1000 (the nearest one otherwise)."""
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}; known: {', '.join(QUANTITIES)}")
    units = QUANTITIES[quantity]
    magnitudes = sorted(abs(v) for v in values if v is not None and math.isfinite(v) and v != 0)
    label, size = units[0]
    if magnitudes:
        middle = magnitudes[len(magnitudes) // 2]
        for candidate, candidate_size in units:
            if middle >= candidate_size * (0.9995 if candidate_size > units[0][1] else 0):
                label, size = candidate, candidate_size
    return Scale(quantity, label, size)


def human(quantity: str, value: float | None, digits: int = 3) -> str:
    """One value with the prefix that suits it alone: ``human("size", 342800)`` is ``"343 kB"``."""
    if value is None:
        return "—"
    return scale_for(quantity, [value]).text(value, digits)
