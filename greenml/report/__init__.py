"""Reports: one self-contained HTML file per study (``greenml report``) or per comparison.

The data path is :mod:`._data` (pure functions of a study's records, tested on their own) ->
:mod:`._figures` (Plotly figures of that data) -> :mod:`._page` (Jinja2 templates, autoescaped,
plotly.js inlined so the page renders offline).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from greenml.errors import ConfigError
from greenml.report._data import (
    IMPORTANCE_EVALUATORS,
    Footprint,
    HypervolumePoint,
    StudyRecord,
    TrialRecord,
    classify,
    default_reference,
    footprint,
    front_numbers,
    hypervolume,
    hypervolume_history,
    importances,
    load_record,
    parse_reference,
)
from greenml.report._page import comparison_html, report_html, write_atomic

__all__ = [
    "IMPORTANCE_EVALUATORS",
    "Footprint",
    "HypervolumePoint",
    "StudyRecord",
    "TrialRecord",
    "classify",
    "comparison_html",
    "default_report_path",
    "default_reference",
    "footprint",
    "front_numbers",
    "hypervolume",
    "hypervolume_history",
    "importances",
    "load_record",
    "parse_reference",
    "report_html",
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
    from greenml.search._study import open_study

    if importance not in IMPORTANCE_EVALUATORS:
        raise ConfigError(f"unknown --importance {importance!r}; valid: {', '.join(IMPORTANCE_EVALUATORS)}")
    study = open_study(study_name, storage_url)
    record = load_record(study, storage_url)
    point = parse_reference(reference, record.objectives) if reference else None
    path = output or default_report_path(study_name)
    _check_output(path)
    text = report_html(record, importances(study, record.objectives, importance), point, importance)
    write_atomic(path, text)
    return path


def write_comparison(
    studies: Sequence[str],
    storages: Sequence[str],
    output: Path | None = None,
    objectives: Sequence[str] | None = None,
    reference: str | None = None,
) -> Path:
    """Compare studies (one storage for all, or one per study) on shared axes and reference."""
    from greenml.search._study import open_study

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
    _check_output(path)
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
        f"{record.name} ({record.storage})" if names.count(record.name) > 1 else record.name for record in records
    ]


def _check_output(path: Path) -> None:
    if path.exists() and path.is_dir():
        raise ConfigError(f"-o: {str(path)!r} is a directory; give a file name such as report.html")
    parent = path.parent
    if parent != Path("reports") and not parent.is_dir():
        raise ConfigError(f"-o: directory {str(parent)!r} does not exist")
