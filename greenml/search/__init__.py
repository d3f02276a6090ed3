"""The search: an Optuna study over a space's architectures × greenml's training and compression.

:func:`prepare` validates everything and opens the storage before a single trial is written;
:func:`run` runs one worker's trials until the study's budget (complete trials, time, or the
study's own measured energy, read from the storage) is spent, keeping failed trials with their
errors; :func:`run_workers` runs N such workers as processes on this machine.
"""

from greenml.search._config import (
    DEFAULT_OBJECTIVES,
    SAMPLERS,
    SearchConfig,
    default_storage,
)
from greenml.search._loop import SearchOutcome, interrupted_message, pareto_rows, run
from greenml.search._open import SearchRun, comparable_settings, prepare
from greenml.search._pool import run_workers
from greenml.search._progress import Progress
from greenml.search._samplers import make_sampler
from greenml.search._stopping import (
    STOPPING_RULES,
    RungEntry,
    StoppingRule,
    parse_rule,
    rule_label,
    stopping_rule,
)

__all__ = [
    "DEFAULT_OBJECTIVES",
    "SAMPLERS",
    "STOPPING_RULES",
    "Progress",
    "RungEntry",
    "SearchConfig",
    "SearchOutcome",
    "SearchRun",
    "StoppingRule",
    "comparable_settings",
    "default_storage",
    "interrupted_message",
    "make_sampler",
    "pareto_rows",
    "parse_rule",
    "prepare",
    "rule_label",
    "run",
    "run_workers",
    "stopping_rule",
]
