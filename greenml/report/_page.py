"""Assemble the HTML pages: Jinja2 templates (autoescaped) around Plotly figures.

The page is one file: plotly.js, the styles and the scripts are inlined, and each figure's data
sits in a ``<script type="application/json">`` block whose ``<``, ``>`` and ``&`` are written as
JSON ``\\u`` escapes, so no string in it can close the block.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from greenml import __version__
from greenml.report import _data, _figures
from greenml.report._data import StudyRecord, TrialRecord, metric_label
from greenml.trial import MAXIMIZED

__all__ = ["comparison_html", "report_html"]

_TEMPLATES = Path(__file__).with_name("templates")
_EXTRA_COLUMNS = ("test_accuracy", "model_bytes", "inference_energy_j", "latency_ms", "accuracy")
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


@cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _assets() -> dict[str, str]:
    from plotly.offline import get_plotlyjs

    return {
        "plotlyjs": get_plotlyjs(),
        "css": (_TEMPLATES / "report.css").read_text(),
        "table_js": (_TEMPLATES / "table.js").read_text(),
        "figures_js": (_TEMPLATES / "figures.js").read_text(),
        "version": __version__,
    }


def safe_json(figure: Any) -> str:
    """A figure's JSON with every character that could end a ``<script>`` block escaped."""
    return escape_json(figure.to_json())


def escape_json(text: str) -> str:
    return re.sub("[<>&\u2028\u2029]", lambda match: _JSON_ESCAPES[match.group()], text)


@dataclass
class _Figures:
    items: list[dict[str, str]] = field(default_factory=list)

    def add(self, title: str, figure: Any) -> dict[str, str]:
        item = {"id": f"fig{len(self.items) + 1}", "title": title, "json": safe_json(figure)}
        self.items.append(item)
        return item


def _render(template: str, context: Mapping[str, Any]) -> str:
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text: str = _environment().get_template(template).render(**_assets(), created=created, **context)
    return text


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _counts_text(record: StudyRecord) -> str:
    counts = record.counts()
    order = ["COMPLETE", "FAIL", "RUNNING", "PRUNED", "WAITING"]
    parts = [f"{counts[state]} {state.lower()}" for state in order if counts.get(state)]
    return ", ".join(parts) or "no trials"


def _objectives_text(objectives: Sequence[str]) -> str:
    return ", ".join(f"{name} ({'max' if name in MAXIMIZED else 'min'})" for name in objectives)


def _loss_text(objectives: Sequence[str]) -> str:
    return ", ".join(f"error = 1 − {name}" if name in MAXIMIZED else name for name in objectives)


def _reference_text(reference: Mapping[str, float]) -> tuple[str, str]:
    shown = ", ".join(f"{name} = {_data.from_loss(name, value):.4g}" for name, value in reference.items())
    arg = ",".join(f"{name}={_data.from_loss(name, value):.6g}" for name, value in reference.items())
    return shown, arg


def _command(attrs: Mapping[str, Any]) -> str:
    command = attrs.get("command")
    return shlex.join(command) if command else "not recorded (study not created by greenml search)"


def _hardware(attrs: Mapping[str, Any]) -> tuple[str, str]:
    info = attrs.get("hardware") or {}
    if not info:
        return "not recorded", "greenml " + str(attrs.get("greenml_version", "?"))
    gpus = ", ".join(info.get("gpus") or []) or "no GPU used"
    hardware = f"{info.get('cpu', '?')} ({info.get('cpu_count', '?')} logical CPUs); {gpus}; {info.get('platform', '?')}"
    software = ", ".join(
        f"{name} {info[key]}"
        for name, key in (
            ("Python", "python"),
            ("torch", "torch"),
            ("ONNX Runtime", "onnxruntime"),
            ("Optuna", "optuna"),
        )
        if key in info
    )
    return hardware, f"greenml {attrs.get('greenml_version', '?')}, {software}"


def provenance_groups(trials: Sequence[TrialRecord]) -> list[dict[str, Any]]:
    """The distinct measurement set-ups of a study's trials (a resumed study may have several)."""
    groups: dict[str, dict[str, Any]] = {}
    for trial in trials:
        prov = trial.provenance
        if not prov:
            continue
        components = [c for c in (prov.get("components") or {}).values() if c]
        idle = prov.get("idle")
        if idle:
            watts = ", ".join(f"{k} {v:.3g} W" for k, v in idle["power_w"].items() if v is not None)
            idle_text = f"{watts or 'none'} (over {idle['seconds']:.3g} s)"
        else:
            idle_text = "not measured (no idle baseline: dynamic energy not available)"
        carbon = prov.get("carbon")
        carbon_text = (
            f"{carbon['intensity_g_per_kwh']:g} gCO2e/kWh ({carbon['source']}), PUE {carbon['pue']:g}"
            if carbon
            else "not recorded"
        )
        drivers = ", ".join(f"{k} {v}" for k, v in (prov.get("drivers") or {}).items())
        group = {
            "meter": prov.get("meter", "?"),
            "basis": prov.get("energy_basis", "unknown"),
            "components": components,
            "drivers": drivers,
            "idle": idle_text,
            "carbon": carbon_text,
            "warnings": list(prov.get("warnings") or []),
        }
        key = json.dumps(group, sort_keys=True, default=str)
        groups.setdefault(key, {**group, "trials": 0})["trials"] += 1
    return list(groups.values())


