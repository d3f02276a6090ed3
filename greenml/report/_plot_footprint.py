"""The footprint's figures: the search's energy and time by phase (and the study's ledger
entries beside them), and each trial's energy stacked by phase."""

from __future__ import annotations

import html
from typing import Any

from greenml.metrics import PHASES
from greenml.report._basis import EnergyBasis
from greenml.report._display import PageUnits
from greenml.report._footprint import Footprint, TrialFootprint
from greenml.report._labels import energy_label
from greenml.report._plot_style import (
    BARS_UP_TO,
    LEDGER_COLOUR,
    PHASE_COLOURS,
    PHASE_FALLBACK,
    PLAIN_TICKS,
    figure_layout,
    title_lines,
)

__all__ = ["footprint_by_phase", "footprint_by_trial"]


def footprint_by_phase(fp: Footprint, units: PageUnits, basis: EnergyBasis | None = None) -> Any:
    """Energy and time per phase of the whole search, and of each of the study's ledger entries
    (the teacher), a bar of its own beside the phases."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    energy, duration = units.scale("energy"), units.scale("duration")
    parts = _spent_parts(fp)
    # A ledger entry named like a phase would share its bar: such a one keeps its prefix.
    items = [
        html.escape(i.name if i.name not in (*PHASES, "other") else f"ledger:{i.name}") for i in fp.ledger
    ]
    titles = (energy_label("energy", energy.unit, basis), duration.label("time"))
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles, horizontal_spacing=0.12)
    colours = [PHASE_COLOURS.get(p, PHASE_FALLBACK) for p in parts] + [LEDGER_COLOUR] * len(items)
    kinds = ["trial phase"] * len(parts) + ["study ledger, outside every trial"] * len(items)
    joules = [fp.phase_energy_j[p] for p in parts] + [item.energy_j for item in fp.ledger]
    seconds = [fp.phase_seconds[p] for p in parts] + [item.seconds for item in fp.ledger]
    for col, (values, scale) in enumerate(((joules, energy), (seconds, duration)), start=1):
        fig.add_trace(
            go.Bar(
                x=[*parts, *items],
                y=[scale.value(v) for v in values],
                marker_color=colours,
                text=[f"{kind}: {scale.text(v)}" for kind, v in zip(kinds, values, strict=True)],
                textposition="none",
                showlegend=False,
                hovertemplate="%{x} (%{text})<extra></extra>",
            ),
            row=1,
            col=col,
        )
    fig.update_yaxes(automargin=True, **PLAIN_TICKS)
    fig.update_layout(**figure_layout(360, title_lines(titles)))
    return fig


def _spent_parts(fp: Footprint) -> list[str]:
    """The phases (and "other") some trial spent energy or time in: a phase only some searches
    run (the cost phase of early stopping) gets no empty bar or legend entry in the others."""
    return [p for p in (*PHASES, "other") if fp.phase_energy_j.get(p) or fp.phase_seconds.get(p)]


def _footprint_state(row: TrialFootprint) -> str:
    if row.stopped_at is None:
        return row.state.lower()
    return "stopped before training" if row.stopped_at == 0 else f"stopped at epoch {row.stopped_at}"


def footprint_by_trial(fp: Footprint, units: PageUnits, basis: EnergyBasis | None = None) -> Any:
    """Each trial's energy, stacked by phase (failed trials marked in the hover)."""
    import plotly.graph_objects as go

    energy = units.scale("energy")
    fig = go.Figure()
    numbers = [row.number for row in fp.trials]
    bars = len(fp.trials) <= BARS_UP_TO
    for phase in _spent_parts(fp):
        values = [row.phases[phase] for row in fp.trials]
        texts = [
            f"trial {row.number} ({_footprint_state(row)})<br>{phase}: {energy.text(row.phases[phase])}"
            for row in fp.trials
        ]
        hover = "%{text}<extra></extra>"
        colour = PHASE_COLOURS.get(phase, PHASE_FALLBACK)
        plotted = [energy.value(v) for v in values]
        if bars:
            trace = go.Bar(
                x=numbers,
                y=plotted,
                name=phase,
                marker_color=colour,
                text=texts,
                textposition="none",
                hovertemplate=hover,
            )
        else:
            trace = go.Scatter(
                x=numbers,
                y=plotted,
                name=phase,
                stackgroup="phases",
                mode="none",
                fillcolor=colour,
                line={"shape": "hv"},
                text=texts,
                hovertemplate=hover,
            )
        fig.add_trace(trace)
    layout = {"barmode": "stack"} if bars else {"hovermode": "x unified"}
    fig.update_layout(
        xaxis={"title": {"text": "trial"}, "automargin": True, **PLAIN_TICKS},
        yaxis={
            "title": {"text": energy_label("energy", energy.unit, basis, lines=True)},
            "automargin": True,
            **PLAIN_TICKS,
        },
        **layout,
        **figure_layout(360),
    )
    return fig
