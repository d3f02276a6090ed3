"""The replay benchmark's HTML page (``greenml bench run``), in the style of ``greenml compare``.

Every figure on it is replayed from one table, and says so with the table's hardware; nothing
on it comes from a live search, and it shows nothing that did.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from greenml.metrics import metric, sign
from greenml.report import PLAIN_TICKS, STUDY_COLOURS, PageFigures, figure_layout, render_page
from greenml.results import write_atomic

__all__ = ["bench_html", "write_bench_report"]


def _band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 25th and 75th percentile over seeds (rows) at each point (columns)."""
    return np.median(values, axis=0), np.percentile(values, 25, axis=0), np.percentile(values, 75, axis=0)


def _rgba(colour: str, alpha: float) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def hypervolume_figure(result: Any) -> Any:
    """Median and interquartile range over seeds of the hypervolume fraction, against
    evaluations and against search energy (J, log scale), one colour per strategy."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    top = max(float(np.sum(r.energy_j)) for r in result.replays)
    low = min((e for r in result.replays for e in np.cumsum(r.energy_j) if e > 0), default=1.0)
    energies = np.geomspace(max(low, 1e-9), max(top, low * 1.01), 200)
    for index, summary in enumerate(result.summaries):
        colour = STUDY_COLOURS[index % len(STUDY_COLOURS)]
        runs = [r for r in result.replays if r.strategy == summary.name]
        length = min(len(r.hv_fraction) for r in runs)
        by_eval = np.array([r.hv_fraction[:length] for r in runs])
        by_energy = np.array([_at_energy(r, energies) for r in runs])
        for col, xs, values in ((1, np.arange(1, length + 1), by_eval), (2, energies, by_energy)):
            median, q1, q3 = _band(values)
            name = html.escape(summary.name)
            fig.add_trace(
                go.Scatter(
                    x=np.concatenate([xs, xs[::-1]]),
                    y=np.concatenate([q3, q1[::-1]]),
                    fill="toself",
                    fillcolor=_rgba(colour, 0.15),
                    line={"width": 0},
                    hoverinfo="skip",
                    legendgroup=name,
                    showlegend=False,
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=median,
                    mode="lines",
                    line={"color": colour, "shape": "hv"},
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    hovertemplate=f"{name}<br>%{{x:.4g}}: median %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    for col in (1, 2):
        fig.add_hline(y=0.95, line={"dash": "dot", "color": "#888"}, row=1, col=col)
    fig.update_xaxes(title_text="evaluations (replayed)", row=1, col=1)
    fig.update_xaxes(title_text="search energy, J (replayed)", type="log", row=1, col=2)
    fig.update_yaxes(title_text="hypervolume / true front's", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_xaxes(automargin=True, **PLAIN_TICKS)
    fig.update_yaxes(automargin=True, **PLAIN_TICKS)
    fig.update_layout(**figure_layout(420))
    return fig


def _at_energy(run: Any, energies: np.ndarray) -> np.ndarray:
    """The run's hypervolume fraction once it had spent each of ``energies`` (a step function)."""
    spent = np.cumsum(run.energy_j)
    positions = np.searchsorted(spent, energies, side="right") - 1
    hv = np.asarray(run.hv_fraction, dtype=float)
    return np.where(positions >= 0, hv[np.clip(positions, 0, len(hv) - 1)], 0.0)


