"""greenml bench: replays of strategies on a table, their charges, rank tests and the verdict."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from _bench_helpers import _greenml, four, make_table

from greenml.bench import replay as replay_module
from greenml.bench.problem import TableProblem
from greenml.bench.replay import (
    Strategy,
    cost_phase_estimate,
    parse_strategies,
    replay,
    sampler_factory,
    trial_overhead,
)
from greenml.bench.run import run_bench
from greenml.bench.summary import RankTest, StrategySummary, rank_test, summarise
from greenml.bench.table import load_table


class Sequence_(optuna.samplers.BaseSampler):
    """Proposes the given parameter sets in order (a user-supplied sampler)."""

    def __init__(self, proposals: list[dict[str, Any]], seed: int | None = None) -> None:
        self.proposals = proposals

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return {}

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
        return self.proposals[trial.number % len(self.proposals)][name]


def test_replay_is_deterministic_per_seed(tmp_path: Path) -> None:
    problem = TableProblem(str(four(tmp_path / "t.parquet")))
    (tpe,) = parse_strategies("tpe")
    first, again, other = (replay(problem, tpe, seed, budget_trials=25) for seed in (3, 3, 4))
    assert (
        first.rows == again.rows
        and first.energy_j == again.energy_j
        and first.hv_fraction == again.hv_fraction
    )
    assert first.rows != other.rows
    assert len(first.rows) == 25


def test_energy_budget_and_hypervolume_fraction(tmp_path: Path) -> None:
    problem = TableProblem(str(four(tmp_path / "t.parquet")))
    order = [
        {"kind": "a", "size": 2, "lr": 0.01},
        {"kind": "a", "size": 1, "lr": 0.001},
        {"kind": "b", "size": 2, "lr": 0.01},
    ]
    strategy = Strategy("seq", sampler_factory(Sequence_(order)))
    run = replay(problem, strategy, 0, budget_energy_j=25.0)
    # Each trial costs 10 J (no stopping: the whole trial): 3 trials reach 30 >= 25.
    assert run.rows == [1, 0, 3] and run.energy_j == [10.0, 10.0, 10.0]
    assert run.hv_fraction[-1] == pytest.approx(1.0)  # rows 1, 0, 3 are the whole true front
    assert 0 < run.hv_fraction[0] < run.hv_fraction[1] < 1.0
    assert run.energy_to_reach(1.0) == 30.0


def test_early_stopping_charges_what_the_trial_ran(tmp_path: Path) -> None:
    # Epochs 10 -> mo-asha rungs 1, 3, 9. Cost phase = compress 0.5 + benchmark 1.5 = 2 J; an
    # epoch 1 J; a whole trial 12.25 J, of which 0.25 J outside its phases (its overhead).
    # Losses at a rung: (error at the rung, energy, latency).
    # t0, row 0 (final 0.9, costs 2, 2): nothing to compare with; completes: 2 + 12.25 J.
    # t1, row 2 (costs 3, 3): at t0's error, 0.1, it would be dominated by t0's (0.1, 2, 2):
    #     stopped before training (though it would reach 0.95): cost phase and overhead, 2.25 J.
    # t2, row 1 (costs 1, 1): cheaper than t0, so it trains. At each rung (0.5, 1, 1) against t0's
    #     (0.4, 2, 2): both on front 1; ⌈2/3⌉ = 1 goes on and the ε-net puts t0 first, but the
    #     front is kept: it completes, 14.25 J.
    # t3, row 3 (0.3 at every epoch, costs 1.5, 1.5): not hopeless (t0 costs more, t2's final
    #     error 0.2 is above the best, 0.1). At rung 1, (0.7, 1.5, 1.5) is dominated by t2's
    #     (0.5, 1, 1): front 2, ranked 3 of 3, ⌈3/3⌉ = 1 goes on: stopped after epoch 1,
    #     2 + 0.25 + 1 = 3.25 J.
    rows = [
        {"kind": "a", "size": 1, "lr": 0.001, "acc": 0.9, "energy": 2.0, "latency": 2.0, "curve": [0.6] * 10},
        {"kind": "a", "size": 2, "lr": 0.001, "acc": 0.8, "energy": 1.0, "latency": 1.0, "curve": [0.5] * 10},
        {
            "kind": "b",
            "size": 1,
            "lr": 0.001,
            "acc": 0.95,
            "energy": 3.0,
            "latency": 3.0,
            "curve": [0.6] * 10,
        },
        {"kind": "b", "size": 2, "lr": 0.001, "acc": 0.3, "energy": 1.5, "latency": 1.5, "curve": [0.3] * 10},
    ]
    for row in rows:
        row["trial_j"] = 12.25
    problem = TableProblem(str(make_table(tmp_path / "t.parquet", rows, epochs=10)))
    order = [
        {"kind": "a", "size": 1, "lr": 0.001},
        {"kind": "b", "size": 1, "lr": 0.001},
        {"kind": "a", "size": 2, "lr": 0.001},
        {"kind": "b", "size": 2, "lr": 0.001},
    ]
    strategy = Strategy(
        "seq+mo-asha(stop_before_training=true)",
        sampler_factory(Sequence_(order)),
        "mo-asha",
        {"stop_before_training": True},
    )
    run = replay(problem, strategy, 0, budget_trials=4)
    assert run.rows == [0, 2, 1, 3]
    assert run.states == ["complete", "stopped", "complete", "stopped"]
    assert run.epochs == [10, 0, 10, 1]
    assert run.energy_j == pytest.approx([14.25, 2.25, 14.25, 3.25])
    # A table benchmarked at 1 s windows: the cost phase's 0.25 s windows cost a quarter of its
    # benchmark energy, 0.5 + 1.5 / 4.
    problem.table.meta["benchmark_windows_s"] = {"latency": 1.0, "energy": 0.5}
    assert cost_phase_estimate(problem.table).tolist() == [0.875] * 4
    # Without stopping every trial is charged its whole trial energy, and row 2 (0.95) completes.
    plain = replay(problem, Strategy("seq", sampler_factory(Sequence_(order))), 0, budget_trials=4)
    assert plain.energy_j == [12.25] * 4 and plain.states == ["complete"] * 4
    # Rows 1 and 3 deploy one artifact shape (one key): t3 measures no cost phase and ranks on
    # row 1's cost, (0.7, 1, 1), which t2's (0.5, 1, 1) dominates: stopped after epoch 1, 0.25 + 1 J.
    for row, key in zip(rows, ["k0", "k1", "k2", "k1"], strict=True):
        row["key"] = key
    keyed = TableProblem(str(make_table(tmp_path / "keyed.parquet", rows, epochs=10)))
    run = replay(keyed, strategy, 0, budget_trials=4)
    assert run.states == ["complete", "stopped", "complete", "stopped"] and run.epochs == [10, 0, 10, 1]
    assert run.energy_j == pytest.approx([14.25, 2.25, 14.25, 1.25])
    # Without stopping before training (mo-asha's default), t1 (row 2) trains; at rung 1 its (0.4, 3, 3) is dominated
    # by t0's (0.4, 2, 2): stopped after epoch 1, 2 + 0.25 + 1 J.
    run = replay(
        keyed, Strategy("seq+mo-asha", sampler_factory(Sequence_(order)), "mo-asha"), 0, budget_trials=2
    )
    assert run.states == ["complete", "stopped"] and run.epochs == [10, 1]
    assert run.energy_j == pytest.approx([14.25, 3.25])


def test_a_user_sampler_object_and_file(tmp_path: Path) -> None:
    table = four(tmp_path / "t.parquet")
    problem = TableProblem(str(table))
    sampler = optuna.samplers.RandomSampler(seed=0)
    (strategy,) = parse_strategies([sampler])
    assert strategy.name == "RandomSampler"
    run = replay(problem, strategy, 0, budget_trials=5)
    assert len(run.rows) == 5
    plugin = tmp_path / "mysampler.py"
    plugin.write_text(
        "import optuna\ndef make(seed):\n    return optuna.samplers.QMCSampler(seed=seed, scramble=True)\n"
    )
    out = tmp_path / "r.html"
    code, stdout, stderr = _greenml(
        "bench",
        "run",
        "--table",
        str(table),
        "--samplers",
        f"random,{plugin}:make",
        "--seeds",
        "3",
        "--budget-trials",
        "8",
        "--jobs",
        "1",
        "-o",
        str(out),
    )
    assert code == 0, stderr
    assert f"{plugin}:make" in stdout and out.is_file()
    frame = pd.read_csv(out.with_suffix(".csv"))
    assert sorted(set(frame["strategy"])) == sorted(["random", f"{plugin}:make"])
    assert (frame["evaluations"] == 8).all()


def test_run_bench_in_processes_matches_one_process(tmp_path: Path) -> None:
    problem = TableProblem(str(four(tmp_path / "t.parquet")))
    strategies = parse_strategies("random,tpe", ["none", "mo-asha"])
    one = run_bench(problem, strategies, seeds=2, budget_trials=12, jobs=1)
    two = run_bench(problem, strategies, seeds=2, budget_trials=12, jobs=2)
    assert [(r.strategy, r.seed, r.rows) for r in one.replays] == [
        (r.strategy, r.seed, r.rows) for r in two.replays
    ]
    assert [s.name for s in one.summaries] == ["random", "random+mo-asha", "tpe", "tpe+mo-asha"]


def test_rank_test_names_its_test_and_finds_a_clear_difference() -> None:
    seeds = 10
    clear = rank_test(
        {
            "a": [1.0 + i for i in range(seeds)],
            "b": [5.0 + i for i in range(seeds)],
            "c": [9.0 + i for i in range(seeds)],
        }
    )
    assert clear.test == "friedman+nemenyi" and clear.p_value < 1e-3
    # Every seed ranks a, b, c as 1, 2, 3: Nemenyi's critical difference for 3 strategies and 10
    # seeds is 1.05 mean ranks, so a-c (2) differ and a-b (1) do not.
    assert clear.differs("a", "c") and not clear.differs("a", "b")
    never = rank_test({"a": [1.0] * seeds, "b": [math.inf] * seeds})  # b never reached the target
    assert never.test == "wilcoxon" and never.p_value < 0.01
    assert rank_test({"a": [1.0, 2.0]}).test == "none"


def test_the_verdict_on_the_goal_bounds_a_median_that_never_reached_95() -> None:
    from types import SimpleNamespace

    from greenml.bench.verdict import default_strategy, verdict_lines

    def summary(name: str, reached: list[float | None], spent: list[float]) -> StrategySummary:
        return StrategySummary(name, len(reached), reached, [0.9] * 3, spent, [0] * 3, [10] * 3)

    default = default_strategy()
    assert default == "random+mo-asha"  # greenml search's defaults, named as bench names them
    test = RankTest("friedman+nemenyi", 9.0, 0.01, {(default, "random"): 0.02, (default, "tpe"): 0.3})
    result = SimpleNamespace(
        summaries=[
            summary(default, [100.0, 120.0, None], [500.0, 500.0, 500.0]),
            summary("random", [300.0, 400.0, 500.0], [500.0, 500.0, 500.0]),
            # Never reached on two seeds, having spent 480 and 500 J: its median is above 480 J.
            summary("tpe", [None, 200.0, None], [480.0, 500.0, 500.0]),
        ],
        test=test,
    )
    assert verdict_lines(result) == [
        f"{default} needs 0.30x the energy of random to reach 95% (goal <= 0.33x: met; "
        "the difference is significant at α = 0.05)",
        f"{default} needs at most 0.25x the energy of tpe to reach 95% (tpe's median never reached it: "
        "more than 480 J; goal <= 0.50x: met; the difference is not significant at α = 0.05)",
    ]
    # Where greenml's default never reached 95% itself, there is no ratio.
    result.summaries[0] = summary(default, [None, None, 100.0], [500.0] * 3)
    assert verdict_lines(result)[0] == f"{default} vs random: no ratio ({default}'s median never reached 95%)"


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


class _CpuClock:
    """A CPU clock that moves only when the test says: stands in for ``time.process_time``.

    ``spends`` counts the sampler's spells of work. Shared, not copied, by the copy of the
    sampler that each replay makes."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.spends = 0

    def __call__(self) -> float:
        return self.seconds

    def __deepcopy__(self, memo: dict[int, Any]) -> _CpuClock:
        return self


