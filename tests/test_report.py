"""`greenml report` and `greenml compare`: files written, escaping, bad input, the front's table."""

from __future__ import annotations

import dataclasses
import html as markup
import json
import re
import shlex
from pathlib import Path

import optuna
import pytest
from _report_helpers import HOSTILE, _base, _cells, _figures, _header_unit, _report, _rows, _table

from greenml.cli import main
from greenml.metrics import MAXIMIZED
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
from greenml.results import KNEE_RULE
from greenml.testing.studies import make_study
from greenml.units import quantity_of

optuna.logging.set_verbosity(optuna.logging.ERROR)


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
