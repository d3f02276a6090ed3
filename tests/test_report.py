"""`greenml report` and `greenml compare`: the files they write, escaping, and bad input."""

from __future__ import annotations

import dataclasses
import html as markup
import json
import re
import shlex
import statistics
from pathlib import Path

import optuna
import pytest

from greenml.cli import main
from greenml.ledger import spent_energy_j
from greenml.metrics import MAXIMIZED, PHASES
from greenml.models import knee_trial
from greenml.report import (
    Importances,
    default_reference,
    front_numbers,
    hypervolume,
    load_record,
    parse_reference,
    report_html,
)
from greenml.report._labels import metric_phrase
from greenml.report._plot_style import LEDGER_COLOUR, PHASE_COLOURS, PHASE_FALLBACK
from greenml.report._stopping import ALL_COMPLETE, OWN_CURVE, SAME_ARCHITECTURE, stopping_savings
from greenml.results import KNEE_RULE
from greenml.testing.studies import NO_PRUNABLE_LAYER, make_study, worker
from greenml.units import QUANTITIES, quantity_of

optuna.logging.set_verbosity(optuna.logging.ERROR)

HOSTILE = "</script><script>window.__pwned = 1</script>"


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'studies.db'}"
    make_study(url, "tpe-like", n_trials=40, seed=1)
    make_study(url, "random-like", n_trials=30, seed=2, attrs={"sampler": "random"})
    make_study(url, "two", n_trials=30, objectives=("accuracy", "model_bytes"), seed=4)
    make_study(
        url, "four", n_trials=30, objectives=("accuracy", "inference_energy_j", "latency_ms", "model_bytes")
    )
    make_study(url, "one", n_trials=10, objectives=("accuracy",), constraints=())
    make_study(url, HOSTILE, n_trials=12, error=f"RuntimeError: {HOSTILE}", fail_every=3)
    make_study(url, "measured", n_trials=30, seed=5, basis="measured")
    make_study(url, "partly", n_trials=40, seed=6, basis="partly estimated")
    same = (worker("node-a"), worker("node-b"), worker("node-c"))
    make_study(url, "workers", n_trials=16, seed=7, workers=same, ledger={"teacher": 300.0}, stale=[5])
    differ = (worker("node-a"), worker("gpu-box", cpu="AMD EPYC (synthetic)", basis="partly estimated"))
    make_study(url, "mixed-hardware", n_trials=16, seed=8, workers=differ, stale=[3])
    make_study(url, "few", n_trials=6, seed=3, fail_every=0)
    # --early-stopping mo-asha, on an 8 kW node: energies in Wh, so a figure left in joules shows
    make_study(url, "early", n_trials=30, seed=10, stop_every=3, watts=8000.0)
    make_study(url, "curves", n_trials=12, seed=11, curves=True)  # learning curves, no early stopping
    return url


def _figures(html: str) -> list[dict[str, object]]:
    blocks = re.findall(r'<script type="application/json" id="fig\d+-data">(.*?)</script>', html, flags=re.S)
    return [json.loads(block) for block in blocks]


def _base(shown: str, quantity: str) -> float:
    """A figure as a page shows it (``1,000 µJ``, or ``1,000`` under a header in ``µJ``) back in
    base units, from the units table alone."""
    match = re.fullmatch(r"(-?[\d,]*\.?\d+)\s*(\S*)", shown.strip())
    assert match is not None, shown
    number, unit = match.groups()
    return float(number.replace(",", "")) * dict(QUANTITIES[quantity])[unit]


def _header_unit(html: str, table: str, name: str) -> str:
    """The unit a trial table's column of ``name`` is in: ``µJ`` of ``inference_energy_j (µJ, ...)``."""
    found = re.search(rf">{name} \(([^,)]*)", _table(html, table).split("</thead>")[0])
    assert found is not None, name
    return found.group(1)


