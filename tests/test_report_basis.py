"""A report page on the basis of its figures: estimated or measured energy, devices, notes, units."""

from __future__ import annotations

import dataclasses
import html as markup
import json
import re
import statistics
from pathlib import Path

import optuna
import pytest
from _report_helpers import _axis_titles, _figures, _header_unit, _report, _rows, _table

from greenml.report import Importances, front_numbers, load_record, report_html
from greenml.report._labels import metric_phrase
from greenml.testing.studies import NO_PRUNABLE_LAYER
from greenml.units import QUANTITIES, quantity_of

optuna.logging.set_verbosity(optuna.logging.ERROR)


ESTIMATED_LABEL = "inference_energy_j (J, estimated from CPU time)"
PROPORTIONAL = "energy per inference is proportional to CPU time"
MEASURED_CLAIM = "Accuracy, latency, energy and size are measured on the deployed artifact."


def test_an_estimated_study_says_its_energy_is_estimated(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "tpe-like", tmp_path)
    titles = _axis_titles(html)
    per_inference = _header_unit(html, "all-trials", "inference_energy_j")
    energy = _header_unit(html, "all-trials", "trial_energy_j")
    # the 3-D front's and the projections' energy axes: the basis on a line of its own
    assert f"energy per inference ({per_inference})<br>estimated from CPU time" in titles
    assert f"energy ({energy})<br>estimated from CPU time" in titles  # energy per trial
    assert f"search energy ({energy}, estimated from CPU time)" in titles
    assert f"energy ({energy}, estimated from CPU time)" in titles  # the footprint
    latency = _header_unit(html, "all-trials", "latency_ms")
    assert f"latency ({latency})" in titles  # no basis on latency
    label = ESTIMATED_LABEL.replace("(J,", f"({per_inference},")
    assert f">{label}</th>" in _table(html, "all-trials")
    assert f">{label}</th>" in _table(html, "front-table")
    assert PROPORTIONAL in html and "adds no information beyond latency × threads" in html
    assert MEASURED_CLAIM not in html  # nor does the front's note claim energy was measured
    assert "energy is not: it is estimated from CPU time" in html


def test_a_measured_study_claims_measurement_and_labels_nothing_estimated(
    storage: str, tmp_path: Path
) -> None:
    html = _report(storage, "measured", tmp_path)
    assert "estimated" not in " ".join(_axis_titles(html))
    unit = _header_unit(html, "all-trials", "inference_energy_j")
    assert f"energy per inference ({unit})" in _axis_titles(html)
    assert "estimated from CPU time" not in html and PROPORTIONAL not in html
    assert 'id="energy-basis"' not in html
    assert MEASURED_CLAIM in html
    assert f">inference_dram_energy_j ({unit})</th>" in _table(html, "all-trials")


def test_a_partly_estimated_study_states_the_estimates_share(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "partly", tmp_path)
    record = load_record(optuna.load_study(study_name="partly", storage=storage))
    # The shares, worked out here from the records rather than by the report's functions.
    front = set(front_numbers(record.trials, record.objectives))
    complete = [t for t in record.trials if t.state == "COMPLETE"]

    def cpu_share(trial: object) -> float:
        metrics = trial.metrics  # type: ignore[attr-defined]
        return float(metrics["inference_cpu_energy_j"] / metrics["inference_energy_j"])

    on_front = statistics.median(cpu_share(t) for t in complete if t.number in front)
    everywhere = statistics.median(cpu_share(t) for t in complete)
    cpu = sum(t.energy_components_j["cpu"] or 0.0 for t in record.trials)
    total = sum(t.energy_j or 0.0 for t in record.trials)
    expected = (
        f"CPU estimate: {on_front:.0%} of inference energy (median over the {len(front)} front trials; "
        f"{everywhere:.0%} over all {len(complete)} complete trials), {cpu / total:.0%} of search energy."
    )
    assert expected in html
    assert "Energy is partly estimated: CPU part estimated from CPU time, GPU measured." in html
    assert MEASURED_CLAIM not in html
    assert "so is its energy, except the CPU part, estimated from CPU time" in html
    titles = _axis_titles(html)
    unit = _header_unit(html, "all-trials", "inference_energy_j")
    assert f"energy per inference ({unit})<br>CPU part estimated from CPU time" in titles
    assert "energy per inference<br>CPU part estimated from CPU time" in titles  # importances: no unit
    header = _table(html, "all-trials").split("</thead>")[0]
    assert f">inference_gpu_energy_j ({unit})</th>" in header
    assert f">inference_cpu_energy_j ({unit}, estimated from CPU time)</th>" in header
    assert "inference_dram_energy_j" not in header  # not metered: no column
    assert "DRAM not metered: no readable RAPL on this synthetic machine" in html  # provenance note


