"""Assemble the HTML pages: Jinja2 templates (autoescaped) around Plotly figures.

The page is one file: plotly.js, the styles and the scripts are inlined, and each figure's data
sits in a ``<script type="application/json">`` block whose ``<``, ``>`` and ``&`` are written as
JSON ``\\u`` escapes, so no string in it can close the block.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from greenml import __version__
from greenml.metrics import MAXIMIZED, METRIC_NAMES, PHASES
from greenml.report import _data, _figures
from greenml.report._data import (
    EnergyBasis,
    EstimateShare,
    FrontMarks,
    Importances,
    StudyRecord,
    TrialRecord,
    WorkerSummary,
    metric_label,
    metric_phrase,
)
from greenml.report._display import PageUnits, page_units, parameter_text
from greenml.results import KNEE_RULE
from greenml.units import plain

__all__ = ["comparison_html", "report_html"]

_TEMPLATES = Path(__file__).with_name("templates")
# Metrics of the deployed artifact, shown as table columns (those some trial has) after the
# objectives, in the vocabulary's order; the trial's own cost (time, energy, CO2e, phases) is
# in its own columns and the footprint.
_COST_METRICS = {"co2_g", "trial_energy_j", "trial_seconds"} | {
    f"{phase}_{unit}" for phase in PHASES for unit in ("seconds", "energy_j")
}
_TABLE_METRICS = tuple(name for name in METRIC_NAMES if name not in _COST_METRICS)
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


# A trial table's rows are written here rather than in the template: a 1,000-trial study's
# table has some 35,000 cells, which Jinja's loop renders several times slower. Every text a
# user or a study supplied goes through ``escape``; numbers are formatted here.


def _number_cell(value: float | None, text: str, attrs: str = "") -> str:
    """A cell showing ``text`` whose ``data-v`` (``value`` to 8 significant digits, shorter than
    a repr; read by the sorting script, never shown) is what it sorts by."""
    shown = escape(text)
    if value is None:
        return f"<td{attrs}>{shown}</td>"
    sort = value if isinstance(value, int) else f"{value:.8g}"
    return f'<td{attrs} data-v="{sort}">{shown}</td>'


def _whole_cell(value: int | None) -> str:
    return _number_cell(value, "" if value is None else str(value))


NOT_KEPT = "model not kept (searched with --keep-models none, or before greenml kept models)"


def _model_cell(command: str | None) -> str:
    """The command that writes the trial's model, with a copy button; or why there is none."""
    if command is None:
        return f'<td class="text model not-kept">{escape(NOT_KEPT)}</td>'
    return (
        f'<td class="text model"><code>{escape(command)}</code> <button type="button" class="copy" '
        f'data-copy="{escape(command)}" title="copy the command">copy</button></td>'
    )


def _notes_cell(notes: Sequence[str]) -> str:
    """Empty, or a ⚠ that names the notes on hover and lists them on click."""
    if not notes:
        return '<td class="notes text"></td>'
    count = f"{len(notes)} note{'s' if len(notes) > 1 else ''}"
    items = "".join(f"<li>{escape(note)}</li>" for note in notes)
    return (
        f'<td class="notes text" data-v="{len(notes)}"><details><summary class="note-mark" '
        f'title="{escape(chr(10).join(notes))}">⚠ {count}</summary><ul>{items}</ul></details></td>'
    )


def _error_cell(error: str, traceback: str) -> str:
    """The error, with its traceback a click away."""
    if not traceback:
        return f'<td class="error text">{escape(error)}</td>'
    return (
        f'<td class="error text"><details><summary>{escape(error)}</summary>'
        f"<pre>{escape(traceback)}</pre></details></td>"
    )


def _counts_text(record: StudyRecord) -> str:
    """``36 complete, 4 fail, 6 stopped early``: a pruned trial the early-stopping rule stopped
    is "stopped early"; one pruned otherwise (a surplus trial, which never ran) "pruned"."""
    counts = record.counts()
    stopped = sum(1 for t in record.trials if t.stopped is not None)
    counts["PRUNED"] = counts.get("PRUNED", 0) - stopped
    counts["STOPPED EARLY"] = stopped
    order = ["COMPLETE", "FAIL", "STOPPED EARLY", "RUNNING", "PRUNED", "WAITING"]
    parts = [f"{counts[state]} {state.lower()}" for state in order if counts.get(state)]
    return ", ".join(parts) or "no trials"


