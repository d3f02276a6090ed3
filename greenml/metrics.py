"""The metric vocabulary: every figure a trial stores, with its unit, direction and use.

Trial, search, results, export and report all read these names from here, so a metric means
the same thing everywhere. A metric whose value could not be measured is absent from a trial's
record, never stored as 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from greenml.errors import ConfigError

__all__ = [
    "COMPONENTS",
    "CONSTRAINABLE",
    "ENERGY_METRICS",
    "MAXIMIZED",
    "METRICS",
    "METRIC_NAMES",
    "OBJECTIVE_METRICS",
    "PHASES",
    "TRAINING_SETTINGS",
    "Condition",
    "Metric",
    "PickRule",
    "describe",
    "metric",
    "parse_condition",
    "parse_objectives",
    "parse_pick",
    "sign",
    "to_loss",
]

Direction = Literal["maximize", "minimize"]

# "propose": the sampler proposing the trial (Optuna's ask: relative sampling, the storage's new
# trial), metered before the trial starts. "cost": the deployment cost measured before training,
# with early stopping only.
PHASES: tuple[str, ...] = ("propose", "cost", "train", "compress", "finetune", "evaluate", "benchmark")
COMPONENTS: tuple[str, ...] = ("gpu", "cpu", "dram")


@dataclass(frozen=True)
class Metric:
    """One stored figure.

    ``objective``: may be optimised (``--objectives``). ``constraint``: may be bounded
    (``--constraint``); the held-out ``test_accuracy`` may not, so the test split never steers
    the search. ``energy``: a figure in joules whose basis (measured or estimated) the report
    states next to it.
    """

    name: str
    unit: str
    direction: Direction
    description: str
    objective: bool = False
    constraint: bool = True
    energy: bool = False

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"


def _energy(name: str, description: str, *, objective: bool = False) -> Metric:
    return Metric(name, "J", "minimize", description, objective=objective, energy=True)


METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "", "maximize", "validation accuracy of the deployed artifact", objective=True),
    Metric(
        "test_accuracy",
        "",
        "maximize",
        "held-out test accuracy of the deployed artifact; reported, never optimised or constrained",
        constraint=False,
    ),
    Metric(
        "latency_ms",
        "ms",
        "minimize",
        "latency of one call at batch 1: the median of interleaved block medians",
        objective=True,
    ),
    Metric("latency_p90_ms", "ms", "minimize", "90th percentile latency at batch 1", objective=True),
    Metric("latency_p99_ms", "ms", "minimize", "99th percentile latency at batch 1", objective=True),
    Metric(
        "latency_stderr_ms",
        "ms",
        "minimize",
        "standard error of latency_ms, from the spread of its block medians",
        constraint=False,
    ),
    Metric(
        "batch_latency_ms",
        "ms",
        "minimize",
        "latency of one call carrying the larger batch (median of block medians)",
        objective=True,
    ),
    Metric(
        "batch_throughput_per_s",
        "1/s",
        "maximize",
        "samples per second at the larger batch",
    ),
    _energy("inference_energy_j", "energy per inference at batch 1, every metered component", objective=True),
    _energy(
        "inference_dynamic_energy_j",
        "energy per inference at batch 1 above idle power (needs the idle baseline)",
        objective=True,
    ),
    _energy(
        "batch_inference_energy_j",
        "energy per inference (per sample) at the larger batch",
        objective=True,
    ),
    _energy(
        "batch_inference_dynamic_energy_j",
        "energy per inference at the larger batch above idle power",
        objective=True,
    ),
    *(_energy(f"inference_{c}_energy_j", f"the {c.upper()} part of inference_energy_j") for c in COMPONENTS),
    Metric("model_bytes", "bytes", "minimize", "size of the serialised deployed artifact", objective=True),
    Metric("co2_g", "g", "minimize", "CO2e of the whole trial at the study's grid intensity and PUE"),
    _energy("trial_energy_j", "energy of the whole trial, every metered component"),
    Metric("trial_seconds", "s", "minimize", "wall time of the whole trial"),
    *(
        metric
        for phase in PHASES
        for metric in (
            Metric(f"{phase}_seconds", "s", "minimize", f"wall time of the {phase} phase"),
            _energy(f"{phase}_energy_j", f"energy of the {phase} phase"),
        )
    ),
)

_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
if len(_BY_NAME) != len(METRICS):  # pragma: no cover - a vocabulary bug, caught on import
    raise RuntimeError("greenml.metrics lists a metric twice")

METRIC_NAMES: tuple[str, ...] = tuple(_BY_NAME)
OBJECTIVE_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.objective)
CONSTRAINABLE: tuple[str, ...] = tuple(m.name for m in METRICS if m.constraint)
MAXIMIZED: frozenset[str] = frozenset(m.name for m in METRICS if m.maximize)
ENERGY_METRICS: frozenset[str] = frozenset(m.name for m in METRICS if m.energy)


def metric(name: str) -> Metric | None:
    """The metric called ``name``, or None for a name outside the vocabulary."""
    return _BY_NAME.get(name)


def describe(names: tuple[str, ...] | None = None) -> str:
    """``name (unit, direction): description`` lines, for ``--help`` and the README."""
    lines = []
    for m in METRICS if names is None else tuple(_BY_NAME[n] for n in names):
        unit = f"{m.unit}, " if m.unit else ""
        lines.append(f"{m.name} ({unit}{m.direction[:3]}): {m.description}")
    return "\n".join(lines)


# The parameters greenml samples for every space (greenml.trial's training and compression
# settings); a trial's other parameters are its space's: its architecture.
TRAINING_SETTINGS = frozenset(
    {
        "lr",
        "epochs",
        "batch_size",
        "distill",
        "kd_temperature",
        "kd_alpha",
        "pruning",
        "prune_amount",
        "finetune_epochs",
        "runtime",
        "quantization",
    }
)


def sign(name: str) -> float:
    """-1 for a maximised metric, +1 for a minimised one: ``sign(name) * value`` is a loss.

    The one loss convention wherever a direction becomes "smaller is better": the report's front,
    knee and best trials, the early-stopping rule's cost losses, the benchmark tables and their
    replays. Two places keep an accuracy as an error, ``1 - accuracy``, because the number itself
    is shown or bounded: the report's hypervolume and importances (a box from 0 to the reference
    point, greenml/report/_loss.py) and the early-stopping rule's validation error.
    """
    return -1.0 if name in MAXIMIZED else 1.0


def to_loss(name: str, value: float) -> float:
    """``value`` of metric ``name`` as a loss: negated for a maximised metric, as is otherwise."""
    return sign(name) * float(value)


_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")
_PICK = re.compile(r"^\s*(max|min)\s+([A-Za-z_][A-Za-z0-9_]*)\s*(?:where\s+(.+))?$", re.IGNORECASE)


@dataclass(frozen=True)
class Condition:
    """``metric op bound``: a ``--constraint``, or a ``where`` clause of a ``--pick`` rule.

    As an Optuna constraint, :meth:`value` is <= 0 when the condition holds (on the boundary of
    a strict bound it is 0 too: Optuna's feasibility test is ``<= 0``).
    """

    metric: str
    op: str
    bound: float

    def value(self, metrics: Mapping[str, float]) -> float:
        observed = metrics[self.metric]
        return observed - self.bound if self.op in ("<", "<=") else self.bound - observed

    def holds(self, metrics: Mapping[str, float]) -> bool:
        """Whether ``metrics`` satisfies the condition exactly as written (strict bounds strict)."""
        value, bound = float(metrics[self.metric]), self.bound
        return {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound}[self.op]

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


def parse_condition(text: str) -> Condition:
    """``METRIC OP NUMBER`` over a constrainable metric; a one-line ConfigError otherwise."""
    match = _CONDITION.match(text)
    if match is None:
        raise ConfigError(
            f"malformed constraint {text!r}; expected METRIC OP NUMBER with OP one of <, <=, >, >= "
            "(e.g. 'accuracy>=0.9', 'latency_ms<2')"
        )
    name, op, number = match.groups()
    if metric(name) is None:
        raise ConfigError(
            f"unknown metric {name!r} in constraint {text!r}; valid: {', '.join(CONSTRAINABLE)}"
        )
    if name not in CONSTRAINABLE:
        why = (
            "the test split must never steer the search" if name == "test_accuracy" else "it is not a target"
        )
        raise ConfigError(f"metric {name!r} cannot be constrained ({why}); valid: {', '.join(CONSTRAINABLE)}")
    try:
        bound = float(number)
    except ValueError:
        raise ConfigError(f"constraint {text!r}: {number!r} is not a number") from None
    if not math.isfinite(bound):
        raise ConfigError(f"constraint {text!r}: the bound must be finite")
    return Condition(name, op, bound)


@dataclass(frozen=True)
class PickRule:
    """A ``--pick`` rule: ``knee``, or the best ``metric`` (``max``/``min``) among trials that
    satisfy every condition."""

    knee: bool
    maximize: bool = False
    metric: str = ""
    conditions: tuple[Condition, ...] = ()

    def admits(self, metrics: Mapping[str, float]) -> bool:
        """Whether a trial with ``metrics`` is a candidate: it has the metric and meets every condition."""
        return self.metric in metrics and all(
            c.metric in metrics and c.holds(metrics) for c in self.conditions
        )

    def loss(self, metrics: Mapping[str, float]) -> float:
        """The candidate's rank (smaller is better)."""
        return (-1.0 if self.maximize else 1.0) * float(metrics[self.metric])


def parse_pick(rule: str) -> PickRule:
    """``knee``, or ``max|min METRIC [where CONDITION [and CONDITION]...]``; ConfigError otherwise."""
    if rule.strip().lower() == "knee":
        return PickRule(knee=True)
    match = _PICK.match(rule)
    if match is None:
        raise ConfigError(
            f"malformed --pick {rule!r}; expected 'knee' or 'max|min METRIC [where METRIC OP NUMBER "
            "[and ...]]', e.g. 'max accuracy where latency_ms<1'"
        )
    direction, name, conditions = match.group(1).lower(), match.group(2), match.group(3)
    if name not in METRIC_NAMES:
        raise ConfigError(f"unknown metric {name!r} in --pick; valid: {', '.join(METRIC_NAMES)}")
    checks = tuple(
        parse_condition(part) for part in re.split(r"\s+and\s+", conditions or "", flags=re.I) if part.strip()
    )
    return PickRule(knee=False, maximize=direction == "max", metric=name, conditions=checks)


def parse_objectives(text: str) -> tuple[str, ...]:
    """A comma-separated ``--objectives`` list of objective metrics; ConfigError otherwise."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise ConfigError(f"--objectives is empty; valid: {', '.join(OBJECTIVE_METRICS)}")
    for name in names:
        if name not in OBJECTIVE_METRICS:
            raise ConfigError(f"unknown objective {name!r}; valid: {', '.join(OBJECTIVE_METRICS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--objectives names a metric twice: {text!r}")
    return names
