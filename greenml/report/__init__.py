"""Reports: one self-contained HTML file per study (``greenml report``) or per comparison.

The data path: a study is read once through :mod:`greenml.records` into plain records
(:mod:`._record`); pure functions of them give the numbers (:mod:`._front`, :mod:`._hypervolume`,
:mod:`._footprint`, :mod:`._basis`, :mod:`._stopping`, :mod:`._curves`, :mod:`._workers`,
:mod:`._importances`), each tested on its own. The presentation side shows them: one unit per
quantity for a whole page (:mod:`._display`), the words (:mod:`._labels`, :mod:`._commands`,
:mod:`._header` and the ``_*_texts`` modules), one module per figure (``_plot_*``), the trial tables
(:mod:`._tables`) and the page (:mod:`._page`, through :func:`render_page`: Jinja2 templates,
autoescaped, plotly.js inlined so the page renders offline).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from greenml.errors import ConfigError
from greenml.report._basis import (
    EnergyBasis,
    EstimateShare,
    energy_basis,
    estimate_share,
    inference_estimate_shares,
    search_estimate_share,
)
from greenml.report._commands import model_command
from greenml.report._footprint import Footprint, LedgerItem, footprint, ledger_items
from greenml.report._front import FrontMarks, classify, front_marks, front_numbers
from greenml.report._html import PageFigures, render_page
from greenml.report._hypervolume import (
    HypervolumePoint,
    default_reference,
    hypervolume,
    hypervolume_history,
    parse_reference,
)
from greenml.report._importances import IMPORTANCE_EVALUATORS, Importances, importances
from greenml.report._labels import metric_label
from greenml.report._page import comparison_html, report_html
from greenml.report._plot_style import PLAIN_TICKS, STUDY_COLOURS, figure_layout
from greenml.report._record import StudyRecord, TrialRecord, load_record
from greenml.report._workers import WorkerSummary, hardware_differences, workers
from greenml.results import write_atomic

__all__ = [
    "IMPORTANCE_EVALUATORS",
    "PLAIN_TICKS",
    "STUDY_COLOURS",
    "EnergyBasis",
    "EstimateShare",
    "Footprint",
    "FrontMarks",
    "HypervolumePoint",
    "Importances",
    "LedgerItem",
    "PageFigures",
    "StudyRecord",
    "TrialRecord",
    "WorkerSummary",
    "classify",
    "comparison_html",
    "default_reference",
    "default_report_path",
    "energy_basis",
    "estimate_share",
    "figure_layout",
    "footprint",
    "front_marks",
    "front_numbers",
    "hardware_differences",
    "hypervolume",
    "hypervolume_history",
    "importances",
    "inference_estimate_shares",
    "ledger_items",
    "load_record",
    "metric_label",
    "model_command",
    "parse_reference",
    "render_page",
    "report_html",
    "search_estimate_share",
    "workers",
    "write_comparison",
    "write_report",
]


def default_report_path(study_name: str, directory: Path = Path("reports")) -> Path:
    """``reports/<study>.html``, the name made safe for any file system."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", study_name).strip("._") or "study"
    return directory / f"{safe[:150]}.html"


