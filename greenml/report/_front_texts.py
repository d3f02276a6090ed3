"""What a page says about the front and its hypervolume: the choices between front trials, the
commands that write their models, the loss form and the reference point."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from greenml.metrics import MAXIMIZED
from greenml.report._commands import model_command
from greenml.report._display import PageUnits
from greenml.report._front import FrontMarks
from greenml.report._labels import metric_phrase
from greenml.report._loss import from_loss_form
from greenml.report._record import StudyRecord, TrialRecord
from greenml.units import plain

__all__ = ["choices", "loss_text", "model_commands", "reference_origin", "reference_text"]


def loss_text(objectives: Sequence[str]) -> str:
    """The loss form of the objectives, as the hypervolume uses it (:mod:`._loss`)."""
    return ", ".join(f"error = 1 − {name}" if name in MAXIMIZED else name for name in objectives)


def reference_text(reference: Mapping[str, float], units: PageUnits) -> tuple[str, str]:
    """The reference point as the page shows it (in its units) and as ``--reference`` takes it
    (base units, plain decimals)."""
    raw = {name: from_loss_form(name, value) for name, value in reference.items()}
    shown = ", ".join(f"{name} = {units.text(name, value)}" for name, value in raw.items())
    arg = ",".join(f"{name}={plain(value, 6)}" for name, value in raw.items())
    return shown, arg


def reference_origin(reference: Mapping[str, float] | None, objectives: Sequence[str]) -> str:
    """Where the reference point came from: ``--reference``, the default, or both."""
    if reference and set(reference) == set(objectives):
        return "given with --reference"
    given = f"; given with --reference: {', '.join(reference)}" if reference else ""
    return f"default: 1.1 × the worst feasible value of each objective, an error capped at 1{given}"


def model_commands(record: StudyRecord, trials: Sequence[TrialRecord]) -> dict[int, str | None]:
    """Per front trial, the command that writes its model, or None where its model was not kept.

    A front trial's model record means its file is kept: ``--keep-models front`` deletes only
    the files of trials off the front, and a trial on the front now never left it."""
    return {
        t.number: model_command(record.name, record.storage, t.number, record.attrs) if t.model else None
        for t in trials
    }


def choices(
    front: Sequence[TrialRecord],
    objectives: Sequence[str],
    marks: FrontMarks,
    units: PageUnits,
    commands: Mapping[int, str | None],
) -> list[dict[str, Any]]:
    """The knee and each objective's best, one entry per trial (a trial may be several): its
    marks, its objectives in the page's units, and the command that writes its model."""
    by_number = {t.number: t for t in front}
    numbers = [n for n in dict.fromkeys([marks.knee, *marks.best.values()]) if n is not None]
    return [
        {
            "number": number,
            "marks": " · ".join(marks.labels(number)),
            "objectives": ", ".join(
                f"{metric_phrase(name)} {units.text(name, by_number[number].metrics[name])}"
                for name in objectives
            ),
            "command": commands.get(number),
        }
        for number in numbers
    ]
