"""Measurement: energy meters (NVML, RAPL, estimate), carbon, and the inference benchmark.

A :class:`Meter` opens windows; a window's end gives a frozen :class:`WindowResult` in joules
and seconds with its provenance (which backend, measured or estimated).
"""

from greenml.measure._meter import Meter, Window, synchronize_cuda
from greenml.measure._select import MeterStatus, build_meter, probe_meters
from greenml.measure._types import (
    COMPONENTS,
    CarbonIntensity,
    Components,
    ComponentSource,
    EnergySource,
    IdleBaseline,
    Provenance,
    WindowResult,
)

__all__ = [
    "COMPONENTS",
    "CarbonIntensity",
    "ComponentSource",
    "Components",
    "EnergySource",
    "IdleBaseline",
    "Meter",
    "MeterStatus",
    "Provenance",
    "Window",
    "WindowResult",
    "build_meter",
    "probe_meters",
    "synchronize_cuda",
]