def test_deploy_devices_are_shown(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "partly", tmp_path)
    record = load_record(optuna.load_study(study_name="partly", storage=storage))
    assert "<dt>device</dt><dd>cuda:0 (training)</dd>" in html
    deployed = [t.deploy_device for t in record.trials if t.deploy_device]
    by_trial = f"{deployed.count('cpu')} on cpu"
    assert re.search(r">deploy device</dt><dd>cuda:0 \(by trial: [^)]*" + by_trial, html)
    header = _table(html, "all-trials").split("</thead>")[0]
    columns = re.findall(r"<th[^>]*>(.*?)</th>", header)
    column = columns.index("deploy device")
    rows = _rows(_table(html, "all-trials"))
    assert len(rows) == len(record.trials)
    for trial in record.trials:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", rows[trial.number], flags=re.S)
        assert cells[column] == (trial.deploy_device or ""), trial.number  # failed trials: none
    hover = json.loads(re.search(r'id="trial-hover">(.*?)</script>', html, flags=re.S).group(1))  # type: ignore[union-attr]
    onnx = next(t for t in record.trials if t.deploy_device == "cpu")
    assert f"<b>trial {onnx.number}</b> (" in hover[str(onnx.number)]
    assert ") · deployed on cpu (trained on cuda:0)<br>" in hover[str(onnx.number)]
    assert "<i>energy: CPU part estimated from CPU time</i>" in hover[str(onnx.number)]
    assert "latency_p99_ms: " in hover[str(onnx.number)]  # the new metrics, with their units
    assert re.search(r"batch_throughput_per_s: [0-9.,]+ (/s|k/s|M/s)(<br>| · )", hover[str(onnx.number)])


def test_an_older_study_without_deploy_devices_says_so(storage: str) -> None:
    record = load_record(optuna.load_study(study_name="tpe-like", storage=storage))
    attrs = {k: v for k, v in record.attrs.items() if k != "deploy_device"}
    trials = tuple(dataclasses.replace(t, deploy_device=None) for t in record.trials)
    html = report_html(
        dataclasses.replace(record, attrs=attrs, trials=trials),
        lambda: Importances({}, "not computed here", 0),
    )
    assert ">deploy device</dt><dd>not recorded</dd>" in html
    assert '<td class="text">not recorded</td>' in _table(html, "all-trials")
    assert "deploy device not recorded" in html


def test_trials_with_notes_are_marked(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "partly", tmp_path)
    record = load_record(optuna.load_study(study_name="partly", storage=storage))
    noted = {t.number for t in record.trials if t.notes}
    assert noted  # the synthetic study has some
    note = markup.escape(NO_PRUNABLE_LAYER)
    for table in ("all-trials", "front-table"):
        for number, row in _rows(_table(html, table)).items():
            marked = (
                f'<summary class="note-mark" title="{note}">⚠ 1 note</summary><ul><li>{note}</li></ul>' in row
            )
            assert marked == (number in noted), (table, number)
    front = set(front_numbers(record.trials, record.objectives))
    assert noted & front  # the front table has a marked trial to show
    hover = json.loads(re.search(r'id="trial-hover">(.*?)</script>', html, flags=re.S).group(1))  # type: ignore[union-attr]
    for number in noted & {t.number for t in record.trials if t.state == "COMPLETE"}:
        assert f"<br>⚠ {note}<br>" in hover[str(number)]
    # Plotly shows no hover label taller than its figure (the projections are 400 px high)
    assert max(text.count("<br>") for text in hover.values()) < 25


# A number written with an exponent (6.819e-05, 3.428e+05) or an SI-suffixed one (50µ).
EXPONENT = re.compile(r"(?<![\w.])\d+(\.\d+)?[eE][+-]?\d+\b")


