"""The report's loss form: the objectives as errors in the box from 0 to a reference point.

The front, the knee and the best trials use :func:`greenml.metrics.to_loss` (a maximised metric
negated), the one loss convention. The hypervolume cannot: it is measured in a box from 0 to
the reference point and divided by the box's volume, so a maximised metric must become a
non-negative error, ``1 - accuracy``. A translation would change every number it prints (the
normalised hypervolume, the reference point, ``--reference``), so this form is kept, here only.
The importances' target uses it too: their random forests (MDI, fANOVA) are fitted on these
numbers, and forests fitted on negated accuracies split otherwise, so the importances shown
would move (by about 1% on a synthetic study).
"""

from __future__ import annotations

from greenml.metrics import MAXIMIZED

__all__ = ["from_loss_form", "loss_form"]


def loss_form(name: str, value: float) -> float:
    """``1 - value`` for a maximised metric (an accuracy's error), the value otherwise."""
    return 1.0 - value if name in MAXIMIZED else value


def from_loss_form(name: str, loss: float) -> float:
    """The metric's own value of a figure in loss form (:func:`loss_form`'s inverse)."""
    return 1.0 - loss if name in MAXIMIZED else loss
