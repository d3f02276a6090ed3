"""Grid carbon intensity from codecarbon's offline per-country data. No network, no geolocation.

The data and the check of a country code live in :mod:`greenml.config`, which validates
``--country`` before anything runs; this module turns a checked country into an intensity.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from greenml.config import country_codes, energy_mix, parse_country
from greenml.errors import ConfigError
from greenml.measure._types import CarbonIntensity

__all__ = ["carbon_intensity", "country_codes"]


@functools.cache
def _world_average() -> float:
    from codecarbon.input import DataSource

    path = Path(DataSource().carbon_intensity_per_source_path)
    return float(json.loads(path.read_text())["world_average"])


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
    code = parse_country(country)
    row = energy_mix()[code]
    return CarbonIntensity(
        country=code,
        intensity_g_per_kwh=float(row["carbon_intensity"]),
        pue=pue,
        source=f"codecarbon global energy mix, {row.get('country_name', code)}, {row.get('year', 'year unknown')}",
    )