def _shown_texts(html: str) -> list[str]:
    """What a reader can see: the page's text (outside plotly.js and the data blocks) with its
    tags dropped, every hover text, and the figures' titles, legend names and hover strings."""
    start = html.index("<script>/**")
    page = html[:start] + html[html.index("</script>", start) :]
    page = re.sub(r"<script[^>]*>.*?</script>", " ", page, flags=re.S)
    texts = [markup.unescape(re.sub(r"<[^>]+>", " ", page))]
    hover = re.search(r'id="trial-hover">(.*?)</script>', html, flags=re.S)
    assert hover is not None
    texts += json.loads(hover.group(1)).values()
    texts += _axis_titles(html)
    for figure in _figures(html):
        for trace in figure["data"]:  # type: ignore[union-attr]
            texts += [str(trace.get(key, "")) for key in ("name", "text", "hovertemplate")]  # type: ignore[union-attr]
            texts += [str(d.get("label", "")) for d in trace.get("dimensions", [])]  # type: ignore[union-attr]
    return texts


@pytest.mark.parametrize("name", ["tpe-like", "partly", "four", "workers", "early"])
def test_no_exponents_and_one_unit_per_quantity(storage: str, tmp_path: Path, name: str) -> None:
    html = _report(storage, name, tmp_path)
    for text in _shown_texts(html):
        assert not EXPONENT.search(text), EXPONENT.search(text)
    # Every metric's unit wherever the page names it: table headers, hover lines, axis titles.
    seen: dict[str, set[str]] = {}
    for header in re.findall(r"<th[^>]*>(\w+) \(([^,)]*)", html):
        if quantity_of(header[0]) is not None:
            seen.setdefault(str(quantity_of(header[0])), set()).add(header[1])
    hover = json.loads(re.search(r'id="trial-hover">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    for text in hover.values():
        for metric, unit in re.findall(r"(\w+): [-\d.,≈]+ ?([^\s<·]*)", text):
            if quantity_of(metric) is not None:
                seen.setdefault(str(quantity_of(metric)), set()).add(unit)
    for title in _axis_titles(html):
        for objective in optuna.load_study(study_name=name, storage=storage).user_attrs["objectives"]:
            found = re.match(rf"{re.escape(metric_phrase(objective))} \(([^,)]*)", title)
            if found:
                seen.setdefault(str(quantity_of(objective)), set()).add(found.group(1))
    assert {"inference_energy", "energy", "size", "latency"} <= set(seen)
    for quantity, units in seen.items():
        assert len(units) == 1, (quantity, units)  # one unit per quantity on the page
        assert units <= {label for label, _ in QUANTITIES[quantity]}
    # the points are plotted in the unit their axis names: back in base units, the trial's own
    study = optuna.load_study(study_name=name, storage=storage)
    objectives = study.user_attrs["objectives"]
    by_number = {t.number: t.user_attrs.get("metrics", {}) for t in study.trials}
    checked = 0
    for figure in _figures(html):
        for trace in figure["data"]:  # type: ignore[union-attr]
            if trace.get("meta") != "trial-hover" or trace["type"] not in ("scatter", "scatter3d"):  # type: ignore[union-attr]
                continue
            layout: dict[str, object] = figure["layout"]  # type: ignore[assignment]
            scene: dict[str, object] = layout.get("scene", layout)  # type: ignore[assignment]
            for axis in ("x", "y", "z"):
                if axis not in trace:
                    continue
                key = f"{axis}axis" + trace.get(f"{axis}axis", axis)[1:]  # type: ignore[union-attr]
                title = str(scene[key]["title"]["text"]).split("<br>")[0]  # type: ignore[index]
                objective, unit = next(
                    (o, re.sub(r"^ \(([^,)]*).*$", r"\1", title[len(metric_phrase(o)) :]))
                    for o in objectives
                    if re.match(rf"{re.escape(metric_phrase(o))}( \(|$)", title)
                )
                size = dict(QUANTITIES[str(quantity_of(objective))])[unit]
                for number, value in zip(trace["customdata"], trace[axis], strict=True):  # type: ignore[index]
                    assert value * size == pytest.approx(by_number[int(number)][objective]), title
                    checked += 1
    assert checked > 3 * len(study.trials)
    # the unit chosen shows the median energy per inference between 1 and 1000
    shown = re.findall(r"inference_energy_j: ([\d.,]+) ", " ".join(hover.values()))
    values = sorted(float(v.replace(",", "")) for v in shown)
    assert 1 <= values[len(values) // 2] < 1000