def trial_table(
    trials: Sequence[TrialRecord], objectives: Sequence[str], status: Mapping[int, str]
) -> dict[str, Any]:
    """Columns and escaped-at-render cells of a trial table (numbers carry a sort value)."""
    metric_columns = list(dict.fromkeys([*objectives, *_EXTRA_COLUMNS]))
    params = list(dict.fromkeys(name for t in trials for name in t.params))
    columns = [
        {"label": "trial", "cls": ""},
        {"label": "status", "cls": "text"},
        *({"label": metric_label(name), "cls": ""} for name in metric_columns),
        {"label": "trial energy (J)", "cls": ""},
        {"label": "time (s)", "cls": ""},
        *({"label": name, "cls": "text"} for name in params),
        {"label": "error", "cls": "text"},
    ]
    rows = []
    for trial in trials:
        cells: list[dict[str, Any]] = [
            {"text": str(trial.number), "value": trial.number, "cls": ""},
            {"text": status[trial.number], "value": None, "cls": "text"},
        ]
        for name in metric_columns:
            value = trial.metrics.get(name)
            cells.append({"text": _fmt(value), "value": value, "cls": ""})
        cells.append({"text": _fmt(trial.energy_j), "value": trial.energy_j, "cls": ""})
        cells.append({"text": _fmt(trial.seconds), "value": trial.seconds, "cls": ""})
        for name in params:
            value = trial.params.get(name)
            number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
            cells.append({"text": _fmt(value), "value": number, "cls": "text"})
        cells.append({"error": True, "text": trial.error or "", "traceback": trial.traceback or ""})
        rows.append({"status": status[trial.number], "cells": cells})
    return {"columns": columns, "rows": rows}


def report_html(
    record: StudyRecord,
    importances: Callable[[], tuple[dict[str, dict[str, float]], str | None]],
    reference: Mapping[str, float] | None = None,
    importance_evaluator: str = "mdi",
) -> str:
    """The report page of one study. ``importances`` is called last (it may still be computing
    elsewhere); ``reference`` (loss form) overrides the default point."""
    objectives = record.objectives
    status = _data.classify(record.trials, objectives)
    figures = _Figures()
    pareto = [
        figures.add(title, fig) for title, fig in _figures.pareto_figures(record.trials, objectives, status)
    ]
    front = [t for t in record.trials if status[t.number] == "front"]
    default = _data.default_reference([record], objectives)
    chosen = {**(default or {}), **(reference or {})} if (default or reference) else None
    hv_figure = None
    final_hv = reference_text = reference_arg = ""
    if chosen is not None and len(chosen) == len(objectives) and front:
        history = _data.hypervolume_history(record, objectives, chosen)
        hv_figure = figures.add(
            "Hypervolume against trials and against the search's energy", _figures.hypervolume_figure(history)
        )
        final_hv = f"{history[-1].hypervolume:.4g}" if history else "0"
        reference_text, reference_arg = _reference_text(chosen)
    fp = _data.footprint(record)
    phase_figure = figures.add("Energy and time by phase", _figures.footprint_by_phase(fp))
    trial_figure = figures.add("Energy per trial, by phase", _figures.footprint_by_trial(fp))
    values, reason = importances()
    importance_figure = (
        figures.add("Importance per objective", _figures.importance_figure(values)) if values else None
    )
    hardware, software = _hardware(record.attrs)
    carbon = provenance_groups(record.trials)
    context = {
        "study": record,
        "counts_text": _counts_text(record),
        "objectives_text": _objectives_text(objectives),
        "hardware": hardware,
        "software": software,
        "provenance": carbon,
        "command": _command(record.attrs),
        "pareto_figures": pareto,
        "front_table": trial_table(front, objectives, status),
        "hv_figure": hv_figure,
        "loss_text": _loss_text(objectives),
        "reference_text": reference_text,
        "reference_arg": reference_arg,
        "reference_origin": _reference_origin(reference, objectives),
        "final_hv": final_hv,
        "footprint": fp,
        "kpi": _kpis(fp),
        "phase_figure": phase_figure,
        "trial_figure": trial_figure,
        "importance_figure": importance_figure,
        "importance_evaluator": _EVALUATOR_NAMES[importance_evaluator],
        "importance_trials": record.counts().get("COMPLETE", 0),
        "importance_reason": reason or "",
        "trial_table": trial_table(record.trials, objectives, status),
        "hover_json": escape_json(json.dumps(_figures.hover_texts(record.trials, status))),
        "statuses": sorted(set(status.values())),
        "figures": figures.items,
    }
    return _render("report.html.j2", context)