def test_report_is_one_self_contained_file(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    assert main(["report", "--study", "tpe-like", "--storage", storage, "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out}"
    html = out.read_text()
    # plotly.js inlined, nothing fetched: no external script, stylesheet, image or font, and no
    # address anywhere outside plotly.js itself (whose code names its CDN for features not used).
    start = html.index("<script>/**")
    end = html.index("</script>", start)
    assert "plotly.js v" in html[start : start + 500]
    ours = html[:start] + html[end:]
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)
    assert "http://" not in ours and "https://" not in ours
    types = [trace["type"] for figure in _figures(html) for trace in figure["data"]]  # type: ignore[index, union-attr]
    assert "scatter3d" in types  # 3 objectives: a 3-D view ...
    assert "bar" in types  # ... the footprint and importances
    for text in [
        "greenml search --study tpe-like",  # the command that reproduces it
        "synthetic CPU",  # hardware
        "estimated",  # measurement basis, said plainly
        "475 gCO2e/kWh",
        "error = 1 − accuracy",
        "MeanDecreaseImpurityImportanceEvaluator",
        "RuntimeError: CUDA out of memory (synthetic)",  # failed trials with their errors
        "36 complete, 4 fail",
    ]:
        assert text in html, text


def test_front_table_and_hypervolume_on_the_page(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "tpe-like", tmp_path)
    record = load_record(optuna.load_study(study_name="tpe-like", storage=storage))
    reference = default_reference([record], record.objectives)
    assert reference is not None
    final = re.search(r"Final value: <b>([0-9.]+)</b>", html)
    assert final is not None and "e" not in final.group(1)
    assert float(final.group(1)) == pytest.approx(
        hypervolume(record.trials, record.objectives, reference), rel=1e-3
    )
    front_table = html.split('id="front-table"')[1].split("</table>")[0]
    front = [t.number for t in optuna.load_study(study_name="tpe-like", storage=storage).best_trials]
    assert sorted(
        int(n) for n in re.findall(r'<tr class="status-front"[^>]*><td data-v="(\d+)"', front_table)
    ) == sorted(front)
    assert '<th class="" title="click to sort">test_accuracy</th>' in front_table


def test_a_given_reference_point_is_used_and_stated(storage: str, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    point = "accuracy=0.5,inference_energy_j=0.001,latency_ms=0.1"
    assert (
        main(["report", "--study", "tpe-like", "--storage", storage, "-o", str(out), "--reference", point])
        == 0
    )
    html = out.read_text()
    # Stated in the page's units, and given back for the command line in base units.
    stated = re.search(r"reference point (accuracy = .*?) \(given with --reference\)", html)
    assert stated is not None
    shown = dict(item.split(" = ") for item in stated.group(1).split(", "))
    given = {"accuracy": 0.5, "inference_energy_j": 0.001, "latency_ms": 0.1}
    for name, value in given.items():
        assert _base(shown[name], quantity_of(name) or "") == pytest.approx(value), name
    assert shown["inference_energy_j"].endswith(f" {_header_unit(html, 'all-trials', 'inference_energy_j')}")
    arg = re.search(r"greenml report --reference (\S+)</code>", html)
    assert arg is not None and parse_reference(arg.group(1), given) == parse_reference(point, given)
    record = load_record(optuna.load_study(study_name="tpe-like", storage=storage))
    value = hypervolume(record.trials, record.objectives, parse_reference(point, record.objectives))
    final = re.search(r"Final value: <b>([0-9.]+)</b>", html)
    assert final is not None and float(final.group(1)) == pytest.approx(value, rel=1e-3)


@pytest.mark.parametrize(("study", "kind"), [("two", "scatter"), ("four", "parcoords"), ("one", "scatter")])
def test_figures_follow_the_number_of_objectives(storage: str, tmp_path: Path, study: str, kind: str) -> None:
    figures = _figures(_report(storage, study, tmp_path))
    first = figures[0]["data"]  # type: ignore[index]
    assert {trace["type"] for trace in first} == {kind}  # type: ignore[index, union-attr]
    assert all(trace["type"] != "scatter3d" for f in figures for trace in f["data"])  # type: ignore[index, union-attr]


def test_hostile_strings_are_escaped(storage: str, tmp_path: Path) -> None:
    out = tmp_path / "hostile.html"
    assert main(["report", "--study", HOSTILE, "--storage", storage, "-o", str(out)]) == 0
    html = out.read_text()
    assert "window.__pwned" in html  # the text is there ...
    assert HOSTILE not in html  # ... but never as markup
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, flags=re.S):
        assert "<" not in block
        json.loads(block)


def test_default_report_path_is_under_reports(
    storage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--study", HOSTILE, "--storage", storage]) == 0
    written = list((tmp_path / "reports").iterdir())
    assert [p.name for p in written] == ["script_script_window.__pwned_1_script.html"]


def test_compare_shares_axes_and_reference(storage: str, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    make_study(
        other, "tpe-like", n_trials=25, seed=9, attrs={"hardware": {"cpu": "another CPU", "gpus": ["H100"]}}
    )
    out = tmp_path / "c.html"
    code = main(
        [
            "compare",
            "tpe-like",
            "random-like",
            "tpe-like",
            "--storage",
            storage,
            "--storage",
            storage,
            "--storage",
            other,
            "-o",
            str(out),
        ]
    )
    assert code == 0
    html = out.read_text()
    records = [
        load_record(optuna.load_study(study_name=name, storage=url))
        for name, url in [("tpe-like", storage), ("random-like", storage), ("tpe-like", other)]
    ]
    reference = default_reference(records, records[0].objectives)
    assert reference is not None
    for record in records:
        assert f"<b>{hypervolume(record.trials, record.objectives, reference):.4g}</b>" in html
    assert (
        f"tpe-like ({other.replace('sqlite:///', 'sqlite:///')})" in html
    )  # same name, told apart by storage
    assert "another CPU" in html and "H100" in html
    figure_types = {trace["type"] for figure in _figures(html) for trace in figure["data"]}  # type: ignore[index, union-attr]
    assert figure_types == {"scatter"}


def test_compare_on_chosen_axes(storage: str, tmp_path: Path) -> None:
    out = tmp_path / "c.html"
    assert (
        main(
            [
                "compare",
                "two",
                "tpe-like",
                "--storage",
                storage,
                "--objectives",
                "accuracy,model_bytes",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert "accuracy (max), model_bytes (min)" in out.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--study", "nope"], "no study 'nope' in "),
        (
            ["report", "--study", "tpe-like", "--reference", "speed=1"],
            "'speed' is not an objective of this report",
        ),
        (
            ["report", "--study", "tpe-like", "-o", "/nonexistent/dir/r.html"],
            "directory '/nonexistent/dir' does not exist",
        ),
        (["report", "--study", "tpe-like", "--importance", "shap"], "invalid choice: 'shap'"),
        (["compare", "tpe-like"], "compare needs at least two studies"),
        (["compare", "tpe-like", "two"], "have different objectives"),
        (["compare", "tpe-like", "two", "--objectives", "speed"], "unknown objective 'speed'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    storage: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--storage", storage]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "reports").exists()


def test_compare_storage_count_must_match(storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", "tpe-like", "random-like", "two", "--storage", storage, "--storage", storage]
    assert main(argv) == 2
    assert (
        "give --storage once (for every study) or once per study (3), not 2 times" in capsys.readouterr().err
    )


def test_an_existing_report_survives_a_failed_rewrite(storage: str, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    out.write_text("previous report")
    assert (
        main(["report", "--study", "tpe-like", "--storage", storage, "-o", str(out), "--reference", "x=1"])
        == 2
    )
    assert out.read_text() == "previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left behind


ESTIMATED_LABEL = "inference_energy_j (J, estimated from CPU time)"
PROPORTIONAL = "energy per inference is proportional to CPU time"
MEASURED_CLAIM = "Accuracy, latency, energy and size are measured on the deployed artifact."


_WRITTEN: dict[tuple[str, str], str] = {}


def _report(storage: str, study: str, tmp_path: Path) -> str:
    """``greenml report`` of a study of the module's storage, written once per study (the
    studies are not changed after the fixture makes them; the page is a function of them)."""
    if (storage, study) not in _WRITTEN:
        out = tmp_path / f"{study}.html"
        assert main(["report", "--study", study, "--storage", storage, "-o", str(out)]) == 0
        _WRITTEN[storage, study] = out.read_text()
    return _WRITTEN[storage, study]


def _axis_titles(html: str) -> list[str]:
    """Every axis and subplot title of the page's figures."""
    titles = []
    for figure in _figures(html):
        layout: dict[str, object] = figure["layout"]  # type: ignore[assignment]
        axes = [v for v in layout.values() if isinstance(v, dict)]
        axes += [v for scene in axes for v in scene.values() if isinstance(v, dict)]
        titles += [str(a["title"].get("text")) for a in axes if isinstance(a.get("title"), dict)]
        titles += [str(a["text"]) for a in layout.get("annotations", [])]  # type: ignore[attr-defined]
    return titles


def _table(html: str, table: str) -> str:
    return html.split(f'id="{table}"')[1].split("</table>")[0]


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


def _rows(table: str) -> dict[int, str]:
    """A trial table's rows by trial number."""
    pattern = r'<tr class="status-[^"]*"[^>]*><td data-v="(\d+)".*?</tr>'
    return {int(match.group(1)): match.group(0) for match in re.finditer(pattern, table, flags=re.S)}


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


def _cells(row: str) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)


def _workers_table(html: str) -> list[list[str]]:
    body = html.split('id="workers-table"')[1].split("</table>")[0].split("<tbody>")[1]
    return [_cells(row) for row in re.findall(r"<tr>.*?</tr>", body, flags=re.S)]


def test_the_report_lists_every_worker(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "workers", tmp_path)
    study = optuna.load_study(study_name="workers", storage=storage)
    ran: dict[int, int] = {}
    for trial in study.get_trials():
        if trial.state != optuna.trial.TrialState.WAITING:
            ran[trial.user_attrs["worker"]["number"]] = ran.get(trial.user_attrs["worker"]["number"], 0) + 1
    rows = _workers_table(html)
    assert [row[:8] for row in rows] == [
        [str(n), host, str(1000 + n), "synthetic CPU", "2", "no GPU used", "estimate", str(ran[n])]
        for n, host in enumerate(("node-a", "node-b", "node-c"))
    ]
    assert sum(ran.values()) == 16
    # identical machines: one hardware line, no warning
    assert 'id="hardware-warning"' not in html and "not comparable" not in html
    assert "<dt>hardware</dt><dd>synthetic CPU (2 logical CPUs); no GPU used; synthetic</dd>" in html


def test_workers_on_different_hardware_get_a_warning(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "mixed-hardware", tmp_path)
    rows = _workers_table(html)
    assert [(row[0], row[1], row[3], row[5], row[6]) for row in rows] == [
        ("0", "node-a", "synthetic CPU", "no GPU used", "estimate"),
        ("1", "gpu-box", "AMD EPYC (synthetic)", "cuda:0 synthetic GPU", "nvml+estimate"),
    ]
    warning = re.search(r'<p [^>]*id="hardware-warning">(.*?)</p>', html, flags=re.S)
    assert warning is not None
    assert "(CPU model, GPUs, meter differ)" in warning.group(1)
    assert "energy and latency are not comparable" in warning.group(1)
    assert "<dt>hardware</dt><dd>differs between the workers (see the workers below)</dd>" in html
    # the workers measure on different bases; the trial whose worker died never wrote its own
    study = optuna.load_study(study_name="mixed-hardware", storage=storage)
    bases = [t.user_attrs["provenance"]["energy_basis"] for t in study.trials if "provenance" in t.user_attrs]
    assert len(bases) == 15
    paragraph = re.search(r'id="energy-basis">(.*?)</p>', html, flags=re.S)
    assert paragraph is not None and "Energy rests on different bases" in paragraph.group(1)
    for basis in ("partly estimated", "estimated"):
        assert re.search(rf"[(,] ?{basis} in {bases.count(basis)} trials", paragraph.group(1)), basis
    assert "not recorded" not in paragraph.group(1)


def test_an_older_study_lists_its_one_machine(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "tpe-like", tmp_path)
    (row,) = _workers_table(html)
    assert row[:8] == [
        "not recorded",
        "not recorded",
        "",
        "synthetic CPU",
        "2",
        "no GPU used",
        "not recorded",
        "40",
    ]
    assert 'id="hardware-warning"' not in html


def test_the_teacher_is_its_own_item_in_the_footprint(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "workers", tmp_path)
    study = optuna.load_study(study_name="workers", storage=storage)
    trials_j = sum(
        t.user_attrs.get("trial_energy_j", t.user_attrs.get("trial_energy_so_far_j", 0.0))
        for t in study.get_trials()
        if t.state != optuna.trial.TrialState.WAITING
    )
    total = trials_j + 300.0
    assert total == pytest.approx(spent_energy_j(study))
    kpi = re.search(r'<div class="kpi">energy<b>(.*?)</b>estimated</div>', html)
    assert kpi is not None  # the total's KPI counts the teacher
    assert _base(kpi.group(1), "energy") == pytest.approx(total, rel=5e-3)
    table = html.split('id="ledger"')[1].split("</table>")[0]
    energy, seconds, co2 = re.findall(r"<th>\w+ \((\w+)\)</th>", table)  # the columns' units
    body = table.split("<tbody>")[1]
    rows = {cells[0]: cells for cells in map(_cells, re.findall(r"<tr>.*?</tr>", body, flags=re.S))}
    assert list(rows) == ["trials (16)", "teacher", "total"]
    teacher = rows["teacher"]
    assert teacher[4:] == ["estimated", "worker 0 on node-a"]
    assert _base(f"{teacher[1]} {energy}", "energy") == pytest.approx(300.0, rel=5e-3)
    assert _base(f"{teacher[2]} {seconds}", "duration") == pytest.approx(37.5, rel=5e-3)
    assert _base(f"{teacher[3]} {co2}", "mass") == pytest.approx(300.0 / 3.6e6 * 475, rel=5e-3)
    assert _base(f"{rows['trials (16)'][1]} {energy}", "energy") == pytest.approx(trials_j, rel=5e-3)
    assert _base(f"{rows['total'][1]} {energy}", "energy") == pytest.approx(total, rel=5e-3)
    assert "item of its own (&#34;teacher&#34;), counted in the total" in html
    assert "inside the first distilling trial" not in html
    # a bar of its own beside the phases, in energy and in time
    bars = [
        trace
        for figure in _figures(html)
        for trace in figure["data"]  # type: ignore[union-attr]
        if trace["type"] == "bar" and "teacher" in trace["x"]  # type: ignore[index, operator]
    ]
    assert len(bars) == 2
    energy_bars, second_bars = (dict(zip(bar["x"], bar["y"], strict=True)) for bar in bars)  # type: ignore[index]
    joules = dict(QUANTITIES["energy"])[energy]  # the bars are drawn in the page's units
    assert energy_bars["teacher"] * joules == pytest.approx(300.0)
    assert second_bars["teacher"] * dict(QUANTITIES["duration"])[seconds] == pytest.approx(37.5)
    assert sum(energy_bars.values()) * joules == pytest.approx(total)
    # no ledger, no ledger table
    assert 'id="ledger"' not in _report(storage, "tpe-like", tmp_path)


def test_a_trial_whose_worker_died_says_so_in_the_table(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "workers", tmp_path)
    table = _table(html, "all-trials")
    columns = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", table.split("</thead>")[0])
    assert columns[:5] == ["trial", "status", "worker", "host", "retry of"]
    rows = {number: _cells(row) for number, row in _rows(table).items()}
    assert len(rows) == 16
    dead, retry = rows[5], rows[6]
    assert dead[1:5] == ["failed", "2", "node-c", ""]
    assert dead[-1] == "its worker stopped sending heartbeats (killed or lost); retried as trial 6"
    assert retry[1] != "failed" and retry[2:5] == ["0", "node-a", "5"]
    assert rows[0][2:5] == ["0", "node-a", ""]


def test_compare_warns_of_a_study_on_mixed_hardware(storage: str, tmp_path: Path) -> None:
    out = tmp_path / "c.html"
    assert main(["compare", "workers", "mixed-hardware", "--storage", storage, "-o", str(out)]) == 0
    html = out.read_text()
    assert html.count("⚠ workers differ in") == 1
    assert "workers differ in CPU model, GPUs, meter: energy and latency do not compare" in html


def _front_rows(html: str) -> dict[int, dict[str, str]]:
    """The front table's rows by trial number, each a {column label: cell markup} mapping."""
    table = _table(html, "front-table")
    columns = re.findall(r"<th[^>]*>(.*?)</th>", table.split("</thead>")[0])
    return {number: dict(zip(columns, _cells(row), strict=True)) for number, row in _rows(table).items()}


def _trace_names(html: str) -> set[str]:
    return {str(trace.get("name")) for f in _figures(html) for trace in f["data"]}  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["tpe-like", "two", "four", "one"])
def test_the_knee_and_the_bests_are_marked_in_the_table_and_the_figures(
    storage: str, tmp_path: Path, name: str
) -> None:
    html = _report(storage, name, tmp_path)
    study = optuna.load_study(study_name=name, storage=storage)
    rows = _front_rows(html)
    assert sorted(rows) == sorted(t.number for t in study.best_trials)
    knee = knee_trial(study).number  # what `greenml model --pick knee` takes
    assert [n for n, row in rows.items() if "knee" in row["marks"].split(" · ")] == [knee]
    assert f"knee: trial {knee}" in _trace_names(html)
    objectives = study.user_attrs["objectives"]
    front = sorted(study.best_trials, key=lambda t: t.number)
    for index, objective in enumerate(objectives):
        sign = -1.0 if objective in MAXIMIZED else 1.0
        best = min(front, key=lambda t: (sign * t.values[index], t.number)).number
        word = "best" if objective in MAXIMIZED else "lowest"
        label = "smallest model" if objective == "model_bytes" else f"{word} {metric_phrase(objective)}"
        assert [n for n, row in rows.items() if label in row["marks"].split(" · ")] == [best], label
        assert f"{label}: trial {best}" in _trace_names(html)
    # the knee rule in words, between the figures and the front's table
    rule = re.search(
        r'<h3 id="choose">.*?<p class="note" id="knee-rule">(.*?)</p>.*?id="front-table"', html, re.S
    )
    assert (
        rule is not None
        and KNEE_RULE[1:] in markup.unescape(rule.group(1))
        and "greenml model --pick knee" in rule.group(1)
    )


def test_front_rows_say_how_to_get_their_model(storage: str, tmp_path: Path) -> None:
    study = optuna.load_study(study_name="tpe-like", storage=storage)
    record = load_record(study, "postgresql://alice:s3cret@db.example:5432/studies")
    front = front_numbers(record.trials, record.objectives)
    kept = set(front[::2])  # as if the others had been searched with --keep-models none
    saved = {"artifact_id": "a", "format": "onnx", "runtime": "onnxruntime", "bytes": 1, "sha256": "0"}
    trials = tuple(dataclasses.replace(t, model=saved) if t.number in kept else t for t in record.trials)
    attrs = {**record.attrs, "command": ["greenml", "search", "--artifacts", "/shared/my models"]}
    html = report_html(
        dataclasses.replace(record, trials=trials, attrs=attrs), lambda: Importances({}, "not here", 0)
    )
    assert "s3cret" not in html
    rows = _front_rows(html)
    for number in front:
        cell = rows[number]["get its model"]
        code = re.search(r"<code>(.*?)</code>", cell)
        if number in kept:
            assert code is not None
            assert shlex.split(markup.unescape(code.group(1))) == [
                "greenml",
                "model",
                "--study",
                "tpe-like",
                "--storage",
                "postgresql://alice:***@db.example:5432/studies",
                "--trial",
                str(number),
                "-o",
                f"model-{number}",
                "--artifacts",
                "/shared/my models",
            ]
            assert 'class="copy"' in cell
        else:
            assert code is None and "model not kept (searched with --keep-models none" in cell
    assert "The storage's password is shown as <code>***</code>" in html
    # the knee and the bests listed above the table, each with its command or why there is none
    choices = re.search(r'<ul class="choices" id="choices">(.*?)</ul>', html, re.S)
    assert choices is not None
    marks = {number: markup.unescape(row["marks"]) for number, row in rows.items() if row["marks"]}
    for item in re.findall(r"<li>(.*?)</li>", choices.group(1), re.S):
        number = int(re.search(r"</b>: trial (\d+)", item).group(1))  # type: ignore[union-attr]
        assert marks[number] and f'<b class="marks">{markup.escape(marks[number])}</b>' in item
        assert (f"--trial {number} -o model-{number}" in item) == (number in kept)


def test_importances_from_few_trials_carry_a_caveat(storage: str, tmp_path: Path) -> None:
    few = _report(storage, "few", tmp_path)
    complete = sum(
        t.state == optuna.trial.TrialState.COMPLETE
        for t in optuna.load_study(study_name="few", storage=storage).trials
    )
    assert complete < 10
    caveat = re.search(r'<p [^>]*id="importance-caveat">(.*?)</p>', few, re.S)
    assert caveat is not None
    assert (
        f"Computed from {complete} complete trials; fewer than 10 make importances unreliable"
        in caveat.group(1)
    )
    assert few.index('id="importance-caveat"') < few.index('aria-label="Importance per objective"')
    assert 'id="importance-caveat"' not in _report(storage, "tpe-like", tmp_path)  # 36 complete trials


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


# Early stopping and learning curves.

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