def front_figure(problem: Any) -> Any:
    """Every row of the table against the first objective, the true front marked: one panel per
    other objective."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    objectives = problem.objectives
    losses = problem.table.losses(objectives)
    front = set(problem.table.true_front(objectives).tolist())
    others = list(range(1, len(objectives)))
    fig = make_subplots(rows=1, cols=max(1, len(others)), horizontal_spacing=0.08)
    # Back from losses to each objective's own values: a loss is sign x value, and sign is +-1.
    values = losses * np.array([sign(name) for name in objectives])
    for col, j in enumerate(others or [0], start=1):
        for on_front in (False, True):
            rows = [i for i in range(len(values)) if (i in front) == on_front]
            fig.add_trace(
                go.Scatter(
                    x=values[rows, j],
                    y=values[rows, 0],
                    mode="markers",
                    marker={
                        "color": "#D55E00" if on_front else "#999999",
                        "size": 8 if on_front else 5,
                        "symbol": "circle" if on_front else "circle-open",
                    },
                    name="true front (every row enumerated)" if on_front else "table rows",
                    legendgroup=str(on_front),
                    showlegend=col == 1,
                    text=[f"row {i}: " + html.escape(str(problem.table.config_params(i))) for i in rows],
                    hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        name = objectives[j]
        unit = getattr(metric(name), "unit", "") or ""
        span = values[:, j].max() / max(values[:, j].min(), 1e-300) if values[:, j].min() > 0 else 0
        fig.update_xaxes(
            title_text=f"{name}{', ' + unit if unit else ''}",
            type="log" if span > 50 else "linear",
            row=1,
            col=col,
        )
    fig.update_yaxes(title_text=objectives[0], row=1, col=1)
    fig.update_xaxes(automargin=True, **PLAIN_TICKS)
    fig.update_yaxes(automargin=True, **PLAIN_TICKS)
    fig.update_layout(**figure_layout(420))  # the page's heading says where the table was measured
    return fig


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "never"
    return f"{value:.{digits}g}"


def _joules(value: float) -> str:
    """Joules in plain digits (no scientific notation): thousands grouped, 3 significant below."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _to_target(summary: Any) -> str:
    median = summary.median_energy_to_target_j
    if median is not None:
        return _joules(median)
    return f"never (over {_joules(summary.median_energy_at_least_j)})"


def bench_html(result: Any, verdicts: Sequence[str]) -> str:
    table = result.problem.table
    label = f"replayed from a table built on {table.hardware}"
    figures = PageFigures()
    hv = figures.add(
        "Hypervolume against evaluations and against search energy (median, IQR over seeds)",
        hypervolume_figure(result),
    )
    fr = figures.add("The table and its true Pareto front", front_figure(result.problem))
    rows = [
        {
            "name": s.name,
            "median": _to_target(s),
            "reached": f"{s.reached}/{s.seeds}",
            "rank": f"{s.mean_rank:.2f}",
            "hv": f"{float(np.median(s.final_hv)):.3f}",
            "energy": _joules(float(np.median(s.energy_j))),
            "stopped": f"{float(np.median(s.stopped)):.0f}",
            "sampler": ""
            if s.median_sampler_ms_per_evaluation is None
            else f"{s.median_sampler_ms_per_evaluation:.3g}",
        }
        for s in result.summaries
    ]
    names = [s.name for s in result.summaries]
    pairwise = [
        [
            "" if a == b else _fmt(result.test.pairwise.get((a, b), result.test.pairwise.get((b, a))), 3)
            for b in names
        ]
        for a in names
    ]
    meta = table.meta
    budget = " or ".join(
        part
        for part in (
            f"{result.budget_energy_j:g} J" if result.budget_energy_j is not None else "",
            f"{result.budget_trials} evaluations" if result.budget_trials is not None else "",
        )
        if part
    )
    context = {
        "title": Path(table.source).name,
        "label": label,
        "table": {
            "source": table.source,
            "space": meta.get("space"),
            "dataset": meta.get("dataset"),
            "rows": len(table),
            "grid_size": meta.get("grid_size"),
            "missing": meta.get("missing"),
            "epochs": table.epochs,
            "built": meta.get("built_at"),
            "command": " ".join(meta.get("command") or []),
            "footprint": _fmt((meta.get("footprint") or {}).get("energy_j")),
            "basis": (meta.get("footprint") or {}).get("energy_basis", "unknown"),
        },
        "objectives": ", ".join(result.problem.objectives),
        "front_size": len(table.true_front(result.problem.objectives)),
        "budget": budget,
        "seeds": max((s.seeds for s in result.summaries), default=0),
        "rows": rows,
        "names": names,
        "pairwise": pairwise,
        "test": result.test,
        "hv_test": result.hv_test,
        "hv_pairwise": [
            [
                ""
                if a == b or result.hv_test is None
                else _fmt(result.hv_test.pairwise.get((a, b), result.hv_test.pairwise.get((b, a))), 3)
                for b in names
            ]
            for a in names
        ],
        "verdicts": list(verdicts),
        "seconds": f"{result.seconds:.1f}",
        "hv_figure": hv,
        "front_figure": fr,
    }
    return render_page("bench.html.j2", context, figures)


def write_bench_report(result: Any, verdicts: Sequence[str], path: Path) -> Path:
    write_atomic(path, bench_html(result, verdicts))
    return path
