"""Reports opened in a real browser: headless Chromium, driven by Playwright.

The study of the main test is made by a real ``greenml search`` (digits, the MLP space through a
plug-in that fails every third trial with a hostile error message, under a hostile study name);
the report is the one the search writes when it stops. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import dataclasses
import io
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest

from greenml.cli import main
from greenml.models import knee_trial
from greenml.report import Importances, front_numbers, load_record, report_html
from greenml.testing.studies import NO_PRUNABLE_LAYER, make_study, worker
from greenml.units import scale_for

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
HOSTILE_NAME = "x</script><script>window.__pwned = 1</script>"
FLAKY = textwrap.dedent(
    """
    from search_spaces.mlp import SPACE as MLP


    class Flaky:
        name = "flaky"
        description = "the MLP space, failing every third trial with markup in its error"

        def build(self, trial, data):
            if trial.number % 3 == 2:
                raise RuntimeError("<img src=x onerror=window.__pwned=2></script><script>window.__pwned=3</script>")
            return MLP.build(trial, data)


    SPACE = Flaky()
    """
)


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real search's directory, and the path of the report it wrote (printed on stdout)."""
    work = tmp_path_factory.mktemp("search")
    (work / "flaky.py").write_text(FLAKY)
    fast = ["--epochs", "1:2", "--min-energy-window", "0.05", "--idle-seconds", "0", "--no-distillation"]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenml",
            "search",
            "--space",
            "flaky.py",
            "--trials",
            "4",
            "--study",
            HOSTILE_NAME,
            "--constraint",
            "accuracy>=0.5",
            "--storage",
            f"sqlite:///{work / 's.db'}",
            *fast,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=work,
    )
    assert run.returncode == 0, run.stderr
    line = run.stdout.strip().splitlines()[-1]
    assert line.startswith("report: reports/"), run.stdout
    return work, line.removeprefix("report: ")


def _open(chromium: Any, path: Path) -> tuple[Any, list[str], list[str]]:
    """Open ``path``; wait until every figure is drawn. Returns the page, problems and requests."""
    page = chromium.new_page(viewport={"width": 1300, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}") if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_function(
        "document.querySelectorAll('div.figure').length > 0 && "
        "document.querySelectorAll('div.figure').length === document.querySelectorAll('div.figure[data-drawn]').length",
        timeout=30_000,
    )
    return page, problems, requests


def _assert_every_figure_drawn(page: Any) -> int:
    figures = page.locator("div.figure")
    count = figures.count()
    for index in range(count):
        figure = figures.nth(index)
        assert figure.locator("svg.main-svg").count() >= 1, figure.get_attribute("aria-label")
        assert "could not be drawn" not in figure.inner_text()
    return count


# What a figure shows as titles: the figure's, each axis's (x, x2, ..., y, ...), each subplot's
# (annotations), and each parallel-coordinates dimension's.
_FIGURE_GEOMETRY = """(id) => {
    const div = document.getElementById(id);
    const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
    const titles = 'text.gtitle, g[class^="g-x"][class$="title"] > text, g[class^="g-y"][class$="title"] > text, '
        + '.annotation-text, .parcoords .axis-title';
    return {
        figure: box(div),
        svg: box(div.querySelector('svg.main-svg')),
        titles: Array.from(div.querySelectorAll(titles)).filter((e) => e.textContent).map((e) => [e.textContent, box(e)]),
        modebar: Array.from(div.querySelectorAll('.modebar')).filter((e) => e.offsetWidth > 0).map(box),
        legend: Array.from(div.querySelectorAll('g.legend')).map(box),
        scenes: div.querySelectorAll('.gl-container canvas').length,
    };
}"""
EDGE = 2  # px of a 3-D view's edge that must be blank: text reaching it is cut there


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1


def _inside(inner: list[float], outer: list[float]) -> bool:
    return (
        inner[0] >= outer[0] - 1
        and inner[1] >= outer[1] - 1
        and inner[2] <= outer[2] + 1
        and inner[3] <= outer[3] + 1
    )


