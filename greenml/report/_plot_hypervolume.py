"""The hypervolume's figures: its history against trials finished and against the search's
energy, for one study or for several on one reference point."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from greenml.report._basis import EnergyBasis
from greenml.report._display import PageUnits
from greenml.report._hypervolume import HypervolumePoint
from greenml.report._labels import energy_label
from greenml.report._plot_style import BARS_UP_TO, PLAIN_TICKS, STUDY_COLOURS, figure_layout
from greenml.units import plain

__all__ = ["compare_hypervolume", "finished_title", "hypervolume_figure"]


def hypervolume_figure(
    history: Sequence[HypervolumePoint], units: PageUnits, basis: EnergyBasis | None = None
) -> Any:
    """Hypervolume against trials finished and against the search's energy, side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    energy = units.scale("energy")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    common = {
        "mode": "lines+markers" if len(history) <= BARS_UP_TO else "lines",
        "line": {"shape": "hv", "color": "#0072B2"},
        # A stopped trial's point is an x: it moves the search along, never the hypervolume.
        "marker": {"symbol": ["x" if p.stopped else "circle" for p in history], "size": 6},
        "text": [
            f"trial {p.trial}{' (stopped early)' if p.stopped else ''} ({p.finished} finished)"
            f"<br>{energy.text(p.energy_j)}<br>hypervolume {plain(p.hypervolume, 4)}"
            for p in history
        ],
        "hovertemplate": "%{text}<extra></extra>",
        "showlegend": False,
    }
    fig.add_trace(
        go.Scatter(x=[p.finished for p in history], y=[p.hypervolume for p in history], **common),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=[energy.value(p.energy_j) for p in history], y=[p.hypervolume for p in history], **common
        ),
        row=1,
        col=2,
    )
    fig.update_xaxes(title_text=finished_title([history]), row=1, col=1)
    fig.update_xaxes(title_text=energy_label("search energy", energy.unit, basis), row=1, col=2)
    fig.update_yaxes(title_text="normalised hypervolume", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_xaxes(automargin=True, **PLAIN_TICKS)
    fig.update_yaxes(automargin=True, **PLAIN_TICKS)
    fig.update_layout(**figure_layout(380))
    return fig


def finished_title(histories: Sequence[Sequence[HypervolumePoint]]) -> str:
    """The trials axis of a hypervolume history: what it counts besides complete trials."""
    stopped = any(p.stopped for history in histories for p in history)
    return f"trials finished (failed{' and early-stopped' if stopped else ''} included)"


def compare_hypervolume(
    histories: Sequence[tuple[str, Sequence[HypervolumePoint]]],
    units: PageUnits,
    basis: EnergyBasis | None = None,
) -> Any:
    """Each study's hypervolume against trials and against its search energy, on one reference."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    energy = units.scale("energy")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    for index, (label, history) in enumerate(histories):
        colour = STUDY_COLOURS[index % len(STUDY_COLOURS)]
        for col, xs in ((1, [p.finished for p in history]), (2, [energy.value(p.energy_j) for p in history])):
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=[p.hypervolume for p in history],
                    mode="lines",
                    line={"shape": "hv", "color": colour},
                    name=html.escape(label),
                    legendgroup=str(index),
                    showlegend=col == 1,
                    text=[
                        f"{html.escape(label)}<br>trial {p.trial}: {plain(p.hypervolume, 4)}"
                        f"<br>{energy.text(p.energy_j)}"
                        for p in history
                    ],
                    hovertemplate="%{text}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text=finished_title([h for _, h in histories]), row=1, col=1)
    fig.update_xaxes(title_text=energy_label("search energy", energy.unit, basis), row=1, col=2)
    fig.update_yaxes(title_text="normalised hypervolume", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_xaxes(automargin=True, **PLAIN_TICKS)
    fig.update_yaxes(automargin=True, **PLAIN_TICKS)
    fig.update_layout(**figure_layout(400))
    return fig
