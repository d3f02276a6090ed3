"""The finite grid a benchmark table covers: a TOML file of values per parameter, expanded.

A grid file lists, for each parameter the search space and greenml's training and compression
settings suggest, the values the table takes::

    # every combination; conditional parameters only where the trial asks for them
    [params]
    n_layers = [1, 2, 3]
    width = [32, 64, 128, 256]
    dropout = [0.0, 0.2]
    lr = {low = 0.001, high = 0.01, num = 4, log = true}   # 0.001, 0.00215, 0.00464, 0.01
    batch_size = [64]
    epochs = [20]            # the fidelity: one value, the most epochs; every row keeps its curve
    pruning = ["none", "structured"]
    prune_amount = [0.5]     # asked only when pruning is not "none"
    finetune_epochs = [2]
    runtime = ["torch", "onnxruntime"]
    quantization = ["none", "dynamic"]   # asked only for onnxruntime

How continuous parameters are discretised: by the values listed, or by ``{low, high, num[,
log]}``: ``num`` points from ``low`` to ``high``, evenly spaced, or evenly in log space with
``log = true`` (rounded to 6 significant digits, so the file and the table show the same
numbers). Integer parameters take whole numbers only.

How the grid is expanded: the trial's own suggestions are replayed with a recording trial
(:class:`_GridTrial`), so a parameter is a column of a configuration only where the trial asks
for it (``prune_amount`` only for pruned configurations, ``quantization`` only for ONNX Runtime
ones), and no two configurations differ only in a parameter the trial never read. Every value is
checked against the distribution the trial suggests it from, and every parameter the file names
must be asked for by at least one configuration; both are one-line errors naming the valid
choices.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenml.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["DEFAULT_GRIDS", "FIDELITY", "Grid", "expand", "load_grid", "parse_grid"]

# The parameter that is the table's fidelity: each row trains to its one value and keeps the
# accuracy after every epoch below it.
FIDELITY = "epochs"
# Grids shipped with greenml, used when ``--grid`` is not given: space name -> file.
DEFAULT_GRIDS: dict[str, Path] = {"mlp": Path(__file__).with_name("grids") / "mlp.toml"}


@dataclass(frozen=True)
class Grid:
    """Values per parameter, in the file's order; ``source`` names the file in errors."""

    values: dict[str, tuple[Any, ...]]
    source: str = "the grid"

    @property
    def epochs(self) -> int:
        return int(self.values[FIDELITY][0])


def load_grid(path: Path | str | None, space: str) -> Grid:
    """The grid in ``path``, or the one greenml ships for ``space`` when ``path`` is None."""
    if path is None:
        if space not in DEFAULT_GRIDS:
            raise ConfigError(
                f"no grid ships for space {space!r}; give --grid FILE (greenml ships one for: "
                f"{', '.join(sorted(DEFAULT_GRIDS))})"
            )
        path = DEFAULT_GRIDS[space]
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read grid file {str(path)!r}: {error.strerror or error}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"grid file {str(path)!r} is not valid TOML: {error}") from None
    return parse_grid(document, str(path))


def parse_grid(document: dict[str, Any], source: str = "the grid") -> Grid:
    unknown = sorted(set(document) - {"params"})
    if unknown:
        raise ConfigError(f"{source}: unknown section or key {unknown[0]!r}; valid: params")
    params = document.get("params")
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{source}: no [params] table; give the values of each parameter under [params]")
    values: dict[str, tuple[Any, ...]] = {}
    for name, spec in params.items():
        values[name] = _values(name, spec, source)
    if FIDELITY not in values:
        raise ConfigError(
            f"{source}: no {FIDELITY} given; the table's fidelity is one value, the most epochs "
            f"(e.g. {FIDELITY} = [20])"
        )
    if len(values[FIDELITY]) != 1:
        raise ConfigError(
            f"{source}: {FIDELITY} is the table's fidelity: give one value, the most epochs "
            f"(every row keeps its accuracy after each epoch), not {list(values[FIDELITY])}"
        )
    return Grid(values, source)


