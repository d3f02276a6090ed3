"""The search: an Optuna study over a space's architectures × greenml's training and compression.

:func:`prepare` validates everything and opens the storage before a single trial is written;
:func:`run` runs trials until the budget (complete trials, time, or the search's own measured
energy) is spent, keeping failed trials with their errors.
"""

from greenml.search._config import (
    DEFAULT_OBJECTIVES,
    SAMPLERS,
    Constraint,
    SearchConfig,
    default_storage,
    parse_constraint,
)
from greenml.search._study import SearchOutcome, SearchRun, pareto_rows, prepare, run

__all__ = [
    "DEFAULT_OBJECTIVES",
    "SAMPLERS",
    "Constraint",
    "SearchConfig",
    "SearchOutcome",
    "SearchRun",
    "default_storage",
    "pareto_rows",
    "parse_constraint",
    "prepare",
    "run",
]
