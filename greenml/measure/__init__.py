"""Measurement: energy meters (NVML, RAPL, estimate), carbon, and the inference benchmark.

A :class:`Meter` opens windows; a window's end gives a frozen :class:`WindowResult` in joules
and seconds with its provenance (which backend, measured or estimated).
"""

from greenml.measure._meter import Meter, Window, synchronize_cuda
from greenml.measure._select import MeterStatus, build_meter, probe_meters
from greenml.measure._types import (
    CarbonIntensity,
    Components,
    ComponentSource,
    EnergySource,
    IdleBaseline,
    Kind,
    Provenance,
    WindowResult,
)
from greenml.measure.command import CommandResult, measure_command
from greenml.metrics import COMPONENTS

__all__ = [
    "COMPONENTS",
    "CarbonIntensity",
    "CommandResult",
    "ComponentSource",
    "Components",
    "EnergySource",
    "IdleBaseline",
    "Kind",
    "Meter",
    "MeterStatus",
    "Provenance",
    "Window",
    "WindowResult",
    "build_meter",
    "measure_command",
    "probe_meters",
    "synchronize_cuda",
]