def _values(name: str, spec: Any, source: str) -> tuple[Any, ...]:
    if isinstance(spec, dict):
        keys = set(spec)
        if not {"low", "high", "num"} <= keys or keys - {"low", "high", "num", "log"}:
            raise ConfigError(
                f"{source}: {name} = {spec!r}: a range is {{low = A, high = B, num = N[, log = true]}}"
            )
        low, high, num, log = spec["low"], spec["high"], spec["num"], spec.get("log", False)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
        if not numbers or not low < high or not isinstance(num, int) or num < 2 or not isinstance(log, bool):
            raise ConfigError(
                f"{source}: {name} = {spec!r}: needs numbers low < high and a whole num >= 2 "
                "(log = true for even spacing in log space)"
            )
        if log and low <= 0:
            raise ConfigError(f"{source}: {name}: a log range needs low > 0, got {low}")
        if log:
            points = [
                math.exp(math.log(low) + i * (math.log(high) - math.log(low)) / (num - 1)) for i in range(num)
            ]
        else:
            points = [low + i * (high - low) / (num - 1) for i in range(num)]
        return tuple(float(f"{p:.6g}") for p in points)
    if not isinstance(spec, list) or not spec:
        raise ConfigError(
            f"{source}: {name} must be a list of values or {{low, high, num[, log]}}, got {spec!r}"
        )
    if len(set(map(repr, spec))) != len(spec):
        raise ConfigError(f"{source}: {name} lists a value twice: {spec!r}")
    for value in spec:
        if not isinstance(value, (bool, int, float, str)):
            raise ConfigError(f"{source}: {name}: {value!r} is not a number, string or boolean")
    return tuple(spec)


class _Need(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


class _GridTrial:
    """Stands in for an Optuna trial: answers suggestions from a partial assignment, records them.

    A suggestion for a parameter not yet assigned raises :class:`_Need`, so :func:`expand` can
    branch on that parameter's grid values.
    """

    def __init__(self, fixed: dict[str, Any], grid: Grid) -> None:
        self.number = 0
        self.fixed = fixed
        self.grid = grid
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, Any] = {}

    def _take(self, name: str, distribution: Any) -> Any:
        if name not in self.grid.values:
            raise ConfigError(
                f"{self.grid.source}: no values for {name!r}, which the trial asks for ({_describe(distribution)})"
            )
        if name not in self.fixed:
            raise _Need(name)
        value = self.fixed[name]
        _check(name, value, distribution, self.grid.source)
        self.params[name] = value
        self.distributions[name] = distribution
        return value

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        from optuna.distributions import FloatDistribution

        return float(self._take(name, FloatDistribution(low, high, step=step, log=log)))

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        from optuna.distributions import IntDistribution

        return int(self._take(name, IntDistribution(low, high, step=step, log=log)))

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        from optuna.distributions import CategoricalDistribution

        return self._take(name, CategoricalDistribution(tuple(choices)))

    def set_user_attr(self, key: str, value: Any) -> None:  # spaces may note things
        pass


def _describe(distribution: Any) -> str:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return "one of " + ", ".join(repr(c) for c in distribution.choices)
    kind = "whole numbers" if isinstance(distribution, IntDistribution) else "numbers"
    return f"{kind} from {distribution.low:g} to {distribution.high:g}"


def _check(name: str, value: Any, distribution: Any, source: str) -> None:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        ok = any(type(value) is type(c) and value == c for c in distribution.choices)
    elif (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(distribution, IntDistribution) and not float(value).is_integer())
    ):
        ok = False
    else:
        ok = distribution.low <= value <= distribution.high
    if not ok:
        raise ConfigError(
            f"{source}: {name} = {value!r} is outside the space; valid: {_describe(distribution)}"
        )


def expand(grid: Grid, suggest: Callable[[Any], None]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every configuration of ``grid``, and each parameter's Optuna distribution.

    ``suggest(trial)`` makes every suggestion a trial of the search would (the space's ``build``
    and greenml's training and compression settings). Configurations come in the grid's order
    (the first parameter asked for varies slowest).
    """
    configs: list[dict[str, Any]] = []
    distributions: dict[str, Any] = {}
    seen: set[tuple[tuple[str, str], ...]] = set()
    stack: list[dict[str, Any]] = [{}]
    while stack:
        fixed = stack.pop()
        trial = _GridTrial(fixed, grid)
        try:
            suggest(trial)
        except _Need as need:
            stack.extend({**fixed, need.name: value} for value in reversed(grid.values[need.name]))
            continue
        key = tuple(sorted((k, repr(v)) for k, v in trial.params.items()))
        if key not in seen:
            seen.add(key)
            configs.append(dict(trial.params))
        for name, distribution in trial.distributions.items():
            distributions.setdefault(name, distribution)
    unused = [name for name in grid.values if name not in distributions]
    if unused:
        raise ConfigError(
            f"{grid.source}: no configuration asks for {unused[0]!r}; valid parameters: "
            f"{', '.join(sorted(distributions))}"
        )
    return configs, distributions
