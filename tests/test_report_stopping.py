"""What a report page shows of early stopping and learning curves."""

from __future__ import annotations

import html as markup
import json
import re
from pathlib import Path

import optuna
import pytest
from _report_helpers import _axis_titles, _base, _report, _rows, _table

from greenml.cli import main
from greenml.metrics import PHASES
from greenml.models import knee_trial
from greenml.report import Importances, load_record, report_html
from greenml.report._plot_style import LEDGER_COLOUR, PHASE_COLOURS, PHASE_FALLBACK
from greenml.report._stopping import ALL_COMPLETE, OWN_CURVE, SAME_ARCHITECTURE, stopping_savings
from greenml.testing.studies import make_study
from greenml.units import QUANTITIES

optuna.logging.set_verbosity(optuna.logging.ERROR)


CURVES_TITLE = "Learning curves: validation accuracy against each trial&#39;s training energy"


def _figure(html: str, title: str) -> dict[str, object]:
    """The figure under the heading ``title`` (escaped as the page writes it)."""
    ids = re.findall(r'<h3>(.*?)</h3>\n<div class="figure" id="(fig\d+)"', html)
    found = [figure for heading, figure in ids if heading == title]
    assert len(found) == 1, (title, ids)
    block = re.search(rf'<script type="application/json" id="{found[0]}-data">(.*?)</script>', html, re.S)
    assert block is not None
    return json.loads(block.group(1))  # type: ignore[no-any-return]


def _kpi(html: str, id: str) -> tuple[str, str]:
    found = re.search(rf'<div class="kpi" id="{id}">[^<]*<b>(.*?)</b>(.*?)</div>', html, re.S)
    assert found is not None, id
    return markup.unescape(found.group(1)), found.group(2)


def test_early_stopping_and_curves_appear_only_where_relevant(storage: str, tmp_path: Path) -> None:
    # Neither early stopping nor curves: no stopped line, no saving, no curves, no stopped column.
    plain = _report(storage, "tpe-like", tmp_path)
    for absent in (
        'id="early-stopping"',
        'id="stopped-energy"',
        'id="saved-energy"',
        "saving",
        'id="curves"',
        "Learning curves",
        "why stopped",
        "stopped early",
        "early-stopped",
        'id="hv-stopped"',
    ):
        assert absent not in plain, absent
    assert "trials finished (failed included)" in _axis_titles(plain)
    # Curves without early stopping: the figure, solid lines (a failed trial dotted), no stopping figures.
    curves = _report(storage, "curves", tmp_path)
    assert 'href="#curves"' in curves and 'id="early-stopping"' not in curves and "saving" not in curves
    traces = _figure(curves, CURVES_TITLE)["data"]
    assert {t["line"]["dash"] for t in traces if t.get("mode") == "lines+markers"} == {"solid", "dot"}  # type: ignore[index, union-attr]
    assert not any(str(t.get("name", "")).startswith("stopped") for t in traces)  # type: ignore[union-attr]
    assert "Dashed, ending in" not in curves
    # Searched with early stopping, which stopped nothing: it says so and what its cost phase spent.
    none_stopped = make_study(None, "none-stopped", n_trials=6, seed=12, stop_every=100)
    html = report_html(load_record(none_stopped), lambda: Importances({}, "not here", 0))
    summary = re.search(r'id="stopping-summary">(.*?)</p>', html, re.S)
    assert summary is not None and summary.group(1).startswith("Early stopping (mo-asha) stopped no trial.")
    assert 'id="saved-energy"' not in html and 'id="saving-rule"' not in html and "why stopped" not in html


def test_the_early_stopping_footprint_states_what_was_spent_and_estimated(
    storage: str, tmp_path: Path
) -> None:
    html = _report(storage, "early", tmp_path)
    record = load_record(optuna.load_study(study_name="early", storage=storage))
    savings = stopping_savings(record.trials)
    stopped = [t for t in record.trials if t.stopped is not None]
    assert len(savings.trials) == len(stopped) == 7 and savings.before_training > 0
    assert "20 complete, 3 fail, 7 stopped early" in html
    # the energy they spent, measured (here: estimated, and said so), and the estimated saving
    spent, spent_note = _kpi(html, "stopped-energy")
    assert _base(spent, "energy") == pytest.approx(savings.spent_j, rel=5e-3)
    assert spent_note.startswith("estimated from CPU time")
    saved, saved_note = _kpi(html, "saved-energy")
    assert saved.startswith("≈ ") and _base(saved[2:], "energy") == pytest.approx(savings.saved_j, rel=5e-3)
    assert '<span class="estimated">estimate</span>' in saved_note
    cost, _ = _kpi(html, "cost-energy")
    assert _base(cost, "energy") == pytest.approx(savings.cost_phase_j, rel=5e-3)
    # the same unit as the page's other energies (the total's KPI)
    total = re.search(r'<div class="kpi">energy<b>(.*?)</b>', html)
    assert total is not None and total.group(1).split()[-1] == spent.split()[-1] == saved.split()[-1]
    # the extrapolation defined in words, and how many trials each basis covered
    rule = markup.unescape(re.search(r'<p class="note" id="saving-rule">(.*?)</p>', html, re.S).group(1))  # type: ignore[union-attr]
    for words in (
        "estimate, extrapolated, not measured",
        "its learning curve's energy at epoch k, divided by k) × (E − k)",
        "stopped before training (k = 0)",
        "the same architecture parameters (n_layers, width), or where there are none, of all complete trials, × E",
        "It counts training only",
    ):
        assert words in rule, words
    covered = [
        (savings.covered(OWN_CURVE), "from their own learning curve"),
        (savings.covered(SAME_ARCHITECTURE), "from complete trials of the same architecture"),
        (savings.covered(ALL_COMPLETE), "from all complete trials"),
    ]
    assert savings.covered(OWN_CURVE) == savings.at_rung > 0
    for count, words in covered:
        assert (f"{count} {words}" in rule) == (count > 0), words
    summary = markup.unescape(re.search(r'id="stopping-summary">(.*?)</p>', html, re.S).group(1))  # type: ignore[union-attr]
    assert summary.startswith(
        f"Early stopping (mo-asha) stopped 7 trials: {savings.at_rung} at a rung, {savings.before_training} before training."
    )
    # every stopped trial says why in the table, and has its own status
    rows = _rows(_table(html, "all-trials"))
    for trial in stopped:
        assert 'data-status="stopped"' in rows[trial.number]
        assert markup.escape(trial.stopped or "") in rows[trial.number]
    # the hypervolume counts their energy on its axis and says so
    assert "trials finished (failed and early-stopped included)" in _axis_titles(html)
    assert 'id="hv-stopped"' in html


