"""The Pareto front's figures: the trials on the objectives' axes, the front, the knee and the
best trial per objective; and several studies' fronts on shared axes.

A 2-D scatter for two objectives, a 3-D view and the pairwise projections for three, parallel
coordinates and the pairwise projections beyond. Every value is plotted in the page's unit for
its quantity (:class:`._display.PageUnits`), so axes show plain numbers and their titles the
unit; ticks never take an exponent or an SI suffix (``exponentformat="none"``), which would
put a second unit (``50µ``) beside the title's.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from greenml.report._basis import EnergyBasis
from greenml.report._display import DIGITS, FRACTION_DIGITS, PageUnits
from greenml.report._front import FrontMarks
from greenml.report._labels import best_label, metric_label
from greenml.report._plot_hover import hover_ref
from greenml.report._plot_style import (
    BEST_STYLES,
    KNEE_STYLE,
    LOG_SPAN,
    MODEBAR_PX,
    PLAIN_TICKS,
    STATUS_STYLE,
    STUDY_COLOURS,
    TITLE_LINE_PX,
    figure_layout,
)
from greenml.report._record import TrialRecord

__all__ = ["compare_fronts", "mark_names", "pareto_figures"]


def _axis(
    name: str, trials: Sequence[TrialRecord], units: PageUnits, basis: EnergyBasis | None
) -> dict[str, Any]:
    values = [units.plotted(name, t.metrics[name]) for t in trials if name in t.metrics]
    positive = [v for v in values if v > 0]
    log = bool(positive) and len(positive) == len(values) and max(positive) / min(positive) >= LOG_SPAN
    unit = ", ".join(part for part in (units.unit(name), "log scale" if log else "") if part)
    return {
        "title": {"text": metric_label(name, basis, lines=True, unit=unit, words=True)},
        "type": "log" if log else "linear",
        "automargin": True,
        **PLAIN_TICKS,
    }


def _plotted(trials: Sequence[TrialRecord], objectives: Sequence[str]) -> list[TrialRecord]:
    return [t for t in trials if t.state == "COMPLETE" and all(name in t.metrics for name in objectives)]


# An axis of the trials' numbers (the one-objective figure), beside the objectives' axes.
TRIAL_AXIS = None


def _coords(
    members: Sequence[TrialRecord], axes: Sequence[str | None], units: PageUnits
) -> dict[str, list[float]]:
    return {
        key: [t.number if name is TRIAL_AXIS else units.plotted(name, t.metrics[name]) for t in members]
        for key, name in zip("xyz", axes, strict=False)
    }


def pareto_figures(
    trials: Sequence[TrialRecord],
    objectives: Sequence[str],
    status: Mapping[int, str],
    units: PageUnits,
    marks: FrontMarks,
    basis: EnergyBasis | None = None,
) -> list[tuple[str, Any]]:
    """(title, figure) pairs: a 2-D scatter for 2 objectives; a 3-D view and the pairwise
    projections for 3; parallel coordinates and the pairwise projections beyond. The knee and
    each objective's best front trial are marked wherever points are drawn. Energy axes say
    what ``basis`` their figures rest on."""
    import plotly.graph_objects as go

    shown = _plotted(trials, objectives)
    groups = {key: [t for t in shown if status[t.number] == key] for key in STATUS_STYLE}
    by_number = {t.number: t for t in shown}
    figures: list[tuple[str, Any]] = []
    if len(objectives) == 1:
        (name,) = objectives
        fig = go.Figure()
        for key, members in groups.items():
            members = sorted(members, key=lambda t: t.number)
            fig.add_trace(_scatter(go.Scatter, members, [TRIAL_AXIS, name], key, units))
        fig.add_traces(_marks(go.Scatter, marks, by_number, [TRIAL_AXIS, name], units))
        fig.update_layout(
            xaxis={"title": {"text": "trial"}, "automargin": True, **PLAIN_TICKS},
            yaxis=_axis(name, shown, units, basis),
            **figure_layout(420),
        )
        figures.append(("Objective by trial (the best feasible trial is the front)", fig))
        return figures
    if len(objectives) == 2:
        x, y = objectives
        fig = go.Figure()
        for key, members in groups.items():
            if key == "front":
                members = sorted(members, key=lambda t: t.metrics[x])
            fig.add_trace(_scatter(go.Scatter, members, [x, y], key, units, line=key == "front"))
        fig.add_traces(_marks(go.Scatter, marks, by_number, [x, y], units))
        fig.update_layout(
            xaxis=_axis(x, shown, units, basis), yaxis=_axis(y, shown, units, basis), **figure_layout(480)
        )
        figures.append(("Pareto front", fig))
        return figures
    if len(objectives) == 3:
        fig = go.Figure()
        for key, members in groups.items():
            fig.add_trace(_scatter(go.Scatter3d, members, list(objectives), key, units))
        fig.add_traces(_marks(go.Scatter3d, marks, by_number, list(objectives), units))
        caption = _basis_caption(objectives, basis)
        fig.update_layout(scene=_scene(objectives, shown, units), **figure_layout(640, len(caption)))
        if caption:
            fig.add_annotation(
                text="<br>".join(caption),
                **{"xref": "paper", "yref": "paper", "x": 0, "y": 1, "xanchor": "left", "yanchor": "bottom"},
                showarrow=False,
                align="left",
            )
        figures.append(("Pareto front in 3-D (drag to turn)", fig))
    else:
        figures.append(
            (
                "Parallel coordinates of the complete trials (the knee in black)",
                _parallel(shown, objectives, status, units, marks, basis),
            )
        )
    figures.append(
        (
            "Pairwise projections (status from all objectives)",
            _projections(shown, objectives, status, groups, units, marks, basis),
        )
    )
    return figures


def _scene(objectives: Sequence[str], shown: Sequence[TrialRecord], units: PageUnits) -> dict[str, Any]:
    """The 3-D scene. WebGL draws its axis titles inside the view, which cuts what passes its
    edge and has no margin to grow: the titles are one short line (words and unit; the energy
    basis goes in :func:`_basis_caption`), and the camera stands back from the default
    (1.25, 1.25, 1.25) so the cube, its tick labels and titles fit from the first angle."""
    axes = {
        key: _axis(name, shown, units, None)
        for key, name in zip(("xaxis", "yaxis", "zaxis"), objectives, strict=True)
    }
    for axis in axes.values():
        axis.pop("automargin")  # not a scene axis attribute
    return {**axes, "camera": {"eye": {"x": 1.6, "y": 1.6, "z": 1.1}}, "aspectmode": "cube"}


def _basis_caption(objectives: Sequence[str], basis: EnergyBasis | None) -> list[str]:
    """``energy per inference: estimated from CPU time``: what the 3-D view's energy axes rest
    on, a line each, where it is not plainly measured."""
    lines = []
    for name in objectives:
        what, _, qualifier = metric_label(name, basis, lines=True, unit="", words=True).partition("<br>")
        if qualifier:
            lines.append(f"{what}: {qualifier}")
    return lines


def _scatter(
    kind: Any,
    members: Sequence[TrialRecord],
    axes: Sequence[str | None],
    key: str,
    units: PageUnits,
    line: bool = False,
    showlegend: bool = True,
) -> Any:
    style = STATUS_STYLE[key]
    return kind(
        **_coords(members, axes, units),
        mode="lines+markers" if line else "markers",
        name=style["name"],
        legendgroup=key,
        showlegend=showlegend,
        marker={
            "color": style["color"],
            "symbol": style["symbol"],
            "size": style["size"] * (0.6 if kind.__name__ == "Scatter3d" else 1),
        },
        line={"color": style["color"], "dash": "dot", "shape": "hv"} if line else None,
        **hover_ref([str(t.number) for t in members]),
    )


def mark_names(marks: FrontMarks) -> list[tuple[str, int, dict[str, Any]]]:
    """(legend name, trial, style) of each mark: ``knee: trial 12``, ``best accuracy: trial 3``."""
    found = [] if marks.knee is None else [(f"knee: trial {marks.knee}", marks.knee, KNEE_STYLE)]
    for index, (name, number) in enumerate(marks.best.items()):
        found.append((f"{best_label(name)}: trial {number}", number, BEST_STYLES[index % len(BEST_STYLES)]))
    return found


def _marks(
    kind: Any,
    marks: FrontMarks,
    by_number: Mapping[int, TrialRecord],
    axes: Sequence[str | None],
    units: PageUnits,
    showlegend: bool = True,
    colour: str | None = None,
    prefix: str = "",
    hover_prefix: str = "",
) -> list[Any]:
    """A trace per mark over its front point (in ``colour`` where the colour tells studies apart)."""
    three_d = kind.__name__ == "Scatter3d"
    traces = []
    for name, number, style in mark_names(marks):
        trial = by_number[number]
        traces.append(
            kind(
                **_coords([trial], axes, units),
                mode="markers",
                name=html.escape(prefix + name),
                legendgroup=f"{prefix}mark:{name}",
                showlegend=showlegend,
                marker={
                    "color": colour or style["color"],
                    "symbol": style["symbol3d"] if three_d else style["symbol"],
                    "size": style["size"] * (0.55 if three_d else 1),
                    "line": {"width": 2, "color": colour or style["color"]},
                },
                **hover_ref([f"{hover_prefix}{number}"]),
            )
        )
    return traces


def _projections(
    shown: Sequence[TrialRecord],
    objectives: Sequence[str],
    status: Mapping[int, str],
    groups: Mapping[str, Sequence[TrialRecord]],
    units: PageUnits,
    marks: FrontMarks,
    basis: EnergyBasis | None = None,
) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pairs = list(itertools.combinations(objectives, 2))
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    by_number = {t.number: t for t in shown}
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.1, vertical_spacing=0.2)
    for index, (x, y) in enumerate(pairs):
        row, col = index // cols + 1, index % cols + 1
        for key, members in groups.items():
            fig.add_trace(
                _scatter(go.Scatter, members, [x, y], key, units, showlegend=index == 0), row=row, col=col
            )
        for trace in _marks(go.Scatter, marks, by_number, [x, y], units, showlegend=index == 0):
            fig.add_trace(trace, row=row, col=col)
        fig.update_xaxes(**_axis(x, shown, units, basis), row=row, col=col)
        fig.update_yaxes(**_axis(y, shown, units, basis), row=row, col=col)
    fig.update_layout(**figure_layout(380 * rows + 60))
    return fig


def _parallel(
    shown: Sequence[TrialRecord],
    objectives: Sequence[str],
    status: Mapping[int, str],
    units: PageUnits,
    marks: FrontMarks,
    basis: EnergyBasis | None = None,
) -> Any:
    """Parallel coordinates, a line per trial coloured by status; the knee's line is black and
    drawn last, on top (a parallel-coordinates figure has no legend to name marks in)."""
    import plotly.graph_objects as go

    order = [*STATUS_STYLE, "knee"]
    lines = sorted(shown, key=lambda t: t.number == marks.knee)
    codes = [order.index("knee" if t.number == marks.knee else status[t.number]) for t in lines]
    colours = [STATUS_STYLE[key]["color"] for key in STATUS_STYLE] + [KNEE_STYLE["color"]]
    scale = [[i / (len(order) - 1), colour] for i, colour in enumerate(colours)]
    dimensions = [
        {
            "label": metric_label(name, basis, unit=units.unit(name), words=True),
            "values": [units.plotted(name, t.metrics[name]) for t in lines],
            # d3: plain decimals to the page's significant figures, never an SI prefix
            "tickformat": f",.{_significant(units, name)}~r",
        }
        for name in objectives
    ]
    fig = go.Figure(
        go.Parcoords(
            line={"color": codes, "colorscale": scale, "cmin": 0, "cmax": len(order) - 1},
            dimensions=dimensions,
        )
    )
    fig.update_layout(**figure_layout(460))
    # Dimension labels sit above the axes, in the top margin, below the mode bar's strip.
    fig.update_layout(margin={"l": 80, "r": 80, "t": MODEBAR_PX + 2 * TITLE_LINE_PX + 10, "b": 30})
    return fig


def _significant(units: PageUnits, name: str) -> int:
    scale = units.of(name)
    return FRACTION_DIGITS if scale is None or scale.quantity == "fraction" else DIGITS


def compare_fronts(
    studies: Sequence[tuple[str, Sequence[TrialRecord], Mapping[int, str], FrontMarks]],
    objectives: Sequence[str],
    units: PageUnits,
    basis: EnergyBasis | None = None,
) -> Any:
    """Each study's feasible trials (faint), front (bold) and marks (its knee and bests, in the
    study's colour) on the same axes, pair by pair."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pairs = list(itertools.combinations(objectives, 2))
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.1, vertical_spacing=0.2)
    everything = [t for _, trials, _, _ in studies for t in _plotted(trials, objectives)]
    for s_index, (label, trials, status, marks) in enumerate(studies):
        colour = STUDY_COLOURS[s_index % len(STUDY_COLOURS)]
        shown = _plotted(trials, objectives)
        by_number = {t.number: t for t in shown}
        for index, (x, y) in enumerate(pairs):
            row, col = index // cols + 1, index % cols + 1
            for key in ("dominated", "front"):
                members = [t for t in shown if status[t.number] == key]
                if key == "front":
                    members.sort(key=lambda t: t.metrics[x])
                fig.add_trace(
                    go.Scatter(
                        **_coords(members, [x, y], units),
                        mode="markers",
                        name=f"{html.escape(label)}: {'front' if key == 'front' else 'other feasible'}",
                        legendgroup=f"{s_index}-{key}",
                        showlegend=index == 0,
                        opacity=1.0 if key == "front" else 0.35,
                        marker={
                            "color": colour,
                            "size": 10 if key == "front" else 6,
                            "symbol": "circle" if key == "front" else "circle-open",
                        },
                        **hover_ref([f"{s_index}:{t.number}" for t in members]),
                    ),
                    row=row,
                    col=col,
                )
            for trace in _marks(
                go.Scatter,
                marks,
                by_number,
                [x, y],
                units,
                showlegend=index == 0,
                colour=colour,
                prefix=f"{label}: ",
                hover_prefix=f"{s_index}:",
            ):
                fig.add_trace(trace, row=row, col=col)
            fig.update_xaxes(**_axis(x, everything, units, basis), row=row, col=col)
            fig.update_yaxes(**_axis(y, everything, units, basis), row=row, col=col)
    fig.update_layout(**figure_layout(400 * rows + 80))
    return fig
