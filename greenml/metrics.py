"""The metric vocabulary: every figure a trial stores, with its unit, direction and use.

Trial, search, results, export and report all read these names from here, so a metric means
the same thing everywhere. A metric whose value could not be measured is absent from a trial's
record, never stored as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
    "Metric",
    "describe",
    "metric",
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