class _Slow(optuna.samplers.RandomSampler):
    """Random proposals after ``cpu_s`` of CPU time per parameter (``where="suggest"``: where GP's
    fit runs) or per result (``"tell"``: in ``after_trial``, inside Optuna's tell): burnt for
    real with ``burn``, else ``clock`` moved on by it."""

    def __init__(
        self, cpu_s: float, where: str, clock: _CpuClock, *, burn: bool = False, seed: int = 0
    ) -> None:
        super().__init__(seed=seed)
        self.cpu_s, self.where, self.clock, self.burn = cpu_s, where, clock, burn

    def _spend(self) -> None:
        self.clock.spends += 1
        if self.burn:
            _burn(self.cpu_s)
        else:
            self.clock.seconds += self.cpu_s

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
        if self.where == "suggest":
            self._spend()
        return super().sample_independent(study, trial, name, distribution)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        if self.where == "tell":
            self._spend()


class _CostlyTable(TableProblem):
    """Looking a point up in the table (the evaluation, not the sampler) costs ``cpu_s`` of ``clock``."""

    def __init__(self, path: str, clock: _CpuClock, cpu_s: float) -> None:
        super().__init__(path)
        self.clock, self.cpu_s = clock, cpu_s

    def row(self, params: dict[str, Any]) -> int:
        self.clock.seconds += self.cpu_s
        return super().row(params)

    def values(self, row: int) -> tuple[float, ...]:
        self.clock.seconds += self.cpu_s
        return super().values(row)


