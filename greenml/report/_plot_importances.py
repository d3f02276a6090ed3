"""The importances' figure: one horizontal bar chart per objective."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from greenml.report._basis import EnergyBasis
from greenml.report._labels import metric_label
from greenml.report._plot_style import PLAIN_TICKS, figure_layout, title_lines

__all__ = ["importance_figure"]


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
    fig.update_layout(**figure_layout(max(height, 300), title_lines(titles)))
    return fig