def _objectives_text(objectives: Sequence[str]) -> str:
    return ", ".join(f"{name} ({'max' if name in MAXIMIZED else 'min'})" for name in objectives)


def _loss_text(objectives: Sequence[str]) -> str:
    return ", ".join(f"error = 1 − {name}" if name in MAXIMIZED else name for name in objectives)


def _reference_text(reference: Mapping[str, float], units: PageUnits) -> tuple[str, str]:
    """The reference point as the page shows it (in its units) and as ``--reference`` takes it
    (base units, plain decimals)."""
    raw = {name: _data.from_loss(name, value) for name, value in reference.items()}
    shown = ", ".join(f"{name} = {units.text(name, value)}" for name, value in raw.items())
    arg = ",".join(f"{name}={plain(value, 6)}" for name, value in raw.items())
    return shown, arg


def _command(attrs: Mapping[str, Any]) -> str:
    command = attrs.get("command")
    return shlex.join(command) if command else "not recorded (study not created by greenml search)"


def hardware_text(info: Mapping[str, Any]) -> str:
    """``CPU (8 logical CPUs); GPUs or "no GPU used"; platform``; "not recorded" where empty."""
    if not info:
        return "not recorded"
    gpus = ", ".join(info.get("gpus") or []) or "no GPU used"
    return f"{info.get('cpu', '?')} ({info.get('cpu_count', '?')} logical CPUs); {gpus}; {info.get('platform', '?')}"


def _hardware(attrs: Mapping[str, Any], summaries: Sequence[WorkerSummary] = ()) -> tuple[list[str], str]:
    """The distinct hardware lines (the workers', where they recorded it; else the study's,
    written by its first worker) and the software line (the study's)."""
    info = attrs.get("hardware") or {}
    texts = list(dict.fromkeys(hardware_text(w.hardware) for w in summaries if w.hardware))
    hardware = texts or [hardware_text(info)]
    if not info:
        return hardware, "greenml " + str(attrs.get("greenml_version", "?"))
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


def workers_context(summaries: Sequence[WorkerSummary], units: PageUnits) -> dict[str, Any]:
    """The workers' table (one row each, plain text) and, where their machines differ in what
    energy and latency depend on, the warning that says so (else "")."""
    rows = []
    for worker in summaries:
        info = worker.hardware
        gpus = info.get("gpus")
        rows.append(
            {
                "number": "not recorded" if worker.number is None else str(worker.number),
                "host": worker.host or info.get("host") or "not recorded",
                "pid": "" if worker.pid is None else str(worker.pid),
                "cpu": str(info.get("cpu") or "not recorded"),
                "cpu_count": str(info.get("cpu_count") or "?"),
                "gpus": "not recorded" if gpus is None else ", ".join(map(str, gpus)) or "no GPU used",
                "meter": str(info.get("meter") or "not recorded"),
                "trials": str(worker.trials),
                "energy_j": units.scale("energy").format(worker.energy_j),
            }
        )
    differ = _data.hardware_differences(summaries)
    warning = (
        f"The workers ran on different hardware ({', '.join(differ)} differ): their trials' energy "
        "and latency are not comparable with each other. The trial table's worker and host columns "
        "say where each trial ran."
        if differ
        else ""
    )
    return {"rows": rows, "warning": warning}


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
            watts = ", ".join(f"{k} {plain(v, 3)} W" for k, v in idle["power_w"].items() if v is not None)
            idle_text = f"{watts or 'none'} (over {plain(idle['seconds'], 3)} s)"
        else:
            idle_text = "not measured (no idle baseline: dynamic energy not available)"
        carbon = prov.get("carbon")
        carbon_text = (
            f"{plain(carbon['intensity_g_per_kwh'])} gCO2e/kWh ({carbon['source']}), PUE {plain(carbon['pue'])}"
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
            "notes": list(prov.get("notes") or []),
        }
        key = json.dumps(group, sort_keys=True, default=str)
        groups.setdefault(key, {**group, "trials": 0})["trials"] += 1
    return list(groups.values())


