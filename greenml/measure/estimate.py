"""CPU energy *estimated* from CPU time: seconds of CPU used × watts per core.

Counts this process and the children it has waited for (``getrusage``), so a command run under
``greenml measure`` is covered once it exits. Watts per core come from codecarbon's CPU TDP table
(TDP ÷ logical CPUs), codecarbon's 4 W per thread when the CPU is not in its table, or a value the
user gives. Every number from here is labelled ``estimated``.
"""

from __future__ import annotations

import functools
import logging
import os
import resource
from dataclasses import dataclass

from greenml.measure._types import ComponentSource

__all__ = ["CpuTimeEstimate", "WattsPerCore", "watts_per_core"]


@dataclass(frozen=True)
class WattsPerCore:
    watts: float
    source: str


def _quiet_codecarbon() -> None:
    os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")
    logging.getLogger("codecarbon").setLevel(logging.ERROR)


def watts_per_core(override: float | None = None) -> WattsPerCore:
    """Watts per logical CPU: the user's value, else codecarbon's TDP table."""
    if override is not None:
        return WattsPerCore(float(override), "given by the user")
    return _table_watts_per_core()


@functools.cache
def _table_watts_per_core() -> WattsPerCore:
    _quiet_codecarbon()
    from codecarbon.core.cpu import DEFAULT_POWER_PER_CORE, TDP

    threads = os.cpu_count() or 1
    tdp = TDP()
    if tdp.tdp is None:
        return WattsPerCore(
            float(DEFAULT_POWER_PER_CORE),
            f"codecarbon's default {DEFAULT_POWER_PER_CORE} W per thread (CPU model not detected)",
        )
    watts = float(tdp.tdp) / threads
    if abs(float(tdp.tdp) - threads * DEFAULT_POWER_PER_CORE) < 1e-9:
        source = (
            f"codecarbon's default {DEFAULT_POWER_PER_CORE} W per thread "
            f"({tdp.model!r} is not in its TDP table)"
        )
    else:
        source = f"codecarbon TDP table: {tdp.model!r} {tdp.tdp:g} W / {threads} logical CPUs"
    return WattsPerCore(watts, source)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class CpuTimeEstimate:
    """Estimated ``cpu`` energy of this process tree."""

    name = "estimate"

    def __init__(self, watts: WattsPerCore | None = None) -> None:
        self.watts = watts if watts is not None else watts_per_core()
        if self.watts.watts <= 0:
            raise ValueError(f"watts per core must be > 0, got {self.watts.watts}")

    def sources(self) -> tuple[ComponentSource, ...]:
        return (
            ComponentSource(
                component="cpu",
                kind="estimated",
                backend="estimate",
                method=(f"process CPU time x {self.watts.watts:.3g} W per core ({self.watts.source})"),
            ),
        )

    def snapshot(self) -> float:
        return cpu_seconds()

    def energy_between(self, start: float, end: float) -> dict[str, float]:
        return {"cpu": max(0.0, end - start) * self.watts.watts}

    def drivers(self) -> dict[str, str]:
        return {}

    def warnings(self) -> tuple[str, ...]:
        return ()

    def close(self) -> None:
        pass
