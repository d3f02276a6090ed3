"""Replay a search strategy against a table: no training, the table's measured energy charged.

One replay is one seed of one strategy: an in-memory Optuna study with the strategy's sampler
asks for parameters from :class:`~greenml.bench.problem.TableProblem`'s search space, the
proposal is snapped to the nearest grid point, and the study is told that row's objectives.
Trials run one after another (one worker).

What each trial is charged (all figures are the table's, measured when it was built)
    Without early stopping: the row's whole trial energy (``trial_energy_j``: training,
    compression, fine-tuning, evaluation, benchmark).
    With an early-stopping rule (greenml's own rules, :mod:`greenml.search._stopping`, fed the
    table's numbers exactly as a live search feeds them): the cost phase first, then
    - stopped before training: the cost phase and the trial's overhead (its energy outside any
      phase: building the model, set-up);
    - stopped at rung *r*: the cost phase, the overhead and the energy of epochs 1..*r*;
    - complete: the cost phase and the whole trial.
    A row whose artifact key (column ``artifact_key``) an earlier evaluation of the replay
    measured is charged no cost phase and ranked on that evaluation's cost, as a live search
    reuses the cost of an artifact shape it has measured. The cost phase is **estimated**
    (:func:`cost_phase_estimate`; the table was built without one): the row's compress energy and its benchmark energy scaled by the cost phase's window
    (0.25 s) over the final benchmark's. On the 25 complete trials of the early-stopping
    benchmark (CNN, MNIST-1D), the measured cost phase was 1.04x this estimate (median;
    quartiles 0.81x and 1.27x). The rule ranks trials at a rung on the validation accuracy after *r* epochs
    (the row's curve) and the row's deployment cost, and compares complete trials on their
    deployed accuracy.
    A proposal is snapped to the nearest grid point that has a row
    (:class:`~greenml.bench.problem.TableProblem`); the sampler is told that row's objectives.

The hypervolume of a replay counts complete trials only, on the table's one reference point
(:meth:`~greenml.bench.table.Table.reference_point`), as a fraction of the hypervolume of the
table's true front (every row, enumerated).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from greenml.bench.problem import TableProblem, suggest_all
from greenml.bench.table import hypervolume
from greenml.errors import ConfigError
from greenml.metrics import PHASES
from greenml.search import SAMPLERS, RungEntry, StoppingRule, parse_rule, rule_label, stopping_rule
from greenml.trial import COST_WINDOW_S

__all__ = ["Replay", "Strategy", "parse_strategies", "replay", "split_list"]


@dataclass(frozen=True)
class Strategy:
    """A named search strategy: a sampler factory (seed, trial budget -> sampler) and a stopping rule."""

    name: str
    sampler: Callable[[int, int | None], Any]
    stopping: str = "none"
    settings: dict[str, Any] = field(default_factory=dict)  # the rule's, e.g. reduction_factor

    def rule(self) -> StoppingRule | None:
        return None if self.stopping == "none" else stopping_rule(self.stopping, **self.settings)


@dataclass
class Replay:
    """One seed of one strategy: per evaluation, what it cost and where the hypervolume stood."""

    strategy: str
    seed: int
    rows: list[int] = field(default_factory=list)
    states: list[str] = field(default_factory=list)  # complete or stopped
    epochs: list[int] = field(default_factory=list)
    energy_j: list[float] = field(default_factory=list)  # charged per evaluation
    hv_fraction: list[float] = field(default_factory=list)  # after each evaluation
    # CPU time this process spent in the sampler (Optuna's ask, the suggestions, the tell): the
    # one figure of a replay measured live, on the machine that ran it; never in its joules.
    sampler_cpu_s: float = 0.0

    @property
    def cumulative_energy_j(self) -> np.ndarray:
        return np.cumsum(self.energy_j)

    def energy_to_reach(self, fraction: float) -> float | None:
        """The energy spent when the hypervolume first reached ``fraction`` of the true front's."""
        cumulative = self.cumulative_energy_j
        for index, value in enumerate(self.hv_fraction):
            if value >= fraction - 1e-12:
                return float(cumulative[index])
        return None


def _builtin(name: str) -> Callable[[int, int | None], Any]:
    from greenml.search import make_sampler

    return lambda seed, trials: make_sampler(name, seed, trials)


