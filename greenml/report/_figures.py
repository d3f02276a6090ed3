"""Plotly figures drawn from the data of :mod:`greenml.report._data`; nothing is computed here.

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

from greenml.metrics import COMPONENTS, METRIC_NAMES, PHASES, metric
from greenml.report._data import (
    EnergyBasis,
    Footprint,
    HypervolumePoint,
    TrialRecord,
    energy_basis,
    energy_label,
    metric_label,
)

__all__ = [
    "compare_fronts",
    "footprint_by_phase",
    "footprint_by_trial",
    "hypervolume_figure",
    "importance_figure",
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
PHASE_COLOURS = {
    "train": "#0072B2",
    "compress": "#E69F00",
    "finetune": "#56B4E9",
    "evaluate": "#009E73",
    "benchmark": "#CC79A7",
    "other": "#999999",
}
LEDGER_COLOUR = "#000000"  # the study's own entries (the teacher), apart from the phases' colours
STUDY_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
LOG_SPAN = 50.0  # an axis whose values span this factor or more is drawn on a log scale


def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def hover_text(trial: TrialRecord, status: str, study: str | None = None) -> str:
    """Every metric (with its unit) and parameter of a trial, escaped, after its notes, where it
    ran and what its energy rests on. Related metrics share a line and parameters are packed
    several to a line: Plotly does not show a hover label taller than its figure."""
    head = f"<b>trial {trial.number}</b> ({status}) · {html.escape(device_text(trial))}"
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
        _, group, unit = _hover_place(name)
        text = f"{name}: {fmt(value)}{unit}"
        groups.setdefault(group, []).append((html.escape(text), text))
    for items in groups.values():
        lines += _pack(items)
    lines += _pack(
        [
            (f"<i>{html.escape(name)}</i>: {html.escape(fmt(value))}", f"{name}: {fmt(value)}")
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
def _hover_place(name: str) -> tuple[int, str, str]:
    """A metric's place in the hover: its order (the vocabulary's), its line group, its unit."""
    return _ORDER.get(name, len(_ORDER)), _hover_group(name), _unit(name)


def device_text(trial: TrialRecord) -> str:
    """``deployed on cpu (trained on cuda:0)``; ``deploy device not recorded`` for older records."""
    if trial.deploy_device is None:
        deployed = "deploy device not recorded"
    else:
        deployed = f"deployed on {trial.deploy_device}"
    if trial.device is not None and trial.device != trial.deploy_device:
        deployed += f" (trained on {trial.device})"
    return deployed


def _unit(name: str) -> str:
    known = metric(name)
    return f" {known.unit}" if known is not None and known.unit else ""


def hover_ref(keys: Sequence[str]) -> dict[str, Any]:
    """Trace attributes that point each marker at its trial's hover text.

    The texts (every metric and parameter) sit once in the page, not once per figure: the
    page's script fills ``text`` from ``customdata`` before drawing.
    """
    return {"customdata": list(keys), "meta": "trial-hover", "hovertemplate": "%{text}<extra></extra>"}


def hover_texts(
    trials: Sequence[TrialRecord], status: Mapping[int, str], study: str | None = None, prefix: str = ""
) -> dict[str, str]:
    return {f"{prefix}{t.number}": hover_text(t, status[t.number], study) for t in trials if t.metrics}


def _axis(name: str, trials: Sequence[TrialRecord], basis: EnergyBasis | None = None) -> dict[str, Any]:
    values = [t.metrics[name] for t in trials if name in t.metrics]
    positive = [v for v in values if v > 0]
    log = bool(positive) and len(positive) == len(values) and max(positive) / min(positive) >= LOG_SPAN
    first, _, second = metric_label(name, basis, lines=True).partition("<br>")
    return {
        "title": {"text": first + (" (log)" if log else "") + (f"<br>{second}" if second else "")},
        "type": "log" if log else "linear",
    }


def _plotted(trials: Sequence[TrialRecord], objectives: Sequence[str]) -> list[TrialRecord]:
    return [t for t in trials if t.state == "COMPLETE" and all(name in t.metrics for name in objectives)]


def pareto_figures(
    trials: Sequence[TrialRecord],
    objectives: Sequence[str],
    status: Mapping[int, str],
    basis: EnergyBasis | None = None,
) -> list[tuple[str, Any]]:
    """(title, figure) pairs: a 2-D scatter for 2 objectives; a 3-D view and the pairwise
    projections for 3; parallel coordinates and the pairwise projections beyond. Energy axes
    say what ``basis`` their figures rest on."""
    import plotly.graph_objects as go

    shown = _plotted(trials, objectives)
    groups = {key: [t for t in shown if status[t.number] == key] for key in STATUS_STYLE}
    figures: list[tuple[str, Any]] = []
    if len(objectives) == 1:
        (name,) = objectives
        fig = go.Figure()
        for key, members in groups.items():
            members = sorted(members, key=lambda t: t.number)
            fig.add_trace(_scatter(go.Scatter, [], [], key, status))
            fig.data[-1].update(x=[t.number for t in members], y=[t.metrics[name] for t in members])
        fig.update_layout(xaxis={"title": {"text": "trial"}}, yaxis=_axis(name, shown, basis), **_layout(420))
        figures.append(("Objective by trial (the best feasible trial is the front)", fig))
        return figures
    if len(objectives) == 2:
        x, y = objectives
        fig = go.Figure()
        for key, members in groups.items():
            if key == "front":
                members = sorted(members, key=lambda t: t.metrics[x])
            fig.add_trace(_scatter(go.Scatter, members, [x, y], key, status, line=key == "front"))
        fig.update_layout(xaxis=_axis(x, shown, basis), yaxis=_axis(y, shown, basis), **_layout(460))
        figures.append(("Pareto front", fig))
        return figures
    if len(objectives) == 3:
        fig = go.Figure()
        for key, members in groups.items():
            fig.add_trace(_scatter(go.Scatter3d, members, list(objectives), key, status))
        fig.update_layout(
            scene={
                "xaxis": _axis(objectives[0], shown, basis),
                "yaxis": _axis(objectives[1], shown, basis),
                "zaxis": _axis(objectives[2], shown, basis),
            },
            **_layout(560),
        )
        figures.append(("Pareto front in 3-D (drag to turn)", fig))
    else:
        figures.append(
            ("Parallel coordinates of the complete trials", _parallel(shown, objectives, status, basis))
        )
    figures.append(
        (
            "Pairwise projections (status from all objectives)",
            _projections(shown, objectives, status, groups, basis),
        )
    )
    return figures


def _layout(height: int) -> dict[str, Any]:
    return {
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 30, "b": 50},
        "legend": {"orientation": "h", "y": -0.18},
        "template": "plotly_white",
        "hoverlabel": {"align": "left"},
    }


def _scatter(
    kind: Any,
    members: Sequence[TrialRecord],
    axes: Sequence[str],
    key: str,
    status: Mapping[int, str],
    line: bool = False,
    showlegend: bool = True,
) -> Any:
    style = STATUS_STYLE[key]
    coords = dict(zip(("x", "y", "z"), ([t.metrics[name] for t in members] for name in axes), strict=False))
    return kind(
        **coords,
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


def _projections(
    shown: Sequence[TrialRecord],
    objectives: Sequence[str],
    status: Mapping[int, str],
    groups: Mapping[str, Sequence[TrialRecord]],
    basis: EnergyBasis | None = None,
) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pairs = list(itertools.combinations(objectives, 2))
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.08, vertical_spacing=0.16)
    for index, (x, y) in enumerate(pairs):
        row, col = index // cols + 1, index % cols + 1
        for key, members in groups.items():
            fig.add_trace(
                _scatter(go.Scatter, members, [x, y], key, status, showlegend=index == 0), row=row, col=col
            )
        fig.update_xaxes(**_axis(x, shown, basis), row=row, col=col)
        fig.update_yaxes(**_axis(y, shown, basis), row=row, col=col)
    fig.update_layout(**_layout(360 * rows + 40))
    return fig


def _parallel(
    shown: Sequence[TrialRecord],
    objectives: Sequence[str],
    status: Mapping[int, str],
    basis: EnergyBasis | None = None,
) -> Any:
    import plotly.graph_objects as go

    order = list(STATUS_STYLE)
    codes = [order.index(status[t.number]) for t in shown]
    colours = [STATUS_STYLE[key]["color"] for key in order]
    scale = [[i / (len(order) - 1), colour] for i, colour in enumerate(colours)]
    dimensions = [
        {"label": metric_label(name, basis), "values": [t.metrics[name] for t in shown]}
        for name in objectives
    ]
    fig = go.Figure(
        go.Parcoords(
            line={"color": codes, "colorscale": scale, "cmin": 0, "cmax": len(order) - 1},
            dimensions=dimensions,
        )
    )
    fig.update_layout(**_layout(440))
    fig.update_layout(margin={"l": 80, "r": 80, "t": 60, "b": 30})
    return fig


def hypervolume_figure(history: Sequence[HypervolumePoint], basis: EnergyBasis | None = None) -> Any:
    """Hypervolume against trials finished and against the search's energy, side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    common = {
        "mode": "lines+markers" if len(history) <= BARS_UP_TO else "lines",
        "line": {"shape": "hv", "color": "#0072B2"},
        "customdata": [[p.trial, p.finished, p.energy_kwh] for p in history],
        "hovertemplate": "trial %{customdata[0]} (%{customdata[1]} finished)<br>%{customdata[2]:.4g} kWh"
        "<br>hypervolume %{y:.4g}<extra></extra>",
        "showlegend": False,
    }
    fig.add_trace(
        go.Scatter(x=[p.finished for p in history], y=[p.hypervolume for p in history], **common),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(x=[p.energy_kwh for p in history], y=[p.hypervolume for p in history], **common),
        row=1,
        col=2,
    )
    fig.update_xaxes(title_text="trials finished (failed included)", row=1, col=1)
    fig.update_xaxes(title_text=energy_label("search energy", "kWh", basis), row=1, col=2)
    fig.update_yaxes(title_text="normalised hypervolume", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(**_layout(380))
    return fig


def footprint_by_phase(fp: Footprint, basis: EnergyBasis | None = None) -> Any:
    """Energy and time per phase of the whole search, and of each of the study's ledger entries
    (the teacher), a bar of its own beside the phases."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    parts = [*PHASES, "other"]
    # A ledger entry named like a phase would share its bar: such a one keeps its prefix.
    items = [html.escape(i.name if i.name not in parts else f"ledger:{i.name}") for i in fp.ledger]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(energy_label("energy", "J", basis), "time (s)"),
        horizontal_spacing=0.12,
    )
    colours = [PHASE_COLOURS[p] for p in parts] + [LEDGER_COLOUR] * len(items)
    kinds = ["trial phase"] * len(parts) + ["study ledger, outside every trial"] * len(items)
    energy = [fp.phase_energy_j[p] for p in parts] + [item.energy_j for item in fp.ledger]
    seconds = [fp.phase_seconds[p] for p in parts] + [item.seconds for item in fp.ledger]
    for col, (values, unit) in enumerate(((energy, "J"), (seconds, "s")), start=1):
        fig.add_trace(
            go.Bar(
                x=[*parts, *items],
                y=values,
                marker_color=colours,
                customdata=kinds,
                showlegend=False,
                hovertemplate="%{x} (%{customdata}): %{y:.4g} " + unit + "<extra></extra>",
            ),
            row=1,
            col=col,
        )
    fig.update_layout(**_layout(340))
    return fig


BARS_UP_TO = (
    150  # per-trial bars beyond this many trials become a stacked area (thousands of bars draw slowly)
)


def footprint_by_trial(fp: Footprint, basis: EnergyBasis | None = None) -> Any:
    """Each trial's energy, stacked by phase (failed trials marked in the hover)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    numbers = [row.number for row in fp.trials]
    states = [row.state.lower() for row in fp.trials]
    bars = len(fp.trials) <= BARS_UP_TO
    for phase in [*PHASES, "other"]:
        values = [row.phases[phase] for row in fp.trials]
        hover = "trial %{x} (%{customdata})<br>" + phase + ": %{y:.4g} J<extra></extra>"
        colour = PHASE_COLOURS[phase]
        if bars:
            trace = go.Bar(
                x=numbers, y=values, name=phase, marker_color=colour, customdata=states, hovertemplate=hover
            )
        else:
            trace = go.Scatter(
                x=numbers,
                y=values,
                name=phase,
                stackgroup="phases",
                mode="none",
                fillcolor=colour,
                line={"shape": "hv"},
                customdata=states,
                hovertemplate=hover,
            )
        fig.add_trace(trace)
    layout = {"barmode": "stack"} if bars else {"hovermode": "x unified"}
    fig.update_layout(
        xaxis_title="trial",
        yaxis_title=energy_label("energy", "J", basis, lines=True),
        **layout,
        **_layout(360),
    )
    return fig


def importance_figure(values: Mapping[str, Mapping[str, float]], basis: EnergyBasis | None = None) -> Any:
    """One horizontal bar chart per objective."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(values)
    fig = make_subplots(
        rows=1,
        cols=len(names),
        subplot_titles=[metric_label(n, basis) for n in names],
        horizontal_spacing=0.12,
    )
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
    height = 120 + 22 * max((len(v) for v in values.values()), default=1)
    fig.update_layout(**_layout(max(height, 300)))
    return fig


def compare_fronts(
    studies: Sequence[tuple[str, Sequence[TrialRecord], Mapping[int, str]]],
    objectives: Sequence[str],
    basis: EnergyBasis | None = None,
) -> Any:
    """Each study's feasible trials (faint) and front (bold) on the same axes, pair by pair."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pairs = list(itertools.combinations(objectives, 2))
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.08, vertical_spacing=0.16)
    everything = [t for _, trials, _ in studies for t in _plotted(trials, objectives)]
    for s_index, (label, trials, status) in enumerate(studies):
        colour = STUDY_COLOURS[s_index % len(STUDY_COLOURS)]
        shown = _plotted(trials, objectives)
        for index, (x, y) in enumerate(pairs):
            row, col = index // cols + 1, index % cols + 1
            for key in ("dominated", "front"):
                members = [t for t in shown if status[t.number] == key]
                if key == "front":
                    members.sort(key=lambda t: t.metrics[x])
                fig.add_trace(
                    go.Scatter(
                        x=[t.metrics[x] for t in members],
                        y=[t.metrics[y] for t in members],
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
            fig.update_xaxes(**_axis(x, everything, basis), row=row, col=col)
            fig.update_yaxes(**_axis(y, everything, basis), row=row, col=col)
    fig.update_layout(**_layout(380 * rows + 60))
    return fig


def compare_hypervolume(
    histories: Sequence[tuple[str, Sequence[HypervolumePoint]]], basis: EnergyBasis | None = None
) -> Any:
    """Each study's hypervolume against trials and against its search energy, on one reference."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    for index, (label, history) in enumerate(histories):
        colour = STUDY_COLOURS[index % len(STUDY_COLOURS)]
        for col, xs in ((1, [p.finished for p in history]), (2, [p.energy_kwh for p in history])):
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=[p.hypervolume for p in history],
                    mode="lines",
                    line={"shape": "hv", "color": colour},
                    name=html.escape(label),
                    legendgroup=str(index),
                    showlegend=col == 1,
                    text=[f"{html.escape(label)}<br>trial {p.trial}: {p.hypervolume:.4g}" for p in history],
                    hovertemplate="%{text}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="trials finished (failed included)", row=1, col=1)
    fig.update_xaxes(title_text=energy_label("search energy", "kWh", basis), row=1, col=2)
    fig.update_yaxes(title_text="normalised hypervolume", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(**_layout(400))
    return fig