def write_report(
    study_name: str,
    storage_url: str,
    output: Path | None = None,
    reference: str | None = None,
    importance: str = "mdi",
) -> Path:
    """Read the study, build its page and write it atomically; returns the path written."""
    import optuna

    from greenml.storage import open_study

    if importance not in IMPORTANCE_EVALUATORS:
        raise ConfigError(f"unknown --importance {importance!r}; valid: {', '.join(IMPORTANCE_EVALUATORS)}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    path = output or default_report_path(study_name)
    _check_output(path, default=output is None)
    with _Importances() as pending:
        study = open_study(study_name, storage_url)
        trials = study.get_trials(deepcopy=False)
        record = load_record(study, storage_url, trials)
        point = parse_reference(reference, record.objectives) if reference else None
        pending.submit(trials, record.objectives, importance)
        text = report_html(record, pending.result, point, importance)
    write_atomic(path, text)
    return path


class _Importances:
    """Importances computed beside the rest of the report.

    Optuna's evaluators import scikit-learn, which takes ~1.4 s on its own; where ``fork`` exists
    and scikit-learn is not loaded yet (and this process has a single thread), a worker process imports it while this one reads the
    study and draws the other figures (the page asks for the result last). Elsewhere, or if the
    worker fails, they are computed here.
    """

    def __init__(self) -> None:
        self._executor: Any = None
        self._future: Any = None
        self._args: tuple[Any, ...] = ()

    def __enter__(self) -> _Importances:
        import multiprocessing
        import sys
        import threading
        from concurrent.futures import ProcessPoolExecutor

        # Forking is safe only while this process has no other thread (a lock held there would
        # stay held in the child); the search and notebooks may have some, and then compute here.
        single_threaded = threading.active_count() == 1
        if (
            "sklearn" not in sys.modules
            and single_threaded
            and "fork" in multiprocessing.get_all_start_methods()
        ):
            self._executor = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("fork")
            )
            self._executor.submit(_warm_up)
        return self

    def submit(self, trials: Sequence[Any], objectives: Sequence[str], evaluator: str) -> None:
        self._args = (list(trials), tuple(objectives), evaluator)
        if self._executor is not None:
            self._future = self._executor.submit(importances, *self._args)

    def result(self) -> Importances:
        from concurrent.futures.process import BrokenProcessPool

        if self._future is not None:
            try:
                value: Importances = self._future.result()
                return value
            except BrokenProcessPool:  # the worker died (killed, out of memory): compute here instead
                pass
            # Any other error is importances()'s own, raised here as it would be without the worker.
        return importances(*self._args)

    def __exit__(self, *exc: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def _warm_up() -> None:
    import optuna.importance  # noqa: F401  (imports scikit-learn)


def write_comparison(
    studies: Sequence[str],
    storages: Sequence[str],
    output: Path | None = None,
    objectives: Sequence[str] | None = None,
    reference: str | None = None,
) -> Path:
    """Compare studies (one storage for all, or one per study) on shared axes and reference."""
    from greenml.storage import open_study

    if len(studies) < 2:
        raise ConfigError("compare needs at least two studies")
    if len(storages) not in (1, len(studies)):
        raise ConfigError(
            f"give --storage once (for every study) or once per study ({len(studies)}), not {len(storages)} times"
        )
    urls = list(storages) * len(studies) if len(storages) == 1 else list(storages)
    records = [load_record(open_study(name, url), url) for name, url in zip(studies, urls, strict=True)]
    axes = tuple(objectives) if objectives else _shared_objectives(records)
    for record in records:
        missing = [name for name in axes if not any(name in t.metrics for t in record.trials)]
        if missing and any(t.state == "COMPLETE" for t in record.trials):
            raise ConfigError(f"study {record.name!r} has no values of {', '.join(missing)}")
    point = parse_reference(reference, axes) if reference else None
    labels = _labels(records)
    path = output or default_report_path("compare-" + "-vs-".join(studies))
    _check_output(path, default=output is None)
    write_atomic(path, comparison_html(records, labels, axes, point))
    return path


def _shared_objectives(records: Sequence[StudyRecord]) -> tuple[str, ...]:
    first = records[0].objectives
    for record in records[1:]:
        if record.objectives != first:
            raise ConfigError(
                f"studies {records[0].name!r} and {record.name!r} have different objectives "
                f"({', '.join(first)} vs {', '.join(record.objectives)}); choose the axes with --objectives"
            )
    return first


def _labels(records: Sequence[StudyRecord]) -> list[str]:
    names = [record.name for record in records]
    return [
        f"{record.name} ({record.storage})" if names.count(record.name) > 1 else record.name
        for record in records
    ]


def _check_output(path: Path, default: bool) -> None:
    """The default reports/ folder is created; a folder the user names must exist."""
    if path.is_dir():
        raise ConfigError(f"-o: {str(path)!r} is a directory; give a file name such as report.html")
    if not default and not path.parent.is_dir():
        raise ConfigError(f"-o: directory {str(path.parent)!r} does not exist")