def trial_table(
    trials: Sequence[TrialRecord],
    objectives: Sequence[str],
    status: Mapping[int, str],
    units: PageUnits,
    basis: EnergyBasis | None = None,
    marks: FrontMarks | None = None,
    commands: Mapping[int, str | None] | None = None,
) -> dict[str, Any]:
    """Columns and rows (escaped markup) of a trial table (numbers carry a sort value): the
    trial's ``marks`` (knee, best per objective) and the ``commands`` that write their models
    where given (the front's table), the worker and host that ran it, the trial it retries, the
    deploy device, the trial's notes (a ⚠ that opens them), why the early-stopping rule stopped
    it (a column only where it stopped some trial), the objectives and every other
    metric of the deployed artifact that some trial has, in the page's ``units``, with the
    energy ``basis``."""
    present = {name for t in trials for name in t.metrics}
    extra = [name for name in _TABLE_METRICS if name in present]
    metric_columns = list(dict.fromkeys([*objectives, *extra]))
    params = list(dict.fromkeys(name for t in trials for name in t.params))
    energy, duration = units.scale("energy"), units.scale("duration")
    stopping = any(t.stopped is not None for t in trials)
    columns = [
        {"label": "trial", "cls": ""},
        {"label": "status", "cls": "text"},
        *([{"label": "marks", "cls": "text"}] if marks is not None else []),
        *([{"label": "get its model", "cls": "text"}] if commands is not None else []),
        {"label": "worker", "cls": ""},
        {"label": "host", "cls": "text"},
        {"label": "retry of", "cls": ""},
        {"label": "deploy device", "cls": "text"},
        {"label": "notes", "cls": "text"},
        *([{"label": "why stopped", "cls": "text"}] if stopping else []),
        *({"label": metric_label(name, basis, unit=units.unit(name)), "cls": ""} for name in metric_columns),
        {"label": metric_label("trial_energy_j", basis, unit=energy.unit), "cls": ""},
        {"label": duration.label("time"), "cls": ""},
        *({"label": name, "cls": "text"} for name in params),
        {"label": "error", "cls": "text"},
    ]
    rows = []
    for trial in trials:
        place = escape(status[trial.number])
        deployed = trial.deploy_device or ("not recorded" if trial.state == "COMPLETE" else "")
        cells = [
            f'<tr class="status-{place}" data-status="{place}"><td data-v="{trial.number}">{trial.number}</td>',
            f'<td class="text">{place}</td>',
        ]
        if marks is not None:
            cells.append(f'<td class="text marks">{escape(" · ".join(marks.labels(trial.number)))}</td>')
        if commands is not None:
            cells.append(_model_cell(commands.get(trial.number)))
        cells += [
            _whole_cell(trial.worker_number),
            f'<td class="text">{escape(trial.host or "")}</td>',
            _whole_cell(trial.retry_of),
            f'<td class="text">{escape(deployed)}</td>',
            _notes_cell(trial.notes),
        ]
        if stopping:
            cells.append(f'<td class="text stopped">{escape(trial.stopped or "")}</td>')
        cells += [
            _number_cell(trial.metrics.get(name), units.cell(name, trial.metrics.get(name)))
            for name in metric_columns
        ]
        cells += [
            _number_cell(trial.energy_j, "" if trial.energy_j is None else energy.format(trial.energy_j)),
            _number_cell(trial.seconds, "" if trial.seconds is None else duration.format(trial.seconds)),
        ]
        for name in params:
            value = trial.params.get(name)
            number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
            cells.append(
                _number_cell(number, "" if value is None else parameter_text(value), ' class="text"')
            )
        cells.append(_error_cell(trial.error or "", trial.traceback or ""))
        cells.append("</tr>")
        rows.append(Markup("".join(cells)))
    return {"columns": columns, "rows": rows}


def model_commands(record: StudyRecord, trials: Sequence[TrialRecord]) -> dict[int, str | None]:
    """Per front trial, the command that writes its model, or None where its model was not kept.

    A front trial's model record means its file is kept: ``--keep-models front`` deletes only
    the files of trials off the front, and a trial on the front now never left it."""
    return {
        t.number: _data.model_command(record.name, record.storage, t.number, record.attrs)
        if t.model
        else None
        for t in trials
    }


