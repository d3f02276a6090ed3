"""A benchmark table as an optimisation problem any Optuna study can run against.

:class:`TableProblem` has the shape of OptunaHub's benchmark problems
(``optunahub.benchmarks.BaseProblem``): ``search_space`` (Optuna distributions), ``directions``,
``metric_names``, ``evaluate(params)`` and ``__call__(trial)``, so ``study.optimize(problem,
n_trials=...)`` works without optunahub installed.

The search space, and proposals outside the grid
    The space is the one a live search samples (the space's own ranges for numbers, so a
    sampler sees the same problem as in a live search), with three exceptions: a parameter
    with one value in the grid is fixed, not searched (``epochs``, the table's fidelity, is
    one: each row trains to the grid's epochs); and a categorical parameter offers only the
    grid's values that have rows (a category has no nearest neighbour).
    A proposal is **snapped to the nearest grid point that has a row**, parameter by parameter,
    in the order the trial asks for them, each among the rows that match the parameters before
    it: a number to the nearest value (in log space for a log-scaled parameter; a tie goes to the
    lower value), a category exactly. A parameter the grid point does not ask for
    (``prune_amount`` of an unpruned configuration) is ignored. A grid point whose row is missing
    (its build trial failed) is never returned: its proposals go to the nearest row that exists
    (for a category, the first, in the grid's order, that has a row among the matching ones). A
    category with no row at all is not offered; one outside the space is refused (ValueError).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from greenml.bench.table import Table, load_table
from greenml.metrics import MAXIMIZED, to_loss

__all__ = ["DEFAULT_OBJECTIVES", "TableProblem", "suggest_all"]

DEFAULT_OBJECTIVES: tuple[str, ...] = ("accuracy", "inference_energy_j", "latency_ms")


class TableProblem:
    """The table as a problem: ``evaluate(params)`` returns the nearest grid point's objectives."""

    def __init__(self, table: Table | str, objectives: Sequence[str] | None = None) -> None:
        from optuna.distributions import CategoricalDistribution

        self.table = load_table(table) if isinstance(table, str) else table
        self.objectives = tuple(objectives or self.table.meta.get("objectives") or DEFAULT_OBJECTIVES)
        self._losses = self.table.losses(self.objectives)  # also checks the names
        grid = self.table.meta["grid"]
        self._space: dict[str, Any] = {}
        for name in self.table.params:
            if len(grid[name]) == 1:
                continue  # one value in the grid: fixed, not searched
            distribution = self.table.distributions[name]
            if isinstance(distribution, CategoricalDistribution):
                present = self.table.frame[f"param_{name}"].dropna().tolist()
                distribution = CategoricalDistribution(
                    [c for c in distribution.choices if c in grid[name] and any(_same(c, v) for v in present)]
                )
            self._space[name] = distribution
        frame = self.table.frame
        # Each column as codes into its distinct values (-1: the row did not ask for it), so
        # snapping compares a handful of values, not every row.
        self._distinct: dict[str, list[Any]] = {}
        self._codes: dict[str, np.ndarray] = {}
        for name in self._space:
            distinct: list[Any] = []
            codes = []
            for value in frame[f"param_{name}"].to_numpy(dtype=object):
                if _missing(value):
                    codes.append(-1)
                    continue
                code = next((i for i, d in enumerate(distinct) if _same(d, value)), None)
                if code is None:
                    code = len(distinct)
                    distinct.append(value)
                codes.append(code)
            self._distinct[name] = distinct
            self._codes[name] = np.array(codes, dtype=int)

    # --- OptunaHub's BaseProblem shape ---------------------------------------------------------

    @property
    def search_space(self) -> dict[str, Any]:
        return dict(self._space)

    @property
    def directions(self) -> list[Any]:
        from optuna.study import StudyDirection

        return [
            StudyDirection.MAXIMIZE if n in MAXIMIZED else StudyDirection.MINIMIZE for n in self.objectives
        ]

    @property
    def metric_names(self) -> list[str]:
        return list(self.objectives)

    def evaluate(self, params: dict[str, Any]) -> tuple[float, ...]:
        return self.values(self.row(params))

    def __call__(self, trial: Any) -> tuple[float, ...]:
        return self.evaluate(suggest_all(trial, self._space))

    # --- the table behind it -------------------------------------------------------------------

    def values(self, row: int) -> tuple[float, ...]:
        """Row ``row``'s objectives, in the objectives' units and directions."""
        return tuple(
            to_loss(name, loss)  # a loss's sign flipped back: the metric's own direction
            for name, loss in zip(self.objectives, self._losses[row], strict=True)
        )

    def losses(self, row: int) -> tuple[float, ...]:
        return tuple(float(v) for v in self._losses[row])

    def row(self, params: dict[str, Any]) -> int:
        """The row of the grid point nearest ``params`` (see the module docstring)."""
        keep = np.ones(len(self.table), dtype=bool)
        for name, distribution in self._space.items():
            codes = self._codes[name]
            present = (codes >= 0) & keep
            if not present.any():
                continue  # no remaining grid point asks for it
            if name not in params:
                raise ValueError(
                    f"missing parameter {name!r}; the problem's parameters: {', '.join(self._space)}"
                )
            # In the order of the rows, as the options were listed before (ties go to the first).
            first_seen = dict.fromkeys(codes[present].tolist())
            options = [self._distinct[name][code] for code in first_seen]
            chosen = _snap(name, params[name], options, distribution)
            code = next(c for c in first_seen if self._distinct[name][c] is chosen)
            keep &= (codes < 0) | (codes == code)
        return int(np.flatnonzero(keep)[0])  # the first of equals: rows differ in a parameter asked


def suggest_all(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    """Ask ``trial`` for every parameter of ``space`` through its public ``suggest_*`` methods."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    params: dict[str, Any] = {}
    for name, d in space.items():
        if isinstance(d, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, d.choices)
        elif isinstance(d, IntDistribution):
            params[name] = trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
        elif isinstance(d, FloatDistribution):
            params[name] = trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
        else:
            raise TypeError(f"{name}: unsupported distribution {d!r}")
    return params


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (bool, np.bool_)) or isinstance(b, (bool, np.bool_)):
        return bool(a) == bool(b) and type(bool(a)) is type(bool(b))
    if isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def _snap(name: str, value: Any, options: list[Any], distribution: Any) -> Any:
    from optuna.distributions import CategoricalDistribution

    distinct: list[Any] = []
    for option in options:
        if not any(_same(option, d) for d in distinct):
            distinct.append(option)
    if (
        isinstance(distribution, CategoricalDistribution)
        or not isinstance(value, (int, float, np.number))
        or isinstance(value, bool)
    ):
        for option in distinct:
            if _same(option, value):
                return option
        if any(_same(value, choice) for choice in getattr(distribution, "choices", ())):
            return distinct[0]  # a category of the space with no row among the matching ones
        raise ValueError(f"{name} = {value!r} is not in the grid; valid: {', '.join(map(repr, distinct))}")
    log = (
        bool(getattr(distribution, "log", False)) and float(value) > 0 and all(float(o) > 0 for o in distinct)
    )

    def distance(option: Any) -> tuple[float, float]:
        a, b = float(value), float(option)
        return (abs(math.log(a) - math.log(b)) if log else abs(a - b), b)

    return min(distinct, key=distance)
