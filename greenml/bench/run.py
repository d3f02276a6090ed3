"""``greenml bench run``: every strategy x every seed replayed against one table, in parallel.

Replays are independent, so they run in ``jobs`` processes (forked: a user's sampler object
needs no pickling). Each replay is deterministic for its seed: the same table, strategy, seed and
budget give the same evaluations.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from greenml.bench.problem import TableProblem
from greenml.bench.replay import Replay, Strategy, replay
from greenml.bench.summary import RankTest, StrategySummary, rank_test, summarise

__all__ = ["BenchResult", "csv_text", "run_bench"]


@dataclass
class BenchResult:
    problem: TableProblem
    replays: list[Replay]
    summaries: list[StrategySummary]
    test: RankTest  # on the per-seed energy to 95% of the true front's hypervolume
    budget_trials: int | None
    budget_energy_j: float | None
    seconds: float
    hv_test: RankTest | None = None  # on the per-seed final hypervolume (higher is better)


_STATE: dict[str, Any] = {}


def _one(job: tuple[int, int]) -> Replay:
    index, seed = job
    return replay(_STATE["problem"], _STATE["strategies"][index], seed, _STATE["trials"], _STATE["energy"])


def _one_thread() -> None:
    """A pool process's torch (GPSampler's acquisition optimisation) keeps to one thread: the
    pool already has a process per core."""
    import torch

    torch.set_num_threads(1)


def run_bench(
    problem: TableProblem,
    strategies: Sequence[Strategy],
    seeds: int,
    budget_trials: int | None = None,
    budget_energy_j: float | None = None,
    jobs: int | None = None,
) -> BenchResult:
    import multiprocessing
    import time
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    started = time.perf_counter()
    work = [(i, seed) for seed in range(seeds) for i in range(len(strategies))]
    _STATE.update(problem=problem, strategies=list(strategies), trials=budget_trials, energy=budget_energy_j)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(work)))
    try:
        if jobs == 1:
            # One torch thread here too, as in a pool process, so the sampler's CPU time per
            # evaluation means the same with any --jobs.
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                replays = [_one(job) for job in work]
            finally:
                torch.set_num_threads(threads)
        else:
            # Slow samplers (GP) first, so the pool does not end on one long job.
            order = sorted(work, key=lambda job: "gp" not in strategies[job[0]].name)
            with multiprocessing.get_context("fork").Pool(jobs, initializer=_one_thread) as pool:
                done = pool.map(_one, order, chunksize=1)
            by_job = dict(zip(order, done, strict=True))
            replays = [by_job[job] for job in work]
    finally:
        _STATE.clear()
    summaries, test = summarise(replays)
    hv_test = rank_test({s.name: [-v for v in s.final_hv] for s in summaries})
    return BenchResult(
        problem,
        replays,
        summaries,
        test,
        budget_trials,
        budget_energy_j,
        time.perf_counter() - started,
        hv_test,
    )


def csv_text(result: BenchResult) -> str:
    """One row per strategy and seed: evaluations, energy, final hypervolume, energy to 95%, and the
    sampler's CPU time (measured live where the replay ran, not replayed)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "strategy",
            "seed",
            "evaluations",
            "complete",
            "stopped",
            "energy_j",
            "final_hv_fraction",
            "energy_to_95_j",
            "sampler_cpu_s",
        ]
    )
    for run in result.replays:
        reached = run.energy_to_reach(0.95)
        writer.writerow(
            [
                run.strategy,
                run.seed,
                len(run.rows),
                run.states.count("complete"),
                run.states.count("stopped"),
                f"{sum(run.energy_j):.6g}",
                f"{run.hv_fraction[-1] if run.hv_fraction else 0.0:.6g}",
                "" if reached is None else f"{reached:.6g}",
                f"{run.sampler_cpu_s:.6g}",
            ]
        )
    return out.getvalue()