def _user_sampler(spec: str) -> Callable[[int, int | None], Any]:
    """``module:attr`` or ``path/to/file.py:attr``: a BaseSampler instance, or a callable taking
    ``seed`` (and ``trials``, if it accepts it) that returns one."""

    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise ConfigError(
            f"unknown sampler {spec!r}; valid: {', '.join(SAMPLERS)}, or MODULE:NAME / FILE.py:NAME"
        )
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise ConfigError(f"sampler {spec!r}: no file {where!r}")
            module_spec = importlib.util.spec_from_file_location(f"greenml_user_sampler_{path.stem}", path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(
            f"sampler {spec!r}: cannot import {where!r} ({type(error).__name__}: {error})"
        ) from None
    if not hasattr(module, attr):
        raise ConfigError(f"sampler {spec!r}: {where!r} has no {attr!r}")
    obj = getattr(module, attr)
    return sampler_factory(obj, spec)


def sampler_factory(obj: Any, name: str = "sampler") -> Callable[[int, int | None], Any]:
    """A factory (seed, trials) -> sampler from a BaseSampler instance, class or function."""
    import copy
    import inspect

    import optuna

    if isinstance(obj, optuna.samplers.BaseSampler):
        # One instance serves every seed: a fresh copy for each replay, reseeded where it can be.
        def from_instance(seed: int, _trials: int | None) -> Any:
            sampler = copy.deepcopy(obj)
            if hasattr(sampler, "reseed_rng"):
                sampler.reseed_rng()
            return sampler

        return from_instance
    if not callable(obj):
        raise ConfigError(f"sampler {name!r} is neither an optuna BaseSampler nor a callable returning one")
    try:
        accepted = set(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        accepted = {"seed"}

    def from_callable(seed: int, trials: int | None) -> Any:
        kwargs: dict[str, Any] = {"seed": seed} if "seed" in accepted else {}
        if "trials" in accepted:
            kwargs["trials"] = trials
        sampler = obj(**kwargs)
        if not isinstance(sampler, optuna.samplers.BaseSampler):
            raise ConfigError(
                f"sampler {name!r} returned a {type(sampler).__name__}, not an optuna BaseSampler"
            )
        return sampler

    return from_callable


def split_list(text: str) -> list[str]:
    """A comma-separated list whose items may hold commas in parentheses (``mo-asha(a=1,b=2)``)."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(text[start:index])
            start = index + 1
    items.append(text[start:])
    return [item.strip() for item in items if item.strip()]


def parse_strategies(
    samplers: str | Sequence[Any], early_stopping: Sequence[str] = ("none",)
) -> list[Strategy]:
    """Strategies from ``--samplers`` (names, ``MODULE:NAME``, ``FILE.py:NAME``, or sampler objects),
    each crossed with every rule of ``early_stopping``; ``NAME+RULE`` names one pair directly. A
    rule is a name or a name with settings, ``mo-asha(reduction_factor=4,stop_before_training=false)``
    (:func:`greenml.search._stopping.parse_rule`)."""
    items: list[Any] = split_list(samplers) if isinstance(samplers, str) else list(samplers)
    if not items:
        raise ConfigError(f"--samplers is empty; valid: {', '.join(SAMPLERS)}")
    rules = [parse_rule(rule) for rule in early_stopping]

    def crossed(label: str, factory: Callable[[int, int | None], Any], pairs: Any) -> list[Strategy]:
        return [
            Strategy(
                label if name == "none" else f"{label}+{rule_label(name, settings)}", factory, name, settings
            )
            for name, settings in pairs
        ]

    strategies: list[Strategy] = []
    for item in items:
        if not isinstance(item, str):
            label = type(item).__name__
            strategies.extend(crossed(label, sampler_factory(item, label), rules))
            continue
        base, plus, rule = item.partition("+")
        if plus:
            try:
                pairs = [parse_rule(rule)]
            except ConfigError as error:
                raise ConfigError(f"{item!r}: {error}") from None
        else:
            pairs = rules
        factory = _builtin(base) if base in SAMPLERS else _user_sampler(base)
        strategies.extend(crossed(base, factory, pairs))
    names = [s.name for s in strategies]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ConfigError(f"--samplers names the strategy {duplicate!r} twice")
    return strategies


def cost_phase_estimate(table: Any, window_s: float = COST_WINDOW_S) -> np.ndarray:
    """Each row's cost phase, **estimated**: its compress energy (a cost phase prunes and deploys
    an untrained copy the same way) and its benchmark energy scaled by the cost phase's window
    over the final benchmark's (a table that does not record its windows was built at 1 s)."""
    frame = table.frame
    windows = table.meta.get("benchmark_windows_s") or {"latency": 1.0, "energy": 1.0}
    longest = max(float(windows.get("latency", 1.0)), float(windows.get("energy", 1.0)))
    scale = min(1.0, window_s / longest) if longest > 0 else 1.0
    compress = frame["compress_energy_j"] if "compress_energy_j" in frame.columns else 0.0
    bench = frame["benchmark_energy_j"] if "benchmark_energy_j" in frame.columns else 0.0
    estimate: np.ndarray = np.nan_to_num(np.asarray(compress, dtype=float)) + scale * np.nan_to_num(
        np.asarray(bench, dtype=float)
    )
    return np.broadcast_to(estimate, (len(frame),)).astype(float)


def trial_overhead(table: Any) -> np.ndarray:
    """Each row's energy outside the phases that do its work (building the model, the trial's
    set-up, and the propose phase where the table has it: the storage's and the loop's work): a
    stopped trial spends it too."""
    frame = table.frame
    phases = [
        c
        for c in frame.columns
        if c.endswith("_energy_j") and c.removesuffix("_energy_j") in PHASES and c != "propose_energy_j"
    ]
    inside = np.nansum(np.column_stack([frame[c].to_numpy(dtype=float) for c in phases]), axis=1)
    outside: np.ndarray = np.clip(frame["trial_energy_j"].to_numpy(dtype=float) - inside, 0.0, None)
    return outside


def replay(
    problem: TableProblem,
    strategy: Strategy,
    seed: int,
    budget_trials: int | None = None,
    budget_energy_j: float | None = None,
    *,
    cpu_clock: Callable[[], float] = time.process_time,
) -> Replay:
    """Replay ``strategy`` with ``seed`` until ``budget_trials`` evaluations or ``budget_energy_j``.

    ``sampler_cpu_s`` is the CPU time ``cpu_clock`` (the process's, so a sampler's own threads
    count) moves by inside Optuna's ask, the suggestions and the tell, and nowhere else; a test
    passes a clock it drives.
    """
    import optuna
    from optuna.trial import TrialState

    if budget_trials is None and budget_energy_j is None:
        raise ConfigError("give a budget: --budget-trials N or --budget-energy J")
    table = problem.table
    objectives = problem.objectives
    rule = strategy.rule()
    if rule is not None and "accuracy" not in objectives:
        raise ConfigError(
            f"{strategy.name}: early stopping ranks trials on accuracy; add accuracy to the objectives"
        )
    frame = table.frame
    trial_energy = frame["trial_energy_j"].to_numpy(dtype=float)
    cost_phase = cost_phase_estimate(table)
    overhead = trial_overhead(table)
    epoch_energy = np.cumsum(table.epoch_energy, axis=1)
    accuracy_at = table.val_curves
    losses = table.losses(objectives)
    reference = table.reference_point(objectives)
    true_hv = hypervolume(losses[table.true_front(objectives)], reference)
    error_index = objectives.index("accuracy") if rule is not None else 0
    cost_indices = [i for i, name in enumerate(objectives) if name != "accuracy"]
    rungs = tuple(rule.rungs(table.epochs)) if rule is not None else ()
    # A row whose artifact key an earlier evaluation measured reuses that cost phase, as a live
    # search does (greenml.search._rungs.StudyStopping.known_cost): charged nothing for it, and
    # ranked on the first row's cost. A table without keys charges every cost phase.
    keys = list(frame["artifact_key"]) if "artifact_key" in frame.columns else [None] * len(frame)
    measured: dict[Any, int] = {}  # artifact key -> the row whose cost phase measured it

    sampler = strategy.sampler(seed, budget_trials)
    study = optuna.create_study(directions=problem.directions, sampler=sampler)
    out = Replay(strategy.name, seed)
    complete: list[RungEntry] = []
    complete_rows: list[int] = []
    at_rung: dict[int, list[RungEntry]] = {r: [] for r in rungs}
    spent = 0.0
    hv = 0.0
    number = 0
    while (budget_trials is None or number < budget_trials) and (
        budget_energy_j is None or spent < budget_energy_j
    ):
        started = cpu_clock()
        trial = study.ask()
        params = suggest_all(trial, problem.search_space)
        out.sampler_cpu_s += cpu_clock() - started
        row = problem.row(params)
        state, epochs, charge = "complete", table.epochs, 0.0
        if rule is None:
            charge = float(trial_energy[row])
        else:
            key = keys[row]
            source = measured.get(key) if key is not None else None
            if source is None:
                source, charge = row, float(cost_phase[row])
                if key is not None:
                    measured[key] = row
            costs = tuple(float(losses[source][i]) for i in cost_indices)
            decision = rule.before_training(number, costs, complete)
            stopped_at = 0 if decision.stop else None
            if stopped_at is None:
                for rung in rungs:
                    entry = RungEntry(number, (1.0 - float(accuracy_at[row][rung - 1]), *costs))
                    decision = rule.decide(rung, entry, at_rung[rung])
                    at_rung[rung].append(entry)
                    if decision.stop:
                        stopped_at = rung
                        break
            if stopped_at is None:
                charge += float(trial_energy[row])
            else:
                state, epochs = "stopped", stopped_at
                charge += float(overhead[row])
                charge += float(epoch_energy[row][stopped_at - 1]) if stopped_at else 0.0
        values = list(problem.values(row)) if state == "complete" else None  # the table's, not the sampler's
        started = cpu_clock()
        if values is not None:
            study.tell(trial, values)
        else:
            study.tell(trial, state=TrialState.PRUNED)
        out.sampler_cpu_s += cpu_clock() - started
        if state == "complete":
            if rule is not None:
                error = float(losses[row][error_index])  # -accuracy as a loss
                complete.append(
                    RungEntry(number, (1.0 + error, *(float(losses[row][i]) for i in cost_indices)))
                )
            complete_rows.append(row)
            hv = hypervolume(losses[complete_rows], reference) / true_hv if true_hv > 0 else 0.0
        spent += charge
        out.rows.append(row)
        out.states.append(state)
        out.epochs.append(epochs)
        out.energy_j.append(charge)
        out.hv_fraction.append(hv)
        number += 1
    if not math.isfinite(spent):
        raise ConfigError(f"{table.source}: a row's energy is not a number")
    return out
