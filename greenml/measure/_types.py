"""Result types of the measurement layer: frozen, unit-suffixed, JSON-serialisable."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from greenml import units
from greenml.metrics import COMPONENTS

Kind = Literal["measured", "estimated"]
# What a total rests on: every component measured, some estimated, or all estimated.
Basis = Literal["measured", "partly estimated", "estimated"]


def energy_basis(kinds: list[Kind]) -> Basis:
    """The basis of a total over components of these kinds."""
    if kinds and all(kind == "measured" for kind in kinds):
        return "measured"
    if any(kind == "measured" for kind in kinds):
        return "partly estimated"
    return "estimated"


@dataclass(frozen=True)
class Components:
    """One number per hardware component, ``None`` where that component was not measured.

    The unit is carried by the name of the field that holds it (``energy_j``, ``idle_power_w``).
    """

    gpu: float | None = None
    cpu: float | None = None
    dram: float | None = None

    def get(self, component: str) -> float | None:
        return getattr(self, component)  # type: ignore[no-any-return]

    def items(self) -> list[tuple[str, float | None]]:
        return [(name, self.get(name)) for name in COMPONENTS]

    def to_dict(self) -> dict[str, float | None]:
        return dict(self.items())

    @classmethod
    def from_dict(cls, values: dict[str, float | None]) -> Components:
        unknown = set(values) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown components {sorted(unknown)}; valid: {', '.join(COMPONENTS)}")
        return cls(**values)


@dataclass(frozen=True)
class ComponentSource:
    """Where the number for one component comes from."""

    component: str
    kind: Kind
    backend: str
    method: str
    devices: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"devices": list(self.devices)}


@dataclass(frozen=True)
class IdleBaseline:
    """Idle power measured once per run, subtracted to give dynamic energy.

    ``uncertainty_w`` bounds each component's idle power error: one step of its energy counter
    over the idle window, as watts (None where the source has no measured step).
    """

    seconds: float
    power_w: Components
    uncertainty_w: Components = field(default_factory=Components)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "power_w": self.power_w.to_dict(),
            "uncertainty_w": self.uncertainty_w.to_dict(),
        }


@dataclass(frozen=True)
class CarbonIntensity:
    """Grid carbon intensity and data-centre PUE used to turn energy into gCO2e."""

    country: str | None
    intensity_g_per_kwh: float
    pue: float
    source: str

    def co2_g(self, energy_j: float) -> float:
        return units.co2_g(energy_j, self.intensity_g_per_kwh, self.pue)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Provenance:
    """Everything needed to judge a number: which meter, measured or estimated, and caveats."""

    sources: tuple[ComponentSource, ...]
    energy_basis: Basis
    total_components: tuple[str, ...]
    drivers: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    idle: IdleBaseline | None = None
    carbon: CarbonIntensity | None = None

    @property
    def meter(self) -> str:
        return "+".join(dict.fromkeys(source.backend for source in self.sources))

    def kind_of(self, component: str) -> Kind | None:
        for source in self.sources:
            if source.component == component:
                return source.kind
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "energy_basis": self.energy_basis,
            "total_components": list(self.total_components),
            "components": {
                name: next((s.to_dict() for s in self.sources if s.component == name), None)
                for name in COMPONENTS
            },
            "drivers": dict(self.drivers),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "idle": self.idle.to_dict() if self.idle else None,
            "carbon": self.carbon.to_dict() if self.carbon else None,
        }


@dataclass(frozen=True)
class WindowResult:
    """The energy and time of one measurement window.

    ``total_energy_j`` is the figure search objectives use: the sum of every metered component,
    measured or estimated, since leaving out a component that did work (the CPU running an ONNX
    Runtime model beside an idle GPU, say) makes runtimes and devices incomparable.
    ``provenance.energy_basis`` says whether that total is ``measured``, ``partly estimated`` or
    ``estimated``; ``energy_j`` keeps the per-component values next to it.
    ``dynamic_energy_j`` subtracts the idle baseline, signed (a window at idle power averages to
    zero, so noise below idle stays negative rather than being clamped into a bias), and is
    ``None`` everywhere when no baseline was taken; ``dynamic_total_energy_j`` is its signed sum.
    """

    name: str
    seconds: float
    energy_j: Components
    dynamic_energy_j: Components
    total_energy_j: float
    dynamic_total_energy_j: float | None
    co2_g: float | None
    provenance: Provenance
    children: tuple[WindowResult, ...] = ()

    def child(self, name: str) -> WindowResult:
        for result in self.children:
            if result.name == name:
                return result
        names = ", ".join(result.name for result in self.children) or "none"
        raise KeyError(f"no nested window named {name!r}; nested windows: {names}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": self.seconds,
            "energy_j": self.energy_j.to_dict(),
            "dynamic_energy_j": self.dynamic_energy_j.to_dict(),
            "total_energy_j": self.total_energy_j,
            "dynamic_total_energy_j": self.dynamic_total_energy_j,
            "co2_g": self.co2_g,
            "provenance": self.provenance.to_dict(),
            "children": [result.to_dict() for result in self.children],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


class EnergySource(Protocol):
    """One measurement backend (NVML, RAPL, estimate) as the meter sees it.

    A source is a set of monotonic energy accumulators. ``snapshot`` is cheap and is taken at
    window edges; ``energy_between`` turns two snapshots into joules per component.
    """

    name: str

    def sources(self) -> tuple[ComponentSource, ...]: ...

    def snapshot(self) -> Any: ...

    def energy_between(self, start: Any, end: Any) -> dict[str, float]: ...

    def drivers(self) -> dict[str, str]: ...

    def warnings(self) -> tuple[str, ...]: ...

    def close(self) -> None: ...


class WindowWarnings(Protocol):
    """Optional: a source whose caveats belong to one window (a process seen on the GPU then)."""

    def window_warnings(self, start: Any, end: Any) -> tuple[str, ...]: ...


class AlignedCounter(Protocol):
    """Optional: a source whose counter moves in steps coarse enough to matter for a window.

    ``update_period_s`` is the measured step (None: fine enough not to matter);
    ``counter_reading`` is a cheap reading that changes exactly when the counter steps, so a
    window can begin and end on a step and the coarse resolution cancels out.
    """

    def update_period_s(self) -> float | None: ...

    def counter_reading(self) -> Any: ...
