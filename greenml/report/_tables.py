"""The trial tables: one row per trial, written and escaped here rather than in the template.

A 1,000-trial study's table has some 35,000 cells, which Jinja's loop renders several times
slower. Every text a user or a study supplied goes through ``escape``; numbers are formatted in
the page's units, and carry the value the sorting script sorts by.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from greenml.metrics import METRIC_NAMES, PHASES
from greenml.report._basis import EnergyBasis
from greenml.report._display import PageUnits, parameter_text
from greenml.report._front import FrontMarks
from greenml.report._labels import metric_label
from greenml.report._record import TrialRecord

__all__ = ["NOT_KEPT", "trial_table"]

# Metrics of the deployed artifact, shown as table columns (those some trial has) after the
# objectives, in the vocabulary's order; the trial's own cost (time, energy, CO2e, phases) is
# in its own columns and the footprint.
_COST_METRICS = {"co2_g", "trial_energy_j", "trial_seconds"} | {
    f"{phase}_{unit}" for phase in PHASES for unit in ("seconds", "energy_j")
}
_TABLE_METRICS = tuple(name for name in METRIC_NAMES if name not in _COST_METRICS)


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
