"""Grid carbon intensity from codecarbon's offline per-country data. No network, no geolocation."""

from __future__ import annotations

import difflib
import functools
import json
import os
from pathlib import Path
from typing import Any

from greenml.errors import ConfigError
from greenml.measure._types import CarbonIntensity

__all__ = ["carbon_intensity", "country_codes"]


@functools.cache
def _energy_mix() -> dict[str, Any]:
    os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")
    from codecarbon.input import DataSource

    mix: dict[str, Any] = DataSource().get_global_energy_mix_data()
    return mix


@functools.cache
def _world_average() -> float:
    from codecarbon.input import DataSource

    path = Path(DataSource().carbon_intensity_per_source_path)
    return float(json.loads(path.read_text())["world_average"])


def country_codes() -> list[str]:
    """The ISO 3166-1 alpha-3 codes codecarbon has intensity data for."""
    return sorted(_energy_mix())


def carbon_intensity(country: str | None, pue: float = 1.0) -> CarbonIntensity:
    """Intensity for ``country`` (alpha-3, e.g. ``FRA``), or codecarbon's world average if None."""
    if pue < 1.0:
        raise ConfigError(f"PUE must be >= 1.0 (1.0 = no data-centre overhead), got {pue}")
    if country is None:
        return CarbonIntensity(
            country=None,
            intensity_g_per_kwh=_world_average(),
            pue=pue,
            source="codecarbon world average (no country given)",
        )
    code = country.strip().upper()
    mix = _energy_mix()
    if code not in mix:
        close = difflib.get_close_matches(code, mix, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(
            f"unknown country code {country!r}: {hint}valid: ISO 3166-1 alpha-3 codes with "
            f"codecarbon data: {', '.join(sorted(mix))}"
        )
    row = mix[code]
    return CarbonIntensity(
        country=code,
        intensity_g_per_kwh=float(row["carbon_intensity"]),
        pue=pue,
        source=f"codecarbon global energy mix, {row.get('country_name', code)}, {row.get('year', 'year unknown')}",
    )
