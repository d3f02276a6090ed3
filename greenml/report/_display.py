"""How a page shows its numbers: one unit per quantity for the whole page, no scientific notation.

Stored values keep the base units :mod:`greenml.metrics` names. A page gathers every value it
shows (:func:`shown_values`), picks one :class:`~greenml.units.Scale` per quantity from them
(:func:`greenml.units.scale_for`: the median reads between 1 and 1000), and writes table cells,
hover text, axis titles and the plotted values themselves in that unit. So every energy per
inference on a page is in, say, µJ, and an axis shows plain numbers with the unit in its title.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greenml.report._footprint import Footprint
from greenml.report._record import TrialRecord
from greenml.units import Scale, plain, quantity_of, scale_for

__all__ = ["PageUnits", "page_units", "parameter_text", "shown_values"]

DIGITS = 3  # significant figures of a figure in its page unit
FRACTION_DIGITS = 4  # accuracies: 0.9512 and 0.9508 are different models
RAW_DIGITS = 4  # a figure outside the vocabulary, or a parameter, shown as it is


@dataclass(frozen=True)
class PageUnits:
    """The unit of each quantity on one page."""

    scales: Mapping[str, Scale]

    def scale(self, quantity: str) -> Scale:
        """The page's unit of ``quantity`` (its base unit where the page shows no such value)."""
        found = self.scales.get(quantity)
        return found if found is not None else scale_for(quantity, ())

    def of(self, name: str) -> Scale | None:
        """The page's unit of metric ``name``; None for a name outside the vocabulary."""
        quantity = quantity_of(name)
        return None if quantity is None else self.scale(quantity)

    def unit(self, name: str) -> str | None:
        """``µJ`` for ``inference_energy_j`` on a page in µJ; "" for accuracies; None if unknown."""
        scale = self.of(name)
        return None if scale is None else scale.unit

    def plotted(self, name: str, value: float) -> float:
        """``value`` (base units) in the page's unit, as a figure plots it."""
        scale = self.of(name)
        return value if scale is None else scale.value(value)

    def cell(self, name: str, value: float | None) -> str:
        """The number alone, in the page's unit (the column header carries the unit)."""
        if value is None:
            return ""
        scale = self.of(name)
        return plain(value, RAW_DIGITS) if scale is None else scale.format(value, _digits(scale))

    def text(self, name: str, value: float | None) -> str:
        """The number and its unit: ``41.2 µJ``."""
        if value is None:
            return "—"
        scale = self.of(name)
        return plain(value, RAW_DIGITS) if scale is None else scale.text(value, _digits(scale))


def _digits(scale: Scale) -> int:
    return FRACTION_DIGITS if scale.quantity == "fraction" else DIGITS


def shown_values(
    trials: Iterable[TrialRecord], footprints: Iterable[Footprint] = ()
) -> dict[str, list[float]]:
    """Every value a page shows, by quantity: the trials' metrics, energy and duration (and the
    training energy their learning curves reach), and the footprints' totals by phase, ledger
    entries, sums and early stopping's figures."""
    values: dict[str, list[float]] = {}

    def add(quantity: str | None, items: Iterable[float | None]) -> None:
        if quantity is not None:
            values.setdefault(quantity, []).extend(v for v in items if v is not None)

    for trial in trials:
        for name, value in trial.metrics.items():
            add(quantity_of(name), [value])
        add("energy", [trial.energy_j])
        add("duration", [trial.seconds])
        if trial.curve:  # a learning curve's reach: the trial's training energy
            add("energy", [trial.curve[-1].energy_j])
    for fp in footprints:
        add("energy", [*fp.phase_energy_j.values(), *(i.energy_j for i in fp.ledger), fp.energy_j])
        add(
            "duration",
            [*fp.phase_seconds.values(), *(i.seconds for i in fp.ledger), fp.wall_seconds, fp.trial_seconds],
        )
        add("mass", [*fp.phase_co2_g.values(), *(i.co2_g for i in fp.ledger), fp.co2_g])
        if fp.stopping is not None:
            add("energy", [fp.stopping.spent_j, fp.stopping.saved_j, fp.stopping.cost_phase_j])
    return values


def page_units(trials: Iterable[TrialRecord], footprints: Sequence[Footprint] = ()) -> PageUnits:
    """One unit per quantity for a page showing ``trials`` and ``footprints``."""
    return PageUnits(
        {quantity: scale_for(quantity, found) for quantity, found in shown_values(trials, footprints).items()}
    )


def parameter_text(value: Any) -> str:
    """A trial parameter as written: words and whole numbers as they are, a float to four
    significant figures in plain decimals (a learning rate of 1e-05 reads ``0.00001``)."""
    if isinstance(value, float):
        return plain(value, RAW_DIGITS)
    return str(value)
