"""A trial's hover text: every metric (in the page's unit) and parameter, its marks and notes.

The texts sit once in the page, not once per figure: each marker carries its trial's key
(:func:`hover_ref`) and the page's script fills in the text before drawing. User strings
(parameter names and values, study names, notes) go through :func:`html.escape`: Plotly renders
a few HTML tags in text, and an escaped ``<`` is shown as a character, never parsed.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from greenml.metrics import COMPONENTS, METRIC_NAMES, PHASES
from greenml.report._basis import energy_basis
from greenml.report._display import PageUnits, parameter_text
from greenml.report._front import FrontMarks
from greenml.report._record import TrialRecord

__all__ = ["HOVER_LINE", "device_text", "hover_ref", "hover_text", "hover_texts"]

HOVER_LINE = 80  # characters of plain text a hover line holds before the next item wraps


def hover_text(
    trial: TrialRecord, status: str, units: PageUnits, study: str | None = None, marks: Sequence[str] = ()
) -> str:
    """Every metric (in the page's unit) and parameter of a trial, escaped, after its marks,
    notes, where it ran and what its energy rests on. Related metrics share a line and
    parameters are packed several to a line: Plotly does not show a hover label taller than
    its figure."""
    place = " · ".join([status, *marks])
    head = f"<b>trial {trial.number}</b> ({html.escape(place)}) · {html.escape(device_text(trial))}"
    if study is not None:
        head = f"<b>{html.escape(study)}</b><br>" + head
    lines = [head]
    lines += [f"⚠ {html.escape(note)}" for note in trial.notes]
    qualifier = energy_basis([trial]).qualifier()
    if qualifier:
        lines.append(f"<i>energy: {html.escape(qualifier)}</i>")
    ordered = sorted(trial.metrics.items(), key=lambda item: _hover_place(item[0]))
    groups: dict[str, list[tuple[str, str]]] = {}
    for name, value in ordered:
        _, group = _hover_place(name)
        text = f"{name}: {units.text(name, value)}"
        groups.setdefault(group, []).append((html.escape(text), text))
    for items in groups.values():
        lines += _pack(items)
    lines += _pack(
        [
            (
                f"<i>{html.escape(name)}</i>: {html.escape(parameter_text(value))}",
                f"{name}: {parameter_text(value)}",
            )
            for name, value in trial.params.items()
        ]
    )
    return "<br>".join(lines)


def _pack(items: Sequence[tuple[str, str]]) -> list[str]:
    """(markup, plain text) items joined with " · " into lines of about HOVER_LINE characters."""
    lines: list[str] = []
    width = 0
    for markup, text in items:
        if lines and width + 3 + len(text) <= HOVER_LINE:
            lines[-1] += " · " + markup
            width += 3 + len(text)
        else:
            lines.append(markup)
            width = len(text)
    return lines


def _hover_group(name: str) -> str:
    """Metrics that share a hover line: accuracies, latencies, energies per inference, the
    component split, the trial's cost, each phase; any other metric on its own."""
    if name.endswith("accuracy"):
        return "accuracy"
    if name.startswith(("latency_", "batch_latency", "batch_throughput")):
        return "latency"
    if name.startswith(tuple(f"inference_{c}_" for c in COMPONENTS)):
        return "components"
    if name.startswith(("inference_", "batch_inference_")):
        return "inference"
    if name in ("co2_g", "trial_energy_j", "trial_seconds"):
        return "trial"
    for phase in PHASES:
        if name.startswith(f"{phase}_"):
            return phase
    return name


_ORDER = {name: index for index, name in enumerate(METRIC_NAMES)}


@cache
def _hover_place(name: str) -> tuple[int, str]:
    """A metric's place in the hover: its order (the vocabulary's) and its line group."""
    return _ORDER.get(name, len(_ORDER)), _hover_group(name)


def device_text(trial: TrialRecord) -> str:
    """``deployed on cpu (trained on cuda:0)``; ``deploy device not recorded`` for older records."""
    if trial.deploy_device is None:
        deployed = "deploy device not recorded"
    else:
        deployed = f"deployed on {trial.deploy_device}"
    if trial.device is not None and trial.device != trial.deploy_device:
        deployed += f" (trained on {trial.device})"
    return deployed


def hover_ref(keys: Sequence[str]) -> dict[str, Any]:
    """Trace attributes that point each marker at its trial's hover text.

    The texts (every metric and parameter) sit once in the page, not once per figure: the
    page's script fills ``text`` from ``customdata`` before drawing.
    """
    return {"customdata": list(keys), "meta": "trial-hover", "hovertemplate": "%{text}<extra></extra>"}


def hover_texts(
    trials: Sequence[TrialRecord],
    status: Mapping[int, str],
    units: PageUnits,
    study: str | None = None,
    prefix: str = "",
    marks: FrontMarks | None = None,
) -> dict[str, str]:
    """Each trial's hover text by its key (``prefix`` and its number), for the trials with metrics."""
    return {
        f"{prefix}{t.number}": hover_text(
            t, status[t.number], units, study, marks.labels(t.number) if marks else ()
        )
        for t in trials
        if t.metrics
    }