def test_learning_curves_cut_the_stopped_trials_and_highlight_the_front(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "early", tmp_path)
    study = optuna.load_study(study_name="early", storage=storage)
    record = load_record(study)
    figure = _figure(html, CURVES_TITLE)
    traces: list[dict[str, object]] = figure["data"]  # type: ignore[assignment]
    lines = {str(t["name"]): t for t in traces if t.get("mode") == "lines+markers"}
    front = lines["Pareto front"]
    assert front["line"]["dash"] == "solid" and front["line"]["color"] == "#0072B2"  # type: ignore[index]
    assert lines["dominated"]["line"]["dash"] == "solid"  # type: ignore[index]
    # one legend entry per epoch the rule stopped trials at, dashed, each line ending in an x
    stopped = {t.number: t for t in record.trials if t.stopped is not None and t.curve}
    epochs = sorted({t.epochs_run for t in stopped.values()})
    assert sorted(name for name in lines if name.startswith("stopped")) == [
        f"stopped at epoch {k}" for k in epochs
    ]
    energy_unit = _kpi(html, "stopped-energy")[0].split()[-1]
    assert energy_unit == "Wh"  # not the joules the curves are stored in
    size = dict(QUANTITIES["energy"])[energy_unit]
    for k in epochs:
        line = lines[f"stopped at epoch {k}"]
        assert line["line"]["dash"] == "dash"  # type: ignore[index]
        ends = next(
            t
            for t in traces
            if t.get("legendgroup") == f"stopped at epoch {k}" and t.get("mode") == "markers"
        )
        assert ends["marker"]["symbol"] == "x"  # type: ignore[index]
        cut = [t for t in stopped.values() if t.epochs_run == k]
        assert [x * size for x in ends["x"]] == pytest.approx([t.curve[-1].energy_j for t in cut])  # type: ignore[union-attr]
        assert all(f"(stopped at epoch {k}" in text for text in ends["text"])  # type: ignore[union-attr]
    # every trial that trained, a line each (gaps between them), in the page's energy unit
    drawn = [t for t in record.trials if t.curve and (t.state in ("COMPLETE", "FAIL") or t.stopped)]
    assert sum(str(t["x"]).count("None") for t in lines.values()) == len(drawn)
    plotted = sorted(x * size for t in lines.values() for x in t["x"] if x is not None)  # type: ignore[union-attr]
    assert plotted == pytest.approx(sorted(p.energy_j for t in drawn for p in t.curve))  # in the page's unit
    knee = knee_trial(study).number
    assert any(t.get("name") == f"knee: trial {knee}" for t in traces)
    title = figure["layout"]["xaxis"]["title"]["text"]  # type: ignore[index]
    assert title.startswith(f"the trial's training energy so far ({energy_unit}")
    assert figure["layout"]["xaxis"]["exponentformat"] == "none"  # type: ignore[index]


def test_the_cost_phase_has_a_colour_of_its_own(storage: str, tmp_path: Path) -> None:
    colours = [PHASE_COLOURS[phase] for phase in (*PHASES, "other")]  # every phase, named
    assert (
        len(set(colours)) == len(colours) and PHASE_FALLBACK not in colours and LEDGER_COLOUR not in colours
    )
    html = _report(storage, "early", tmp_path)
    bars = _figure(html, "Energy and time by phase")["data"]
    for bar in bars:  # type: ignore[union-attr]
        shown = dict(zip(bar["x"], bar["marker"]["color"], strict=True))  # type: ignore[index]
        assert shown["cost"] == PHASE_COLOURS["cost"] and shown["train"] == PHASE_COLOURS["train"]
    per_trial = {t["name"]: t for t in _figure(html, "Energy per trial, by phase")["data"]}  # type: ignore[union-attr, index]
    assert per_trial["cost"]["marker"]["color"] == PHASE_COLOURS["cost"]  # its own legend entry
    # a study without early stopping has no cost bar or legend entry
    plain = _report(storage, "tpe-like", tmp_path)
    assert "cost" not in {t["name"] for t in _figure(plain, "Energy per trial, by phase")["data"]}  # type: ignore[union-attr, index]


def test_compare_counts_stopped_trials_where_there_are_some(storage: str, tmp_path: Path) -> None:
    out = tmp_path / "c.html"
    assert main(["compare", "early", "tpe-like", "--storage", storage, "-o", str(out)]) == 0
    html = out.read_text()
    assert (
        "<th>stopped early</th>" in html and "Search energy includes failed and early-stopped trials." in html
    )
    assert "trials finished (failed and early-stopped included)" in _axis_titles(html)
    out = tmp_path / "d.html"
    assert main(["compare", "random-like", "tpe-like", "--storage", storage, "-o", str(out)]) == 0
    assert "stopped" not in out.read_text().split("<main>")[1].split("<script")[0]