def choices(
    front: Sequence[TrialRecord],
    objectives: Sequence[str],
    marks: FrontMarks,
    units: PageUnits,
    commands: Mapping[int, str | None],
) -> list[dict[str, Any]]:
    """The knee and each objective's best, one entry per trial (a trial may be several): its
    marks, its objectives in the page's units, and the command that writes its model."""
    by_number = {t.number: t for t in front}
    numbers = [n for n in dict.fromkeys([marks.knee, *marks.best.values()]) if n is not None]
    return [
        {
            "number": number,
            "marks": " · ".join(marks.labels(number)),
            "objectives": ", ".join(
                f"{metric_phrase(name)} {units.text(name, by_number[number].metrics[name])}"
                for name in objectives
            ),
            "command": commands.get(number),
        }
        for number in numbers
    ]


def importance_caveat(found: Importances) -> str:
    """What to say beside importances from too few trials to rank parameters by ("" otherwise)."""
    if not found.values or found.reliable:
        return ""
    return (
        f"Computed from {found.trials} complete trials; fewer than {_data.IMPORTANCE_RELIABLE_TRIALS} "
        "make importances unreliable: a few more trials can reorder them."
    )


def report_html(
    record: StudyRecord,
    importances: Callable[[], Importances],
    reference: Mapping[str, float] | None = None,
    importance_evaluator: str = "mdi",
) -> str:
    """The report page of one study. ``importances`` is called last (it may still be computing
    elsewhere); ``reference`` (loss form) overrides the default point."""
    objectives = record.objectives
    status = _data.classify(record.trials, objectives)
    basis = _data.energy_basis(record.trials)
    marks = _data.front_marks(record.trials, objectives)
    fp = _data.footprint(record)
    units = page_units(record.trials, [fp])
    figures = _Figures()
    pareto = [
        figures.add(title, fig)
        for title, fig in _figures.pareto_figures(record.trials, objectives, status, units, marks, basis)
    ]
    front = [t for t in record.trials if status[t.number] == "front"]
    commands = model_commands(record, front)
    share = _data.estimate_share(record.trials, (t.number for t in front))
    default = _data.default_reference([record], objectives)
    chosen = {**(default or {}), **(reference or {})} if (default or reference) else None
    hv_figure = None
    final_hv = reference_text = reference_arg = ""
    if chosen is not None and len(chosen) == len(objectives) and front:
        history = _data.hypervolume_history(record, objectives, chosen)
        hv_figure = figures.add(
            "Hypervolume against trials and against the search's energy",
            _figures.hypervolume_figure(history, units, basis),
        )
        final_hv = plain(history[-1].hypervolume, 4) if history else "0"
        reference_text, reference_arg = _reference_text(chosen, units)
    lines = _data.learning_curves(record.trials, status)
    curves_figure = (
        figures.add(
            "Learning curves: validation accuracy against each trial's training energy",
            _figures.learning_curves_figure(lines, units, marks, basis),
        )
        if lines
        else None
    )
    phase_figure = figures.add("Energy and time by phase", _figures.footprint_by_phase(fp, units, basis))
    trial_figure = figures.add("Energy per trial, by phase", _figures.footprint_by_trial(fp, units, basis))
    found = importances()
    importance_figure = (
        figures.add("Importance per objective", _figures.importance_figure(found.values, basis))
        if found.values
        else None
    )
    summaries = _data.workers(record)
    machines, software = _hardware(record.attrs, summaries)
    hardware = machines[0] if len(machines) == 1 else "differs between the workers (see the workers below)"
    carbon = provenance_groups(record.trials)
    context = {
        "study": record,
        "counts_text": _counts_text(record),
        "objectives_text": _objectives_text(objectives),
        "hardware": hardware,
        "software": software,
        "workers": workers_context(summaries, units),
        "workers_energy_label": _data.energy_label("trials' energy", units.scale("energy").unit, basis),
        "provenance": carbon,
        "command": _command(record.attrs),
        "devices": _devices(record),
        "energy": energy_texts(record.trials, basis, share),
        "pareto_figures": pareto,
        "front_table": trial_table(front, objectives, status, units, basis, marks, commands),
        "knee_rule": KNEE_RULE[0].upper() + KNEE_RULE[1:],
        "choices": choices(front, objectives, marks, units, commands),
        "redacted": "***" in record.storage,
        "not_kept": NOT_KEPT,
        "hv_figure": hv_figure,
        "loss_text": _loss_text(objectives),
        "reference_text": reference_text,
        "reference_arg": reference_arg,
        "reference_origin": _reference_origin(reference, objectives),
        "final_hv": final_hv,
        "hv_stopped": any(t.stopped is not None for t in record.finished()),
        "curves_figure": curves_figure,
        "curves": curves_context(lines, fp),
        "stopping": stopping_context(record, fp, units),
        "footprint": fp,
        "kpi": _kpis(fp, units),
        "ledger": ledger_rows(fp, units),
        "ledger_units": _ledger_units(units),
        "ledger_note": _ledger_note(record.attrs, fp),
        "phase_figure": phase_figure,
        "trial_figure": trial_figure,
        "importance_figure": importance_figure,
        "importance_evaluator": _EVALUATOR_NAMES[importance_evaluator],
        "importance_trials": found.trials,
        "importance_caveat": importance_caveat(found),
        "importance_reason": found.reason or "",
        "trial_table": trial_table(record.trials, objectives, status, units, basis),
        "hover_json": escape_json(
            json.dumps(_figures.hover_texts(record.trials, status, units, marks=marks))
        ),
        "statuses": sorted(set(status.values())),
        "figures": figures.items,
    }
    return _render("report.html.j2", context)


