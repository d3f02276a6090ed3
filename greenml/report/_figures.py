"""Plotly figures drawn from the data of :mod:`greenml.report._data`; nothing is computed here.

Every value is plotted in the page's unit for its quantity (:class:`._display.PageUnits`), so
axes show plain numbers and their titles the unit; ticks never take an exponent or an SI suffix
(``exponentformat="none"``), which would put a second unit (``50µ``) beside the title's.

User strings (parameter names and values, study names) go into hover text through
:func:`html.escape`: Plotly renders a few HTML tags in text, and an escaped ``<`` is shown as a
character, never parsed.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from greenml.metrics import COMPONENTS, METRIC_NAMES, PHASES
from greenml.report._data import (
    CurveLine,
    EnergyBasis,
    Footprint,
    FrontMarks,
    HypervolumePoint,
    TrialFootprint,
    TrialRecord,
    best_label,
    energy_basis,
    energy_label,
    metric_label,
)
from greenml.report._display import DIGITS, FRACTION_DIGITS, PageUnits, parameter_text
from greenml.units import plain

__all__ = [
    "compare_fronts",
    "footprint_by_phase",
    "footprint_by_trial",
    "hypervolume_figure",
    "importance_figure",
    "learning_curves_figure",
    "pareto_figures",
]

# Colour-blind-safe (Okabe-Ito) colours, and a distinct marker per status.
STATUS_STYLE: dict[str, dict[str, Any]] = {
    "front": {"color": "#0072B2", "symbol": "circle", "size": 10, "name": "Pareto front"},
    "dominated": {"color": "#999999", "symbol": "circle-open", "size": 7, "name": "dominated"},
    "infeasible": {
        "color": "#D55E00",
        "symbol": "x",
        "size": 7,
        "name": "infeasible (violates a constraint)",
    },
}
# The marks drawn over front points: open shapes, larger than the point, so the point shows
# through and a trial that is both the knee and a best carries both. Scatter3d knows fewer
# symbols than 2-D scatter, hence a 3-D symbol of their own.
KNEE_STYLE: dict[str, Any] = {
    "color": "#000000",
    "symbol": "star-open",
    "symbol3d": "diamond-open",
    "size": 20,
}
BEST_STYLES: tuple[dict[str, Any], ...] = (
    {"color": "#009E73", "symbol": "diamond-open", "symbol3d": "square-open", "size": 17},
    {"color": "#CC79A7", "symbol": "square-open", "symbol3d": "circle-open", "size": 17},
    {"color": "#E69F00", "symbol": "triangle-up-open", "symbol3d": "cross", "size": 17},
    {"color": "#56B4E9", "symbol": "pentagon-open", "symbol3d": "x", "size": 17},
    {"color": "#000000", "symbol": "hexagon-open", "symbol3d": "square", "size": 17},
)
PHASE_COLOURS = {
    # The sampler proposing the trial: past the eight Okabe-Ito colours, Paul Tol's wine (his
    # colour-blind-safe muted scheme), apart from every colour here and the fallback.
    "propose": "#882255",
    # Measuring the deployment cost before training (early stopping only): vermillion, the one
    # Okabe-Ito colour the other phases leave (yellow is the fallback, black the ledger's).
    "cost": "#D55E00",
    "train": "#0072B2",
    "compress": "#E69F00",
    "finetune": "#56B4E9",
    "evaluate": "#009E73",
    "benchmark": "#CC79A7",
    "other": "#999999",
}
PHASE_FALLBACK = "#F0E442"  # a phase the vocabulary gained after this table was written
LEDGER_COLOUR = "#000000"  # the study's own entries (the teacher), apart from the phases' colours
STUDY_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
LOG_SPAN = 50.0  # an axis whose values span this factor or more is drawn on a log scale
# Plotly's mode bar (24 px high, 2 px from the top, on the right) appears over the top of a
# figure on hover. Each figure keeps this strip of its top margin free for it, and subplot
# titles go below the strip, so the bar never covers a title; the bar stays (zoom, pan, reset
# the 3-D camera, save as SVG), which hiding it would lose.
MODEBAR_PX = 34
TITLE_LINE_PX = 20  # one line of a subplot title


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


HOVER_LINE = 80  # characters of plain text a hover line holds before the next item wraps


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
    return {
        f"{prefix}{t.number}": hover_text(
            t, status[t.number], units, study, marks.labels(t.number) if marks else ()
        )
        for t in trials
        if t.metrics
    }


# Ticks in the axis's own numbers: no "50µ" (SI suffix) or "5e-5" (exponent) beside a title
# that already names the unit, on linear and log axes alike.
PLAIN_TICKS: dict[str, Any] = {"exponentformat": "none", "separatethousands": True}


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
            **_layout(420),
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
            xaxis=_axis(x, shown, units, basis), yaxis=_axis(y, shown, units, basis), **_layout(480)
        )
        figures.append(("Pareto front", fig))
        return figures
    if len(objectives) == 3:
        fig = go.Figure()
        for key, members in groups.items():
            fig.add_trace(_scatter(go.Scatter3d, members, list(objectives), key, units))
        fig.add_traces(_marks(go.Scatter3d, marks, by_number, list(objectives), units))
        caption = _basis_caption(objectives, basis)
        fig.update_layout(scene=_scene(objectives, shown, units), **_layout(640, len(caption)))
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


def _layout(height: int, title_lines: int = 0) -> dict[str, Any]:
    """Shared layout: the mode bar's strip and ``title_lines`` of subplot titles in the top margin."""
    return {
        "height": height,
        "margin": {"l": 60, "r": 20, "t": MODEBAR_PX + TITLE_LINE_PX * title_lines, "b": 50},
        # At the foot of the figure, below the axes and their titles (however many lines those
        # take), rather than at a fixed fraction below the plot that a two-line title reaches.
        "legend": {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom"},
        "template": "plotly_white",
        "hoverlabel": {"align": "left"},
    }


def _title_lines(titles: Sequence[str]) -> int:
    return max((title.count("<br>") + 1 for title in titles), default=0)


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
    fig.update_layout(**_layout(380 * rows + 60))
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
    fig.update_layout(**_layout(460))
    # Dimension labels sit above the axes, in the top margin, below the mode bar's strip.
    fig.update_layout(margin={"l": 80, "r": 80, "t": MODEBAR_PX + 2 * TITLE_LINE_PX + 10, "b": 30})
    return fig


def _significant(units: PageUnits, name: str) -> int:
    scale = units.of(name)
    return FRACTION_DIGITS if scale is None or scale.quantity == "fraction" else DIGITS


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
    fig.update_layout(**_layout(380))
    return fig


def finished_title(histories: Sequence[Sequence[HypervolumePoint]]) -> str:
    """The trials axis of a hypervolume history: what it counts besides complete trials."""
    stopped = any(p.stopped for history in histories for p in history)
    return f"trials finished (failed{' and early-stopped' if stopped else ''} included)"


# How the learning curves draw each kind of trial: the statuses' colours of the front figures,
# solid for trials that trained all their epochs, dashed and ending in an x for stopped ones.
CURVE_STYLE: dict[str, dict[str, Any]] = {
    "dominated": {"color": "#999999", "width": 1.2, "dash": "solid", "name": "dominated"},
    "infeasible": {
        "color": "#D55E00",
        "width": 1.2,
        "dash": "solid",
        "name": "infeasible (violates a constraint)",
    },
    "failed": {"color": "#999999", "width": 1.2, "dash": "dot", "name": "failed (until it failed)"},
    "stopped": {"color": "#CC79A7", "width": 1.5, "dash": "dash", "name": "stopped at epoch {epoch}"},
    "front": {"color": "#0072B2", "width": 3.0, "dash": "solid", "name": "Pareto front"},
}


def _curve_group(line: CurveLine) -> tuple[int, str, int]:
    """Draw order: dominated, infeasible, failed, stopped (by epoch), the front last, on top."""
    order = list(CURVE_STYLE)
    status = line.status if line.status in CURVE_STYLE else "dominated"
    if line.stopped_at is not None:
        status = "stopped"
    return order.index(status), status, line.stopped_at or 0


def _curve_label(line: CurveLine, status: str) -> str:
    if status == "stopped":
        return f"stopped at epoch {line.stopped_at}"
    return STATUS_STYLE[status]["name"] if status in STATUS_STYLE else status


def learning_curves_figure(
    lines: Sequence[CurveLine], units: PageUnits, marks: FrontMarks, basis: EnergyBasis | None = None
) -> Any:
    """Validation accuracy against each trial's own cumulative training energy, a line per
    trial: solid for complete trials (the front in bold blue, the knee's last epoch starred),
    dashed ending in an x for trials the early-stopping rule stopped (a legend entry per epoch
    it stopped them at), dotted for failed ones. A group of lines is one trace (lines apart by
    gaps), so a thousand trials draw as fast as a few."""
    import plotly.graph_objects as go

    energy, duration = units.scale("energy"), units.scale("duration")
    groups: dict[tuple[int, str, int], list[CurveLine]] = {}
    for line in lines:
        groups.setdefault(_curve_group(line), []).append(line)
    fig = go.Figure()
    for key in sorted(groups):
        _, status, epoch = key
        style = CURVE_STYLE[status]
        name = style["name"].format(epoch=epoch)
        xs: list[float | None] = []
        ys: list[float | None] = []
        texts: list[str | None] = []
        for line in groups[key]:
            label = _curve_label(line, status)
            planned = f" of {line.epochs}" if line.epochs is not None else ""
            for point in line.points:
                xs.append(energy.value(point.energy_j))
                ys.append(point.accuracy)
                texts.append(
                    f"trial {line.number} ({label})<br>epoch {point.epoch}{planned} · accuracy "
                    f"{plain(point.accuracy, FRACTION_DIGITS)}<br>training so far: "
                    f"{energy.text(point.energy_j)}, {duration.text(point.seconds)}"
                )
            xs.append(None)
            ys.append(None)
            texts.append(None)
        common = {"legendgroup": name, "text": texts, "hovertemplate": "%{text}<extra></extra>"}
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                # a point per epoch: a trial that trained one epoch is a point, not an empty line
                mode="lines+markers",
                name=name,
                line={"color": style["color"], "width": style["width"], "dash": style["dash"]},
                marker={"color": style["color"], "size": 2 * style["width"] + 1},
                opacity=0.6 if status in ("dominated", "failed") else 1.0,
                connectgaps=False,
                **common,
            )
        )
        if status == "stopped":  # where each was cut
            ends = [line.points[-1] for line in groups[key]]
            fig.add_trace(
                go.Scatter(
                    x=[energy.value(p.energy_j) for p in ends],
                    y=[p.accuracy for p in ends],
                    mode="markers",
                    name=name,
                    showlegend=False,
                    marker={"color": style["color"], "symbol": "x", "size": 9},
                    legendgroup=name,
                    text=[
                        f"trial {line.number} (stopped at epoch {line.stopped_at}"
                        f"{f' of {line.epochs}' if line.epochs is not None else ''})"
                        for line in groups[key]
                    ],
                    hovertemplate="%{text}<extra></extra>",
                )
            )
    knee = next((line for line in lines if line.number == marks.knee), None)
    if knee is not None:
        end = knee.points[-1]
        fig.add_trace(
            go.Scatter(
                x=[energy.value(end.energy_j)],
                y=[end.accuracy],
                mode="markers",
                name=f"knee: trial {knee.number}",
                marker={
                    "color": KNEE_STYLE["color"],
                    "symbol": KNEE_STYLE["symbol"],
                    "size": KNEE_STYLE["size"],
                    "line": {"width": 2, "color": KNEE_STYLE["color"]},
                },
                text=[f"trial {knee.number} (knee), after epoch {end.epoch}"],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    reached = [p.energy_j for line in lines for p in line.points if p.energy_j > 0]
    log = bool(reached) and max(reached) / min(reached) >= LOG_SPAN
    unit = f"{energy.unit}, log scale" if log else energy.unit
    fig.update_layout(
        xaxis={
            "title": {"text": energy_label("the trial's training energy so far", unit, basis, lines=True)},
            "type": "log" if log else "linear",
            "automargin": True,
            **PLAIN_TICKS,
        },
        yaxis={
            "title": {"text": "validation accuracy<br>(model as trained)"},
            "automargin": True,
            **PLAIN_TICKS,
        },
        **_layout(460),
    )
    return fig


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
    fig.update_layout(**_layout(360, _title_lines(titles)))
    return fig


def _spent_parts(fp: Footprint) -> list[str]:
    """The phases (and "other") some trial spent energy or time in: a phase only some searches
    run (the cost phase of early stopping) gets no empty bar or legend entry in the others."""
    return [p for p in (*PHASES, "other") if fp.phase_energy_j.get(p) or fp.phase_seconds.get(p)]


BARS_UP_TO = (
    150  # per-trial bars beyond this many trials become a stacked area (thousands of bars draw slowly)
)


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
        **_layout(360),
    )
    return fig


def importance_figure(values: Mapping[str, Mapping[str, float]], basis: EnergyBasis | None = None) -> Any:
    """One horizontal bar chart per objective (titled in words: an importance has no unit)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(values)
    titles = [metric_label(n, basis, lines=True, unit="", words=True) for n in names]
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=titles, horizontal_spacing=0.12)
    for index, name in enumerate(names, start=1):
        ranked = sorted(values[name].items(), key=lambda item: item[1])
        fig.add_trace(
            go.Bar(
                x=[v for _, v in ranked],
                y=[html.escape(p) for p, _ in ranked],
                orientation="h",
                marker_color="#0072B2",
                showlegend=False,
                hovertemplate="%{y}: %{x:.3f}<extra></extra>",
            ),
            row=1,
            col=index,
        )
    fig.update_xaxes(automargin=True, **PLAIN_TICKS)
    fig.update_yaxes(automargin=True)
    height = 120 + 22 * max((len(v) for v in values.values()), default=1)
    fig.update_layout(**_layout(max(height, 300), _title_lines(titles)))
    return fig


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
    fig.update_layout(**_layout(400 * rows + 80))
    return fig


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
    fig.update_layout(**_layout(400))
    return fig
