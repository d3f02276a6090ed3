"""`greenml report` and `greenml compare`: the files they write, escaping, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest

from greenml.cli import main
from greenml.report import default_reference, hypervolume, load_record
from greenml.testing.studies import make_study

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
    return url


def _figures(html: str) -> list[dict[str, object]]:
    blocks = re.findall(r'<script type="application/json" id="fig\d+-data">(.*?)</script>', html, flags=re.S)
    return [json.loads(block) for block in blocks]


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
    out = tmp_path / "r.html"
    assert main(["report", "--study", "tpe-like", "--storage", storage, "-o", str(out)]) == 0
    html = out.read_text()
    record = load_record(optuna.load_study(study_name="tpe-like", storage=storage))
    reference = default_reference([record], record.objectives)
    assert reference is not None
    assert f"Final value: <b>{hypervolume(record.trials, record.objectives, reference):.4g}</b>" in html
    front_table = html.split('id="front-table"')[1].split("</table>")[0]
    front = [t.number for t in optuna.load_study(study_name="tpe-like", storage=storage).best_trials]
    assert sorted(
        int(n) for n in re.findall(r'<tr class="status-front"[^>]*><td class="" data-v="(\d+)"', front_table)
    ) == sorted(front)
    assert "test accuracy" in front_table


def test_a_given_reference_point_is_used_and_stated(storage: str, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    point = "accuracy=0.5,inference_energy_j=0.001,latency_ms=0.1"
    assert (
        main(["report", "--study", "tpe-like", "--storage", storage, "-o", str(out), "--reference", point])
        == 0
    )
    html = out.read_text()
    assert "accuracy = 0.5, inference_energy_j = 0.001, latency_ms = 0.1 (given with --reference)" in html
    record = load_record(optuna.load_study(study_name="tpe-like", storage=storage))
    value = hypervolume(
        record.trials, record.objectives, {"accuracy": 0.5, "inference_energy_j": 0.001, "latency_ms": 0.1}
    )
    assert f"Final value: <b>{value:.4g}</b>" in html


@pytest.mark.parametrize(("study", "kind"), [("two", "scatter"), ("four", "parcoords"), ("one", "scatter")])
def test_figures_follow_the_number_of_objectives(storage: str, tmp_path: Path, study: str, kind: str) -> None:
    out = tmp_path / f"{study}.html"
    assert main(["report", "--study", study, "--storage", storage, "-o", str(out)]) == 0
    figures = _figures(out.read_text())
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