def curves_context(lines: Sequence[_data.CurveLine], fp: _data.Footprint) -> dict[str, Any]:
    """What the learning curves' note names: whether some drawn line was stopped or failed, and
    how many stopped trials have no line (stopped before training)."""
    return {
        "stopped": any(line.stopped_at is not None for line in lines),
        "failed": any(line.status == "failed" for line in lines),
        "unseen": fp.stopping.before_training if fp.stopping is not None else 0,
    }


def stopping_context(record: StudyRecord, fp: _data.Footprint, units: PageUnits) -> dict[str, str] | None:
    """The footprint's early-stopping figures and the words that define them; None for a study
    that neither ran under early stopping nor has a stopped trial."""
    savings = fp.stopping
    if savings is None:
        return None
    energy = units.scale("energy")
    rule = _data.stopping_rule(record.attrs)
    who = f"Early stopping ({rule})" if rule else "The early-stopping rule"
    stopped = [t for t in record.trials if t.stopped is not None]
    qualifier = _data.energy_basis(stopped).qualifier() if stopped else ""
    cost = (
        f"Early stopping's own cost, measuring every trial's deployment cost before its training "
        f'(the "cost" phase below), was {energy.text(savings.cost_phase_j)}.'
    )
    if not savings.trials:
        return {
            "summary": f"{who} stopped no trial. {cost}",
            "spent": "",
            "spent_basis": "",
            "saved": "",
            "rule": "",
            "cost_phase": energy.text(savings.cost_phase_j),
        }
    count = len(savings.trials)
    trials = f"{count} trial{'s' if count != 1 else ''}"
    names = sorted({name for t in record.trials for name in _data.architecture(t)})
    shape = (
        f"({', '.join(names)})"
        if names
        else "(this space records none: every parameter is a training setting)"
    )
    rule_text = (
        "The saving is an estimate, extrapolated, not measured: the training energy the stopped trials "
        "would have spent had they trained all E epochs they sampled (their epochs parameter). For a "
        "trial stopped after k ≥ 1 of its E epochs: its own training energy per epoch (its learning "
        "curve's energy at epoch k, divided by k) × (E − k). For a trial stopped before training (k = 0): "
        "the median training energy per epoch (a complete trial's curve energy at its last epoch, "
        f"divided by that epoch) of the complete trials with the same architecture parameters {shape}, "
        "or where there are none, of all complete trials, × E. It counts training only: a stopped trial "
        "also skipped compression, fine-tuning, evaluation and the benchmark, which it leaves out."
    )
    covered = [
        (savings.covered(_data.OWN_CURVE), "from their own learning curve"),
        (savings.covered(_data.SAME_ARCHITECTURE), "from complete trials of the same architecture"),
        (savings.covered(_data.ALL_COMPLETE), "from all complete trials"),
    ]
    parts = [f"{n} {how}" for n, how in covered if n]
    missing = savings.covered(None)
    if missing:
        parts.append(
            f"{missing} left out, with no basis (no sampled epochs recorded, or no complete trial with "
            "a learning curve to take a median from)"
        )
    estimated = missing < count
    return {
        "summary": f"{who} stopped {trials}: {savings.at_rung} at a rung, {savings.before_training} "
        f"before training. They spent {energy.text(savings.spent_j)}"
        f"{f' ({qualifier})' if qualifier else ''}, counted in the energy above. {cost}",
        "spent": energy.text(savings.spent_j),
        "spent_basis": qualifier or "measured",
        "saved": f"≈ {energy.text(savings.saved_j)}" if estimated else "not estimated",
        "rule": f"{rule_text} Estimated here: {'; '.join(parts)}.",
        "cost_phase": energy.text(savings.cost_phase_j),
    }