def test_the_samplers_own_cpu_time_is_measured_live_and_kept_out_of_the_joules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a CPU clock the test drives, so a busy machine or another thread of the process cannot
    move the figures: every second the sampler spends in ask, the suggestions or the tell is
    counted, and not one the table lookups and the hypervolume spend between them."""
    clock = _CpuClock()
    problem = _CostlyTable(str(four(tmp_path / "t.parquet")), clock, 1.0)
    real_hypervolume = replay_module.hypervolume

    def costly_hypervolume(*args: Any, **kwargs: Any) -> float:
        clock.seconds += 1.0
        return real_hypervolume(*args, **kwargs)

    monkeypatch.setattr(replay_module, "hypervolume", costly_hypervolume)
    recorded = problem.table.frame["trial_energy_j"].to_numpy(dtype=float)
    (quick,) = parse_strategies([optuna.samplers.RandomSampler(seed=0)])
    fast_run = replay(problem, quick, 0, budget_trials=20, cpu_clock=clock)
    assert clock.seconds > 20  # the lookups and the hypervolume did move the clock...
    assert fast_run.sampler_cpu_s == 0.0  # ...outside the sampler's spans
    # both the suggestions and the tell are timed
    for where in ("suggest", "tell"):
        clock.spends = 0
        (strategy,) = parse_strategies([_Slow(0.02, where, clock)])
        slow_run = replay(problem, strategy, 0, budget_trials=20, cpu_clock=clock)
        assert clock.spends >= 20, where  # once a result, or once a parameter of each trial
        assert slow_run.sampler_cpu_s == pytest.approx(clock.spends * 0.02, abs=1e-9), where
        # each evaluation is charged its row's recorded energy, and nothing for the sampler's time
        assert slow_run.energy_j == [float(recorded[row]) for row in slow_run.rows]
    (summary, *_), _ = summarise([slow_run])
    assert summary.median_sampler_ms_per_evaluation == pytest.approx(1e3 * slow_run.sampler_cpu_s / 20)
    assert summary.median_sampler_ms_per_evaluation == pytest.approx(20)


def test_the_sampler_is_timed_on_the_process_cpu_clock_by_default(tmp_path: Path) -> None:
    """Live: the default clock is CPU time, which a sampler burning it moves by at least what it
    burnt however busy the machine is (its wall time would be no smaller, but a sleeping sampler
    would move a wall clock too: that one must count nothing)."""
    problem = TableProblem(str(four(tmp_path / "t.parquet")))
    tally = _CpuClock()  # counts the spells only: the replay reads the real CPU clock
    (strategy,) = parse_strategies([_Slow(0.02, "tell", tally, burn=True)])
    slow_run = replay(problem, strategy, 0, budget_trials=20)
    assert tally.spends == 20
    assert slow_run.sampler_cpu_s >= 20 * 0.02

    class _Sleepy(optuna.samplers.RandomSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            time.sleep(0.02)

    (sleepy,) = parse_strategies([_Sleepy(seed=0)])
    # 0.4 s asleep; a wall clock would count all of it. Generous: the real work of 20 asks and
    # tells is a few ms of CPU, and a busy machine does not add to this process's CPU time.
    assert replay(problem, sleepy, 0, budget_trials=20).sampler_cpu_s < 20 * 0.02 / 2


def test_a_stopped_trial_pays_the_propose_phase_as_every_trial_does(tmp_path: Path) -> None:
    """A table built since the propose phase was metered: the storage's and the loop's work per
    trial is in the overhead a stopped trial is charged, not subtracted from it like a phase of
    the trial's own work."""
    row = {"kind": "a", "size": 1, "lr": 0.01, "acc": 0.9, "energy": 1.0, "latency": 1.0, "trial_j": 10.0}
    table = load_table(make_table(tmp_path / "t.parquet", [{**row, "propose_j": 0.25}]))
    # 10 J in all, of which train 3 J, compress 0.5 J, benchmark 1.5 J: 5 J of overhead
    assert trial_overhead(table)[0] == pytest.approx(5.0)
    plain = load_table(make_table(tmp_path / "plain.parquet", [row]))
    assert trial_overhead(plain)[0] == pytest.approx(5.0)
