"""What every figure of a page shares: colours, markers, the layout, and plain tick labels.

Colours are colour-blind safe (Okabe-Ito, and one of Paul Tol's where eight are not enough).
:func:`figure_layout`, :data:`PLAIN_TICKS` and :data:`STUDY_COLOURS` are public: the benchmark's
page (:mod:`greenml.report.bench`) draws in the same style.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BARS_UP_TO",
    "BEST_STYLES",
    "KNEE_STYLE",
    "LEDGER_COLOUR",
    "LOG_SPAN",
    "MODEBAR_PX",
    "PHASE_COLOURS",
    "PHASE_FALLBACK",
    "PLAIN_TICKS",
    "STATUS_STYLE",
    "STUDY_COLOURS",
    "TITLE_LINE_PX",
    "figure_layout",
    "title_lines",
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
# Per-trial bars (and markers on a history) beyond this many trials become a stacked area (or a
# plain line): thousands of bars draw slowly.
BARS_UP_TO = 150
# Plotly's mode bar (24 px high, 2 px from the top, on the right) appears over the top of a
# figure on hover. Each figure keeps this strip of its top margin free for it, and subplot
# titles go below the strip, so the bar never covers a title; the bar stays (zoom, pan, reset
# the 3-D camera, save as SVG), which hiding it would lose.
MODEBAR_PX = 34
TITLE_LINE_PX = 20  # one line of a subplot title

# Ticks in the axis's own numbers: no "50µ" (SI suffix) or "5e-5" (exponent) beside a title
# that already names the unit, on linear and log axes alike.
PLAIN_TICKS: dict[str, Any] = {"exponentformat": "none", "separatethousands": True}


def figure_layout(height: int, title_lines: int = 0) -> dict[str, Any]:
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


def title_lines(titles: Sequence[str]) -> int:
    """The lines the tallest of ``titles`` takes (``<br>`` breaks them)."""
    return max((title.count("<br>") + 1 for title in titles), default=0)
