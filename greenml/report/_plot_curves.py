"""The learning curves' figure: validation accuracy against each trial's own training energy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from greenml.report._basis import EnergyBasis
from greenml.report._curves import CurveLine
from greenml.report._display import FRACTION_DIGITS, PageUnits
from greenml.report._front import FrontMarks
from greenml.report._labels import energy_label
from greenml.report._plot_style import KNEE_STYLE, LOG_SPAN, PLAIN_TICKS, STATUS_STYLE, figure_layout
from greenml.units import plain

__all__ = ["CURVE_STYLE", "learning_curves_figure"]


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
        **figure_layout(460),
    )
    return fig