_EVALUATOR_NAMES = {
    "mdi": "MeanDecreaseImpurityImportanceEvaluator (a random forest's impurity decrease, seed 0)",
    "fanova": "FanovaImportanceEvaluator (fANOVA on a random forest, seed 0)",
    "ped-anova": "PedAnovaImportanceEvaluator (what separates the best 10% of trials, in loss form)",
}


def _reference_origin(reference: Mapping[str, float] | None, objectives: Sequence[str]) -> str:
    if reference and set(reference) == set(objectives):
        return "given with --reference"
    given = f"; given with --reference: {', '.join(reference)}" if reference else ""
    return f"default: 1.1 × the worst feasible value of each objective, an error capped at 1{given}"


def _kpis(fp: _data.Footprint) -> dict[str, str]:
    kwh = fp.energy_kwh
    energy = f"{kwh * 1000:.3g} Wh" if kwh < 1 else f"{kwh:.3g} kWh"
    co2 = f"{fp.co2_g:.3g} g" if fp.co2_g is not None else "not recorded"
    return {
        "energy": energy,
        "energy_j": f"{fp.energy_j:.4g} J, {fp.energy_basis}",
        "co2": co2,
        "carbon": "at the recorded grid intensity and PUE",
        "wall": _duration(fp.wall_seconds),
        "trial_time": _duration(fp.trial_seconds),
    }


def comparison_html(
    records: Sequence[StudyRecord],
    labels: Sequence[str],
    objectives: Sequence[str],
    reference: Mapping[str, float] | None = None,
) -> str:
    """The comparison page: fronts on shared axes and hypervolume on one shared reference point."""
    default = _data.default_reference(records, objectives)
    chosen = {**(default or {}), **(reference or {})}
    figures = _Figures()
    statuses = [_data.classify(record.trials, objectives) for record in records]
    rows = []
    histories = []
    bases = set()
    for record, label, status in zip(records, labels, statuses, strict=True):
        counts = record.counts()
        fp = _data.footprint(record)
        complete = len(chosen) == len(objectives)
        history = _data.hypervolume_history(record, objectives, chosen) if complete else []
        histories.append((label, history))
        bases.add(fp.energy_basis)
        hardware, _ = _hardware(record.attrs)
        rows.append(
            {
                "label": label,
                "storage": record.storage,
                "space": record.attrs.get("space_spec") or record.attrs.get("space", "?"),
                "dataset": record.attrs.get("dataset", "?"),
                "sampler": record.attrs.get("sampler", "?"),
                "complete": counts.get("COMPLETE", 0),
                "failed": counts.get("FAIL", 0),
                "feasible": sum(1 for t in record.trials if t.feasible),
                "front": sum(1 for v in status.values() if v == "front"),
                "hypervolume": f"{history[-1].hypervolume:.4g}" if history else "n/a",
                "energy_kwh": f"{fp.energy_kwh:.4g}",
                "basis": fp.energy_basis,
                "hardware": hardware,
                "command": _command(record.attrs),
                "objectives": _objectives_text(record.objectives),
                "constraints": ", ".join(record.attrs.get("constraints") or []) or "none",
                "provenance": provenance_groups(record.trials),
            }
        )
    hv_figure = figures.add(
        "Hypervolume against trials and against each search's energy", _figures.compare_hypervolume(histories)
    )
    front_figure = figures.add(
        "Fronts on shared axes",
        _figures.compare_fronts(
            [
                (label, record.trials, status)
                for record, label, status in zip(records, labels, statuses, strict=True)
            ],
            objectives,
        ),
    )
    hover: dict[str, str] = {}
    for index, (record, label, status) in enumerate(zip(records, labels, statuses, strict=True)):
        hover.update(_figures.hover_texts(record.trials, status, label, prefix=f"{index}:"))
    reference_text, _ = _reference_text(chosen) if chosen else ("none (no feasible complete trial)", "")
    context = {
        "title": " vs ".join(labels),
        "studies": rows,
        "objectives_text": _objectives_text(objectives),
        "loss_text": _loss_text(objectives),
        "reference_text": reference_text,
        "reference_origin": _reference_origin(reference, objectives),
        "mixed_basis": len(bases - {"unknown"}) > 1,
        "hv_figure": hv_figure,
        "front_figure": front_figure,
        "hover_json": escape_json(json.dumps(hover)),
        "figures": figures.items,
    }
    return _render("compare.html.j2", context)
