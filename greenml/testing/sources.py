"""An energy source with a known power, for testing code that takes a Meter."""

from __future__ import annotations

import time
from collections.abc import Callable

from greenml.measure import ComponentSource, Kind

__all__ = ["ConstantPowerSource"]


class ConstantPowerSource:
    """Energy = the power the test sets × elapsed seconds, per component.

    Power can change between windows or within one (:meth:`set_watts`); energy accumulates
    piecewise, so every window's expected joules are known. ``windows_j`` records what each window
    was given, so a test can check how code divides it.
    """

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
        self.windows_j: list[dict[str, float]] = []
        self._last = clock()
        self._joules = dict.fromkeys(self.watts, 0.0)

    def set_watts(self, watts: dict[str, float]) -> None:
        self._advance()
        self.watts = dict(watts)

    def _advance(self) -> None:
        now = self.clock()
        for component, power in self.watts.items():
            self._joules[component] += power * (now - self._last)
        self._last = now

    def sources(self) -> tuple[ComponentSource, ...]:
        return tuple(
            ComponentSource(component=c, kind=self.kind, backend=self.name, method="power set by the test")
            for c in self.watts
        )

    def snapshot(self) -> dict[str, float]:
        self._advance()
        return dict(self._joules)

    def energy_between(self, start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
        energy = {c: end[c] - start[c] for c in end}
        self.windows_j.append(energy)
        return energy

    def drivers(self) -> dict[str, str]:
        return {}

    def warnings(self) -> tuple[str, ...]:
        return ()

    def close(self) -> None:
        self.closed = True
