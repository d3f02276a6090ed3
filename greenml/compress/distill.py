"""Knowledge distillation: train a small student on a larger teacher's softened predictions.

Hinton et al. (2015): the teacher's probabilities at a temperature T > 1 say which wrong classes
are nearly right, which hard labels do not. torch is imported inside the function, so importing
:mod:`greenml.compress` stays fast.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING

from greenml.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["distillation_loss"]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """``alpha * T² * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * cross_entropy``.

    Logits are ``(batch, classes, ...)`` as for ``torch.nn.functional.cross_entropy``; ``targets``
    are what cross-entropy takes (class indices or probabilities). The KL term is summed over
    classes and averaged like the cross-entropy, and scaled by T² so its gradients keep their
    size as T changes. The teacher gets no gradient.
    """
    import torch
    import torch.nn.functional as F

    for name, value in (("temperature", temperature), ("alpha", alpha)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0 (1 leaves the logits as they are), got {temperature!r}")
    if not 0 <= alpha <= 1:
        raise ConfigError(f"alpha must be in [0, 1] (0: labels only, 1: teacher only), got {alpha!r}")
    if not isinstance(student_logits, torch.Tensor) or not isinstance(teacher_logits, torch.Tensor):
        raise ConfigError("student_logits and teacher_logits must be torch tensors")
    if student_logits.ndim < 2 or student_logits.shape != teacher_logits.shape:
        raise ConfigError(
            f"student and teacher logits must have the same (batch, classes, ...) shape, "
            f"got {tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    student_log_p = F.log_softmax(student_logits / temperature, dim=1)
    teacher_log_p = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    kl = F.kl_div(student_log_p, teacher_log_p, reduction="none", log_target=True).sum(dim=1).mean()
    hard = F.cross_entropy(student_logits, targets)
    return alpha * temperature**2 * kl + (1 - alpha) * hard