def _assert_titles_clear(page: Any, name: str) -> int:
    """Every figure's titles lie whole inside it, apart from each other, the legend and the mode
    bar (shown by hovering the figure); every 3-D view's edge is blank (WebGL draws the scene's
    axis titles, so they are seen in its pixels, not the DOM). Returns the titles checked."""
    from PIL import Image

    checked = 0
    for figure in page.locator("div.figure").all():
        figure.scroll_into_view_if_needed()
        figure.hover(position={"x": 40, "y": 40})
        page.wait_for_timeout(50)
        where = str(figure.get_attribute("aria-label"))
        shape = page.evaluate(_FIGURE_GEOMETRY, figure.get_attribute("id"))
        assert shape["modebar"], f"{where}: no mode bar shown on hover"
        titles = shape["titles"]
        for index, (text, box) in enumerate(titles):
            assert _inside(box, shape["figure"]) and _inside(box, shape["svg"]), f"{where}: {text!r} clipped"
            for bar in shape["modebar"]:
                assert not _overlap(box, bar), f"{where}: the mode bar covers {text!r}"
            for legend in shape["legend"]:
                assert not _overlap(box, legend), f"{where}: the legend covers {text!r}"
            for other, other_box in titles[index + 1 :]:
                assert not _overlap(box, other_box), f"{where}: {text!r} runs into {other!r}"
        checked += len(titles)
        for index in range(shape["scenes"]):
            shot = figure.locator(".gl-container canvas").nth(index).screenshot()
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / f"{name}-3d-{index}.png").write_bytes(shot)
            pixels = Image.open(io.BytesIO(shot)).convert("L")
            width, height = pixels.size
            edge = [
                pixels.getpixel((x, y))
                for x in range(width)
                for y in range(height)
                if min(x, y, width - 1 - x, height - 1 - y) < EDGE
            ]
            assert min(edge) > 200, (
                f"{where}: something is cut at the 3-D view's edge (see {name}-3d-{index}.png)"
            )
            checked += 1
    return checked


