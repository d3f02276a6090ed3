"""The samplers a search proposes trials with, sized to its budget.

``greenml bench run`` replays a benchmark table with the same samplers (:func:`make_sampler`).
"""

from __future__ import annotations

from typing import Any

from greenml.errors import ConfigError
from greenml.search._config import SAMPLERS, SearchConfig

__all__ = ["make_sampler", "population", "population_size", "sampler_for"]


def population_size(config: SearchConfig) -> int | None:
    """NSGA-II/III's population, sized to a trial budget: at least 3 generations, at most 50.

    Optuna's default of 50 makes a 12-trial search a random search: every trial is in the first,
    random generation. None for other samplers.
    """
    return population(config.sampler, config.trials)


def population(sampler: str, trials: int | None) -> int | None:
    """The population of ``sampler`` (NSGA-II/III) for a budget of ``trials``; None for the others."""
    if sampler not in ("nsga2", "nsga3"):
        return None
    if trials is None:
        return 50
    return max(4, min(50, trials // 3))


def sampler_for(config: SearchConfig, seed: int) -> Any:
    """The search's sampler (``config.sampler``, sized to ``config.trials``) seeded with ``seed``."""
    return make_sampler(config.sampler, seed, config.trials)


def make_sampler(name: str, seed: int, trials: int | None = None) -> Any:
    """The sampler ``name`` (one of :data:`SAMPLERS`) as a search of ``trials`` trials runs it.

    TPE runs with Optuna's ``constant_liar`` (its default): a running trial counts as a bad one,
    so parallel workers do not all sample near the same good trial. NSGA-II/III keep their
    generations in the storage, so workers share one population. (``greenml bench run`` replays
    with the same samplers.)
    """
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=min(10, max(2, (trials or 10) // 2)),
            constant_liar=True,
        )
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population(name, trials) or 50)
    if name == "nsga3":
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=population(name, trials) or 50)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
