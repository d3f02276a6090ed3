"""Validated search settings: objectives, constraints, budgets, sampler, storage, device."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from greenml.config import MeasureConfig
from greenml.devices import cuda_index, parse_device
from greenml.errors import ConfigError
from greenml.metrics import MAXIMIZED, OBJECTIVE_METRICS, Condition
from greenml.storage import Heartbeat, default_storage
from greenml.trial import COST_WINDOW_S

__all__ = [
    "DEFAULT_OBJECTIVES",
    "SAMPLERS",
    "SearchConfig",
    "default_storage",
]

SAMPLERS: tuple[str, ...] = ("tpe", "nsga2", "nsga3", "gp", "random")
DEFAULT_OBJECTIVES: tuple[str, ...] = ("accuracy", "inference_energy_j", "latency_ms")


@dataclass(frozen=True)
class SearchConfig:
    space: str = "mlp"
    dataset: str = "digits"
    target: str | None = None  # a table's label column
    trials: int | None = 12
    timeout_s: float | None = None
    energy_budget_j: float | None = None
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    # Metric conditions (greenml.metrics.parse_condition, which also parses --pick rules).
    constraints: tuple[Condition, ...] = ()
    # With mo-asha, random sampling won the replay benchmark of the shipped table (README).
    sampler: str = "random"
    seed: int = 0
    storage: str | None = None
    study: str | None = None
    device: str = "cpu"
    deploy_device: str | None = None  # None: the training device
    measure: MeasureConfig = field(default_factory=lambda: MeasureConfig(idle_seconds=1.0))
    max_consecutive_failures: int = 5
    epochs: tuple[int, int] = (5, 30)
    distillation: bool = True
    energy_window_s: float = 1.0
    latency_s: float = 1.0
    # Worker processes this command starts on this machine (each is one worker of the study).
    workers: int = 1
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    artifacts: str | None = None  # None: beside a SQLite file, else ./greenml-artifacts
    keep_models: str = "front"  # front, all or none (greenml.models)
    # Multi-objective early stopping (greenml.search._stopping): none or mo-asha, and its ladder.
    # "auto": mo-asha when accuracy is an objective (the early-stopping benchmark's finding,
    # README), else none.
    early_stopping: str = "auto"
    reduction_factor: float = 3.0
    min_epochs: int = 1
    rungs: tuple[int, ...] | None = None
    keep_front: bool = True  # mo-asha: never stop a trial no other trial at its rung dominates
    # mo-asha: stop a trial dominated even at the best accuracy seen so far before it trains.
    stop_before_training: bool = False
    # The cost phase's latency and energy windows (at most the benchmark's own).
    cost_window_s: float = COST_WINDOW_S
    # Run only the trials queued in the study (greenml bench build's grid points), never a
    # sampled one, and stop when none is left.
    queued_only: bool = False
    # Also record the test accuracy after each epoch in the learning curve (greenml bench build).
    test_curve: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", parse_device(self.device, "--device"))
        deploy = (
            self.device if self.deploy_device is None else parse_device(self.deploy_device, "--deploy-device")
        )
        object.__setattr__(self, "deploy_device", deploy)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"--seed must be an integer from 0 to {2**32 - 1}, got {self.seed}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        for name in self.objectives:
            if name not in OBJECTIVE_METRICS:
                raise ConfigError(f"unknown objective {name!r}; valid: {', '.join(OBJECTIVE_METRICS)}")
        if self.trials is not None and self.trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {self.trials}")
        if self.timeout_s is not None and not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ConfigError(f"--timeout must be a number of seconds > 0, got {self.timeout_s:g}")
        if self.energy_budget_j is not None and not (
            math.isfinite(self.energy_budget_j) and self.energy_budget_j > 0
        ):
            raise ConfigError(f"--energy-budget must be a number of joules > 0, got {self.energy_budget_j:g}")
        if self.max_consecutive_failures < 1:
            raise ConfigError(f"--max-failures must be >= 1, got {self.max_consecutive_failures}")
        low, high = self.epochs
        if not 1 <= low <= high:
            raise ConfigError(f"epochs range must satisfy 1 <= low <= high, got {low}..{high}")
        if not (math.isfinite(self.energy_window_s) and self.energy_window_s > 0):
            raise ConfigError(f"--min-energy-window must be > 0 seconds, got {self.energy_window_s:g}")
        if not (math.isfinite(self.cost_window_s) and self.cost_window_s > 0):
            raise ConfigError(f"--cost-window must be > 0 seconds, got {self.cost_window_s:g}")
        if not (math.isfinite(self.latency_s) and self.latency_s >= 0):
            raise ConfigError(f"--min-latency-window must be >= 0 seconds, got {self.latency_s:g}")
        needs_idle = [
            name for name in (*self.objectives, *(c.metric for c in self.constraints)) if "dynamic" in name
        ]
        if needs_idle and self.measure.idle_seconds == 0:
            raise ConfigError(
                f"{needs_idle[0]} subtracts idle power, which --idle-seconds 0 leaves unmeasured; "
                "give --idle-seconds > 0 or use the total energy metrics"
            )
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"--workers must be a whole number >= 1, got {self.workers!r}")
        if self.keep_models not in ("front", "all", "none"):
            raise ConfigError(f"unknown --keep-models {self.keep_models!r}; valid: front, all, none")
        if self.early_stopping == "auto":
            rule = "mo-asha" if "accuracy" in self.objectives else "none"
            object.__setattr__(self, "early_stopping", rule)
            # Resuming a study, greenml.search.prepare keeps the rule it was started with.
            object.__setattr__(self, "stopping_chosen", False)
        self.stopping_rule()  # a one-line error for an unknown rule or a bad ladder
        if self.early_stopping != "none" and "accuracy" not in self.objectives:
            raise ConfigError(
                f"--early-stopping {self.early_stopping} ranks trials on their validation accuracy at "
                "each rung; add accuracy to --objectives, or use --early-stopping none"
            )
        if self.study is not None and not self.study.strip():
            raise ConfigError("--study must not be empty")

    def stopping_rule(self) -> Any:
        from greenml.search._stopping import stopping_rule

        if self.early_stopping == "none":
            return stopping_rule("none")
        return stopping_rule(
            self.early_stopping,
            reduction_factor=self.reduction_factor,
            min_epochs=self.min_epochs,
            rungs=self.rungs,
            keep_front=self.keep_front,
            stop_before_training=self.stop_before_training,
        )

    @property
    def gpus(self) -> tuple[int, ...]:
        """CUDA indices of the GPUs the search's work runs on: training and deployment."""
        indices = (cuda_index(d) for d in dict.fromkeys((self.device, self.deploy_device)) if d)
        return tuple(i for i in indices if i is not None)

    @property
    def directions(self) -> list[str]:
        return ["maximize" if name in MAXIMIZED else "minimize" for name in self.objectives]

    @property
    def study_name(self) -> str:
        """The study's name: given, or derived from what defines the search, so the same command resumes."""
        if self.study:
            return self.study
        space = self.space.rsplit("/", 1)[-1].removesuffix(".py")
        dataset = self.dataset.replace("\\", "/").rsplit("/", 1)[-1]
        for suffix in (".npz", ".csv", ".parquet", ".py"):
            dataset = dataset.removesuffix(suffix)
        return f"{space}-{dataset}-{self.sampler}-seed{self.seed}"

    @property
    def storage_url(self) -> str:
        return self.storage or default_storage()
