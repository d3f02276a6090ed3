"""Validated settings. Everything the user types is checked here, on the way in.

A ``--country`` is checked against codecarbon's offline per-country data, read here once
(:func:`energy_mix`); :mod:`greenml.measure.carbon` takes the grid intensities from the same data.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
from dataclasses import dataclass
from typing import Any

from greenml.errors import ConfigError

__all__ = ["METER_CHOICES", "MeasureConfig", "country_codes", "energy_mix", "parse_country"]

METER_CHOICES: tuple[str, ...] = ("auto", "nvml", "rapl", "estimate")


@dataclass(frozen=True)
class MeasureConfig:
    """How to measure energy.

    ``meter``: ``auto`` takes NVML for the GPU where there is one, RAPL for the CPU and DRAM where
    it can be read, and the CPU-time estimate for the CPU where RAPL cannot.

    ``gpus``: the CUDA indices of the GPUs the work runs on (a search's training and deployment
    devices); ``None`` meters every GPU this process can see (``greenml measure``), ``()`` none.
    Under ``auto``, work on a GPU (named here, or by ``CUDA_VISIBLE_DEVICES`` where ``gpus`` is
    ``None``) that NVML cannot read is refused when the meter is built; ``estimate`` goes on, and
    its provenance notes say the GPU is not metered.
    """

    meter: str = "auto"
    country: str | None = None
    pue: float = 1.0
    idle_seconds: float = 2.0
    watts_per_core: float | None = None
    sample_hz: float = 20.0
    gpus: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.meter not in METER_CHOICES:
            raise ConfigError(f"unknown meter {self.meter!r}; valid: {', '.join(METER_CHOICES)}")
        _finite("pue", self.pue)
        if self.pue < 1.0:
            raise ConfigError(f"--pue must be >= 1.0 (1.0 = no data-centre overhead), got {self.pue:g}")
        _finite("idle seconds", self.idle_seconds)
        if self.idle_seconds < 0:
            raise ConfigError(
                f"--idle-seconds must be >= 0 (0 skips the idle baseline), got {self.idle_seconds:g}"
            )
        if self.watts_per_core is not None:
            _finite("watts per core", self.watts_per_core)
            if self.watts_per_core <= 0:
                raise ConfigError(f"--cpu-watts-per-core must be > 0, got {self.watts_per_core:g}")
        _finite("sample rate", self.sample_hz)
        if self.sample_hz < 10:
            raise ConfigError(f"--sample-hz must be >= 10, got {self.sample_hz:g}")
        if self.country is not None:
            parse_country(self.country)  # raises ConfigError naming the valid codes


def _finite(what: str, value: float) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value}")


@functools.cache
def energy_mix() -> dict[str, Any]:
    """codecarbon's offline per-country energy mix, keyed by ISO 3166-1 alpha-3 code. No network."""
    os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")
    from codecarbon.input import DataSource

    mix: dict[str, Any] = DataSource().get_global_energy_mix_data()
    return mix


def country_codes() -> list[str]:
    """The ISO 3166-1 alpha-3 codes codecarbon has intensity data for."""
    return sorted(energy_mix())


def parse_country(country: str) -> str:
    """``country`` as the alpha-3 code it names (any case, e.g. ``fra``); a ConfigError naming close
    matches and the valid codes where codecarbon has no data for it."""
    code = country.strip().upper()
    mix = energy_mix()
    if code not in mix:
        close = difflib.get_close_matches(code, mix, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(
            f"unknown country code {country!r}: {hint}valid: ISO 3166-1 alpha-3 codes with "
            f"codecarbon data: {', '.join(sorted(mix))}"
        )
    return code
