"""An energy source with a known constant power, for testing code that takes a Meter."""

from __future__ import annotations

import time
from collections.abc import Callable

from greenml.measure._types import ComponentSource, Kind

__all__ = ["ConstantPowerSource"]


class ConstantPowerSource:
    """Reports ``watts[component] × elapsed seconds`` for each component it covers."""

    def __init__(
        self,
        watts: dict[str, float],
        *,
        kind: Kind = "measured",
        name: str = "constant",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.watts = dict(watts)
        self.kind: Kind = kind
        self.name = name
        self.clock = clock
        self.closed = False

    def sources(self) -> tuple[ComponentSource, ...]:
        return tuple(
            ComponentSource(component=c, kind=self.kind, backend=self.name, method=f"constant {w:g} W")
            for c, w in self.watts.items()
        )

    def snapshot(self) -> float:
        return self.clock()

    def energy_between(self, start: float, end: float) -> dict[str, float]:
        return {c: w * (end - start) for c, w in self.watts.items()}

    def drivers(self) -> dict[str, str]:
        return {}

    def warnings(self) -> tuple[str, ...]:
        return ()

    def close(self) -> None:
        self.closed = True