def _devices(record: StudyRecord) -> dict[str, str]:
    """The study's training and deploy devices, and where its trials' artifacts really ran when
    that is not (only) the study's deploy device (ONNX Runtime artifacts run on the CPU)."""
    device = str(record.attrs.get("device") or "not recorded")
    recorded = record.attrs.get("deploy_device")
    deploy = str(recorded) if recorded else "not recorded"
    counts = Counter(t.deploy_device for t in record.trials if t.deploy_device)
    if counts and (len(counts) > 1 or recorded not in counts):
        deploy += " (by trial: " + ", ".join(f"{n} on {name}" for name, n in counts.most_common()) + ")"
    return {"device": device, "deploy": deploy}


def _percent(share: float) -> str:
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


def share_text(share: EstimateShare) -> str:
    """``CPU estimate: 37% of inference energy (median over the 9 front trials; 35% over all 52
    complete trials), 22% of search energy.``"""
    parts = []
    if share.front is not None:
        over = f"median over the {share.front_trials} front trials"
        if share.complete is not None:
            over += f"; {_percent(share.complete)} over all {share.complete_trials} complete trials"
        parts.append(f"{_percent(share.front)} of inference energy ({over})")
    elif share.complete is not None:
        parts.append(
            f"{_percent(share.complete)} of inference energy (median over all {share.complete_trials} complete trials)"
        )
    if share.search is not None:
        parts.append(f"{_percent(share.search)} of search energy")
    estimate = f"{_data.components_text(share.components)} estimate"
    if not parts:
        return f"{estimate}: its share is unknown (the trials record no per-component energy)."
    return f"{estimate}: {', '.join(parts)}."


