"""Words for a person: what a metric is called on an axis or in a header, what a mark says, and
what to write beside an energy figure that is not plainly measured.

Only wording lives here; the numbers behind it come from the data modules (:mod:`._basis` gives
an energy figure its basis, whose :meth:`~._basis.EnergyBasis.qualifier` is written here).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from greenml.metrics import COMPONENTS, MAXIMIZED, metric

__all__ = [
    "Qualified",
    "basis_qualifier",
    "best_label",
    "components_text",
    "energy_label",
    "estimate_words",
    "metric_label",
    "metric_phrase",
]


class Qualified(Protocol):
    """An energy basis, as a label needs it (:class:`._basis.EnergyBasis`)."""

    def qualifier(self, component: str | None = None) -> str: ...


def estimate_words(cpu_time: bool) -> str:
    """How the estimated components were estimated, in a few words."""
    return "estimated from CPU time" if cpu_time else "estimated"


def basis_qualifier(
    basis: str,
    estimated: Sequence[str],
    measured: Sequence[str],
    cpu_time: bool,
    component: str | None = None,
) -> str:
    """What to write beside an energy figure ("" where it is measured): of one ``component``, or
    (None) of a total over every metered component, on ``basis`` (measured, partly estimated,
    estimated, mixed, unknown) with those components ``estimated`` and ``measured``."""
    how = estimate_words(cpu_time)
    if component is not None:
        if component not in estimated:
            return ""
        return how + (" in some trials" if component in measured else "")
    if basis == "estimated":
        return how
    if basis == "partly estimated":
        return f"{components_text(estimated)} part {how}"
    if basis == "mixed":
        return "measured in some trials, estimated in others"
    if basis == "unknown":
        return "basis not recorded"
    return ""


def components_text(components: Sequence[str]) -> str:
    """``CPU``, ``CPU and DRAM``, ``GPU, CPU and DRAM``."""
    names = [c.upper() for c in components]
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


def energy_label(
    what: str, unit: str, basis: Qualified | None, component: str | None = None, lines: bool = False
) -> str:
    """``what (unit)``, with the basis beside the unit where it is not plainly measured, or with
    ``lines`` on a second line (``<br>``, for a Plotly axis title too short for one line). An
    empty ``unit`` (a figure about the energy, not in it: its importances) leaves the brackets out."""
    qualifier = basis.qualifier(component) if basis is not None else ""
    head = f"{what} ({unit})" if unit else what
    if not qualifier:
        return head
    if lines:
        return f"{head}<br>{qualifier}"
    return f"{what} ({unit}, {qualifier})" if unit else f"{what} ({qualifier})"


def metric_label(
    name: str,
    basis: Qualified | None = None,
    lines: bool = False,
    unit: str | None = None,
    words: bool = False,
) -> str:
    """``latency_ms (ms)``: the name with its unit (from :mod:`greenml.metrics`, or the ``unit``
    a page shows it in); an energy metric also says its basis, e.g. ``inference_energy_j (J,
    estimated from CPU time)``. ``words``: the metric's phrase instead of its name
    (``energy per inference (µJ)``), for an axis that has little room."""
    known = metric(name)
    if known is None:
        return name
    what = metric_phrase(name) if words else name
    shown = known.unit if unit is None else unit
    if known.energy:
        return energy_label(what, shown, basis, _component_of(name), lines)
    return f"{what} ({shown})" if shown else what


# Short words for the metrics on axes and in marks ("lowest energy per inference"); any other
# metric reads as its name with the unit suffix dropped and spaces for underscores.
_PHRASES = {
    "accuracy": "accuracy",
    "test_accuracy": "test accuracy",
    "latency_ms": "latency",
    "latency_p90_ms": "latency p90",
    "latency_p99_ms": "latency p99",
    "latency_stderr_ms": "latency std. error",
    "batch_latency_ms": "batch latency",
    "batch_throughput_per_s": "batch throughput",
    "inference_energy_j": "energy per inference",
    "inference_dynamic_energy_j": "dynamic energy per inference",
    "batch_inference_energy_j": "energy per inference in a batch",
    "batch_inference_dynamic_energy_j": "dynamic energy per inference in a batch",
    **{f"inference_{c}_energy_j": f"{c.upper()} energy per inference" for c in COMPONENTS},
    "model_bytes": "model size",
    "co2_g": "CO2e",
    "trial_energy_j": "trial energy",
    "trial_seconds": "trial time",
}
_BEST_WORDS = {"model_bytes": "smallest model"}


def metric_phrase(name: str) -> str:
    """``energy per inference`` for ``inference_energy_j``; ``train energy`` for ``train_energy_j``."""
    if name in _PHRASES:
        return _PHRASES[name]
    stem = re.sub(r"_(j|ms|s|g|bytes|per_s)$", "", name)
    return stem.replace("_", " ") + (" energy" if name.endswith("_energy_j") and "energy" not in stem else "")


def best_label(name: str) -> str:
    """``best accuracy`` for a maximised metric, ``lowest latency`` for a minimised one."""
    if name in _BEST_WORDS:
        return _BEST_WORDS[name]
    return f"{'best' if name in MAXIMIZED else 'lowest'} {metric_phrase(name)}"


def _component_of(name: str) -> str | None:
    """The component a per-component metric (``inference_cpu_energy_j``) is about, else None."""
    for component in COMPONENTS:
        if name.endswith(f"_{component}_energy_j"):
            return component
    return None
