"""Reports opened in a real browser: headless Chromium, driven by Playwright.

The study of the main test is made by a real ``greenml search`` (digits, the MLP space through a
plug-in that fails every third trial with a hostile error message, under a hostile study name);
the report is the one the search writes when it stops. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest

from greenml.cli import main
from greenml.testing.studies import NO_PRUNABLE_LAYER, make_study, worker

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


def test_search_report_renders_with_no_errors(chromium: Any, searched: tuple[Path, str]) -> None:
    work, relative = searched
    page, problems, requests = _open(chromium, work / relative)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert problems == []
    assert requests == [(work / relative).resolve().as_uri()]  # nothing from the network
    assert page.evaluate("typeof window.__pwned") == "undefined"
    # 3-D front, projections, hypervolume, phases, per trial, importances
    assert _assert_every_figure_drawn(page) == 6
    assert page.locator("div.figure canvas").count() >= 1  # the 3-D view is WebGL
    assert page.title() == f"greenml report: {HOSTILE_NAME}"
    assert HOSTILE_NAME in page.locator("h1").inner_text()  # shown as text
    assert "onerror=window.__pwned=2" in (page.locator("#all-trials").text_content() or "")
    assert "deploy device" in page.locator("#all-trials thead").inner_text()
    # The front's note claims measured energy only where no energy figure is estimated.
    claim = "Accuracy, latency, energy and size are measured on the deployed artifact."
    estimated = page.locator("#energy-basis").count() == 1
    assert (claim in page.locator("main").inner_text()) != estimated
    page.close()


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
    assert problems == [] and len(requests) == 1
    page.screenshot(path=str(ARTIFACTS / "synthetic-workers.png"), full_page=True)
    page.close()
