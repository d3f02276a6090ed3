"""One real trial run outside the search, its outputs kept on the context for a test to look at.

:func:`greenml.trial.run_trial` gives back a :class:`~greenml.trial.TrialResult` (a stopped or
failed trial's comes on its exception). A test that runs one trial and then checks what it
measured, failed trials included, reads it here from the context it passed:
``ctx.last_window``, ``ctx.notes``, ``ctx.curve``, ``ctx.early_cost``... are the last
:func:`run_trial`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from greenml import trial as _trial
from greenml.measure import WindowResult
from greenml.trial import TrialFailed, TrialResult, TrialStopped, partial_result

__all__ = ["TrialContext", "TrialFailed", "TrialStopped", "run_trial"]


@dataclass
class TrialContext(_trial.TrialContext):
    """A :class:`greenml.trial.TrialContext` that keeps the last trial's result (``last``)."""

    last: TrialResult | None = field(default=None, repr=False)

    @property
    def last_window(self) -> WindowResult | None:
        return None if self.last is None else self.last.window

    @property
    def last_inference(self) -> dict[str, Any] | None:
        inference = None if self.last is None else self.last.inference
        return None if inference is None else dict(inference)

    @property
    def last_model(self) -> dict[str, Any] | None:
        model = None if self.last is None else self.last.model
        return None if model is None else dict(model)

    @property
    def notes(self) -> list[str]:
        return [] if self.last is None else list(self.last.notes)

    @property
    def curve(self) -> list[dict[str, float]]:
        return [] if self.last is None else [dict(point) for point in self.last.curve]

    @property
    def early_cost(self) -> dict[str, float] | None:
        cost = None if self.last is None else self.last.early_cost
        return None if cost is None else dict(cost)

    @property
    def cost_from(self) -> int | None:
        return None if self.last is None else self.last.cost_from

    @property
    def artifact_key(self) -> str | None:
        return None if self.last is None else self.last.artifact_key


def run_trial(trial: Any, ctx: TrialContext) -> TrialResult:
    """:func:`greenml.trial.run_trial`, keeping its result (or a failed trial's partial one) in ``ctx.last``."""
    ctx.last = None
    try:
        result = _trial.run_trial(trial, ctx)
    except BaseException as error:
        ctx.last = partial_result(error)
        raise
    ctx.last = result
    return result