def test_search_report_renders_with_no_errors(
    chromium: Any, searched: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, relative = searched
    page, problems, requests = _open(chromium, work / relative)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert problems == []
    assert requests == [(work / relative).resolve().as_uri()]  # nothing from the network
    assert page.evaluate("typeof window.__pwned") == "undefined"
    # 3-D front, projections, hypervolume, learning curves, phases, per trial, importances
    assert _assert_every_figure_drawn(page) == 7
    _assert_learning_curves(page, stopped=False)
    assert page.locator("div.figure canvas").count() >= 1  # the 3-D view is WebGL
    assert page.title() == f"greenml report: {HOSTILE_NAME}"
    assert HOSTILE_NAME in page.locator("h1").inner_text()  # shown as text
    assert "onerror=window.__pwned=2" in (page.locator("#all-trials").text_content() or "")
    assert "deploy device" in page.locator("#all-trials thead").inner_text()
    # The front's note claims measured energy only where no energy figure is estimated.
    claim = "Accuracy, latency, energy and size are measured on the deployed artifact."
    estimated = page.locator("#energy-basis").count() == 1
    assert (claim in page.locator("main").inner_text()) != estimated
    assert _assert_titles_clear(page, "search") > 10
    # three complete trials: the importances say how little they rest on
    caveat = page.locator("#importance-caveat")
    assert caveat.is_visible() and "fewer than 10 make importances unreliable" in caveat.inner_text()
    # The knee's command, run as the page shows it (the hostile study name quoted), writes the
    # model the search kept.
    command = page.locator("#front-table tbody tr", has_text="knee").locator("td.model code").inner_text()
    page.close()
    argv = shlex.split(command)
    assert argv[:2] == ["greenml", "model"] and argv[argv.index("--study") + 1] == HOSTILE_NAME
    monkeypatch.chdir(tmp_path)
    assert main(argv[1:]) == 0
    assert len(list(tmp_path.glob("model-*"))) == 2  # the model and its card


def test_hover_shows_parameters_and_metrics(chromium: Any, searched: tuple[Path, str]) -> None:
    work, relative = searched
    page, problems, _ = _open(chromium, work / relative)
    projections = page.locator("div.figure").nth(1)
    projections.scroll_into_view_if_needed()
    shown = page.evaluate(
        """(id) => {
            const div = document.getElementById(id);
            const curve = div.data.findIndex(trace => trace.x && trace.x.length > 0);
            Plotly.Fx.hover(div, [{curveNumber: curve, pointNumber: 0}], 'xy');
            return div.querySelector('.hoverlayer').textContent;
        }""",
        projections.get_attribute("id"),
    )
    assert "trial" in shown and "latency_ms" in shown and "test_accuracy" in shown
    assert "n_layers" in shown and "pruning" in shown  # parameters
    assert "deploy" in shown  # "deployed on cpu", or "deploy device not recorded"
    assert problems == []
    page.close()


def test_trial_table_sorts_and_filters(chromium: Any, searched: tuple[Path, str]) -> None:
    work, relative = searched
    page, problems, _ = _open(chromium, work / relative)
    table = page.locator("#all-trials")
    table.scroll_into_view_if_needed()

    def numbers() -> list[int]:
        return [
            int(n)
            for n in page.locator("#all-trials tbody tr:not([hidden]) td:first-child").all_text_contents()
        ]

    assert numbers() == sorted(numbers())
    header = table.locator("th").first
    header.click()
    header.click()
    assert numbers() == sorted(numbers(), reverse=True)
    page.select_option("#all-trials-status", "failed")
    failed = numbers()
    assert failed and all(n % 3 == 2 for n in failed)
    assert (
        page.locator("#all-trials-count").inner_text()
        == f"{len(failed)} of {table.locator('tbody tr').count()} trials shown"
    )
    page.select_option("#all-trials-status", "")
    page.fill("#all-trials-filter", "onnxruntime")
    visible = page.locator("#all-trials tbody tr:not([hidden])")
    assert 0 < visible.count() < table.locator("tbody tr").count()
    assert all("onnxruntime" in text for text in visible.all_text_contents())
    assert problems == []
    page.close()


def test_compare_and_many_objective_reports_render(chromium: Any, tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    four = ("accuracy", "inference_energy_j", "latency_ms", "model_bytes")
    make_study(storage, "a", n_trials=30, objectives=four, seed=1)
    make_study(storage, "b", n_trials=30, objectives=four, seed=2)
    assert main(["report", "--study", "a", "--storage", storage, "-o", str(tmp_path / "a.html")]) == 0
    assert main(["compare", "a", "b", "--storage", storage, "-o", str(tmp_path / "c.html")]) == 0
    for name, expected in (("a.html", 6), ("c.html", 2)):
        page, problems, requests = _open(chromium, tmp_path / name)
        assert _assert_every_figure_drawn(page) == expected
        assert _assert_titles_clear(page, name) > 10
        if name == "a.html":  # a trial's notes: a ⚠ that names them on hover, and shows them on click
            mark = page.locator("#all-trials summary.note-mark").first
            mark.scroll_into_view_if_needed()
            assert mark.get_attribute("title") == NO_PRUNABLE_LAYER
            note = page.locator("#all-trials td.notes li").first
            assert not note.is_visible()
            mark.click()
            assert note.is_visible() and note.inner_text() == NO_PRUNABLE_LAYER
        assert problems == [] and len(requests) == 1
        page.screenshot(path=str(ARTIFACTS / f"synthetic-{name}.png"), full_page=True)
        page.close()


def test_workers_their_warning_and_the_teacher_render(chromium: Any, tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    machines = (worker("node-a"), worker("gpu-box", cpu="AMD EPYC (synthetic)", basis="partly estimated"))
    make_study(storage, "w", n_trials=20, workers=machines, ledger={"teacher": 120.0}, stale=[4])
    assert main(["report", "--study", "w", "--storage", storage, "-o", str(tmp_path / "w.html")]) == 0
    page, problems, requests = _open(chromium, tmp_path / "w.html")
    assert _assert_every_figure_drawn(page) == 6
    warning = page.locator("#hardware-warning")
    assert warning.is_visible() and "not comparable" in warning.inner_text()
    workers = page.locator("#workers-table tbody tr")
    assert workers.count() == 2 and "gpu-box" in workers.nth(1).inner_text()
    teacher = page.locator("#ledger tbody tr", has_text="teacher")
    teacher.scroll_into_view_if_needed()
    assert teacher.is_visible() and "worker 0 on node-a" in teacher.inner_text()
    page.select_option("#all-trials-status", "failed")
    stale = page.locator("#all-trials tbody tr:not([hidden])", has_text="stopped sending heartbeats")
    assert stale.count() == 1 and "retried as trial 5" in stale.inner_text()
    assert _assert_titles_clear(page, "workers") > 10
    assert problems == [] and len(requests) == 1
    page.screenshot(path=str(ARTIFACTS / "synthetic-workers.png"), full_page=True)
    page.close()


# A tick label with an exponent (5e-05, 3.4e+05) or an SI prefix (50µ, 20k): a second unit
# beside the axis title's.
EXPONENT = re.compile(r"\d(\.\d+)?[eE][+\-−]?\d")
SI_TICK = re.compile(r"^[−-]?[\d.,]+\s?[yzafpnuµμmkMGTPEZY]$")


def test_units_and_marks_in_the_browser(chromium: Any, tmp_path: Path) -> None:
    """A synthetic study whose knee and some other front trials kept their models."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = make_study(None, "units", n_trials=20, seed=4)  # in memory: the page is written here
    record = load_record(study, "sqlite:///units.db")
    knee = knee_trial(study).number
    kept = {knee, *front_numbers(record.trials, record.objectives)[::2]}
    model = {"artifact_id": "a", "format": "onnx", "runtime": "onnxruntime", "bytes": 1, "sha256": "0"}
    trials = tuple(dataclasses.replace(t, model=model) if t.number in kept else t for t in record.trials)
    out = tmp_path / "units.html"
    out.write_text(
        report_html(dataclasses.replace(record, trials=trials), lambda: Importances({}, "none", 0))
    )
    page, problems, _ = _open(chromium, out)
    text = page.locator("body").inner_text()
    # The units the fixture's values call for, shown on the page.
    complete = [t for t in record.trials if t.state == "COMPLETE"]
    energy_unit = scale_for("inference_energy", [t.metrics["inference_energy_j"] for t in complete]).unit
    size_unit = scale_for("size", [t.metrics["model_bytes"] for t in complete]).unit
    assert energy_unit in ("nJ", "µJ", "mJ") and size_unit in ("kB", "MB")
    assert re.search(rf"energy per inference [\d.,]+ {energy_unit}", text)
    assert f"inference_energy_j ({energy_unit}" in page.locator("#front-table thead").inner_text()
    assert f"model_bytes ({size_unit})" in page.locator("#all-trials thead").inner_text()
    # Every tick label drawn (SVG; the 3-D view's are WebGL, set by its layout) and every cell.
    ticks = page.locator(
        'div.figure g[class$="tick"] > text, div.figure .parcoords .tick text'
    ).all_text_contents()
    assert len(ticks) > 30
    cells = page.locator("#front-table td, #all-trials td").all_inner_texts()
    for shown in ticks + cells:
        assert not EXPONENT.search(shown) and not SI_TICK.match(shown.strip()), shown
    scene = page.evaluate("() => document.querySelector('div.figure').layout.scene")
    assert {scene[axis]["exponentformat"] for axis in ("xaxis", "yaxis", "zaxis")} == {"none"}
    # The knee and the best per objective, in the front's table and in the figures' legends.
    marks = dict(
        zip(
            page.locator("#front-table tbody td:first-child").all_inner_texts(),
            page.locator("#front-table tbody td.marks").all_inner_texts(),
            strict=True,
        )
    )
    assert marks[str(knee)].split(" · ")[0] == "knee"
    labels = ("knee", "best accuracy", "lowest energy per inference", "lowest latency")
    assert {label for cell in marks.values() for label in cell.split(" · ") if label} == set(labels)
    legends = page.locator("div.figure .legendtext").all_text_contents()
    for label in labels:
        number = next(n for n, cell in marks.items() if label in cell.split(" · "))
        assert legends.count(f"{label}: trial {number}") == 2, label  # the 3-D view and the projections
    # The copy button gives the command (to the clipboard, or selected where the page may not).
    button = page.locator("#front-table tbody tr", has_text="knee").locator("button.copy")
    button.click()
    page.wait_for_function("(b) => b.textContent !== 'copy'", arg=button.element_handle(), timeout=2000)
    if button.inner_text() != "copied":
        assert page.evaluate("() => window.getSelection().toString()") == button.get_attribute("data-copy")
    assert f"--trial {knee} -o model-{knee}" in str(button.get_attribute("data-copy"))
    assert _assert_titles_clear(page, "units") > 5
    assert problems == []
    page.close()


CURVES = "Learning curves: validation accuracy against each trial's training energy"
ENERGY_TITLE = re.compile(r"^the trial's training energy so far \((J|Wh|kWh)[,)]")


def _assert_learning_curves(page: Any, stopped: bool) -> None:
    """The learning curves: drawn under a heading that is not cut, their titles whole inside the
    figure, the energy axis in the page's energy unit (the footprint's), the front's lines solid
    and (``stopped``) stopped ones dashed and named by the epoch they were stopped at."""
    figure = page.locator(f'div.figure[aria-label="{CURVES}"]')
    assert figure.count() == 1
    figure.scroll_into_view_if_needed()
    heading = page.locator("#curves ~ h3", has_text="Learning curves").first
    assert heading.inner_text() == CURVES
    assert page.evaluate("(e) => e.scrollWidth <= e.clientWidth", heading.element_handle())
    shape = page.evaluate(_FIGURE_GEOMETRY, figure.get_attribute("id"))
    titles = dict(shape["titles"])
    energy = next((text for text in titles if ENERGY_TITLE.match(text)), None)
    assert energy is not None, list(titles)
    assert "validation accuracy" in "".join(titles)
    for text, box in shape["titles"]:
        assert _inside(box, shape["figure"]) and _inside(box, shape["svg"]), f"{text!r} clipped"
    kpi = page.locator(".kpi", has_text="energy").first.locator("b").inner_text()
    assert ENERGY_TITLE.match(energy).group(1) == kpi.split()[-1]  # type: ignore[union-attr]
    dashes = page.evaluate(
        "(id) => Object.fromEntries(document.getElementById(id).data"
        "  .filter((t) => t.mode === 'lines+markers').map((t) => [t.name, t.line.dash]))",
        figure.get_attribute("id"),
    )
    assert dashes["Pareto front"] == "solid"
    legend = figure.locator(".legendtext").all_text_contents()
    if stopped:
        cut = [name for name in legend if name.startswith("stopped at epoch ")]
        assert cut and all(dashes[name] == "dash" for name in cut)
    else:
        assert not any(name.startswith("stopped") for name in legend)


def test_learning_curves_and_early_stopping_render(chromium: Any, tmp_path: Path) -> None:
    """A synthetic study searched with early stopping: curves cut where the rule stopped them,
    what the stopped trials spent and an estimate of what stopping them saved."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = make_study(None, "early", n_trials=24, seed=6, stop_every=3, watts=8000.0)  # in Wh, not J
    out = tmp_path / "early.html"
    out.write_text(report_html(load_record(study), lambda: Importances({}, "none", 0)))
    page, problems, requests = _open(chromium, out)
    assert _assert_every_figure_drawn(page) == 6  # no importances given
    _assert_learning_curves(page, stopped=True)
    title = page.locator(f'div.figure[aria-label="{CURVES}"] g.g-xtitle').text_content() or ""
    assert title.startswith("the trial's training energy so far (Wh")
    # hovering a stopped trial's last point names the epoch it was stopped at
    shown = page.evaluate(
        """(id) => {
            const div = document.getElementById(id);
            const curve = div.data.findIndex((t) => t.mode === 'markers' && t.marker.symbol === 'x');
            Plotly.Fx.hover(div, [{curveNumber: curve, pointNumber: 0}], 'xy');
            return div.querySelector('.hoverlayer').textContent;
        }""",
        page.locator(f'div.figure[aria-label="{CURVES}"]').get_attribute("id"),
    )
    assert re.search(r"trial \d+ \(stopped at epoch \d+ of \d+\)", shown), shown
    saved = page.locator("#saved-energy")
    saved.scroll_into_view_if_needed()
    assert saved.is_visible() and "estimate" in saved.inner_text() and "≈" in saved.inner_text()
    assert page.locator("#saving-rule").is_visible()
    assert _assert_titles_clear(page, "early") > 10
    assert problems == [] and len(requests) == 1
    page.screenshot(path=str(ARTIFACTS / "synthetic-early-stopping.png"), full_page=True)
    page.close()


def test_bench_report_renders_labelled_as_replayed(chromium: Any, tmp_path: Path) -> None:
    """greenml bench run's report on the shipped table: drawn, titles clear, labelled as replayed."""
    table = Path(__file__).resolve().parents[1] / "benchmarks" / "tables" / "mlp-digits.parquet"
    out = tmp_path / "bench.html"
    args = ["bench", "run", "--table", str(table), "--samplers", "random,random+mo-asha", "--seeds", "3"]
    # Enough energy for five-digit joules: written out in full, never as 1.2e+04.
    budget = ["--budget-energy", "12000", "--budget-trials", "600"]
    assert main([*args, *budget, "--jobs", "1", "-o", str(out)]) == 0
    page, problems, requests = _open(chromium, out)
    assert _assert_every_figure_drawn(page) == 2
    assert _assert_titles_clear(page, "bench.html") > 5
    text = page.locator("body").inner_text()
    assert "replayed from a table built on AMD EPYC (family 25, model 17); deployed on cpu" in text
    assert "No model was trained for this page" in text
    legend = page.locator("#fig1 g.legend").text_content() or ""
    assert "random" in legend and "random+mo-asha" in legend
    summary = page.locator("table.summary").first.inner_text()
    assert re.search(r"\b12,0\d\d\b", summary), summary  # random's energy spent, in plain digits
    assert not re.search(r"\de[+-]\d", summary), summary
    assert problems == [] and len(requests) == 1
    page.screenshot(path=str(ARTIFACTS / "bench.png"), full_page=True)
    page.close()