def energy_texts(
    trials: Sequence[TrialRecord], basis: EnergyBasis, share: EstimateShare | None
) -> dict[str, str]:
    """What the page says about its energy figures: ``basis`` (a paragraph under the header, ""
    when measured), ``share`` (the estimated part's share, where only part is estimated),
    ``pareto`` (the front's note) and ``footprint`` (the footprint's note)."""
    measured_parts = "Accuracy, latency and size are measured on the deployed artifact"
    proportional = (
        "On this basis energy per inference is proportional to CPU time (CPU time × a fixed power "
        "per core), so it adds no information beyond latency × threads: an energy objective ranks "
        "trials as CPU time does."
    )
    shown_share = (
        share_text(share) if share is not None and basis.basis in ("partly estimated", "mixed") else ""
    )
    if basis.basis == "measured":
        return {
            "basis": "",
            "share": "",
            "pareto": "Accuracy, latency, energy and size are measured on the deployed artifact.",
            "footprint": "measured",
        }
    if basis.basis == "estimated":
        how = basis.estimate
        return {
            "basis": f"Energy is {how}, not measured: no power meter was read. "
            + (proportional if basis.cpu_time else ""),
            "share": "",
            "pareto": f"{measured_parts}; energy is not: it is {how} (see the energy basis above).",
            "footprint": f"{how} (not read from a power meter; see the provenance above)",
        }
    if basis.basis == "partly estimated":
        estimated = _data.components_text(basis.estimated)
        measured = _data.components_text([c for c in basis.measured if c not in basis.estimated])
        what = f"{estimated} part {basis.estimate}" + (f", {measured} measured" if measured else "")
        tail = (
            f" The {estimated} part is proportional to CPU time: it adds no information beyond latency × threads."
            if basis.cpu_time
            else ""
        )
        return {
            "basis": f"Energy is partly estimated: {what}.{tail}",
            "share": shown_share,
            "pareto": f"{measured_parts}; so is its energy, except the {estimated} part, {basis.estimate} "
            "(its share is stated above).",
            "footprint": f"partly estimated ({what}; see the share above)",
        }
    if basis.basis == "mixed":
        counts = Counter(
            str((t.provenance or {}).get("energy_basis") or "not recorded")
            for t in trials
            if t.provenance is not None or not t.unfinished  # not written yet is not "not recorded"
        )
        listed = ", ".join(f"{name} in {n} trials" for name, n in counts.most_common())
        return {
            "basis": f"Energy rests on different bases in different trials ({listed}): "
            "their energy figures do not compare with each other.",
            "share": shown_share,
            "pareto": f"{measured_parts}; energy is measured in some trials and estimated in others "
            "(see the energy basis above).",
            "footprint": "measured in some trials and estimated in others (see the provenance above)",
        }
    return {
        "basis": "No trial recorded whether its energy was measured or estimated.",
        "share": "",
        "pareto": f"{measured_parts}; whether energy was measured or estimated was not recorded.",
        "footprint": "of unknown basis (no trial recorded whether it was measured or estimated)",
    }


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


def ledger_rows(fp: _data.Footprint, units: PageUnits) -> list[dict[str, str]]:
    """The footprint's items: the trials, each ledger entry (the teacher), the total; [] when the
    study has no ledger entry (the trials are then the whole). Numbers in the page's units."""
    if not fp.ledger:
        return []
    energy, duration, mass = units.scale("energy"), units.scale("duration"), units.scale("mass")

    def co2(value: float | None) -> str:
        return "not recorded" if value is None else mass.format(value)

    trial_co2 = [row.co2_g for row in fp.trials]
    rows = [
        {
            "item": f"trials ({len(fp.trials)})",
            "energy_j": energy.format(fp.trial_energy_j),
            "seconds": duration.format(fp.trial_seconds),
            "co2_g": co2(None if None in trial_co2 else sum(v or 0.0 for v in trial_co2)),
            "basis": "",
            "by": "",
        }
    ]
    for item in fp.ledger:
        by = "" if item.worker is None else f"worker {item.worker}"
        if item.host:
            by = f"{by} on {item.host}" if by else item.host
        rows.append(
            {
                "item": item.name,
                "energy_j": energy.format(item.energy_j),
                "seconds": duration.format(item.seconds),
                "co2_g": co2(item.co2_g),
                "basis": item.energy_basis,
                "by": by,
            }
        )
    rows.append(
        {
            "item": "total",
            "energy_j": energy.format(fp.energy_j),
            "seconds": "",
            "co2_g": co2(fp.co2_g),
            "basis": fp.energy_basis,
            "by": "",
        }
    )
    return rows


def _ledger_units(units: PageUnits) -> dict[str, str]:
    return {
        "energy": units.scale("energy").label("energy"),
        "time": units.scale("duration").label("time"),
        "co2": units.scale("mass").label("CO2e"),
    }


def _ledger_note(attrs: Mapping[str, Any], fp: _data.Footprint) -> str:
    """Where the footprint shows the study's own spending (the distillation teacher's above all)."""
    notes = []
    if any(item.name == "teacher" for item in fp.ledger):
        notes.append(
            "The distillation teacher, trained once for the whole study outside every trial, is an "
            'item of its own ("teacher"), counted in the total.'
        )
    elif "teacher_energy_j" in attrs:  # a study from before the ledger: the teacher ran inside a trial
        notes.append("The distillation teacher was trained inside the first distilling trial's train phase.")
    others = [item.name for item in fp.ledger if item.name != "teacher"]
    if others:
        notes.append(
            f"The study's other ledger entries ({', '.join(others)}: spending that belongs to no trial) "
            "are items of their own too."
        )
    return " ".join(notes)


