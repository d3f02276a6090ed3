"""What a replay benchmark found: per-strategy medians over seeds, and whether the ranks differ.

The figure of merit is the **energy to reach 95%** of the table's true-front hypervolume (lower
is better; a seed that never reached it ranks last). Strategies are ranked seed by seed; the
rank test is Friedman's (``scipy.stats.friedmanchisquare``) with Nemenyi's post-hoc test
(``scikit_posthocs.posthoc_nemenyi_friedman``) for three strategies or more (Demšar 2006,
"Statistical comparisons of classifiers over multiple data sets"), and the Wilcoxon
signed-rank test (``scipy.stats.wilcoxon``) for two.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from greenml.bench.replay import Replay

__all__ = ["ALPHA", "TARGET", "StrategySummary", "rank_test", "summarise"]

TARGET = 0.95  # of the true front's hypervolume
ALPHA = 0.05


@dataclass
class StrategySummary:
    name: str
    seeds: int
    energy_to_target_j: list[float | None]  # per seed, None: never reached
    final_hv: list[float]
    energy_j: list[float]  # spent per seed
    stopped: list[int]
    evaluations: list[int]
    mean_rank: float = math.nan
    sampler_cpu_s: list[float] = field(default_factory=list)  # per seed, measured live (Replay)

    @property
    def median_sampler_ms_per_evaluation(self) -> float | None:
        """The sampler's CPU time per evaluation, median over seeds, in ms: measured on the
        machine that ran the replay, not replayed from the table."""
        if len(self.sampler_cpu_s) != len(self.evaluations):
            return None  # not timed (a summary built by hand)
        values = [
            1e3 * cpu / evaluations
            for cpu, evaluations in zip(self.sampler_cpu_s, self.evaluations, strict=True)
            if evaluations
        ]
        return float(statistics.median(values)) if values else None

    @property
    def median_energy_to_target_j(self) -> float | None:
        """The median over seeds, a seed that never reached the target counting as infinite
        (None when the median itself is infinite)."""
        values = [math.inf if v is None else v for v in self.energy_to_target_j]
        median = statistics.median(values)
        return None if math.isinf(median) else float(median)

    @property
    def median_energy_at_least_j(self) -> float:
        """A lower bound on the median energy to the target: a seed that never reached it counts
        as the energy it spent (it would have needed more)."""
        values = [
            spent if reached is None else reached
            for reached, spent in zip(self.energy_to_target_j, self.energy_j, strict=True)
        ]
        return float(statistics.median(values))

    @property
    def reached(self) -> int:
        return sum(v is not None for v in self.energy_to_target_j)


@dataclass
class RankTest:
    test: str  # "friedman+nemenyi", "wilcoxon" or "none"
    statistic: float | None
    p_value: float | None
    pairwise: dict[tuple[str, str], float] = field(default_factory=dict)  # post-hoc p-values
    note: str = ""

    def differs(self, a: str, b: str) -> bool:
        key = (a, b) if (a, b) in self.pairwise else (b, a)
        p = self.pairwise.get(key)
        return p is not None and self.p_value is not None and self.p_value < ALPHA and p < ALPHA


def summarise(replays: Sequence[Replay]) -> tuple[list[StrategySummary], RankTest]:
    by_name: dict[str, list[Replay]] = {}
    for run in replays:
        by_name.setdefault(run.strategy, []).append(run)
    summaries = []
    for name, runs in by_name.items():
        runs = sorted(runs, key=lambda r: r.seed)
        summaries.append(
            StrategySummary(
                name=name,
                seeds=len(runs),
                energy_to_target_j=[r.energy_to_reach(TARGET) for r in runs],
                final_hv=[r.hv_fraction[-1] if r.hv_fraction else 0.0 for r in runs],
                energy_j=[float(sum(r.energy_j)) for r in runs],
                stopped=[r.states.count("stopped") for r in runs],
                evaluations=[len(r.rows) for r in runs],
                sampler_cpu_s=[r.sampler_cpu_s for r in runs],
            )
        )
    test = rank_test(
        {s.name: [math.inf if v is None else v for v in s.energy_to_target_j] for s in summaries}
    )
    matrix = _matrix(
        {s.name: [math.inf if v is None else v for v in s.energy_to_target_j] for s in summaries}
    )
    if matrix is not None:
        from scipy.stats import rankdata

        ranks = rankdata(matrix, axis=1).mean(axis=0)
        for summary, rank in zip(summaries, ranks, strict=True):
            summary.mean_rank = float(rank)
    return summaries, test


def _matrix(values: dict[str, list[float]]) -> np.ndarray | None:
    lengths = {len(v) for v in values.values()}
    if len(lengths) != 1 or 0 in lengths:
        return None
    matrix: np.ndarray = np.array([values[name] for name in values], dtype=float).T  # seeds x strategies
    return matrix


def rank_test(values: dict[str, list[float]]) -> RankTest:
    """Whether the strategies' per-seed values (lower is better, seeds paired) rank differently."""
    names = list(values)
    matrix = _matrix(values)
    if matrix is None or len(names) < 2:
        return RankTest("none", None, None, note="needs two strategies or more, each with the same seeds")
    if matrix.shape[0] < 2:
        return RankTest("none", None, None, note="needs two seeds or more")
    finite = np.where(
        np.isinf(matrix), np.nanmax(np.where(np.isinf(matrix), np.nan, matrix), initial=0) * 10 + 1, matrix
    )
    if np.all(finite == finite[:, :1]):
        return RankTest(
            "none", None, None, note="every strategy has the same value on every seed: nothing to rank"
        )
    import warnings

    from scipy import stats

    if len(names) == 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stats.wilcoxon(finite[:, 0], finite[:, 1], zero_method="zsplit")
        p = float(result.pvalue)
        return RankTest("wilcoxon", float(result.statistic), p, {(names[0], names[1]): p})
    import scikit_posthocs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.friedmanchisquare(*finite.T)
        posthoc = scikit_posthocs.posthoc_nemenyi_friedman(finite)
    pairwise = {
        (names[i], names[j]): float(posthoc.iloc[i, j])
        for i in range(len(names))
        for j in range(i + 1, len(names))
    }
    return RankTest("friedman+nemenyi", float(result.statistic), float(result.pvalue), pairwise)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b for two medians, None where either is missing (never reached) or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def as_dict(summaries: Sequence[StrategySummary], test: RankTest) -> dict[str, Any]:
    return {
        "strategies": [
            {
                "name": s.name,
                "seeds": s.seeds,
                "median_energy_to_95_j": s.median_energy_to_target_j,
                "median_energy_to_95_at_least_j": s.median_energy_at_least_j,
                "reached_95": s.reached,
                "energy_to_95_j": s.energy_to_target_j,
                "final_hv_fraction": s.final_hv,
                "energy_j": s.energy_j,
                "stopped": s.stopped,
                "mean_rank": s.mean_rank,
                # measured live on the machine that ran the replay, not replayed
                "sampler_cpu_s": s.sampler_cpu_s,
                "median_sampler_ms_per_evaluation": s.median_sampler_ms_per_evaluation,
            }
            for s in summaries
        ],
        "test": {
            "name": test.test,
            "statistic": test.statistic,
            "p_value": test.p_value,
            "pairwise": {f"{a} vs {b}": p for (a, b), p in test.pairwise.items()},
            "note": test.note,
        },
    }
