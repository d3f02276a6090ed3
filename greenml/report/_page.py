"""The two pages of a study: the report of one (:func:`report_html`) and the comparison of
several (:func:`comparison_html`), assembled from the data, figure and text modules."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from greenml.report._basis import energy_basis, estimate_share
from greenml.report._commands import study_command
from greenml.report._curves import learning_curves
from greenml.report._display import page_units
from greenml.report._energy_texts import energy_texts
from greenml.report._footprint import footprint
from greenml.report._footprint_texts import (
    curves_context,
    kpis,
    ledger_note,
    ledger_rows,
    ledger_units,
    stopping_context,
)
from greenml.report._front import classify, front_marks
from greenml.report._front_texts import (
    choices,
    loss_text,
    model_commands,
    reference_origin,
    reference_text,
)
from greenml.report._header import (
    counts_text,
    devices_text,
    hardware_lines,
    objectives_text,
    provenance_groups,
    study_setup,
    workers_context,
)
from greenml.report._html import PageFigures, render_page
from greenml.report._hypervolume import default_reference, hypervolume_history
from greenml.report._importances import IMPORTANCE_RELIABLE_TRIALS, Importances
from greenml.report._labels import energy_label
from greenml.report._plot_curves import learning_curves_figure
from greenml.report._plot_footprint import footprint_by_phase, footprint_by_trial
from greenml.report._plot_front import compare_fronts, pareto_figures
from greenml.report._plot_hover import hover_texts
from greenml.report._plot_hypervolume import compare_hypervolume, hypervolume_figure
from greenml.report._plot_importances import importance_figure
from greenml.report._record import StudyRecord
from greenml.report._tables import NOT_KEPT, trial_table
from greenml.report._workers import hardware_differences, workers
from greenml.results import KNEE_RULE
from greenml.units import plain

__all__ = ["comparison_html", "importance_caveat", "report_html"]

_EVALUATOR_NAMES = {
    "mdi": "MeanDecreaseImpurityImportanceEvaluator (a random forest's impurity decrease, seed 0)",
    "fanova": "FanovaImportanceEvaluator (fANOVA on a random forest, seed 0)",
    "ped-anova": "PedAnovaImportanceEvaluator (what separates the best 10% of trials, in loss form)",
}


def importance_caveat(found: Importances) -> str:
    """What to say beside importances from too few trials to rank parameters by ("" otherwise)."""
    if not found.values or found.reliable:
        return ""
    return (
        f"Computed from {found.trials} complete trials; fewer than {IMPORTANCE_RELIABLE_TRIALS} "
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
    status = classify(record.trials, objectives)
    basis = energy_basis(record.trials)
    marks = front_marks(record.trials, objectives)
    fp = footprint(record)
    units = page_units(record.trials, [fp])
    figures = PageFigures()
    pareto = [
        figures.add(title, fig)
        for title, fig in pareto_figures(record.trials, objectives, status, units, marks, basis)
    ]
    front = [t for t in record.trials if status[t.number] == "front"]
    commands = model_commands(record, front)
    share = estimate_share(record.trials, (t.number for t in front))
    default = default_reference([record], objectives)
    chosen = {**(default or {}), **(reference or {})} if (default or reference) else None
    hv_figure = None
    final_hv = shown_reference = reference_arg = ""
    if chosen is not None and len(chosen) == len(objectives) and front:
        history = hypervolume_history(record, objectives, chosen)
        hv_figure = figures.add(
            "Hypervolume against trials and against the search's energy",
            hypervolume_figure(history, units, basis),
        )
        final_hv = plain(history[-1].hypervolume, 4) if history else "0"
        shown_reference, reference_arg = reference_text(chosen, units)
    lines = learning_curves(record.trials, status)
    curves_figure = (
        figures.add(
            "Learning curves: validation accuracy against each trial's training energy",
            learning_curves_figure(lines, units, marks, basis),
        )
        if lines
        else None
    )
    phase_figure = figures.add("Energy and time by phase", footprint_by_phase(fp, units, basis))
    trial_figure = figures.add("Energy per trial, by phase", footprint_by_trial(fp, units, basis))
    found = importances()
    found_figure = (
        figures.add("Importance per objective", importance_figure(found.values, basis))
        if found.values
        else None
    )
    summaries = workers(record)
    machines, software = hardware_lines(record.attrs, summaries)
    hardware = machines[0] if len(machines) == 1 else "differs between the workers (see the workers below)"
    context = {
        "study": record,
        "setup": study_setup(record.attrs),
        "counts_text": counts_text(record),
        "objectives_text": objectives_text(objectives),
        "hardware": hardware,
        "software": software,
        "workers": workers_context(summaries, units),
        "workers_energy_label": energy_label("trials' energy", units.scale("energy").unit, basis),
        "provenance": provenance_groups(record.trials),
        "command": study_command(record.attrs),
        "devices": devices_text(record),
        "energy": energy_texts(record.trials, basis, share),
        "pareto_figures": pareto,
        "front_table": trial_table(front, objectives, status, units, basis, marks, commands),
        "knee_rule": KNEE_RULE[0].upper() + KNEE_RULE[1:],
        "choices": choices(front, objectives, marks, units, commands),
        "redacted": "***" in record.storage,
        "not_kept": NOT_KEPT,
        "hv_figure": hv_figure,
        "loss_text": loss_text(objectives),
        "reference_text": shown_reference,
        "reference_arg": reference_arg,
        "reference_origin": reference_origin(reference, objectives),
        "final_hv": final_hv,
        "hv_stopped": any(t.stopped is not None for t in record.finished()),
        "curves_figure": curves_figure,
        "curves": curves_context(lines, fp),
        "stopping": stopping_context(record, fp, units),
        "footprint": fp,
        "kpi": kpis(fp, units),
        "ledger": ledger_rows(fp, units),
        "ledger_units": ledger_units(units),
        "ledger_note": ledger_note(record.attrs, fp),
        "phase_figure": phase_figure,
        "trial_figure": trial_figure,
        "importance_figure": found_figure,
        "importance_evaluator": _EVALUATOR_NAMES[importance_evaluator],
        "importance_trials": found.trials,
        "importance_caveat": importance_caveat(found),
        "importance_reason": found.reason or "",
        "trial_table": trial_table(record.trials, objectives, status, units, basis),
        "statuses": sorted(set(status.values())),
    }
    hover = hover_texts(record.trials, status, units, marks=marks)
    return render_page("report.html.j2", context, figures, hover)


def comparison_html(
    records: Sequence[StudyRecord],
    labels: Sequence[str],
    objectives: Sequence[str],
    reference: Mapping[str, float] | None = None,
) -> str:
    """The comparison page: fronts on shared axes and hypervolume on one shared reference point."""
    default = default_reference(records, objectives)
    chosen = {**(default or {}), **(reference or {})}
    figures = PageFigures()
    statuses = [classify(record.trials, objectives) for record in records]
    marks = [front_marks(record.trials, objectives) for record in records]
    footprints = [footprint(record) for record in records]
    units = page_units([t for record in records for t in record.trials], footprints)
    energy = units.scale("energy")
    rows = []
    histories = []
    bases = set()
    for record, label, status, fp in zip(records, labels, statuses, footprints, strict=True):
        counts = record.counts()
        complete = len(chosen) == len(objectives)
        history = hypervolume_history(record, objectives, chosen) if complete else []
        histories.append((label, history))
        bases.add(fp.energy_basis)
        summaries = workers(record)
        machines, _ = hardware_lines(record.attrs, summaries)
        differ = hardware_differences(summaries)
        setup = study_setup(record.attrs)
        rows.append(
            {
                "label": label,
                "storage": record.storage,
                "space": setup["space_short"],
                "dataset": setup["dataset_short"],
                "sampler": setup["sampler_short"],
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
                "command": study_command(record.attrs),
                "objectives": objectives_text(record.objectives),
                "constraints": setup["constraints"],
                "provenance": provenance_groups(record.trials),
            }
        )
    basis = energy_basis(t for record in records for t in record.trials)
    hv_figure = figures.add(
        "Hypervolume against trials and against each search's energy",
        compare_hypervolume(histories, units, basis),
    )
    front_figure = figures.add(
        "Fronts on shared axes",
        compare_fronts(
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
        hover.update(hover_texts(record.trials, status, units, label, f"{index}:", mark))
    shown_reference, _ = (
        reference_text(chosen, units) if chosen else ("none (no feasible complete trial)", "")
    )
    context = {
        "title": " vs ".join(labels),
        "studies": rows,
        "objectives_text": objectives_text(objectives),
        "loss_text": loss_text(objectives),
        "reference_text": shown_reference,
        "reference_origin": reference_origin(reference, objectives),
        "mixed_basis": len(bases - {"unknown"}) > 1,
        "stopped": any(row["stopped"] for row in rows),
        "energy_label": energy.label("search energy"),
        "hv_figure": hv_figure,
        "front_figure": front_figure,
    }
    return render_page("compare.html.j2", context, figures, hover)