def _kpis(fp: _data.Footprint, units: PageUnits) -> dict[str, str]:
    """The footprint's headline figures, in the page's units like every other figure on it."""
    duration = units.scale("duration")
    return {
        "energy": units.scale("energy").text(fp.energy_j),
        "energy_basis": fp.energy_basis,
        "co2": units.scale("mass").text(fp.co2_g) if fp.co2_g is not None else "not recorded",
        "carbon": "at the recorded grid intensity and PUE",
        "wall": duration.text(fp.wall_seconds),
        "trial_time": duration.text(fp.trial_seconds),
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
    marks = [_data.front_marks(record.trials, objectives) for record in records]
    footprints = [_data.footprint(record) for record in records]
    units = page_units([t for record in records for t in record.trials], footprints)
    energy = units.scale("energy")
    rows = []
    histories = []
    bases = set()
    for record, label, status, fp in zip(records, labels, statuses, footprints, strict=True):
        counts = record.counts()
        complete = len(chosen) == len(objectives)
        history = _data.hypervolume_history(record, objectives, chosen) if complete else []
        histories.append((label, history))
        bases.add(fp.energy_basis)
        summaries = _data.workers(record)
        machines, _ = _hardware(record.attrs, summaries)
        differ = _data.hardware_differences(summaries)
        rows.append(
            {
                "label": label,
                "storage": record.storage,
                "space": record.attrs.get("space_spec") or record.attrs.get("space", "?"),
                "dataset": record.attrs.get("dataset", "?"),
                "sampler": record.attrs.get("sampler", "?"),
                "complete": counts.get("COMPLETE", 0),
                "failed": counts.get("FAIL", 0),
                "stopped": sum(1 for t in record.trials if t.stopped is not None),
                "feasible": sum(1 for t in record.trials if t.feasible),
                "front": sum(1 for v in status.values() if v == "front"),
                "hypervolume": plain(history[-1].hypervolume, 4) if history else "n/a",
                "energy": energy.format(fp.energy_j),
                "basis": fp.energy_basis,
                "hardware": "; ".join(machines),
                "hardware_warning": f"workers differ in {', '.join(differ)}: energy and latency do not compare"
                if differ
                else "",
                "command": _command(record.attrs),
                "objectives": _objectives_text(record.objectives),
                "constraints": ", ".join(record.attrs.get("constraints") or []) or "none",
                "provenance": provenance_groups(record.trials),
            }
        )
    basis = _data.energy_basis(t for record in records for t in record.trials)
    hv_figure = figures.add(
        "Hypervolume against trials and against each search's energy",
        _figures.compare_hypervolume(histories, units, basis),
    )
    front_figure = figures.add(
        "Fronts on shared axes",
        _figures.compare_fronts(
            [
                (label, record.trials, status, mark)
                for record, label, status, mark in zip(records, labels, statuses, marks, strict=True)
            ],
            objectives,
            units,
            basis,
        ),
    )
    hover: dict[str, str] = {}
    for index, (record, label, status, mark) in enumerate(zip(records, labels, statuses, marks, strict=True)):
        hover.update(_figures.hover_texts(record.trials, status, units, label, f"{index}:", mark))
    reference_text, _ = (
        _reference_text(chosen, units) if chosen else ("none (no feasible complete trial)", "")
    )
    context = {
        "title": " vs ".join(labels),
        "studies": rows,
        "objectives_text": _objectives_text(objectives),
        "loss_text": _loss_text(objectives),
        "reference_text": reference_text,
        "reference_origin": _reference_origin(reference, objectives),
        "mixed_basis": len(bases - {"unknown"}) > 1,
        "stopped": any(row["stopped"] for row in rows),
        "energy_label": energy.label("search energy"),
        "hv_figure": hv_figure,
        "front_figure": front_figure,
        "hover_json": escape_json(json.dumps(hover)),
        "figures": figures.items,
    }
    return _render("compare.html.j2", context)
