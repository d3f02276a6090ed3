"""greenml bench: grids, tables, the problem object, replays and their charges, and bad input.

Most tests run on small hand-made tables (no training), whose expected fronts, snaps and charges
were worked out by hand in the comments. One test builds a real table (4 grid points, 3 epochs).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from greenml.bench.grid import load_grid, parse_grid
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
from greenml.bench.table import TABLE_VERSION, load_table, write_table
from greenml.cli import main
from greenml.errors import ConfigError

SHIPPED = Path(__file__).parent.parent / "benchmarks" / "tables" / "mlp-digits.parquet"
OBJECTIVES = ["accuracy", "inference_energy_j", "latency_ms"]


def make_table(path: Path, rows: list[dict[str, Any]], epochs: int = 3) -> Path:
    """A table of ``rows``: each gives ``kind`` ('a'/'b'), ``size`` (int 1..4), ``lr`` (log float),
    ``acc`` (final deployed accuracy), ``curve`` (validation accuracy per epoch), ``energy``
    (inference J), ``latency`` (ms), ``epoch_j`` (per-epoch training J), ``trial_j`` and,
    optionally, ``key`` (the artifact key) and ``propose_j`` (the propose phase's J)."""
    records = []
    for index, row in enumerate(rows):
        records.append(
            {
                **({"artifact_key": row["key"]} if "key" in row else {}),
                "config": index,
                "param_kind": row["kind"],
                "param_size": row["size"],
                "param_lr": row["lr"],
                "param_epochs": epochs,
                "val_accuracy_curve": list(row.get("curve", [row["acc"]] * epochs)),
                "test_accuracy_curve": list(row.get("curve", [row["acc"]] * epochs)),
                "epoch_energy_j": [row.get("epoch_j", 1.0)] * epochs,
                "epoch_seconds": [0.1] * epochs,
                "accuracy": row["acc"],
                "test_accuracy": row["acc"],
                "inference_energy_j": row["energy"],
                "latency_ms": row["latency"],
                "trial_energy_j": row.get("trial_j", 10.0),
                "train_energy_j": row.get("epoch_j", 1.0) * epochs,
                "compress_energy_j": row.get("compress_j", 0.5),
                "benchmark_energy_j": row.get("benchmark_j", 1.5),
                **({"propose_energy_j": row["propose_j"]} if "propose_j" in row else {}),
                "energy_basis": "estimated",
                "cpu": "Test CPU",
                "deploy_device": "cpu",
                "trial": index,
            }
        )
    grid = {
        "kind": sorted({r["kind"] for r in rows}),
        "size": sorted({r["size"] for r in rows}),
        "lr": sorted({r["lr"] for r in rows}),
        "epochs": [epochs],
    }
    meta = {
        "version": TABLE_VERSION,
        "space": "hand-made",
        "dataset": "none",
        "grid": grid,
        "distributions": {
            "kind": distribution_to_json(CategoricalDistribution(["a", "b", "c"])),
            "size": distribution_to_json(IntDistribution(1, 4)),
            "lr": distribution_to_json(FloatDistribution(1e-3, 1e-1, log=True)),
        },
        "grid_size": len(rows),
        "missing": 0,
        # As fast as the cost phase's windows: the cost phase is estimated as the row's whole
        # compress and benchmark energy.
        "benchmark_windows_s": {"latency": 0.25, "energy": 0.25},
        "objectives": OBJECTIVES,
        "footprint": {"energy_j": 1.0, "energy_basis": "estimated"},
        "command": ["hand", "made"],
    }
    write_table(pd.DataFrame(records), meta, path)
    return path


def four(path: Path) -> Path:
    # Losses (-accuracy, energy, latency):
    #   row 0: (-0.90, 2, 2)   row 1: (-0.80, 1, 1)   row 2: (-0.85, 3, 3)   row 3: (-0.95, 4, 1.5)
    # Row 2 is dominated by row 0 (worse on all three); 0, 1 and 3 are mutually non-dominated.
    return make_table(
        path,
        [
            {"kind": "a", "size": 1, "lr": 0.001, "acc": 0.90, "energy": 2.0, "latency": 2.0},
            {"kind": "a", "size": 2, "lr": 0.01, "acc": 0.80, "energy": 1.0, "latency": 1.0},
            {"kind": "b", "size": 1, "lr": 0.001, "acc": 0.85, "energy": 3.0, "latency": 3.0},
            {"kind": "b", "size": 2, "lr": 0.01, "acc": 0.95, "energy": 4.0, "latency": 1.5},
        ],
    )


# --- the table ------------------------------------------------------------------------------------


def test_true_front_is_exact_on_a_hand_made_table(tmp_path: Path) -> None:
    table = load_table(four(tmp_path / "t.parquet"))
    assert table.true_front(OBJECTIVES).tolist() == [0, 1, 3]
    # Reference: the front's nadir (-0.8, 4, 2) plus a tenth of its range (0.15, 3, 1):
    # (-0.785, 4.3, 2.1). Hypervolume of {0, 1, 3}, slice by slice on energy:
    #   energy 1..2 (row 1): 0.015 x 1.1 = 0.0165, x 1 = 0.0165
    #   energy 2..4 (rows 1, 0): 0.0165 + 0.115 x 0.1 - overlap 0.015 x 0.1 = 0.0265, x 2 = 0.053
    #   energy 4..4.3 (rows 1, 0, 3), by -accuracy: [-.95,-.9] lat 1.5..2.1: 0.05 x 0.6 = 0.03;
    #     [-.9,-.8] lat 1.5..2.1: 0.1 x 0.6 = 0.06; [-.8,-.785] lat 1..2.1: 0.015 x 1.1 = 0.0165;
    #     = 0.1065, x 0.3 = 0.03195
    assert table.reference_point(OBJECTIVES) == pytest.approx([-0.785, 4.3, 2.1])
    assert table.hypervolume([0, 1, 3], OBJECTIVES) == pytest.approx(0.0165 + 0.053 + 0.03195)
    # The dominated row adds nothing.
    assert table.hypervolume([0, 1, 2, 3], OBJECTIVES) == pytest.approx(
        table.hypervolume([0, 1, 3], OBJECTIVES)
    )


def test_bad_tables_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no table at"):
        load_table(tmp_path / "missing.parquet")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ConfigError, match="not a readable Parquet file"):
        load_table(corrupt)
    foreign = tmp_path / "foreign.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(foreign)
    with pytest.raises(ConfigError, match="not a greenml benchmark table"):
        load_table(foreign)
    empty = make_table(tmp_path / "empty.parquet", [])
    with pytest.raises(ConfigError, match="has no rows"):
        load_table(empty)


# --- the problem object -----------------------------------------------------------------------------


def test_problem_snaps_to_the_nearest_grid_point(tmp_path: Path) -> None:
    problem = TableProblem(str(four(tmp_path / "t.parquet")))
    assert set(problem.search_space) == {"kind", "size", "lr"}  # epochs is the fidelity, not a parameter
    assert problem.search_space["kind"].choices == ("a", "b")  # categories narrowed to the grid's
    assert problem.search_space["lr"].log
    # lr 0.003: ln(0.003/0.001) = 1.10 < ln(0.01/0.003) = 1.20, so 0.001 (linearly too).
    # lr 0.004: ln 4 = 1.39 > ln 2.5 = 0.92, so 0.01 (linearly it would be 0.001).
    assert problem.row({"kind": "a", "size": 1, "lr": 0.003}) == 0
    assert problem.row({"kind": "a", "size": 2, "lr": 0.004}) == 1
    assert problem.row({"kind": "a", "size": 4, "lr": 0.004}) == 1  # size 4 -> 2, the nearest
    assert problem.evaluate({"kind": "b", "size": 2, "lr": 0.05}) == (0.95, 4.0, 1.5)
    # a, size 1, lr 0.01 has no row in this table (as when its build trial failed): the kind and
    # size match row 0 only, so the lr snaps to row 0's 0.001.
    assert problem.row({"kind": "a", "size": 1, "lr": 0.01}) == 0
    with pytest.raises(ValueError, match="not in the grid"):
        problem.row({"kind": "c", "size": 1, "lr": 0.001})
    # Where both learning rates remain, the log scale decides: 0.004 -> 0.01, 0.002 -> 0.001.
    both = TableProblem(
        str(
            make_table(
                tmp_path / "lr.parquet",
                [
                    {"kind": "a", "size": 1, "lr": 0.001, "acc": 0.9, "energy": 1.0, "latency": 1.0},
                    {"kind": "a", "size": 1, "lr": 0.01, "acc": 0.8, "energy": 1.0, "latency": 1.0},
                ],
            )
        )
    )
    assert both.row({"kind": "a", "size": 1, "lr": 0.004}) == 1
    assert both.row({"kind": "a", "size": 1, "lr": 0.002}) == 0


def test_the_problem_drives_a_plain_optuna_study(tmp_path: Path) -> None:
    problem = TableProblem(str(four(tmp_path / "t.parquet")))
    study = optuna.create_study(directions=problem.directions, sampler=optuna.samplers.RandomSampler(seed=1))
    study.set_metric_names(problem.metric_names)
    study.optimize(problem, n_trials=30, catch=(ValueError,))
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert complete and study.metric_names == OBJECTIVES
    for trial in complete:
        assert tuple(trial.values) == problem.values(problem.row(trial.params))
    found = {tuple(t.values) for t in study.best_trials}
    assert found <= {problem.values(r) for r in (0, 1, 3)}  # only true-front rows are best


# --- replays --------------------------------------------------------------------------------------


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


# --- grids --------------------------------------------------------------------------------------


def test_grid_ranges_and_errors(tmp_path: Path) -> None:
    grid = parse_grid({"params": {"lr": {"low": 0.001, "high": 0.1, "num": 3, "log": True}, "epochs": [5]}})
    assert grid.values["lr"] == (0.001, 0.01, 0.1) and grid.epochs == 5
    with pytest.raises(ConfigError, match="one value, the most epochs"):
        parse_grid({"params": {"epochs": [5, 10]}})
    with pytest.raises(ConfigError, match="no epochs given"):
        parse_grid({"params": {"lr": [0.01]}})
    with pytest.raises(ConfigError, match="unknown section"):
        parse_grid({"params": {"epochs": [5]}, "extra": 1})
    with pytest.raises(ConfigError, match="no grid ships for space 'cnn'"):
        load_grid(None, "cnn")


def test_the_shipped_grid_expands_to_its_configurations() -> None:
    from greenml.bench.build import grid_configs
    from greenml.data import load_dataset
    from greenml.spaces import load_space

    configs, distributions = grid_configs(
        load_grid(None, "mlp"), load_space("mlp"), load_dataset("digits", 0).spec
    )
    # 3 depths x 4 widths x 2 dropouts x 4 learning rates = 96 trainings; x (unpruned, pruned) x
    # (torch, onnxruntime unquantised, onnxruntime dynamic int8) = 576.
    assert len(configs) == 576
    assert len({json.dumps(sorted(c.items())) for c in configs}) == 576
    unpruned = [c for c in configs if c["pruning"] == "none"]
    assert all("prune_amount" not in c and "finetune_epochs" not in c for c in unpruned)
    assert all("quantization" not in c for c in configs if c["runtime"] == "torch")
    assert set(distributions) >= {"n_layers", "width", "dropout", "lr", "prune_amount", "quantization"}


# --- the command line: bad input -----------------------------------------------------------------


def _greenml(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (
            "good",
            ["--samplers", "random,annealing"],
            "unknown sampler 'annealing'; valid: tpe, nsga2, nsga3, gp, random",
        ),
        ("good", ["--samplers", "tpe+hyperband"], "unknown stopping rule 'hyperband'; valid: mo-asha, none"),
        ("good", ["--early-stopping", "asha"], "unknown stopping rule 'asha'; valid: mo-asha, none"),
        (
            "good",
            ["--samplers", "random,tpe+mo-asha(eta=4,keep_front=false)"],
            "'tpe+mo-asha(eta=4,keep_front=false)': stopping rule 'mo-asha' has no setting 'eta'; "
            "valid: reduction_factor, min_epochs, rungs, keep_front, stop_before_training",
        ),
        ("good", ["--objectives", "accuracy,flops"], "unknown objective 'flops'"),
        ("good", ["--seeds", "0"], "--seeds must be >= 1"),
        ("empty", [], "has no rows"),
        ("corrupt", [], "not a readable Parquet file"),
        ("missing", [], "no table at"),
    ],
)
def test_bad_run_input_is_one_line_and_exit_2(
    tmp_path: Path, make: str, args: list[str], message: str
) -> None:
    path = tmp_path / "t.parquet"
    if make == "good":
        four(path)
    elif make == "empty":
        make_table(path, [])
    elif make == "corrupt":
        path.write_bytes(b"not parquet at all")
    out = tmp_path / "r.html"
    code, _, err = _greenml(
        "bench", "run", "--table", str(path), "--seeds", "2", "--budget-trials", "3", "-o", str(out), *args
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not out.exists()


def test_a_grid_with_an_unknown_parameter_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(
        "[params]\nn_layers = [1]\nwidth = [32]\ndropout = [0.0]\nlr = [0.01]\nbatch_size = [64]\n"
        'epochs = [2]\npruning = ["none"]\nruntime = ["torch"]\nmomentum = [0.9]\n'
    )
    db = tmp_path / "b.db"
    build = [
        "bench",
        "build",
        "--grid",
        str(grid),
        "--storage",
        f"sqlite:///{db}",
        "-o",
        str(tmp_path / "t.parquet"),
    ]
    code, _, err = _greenml(*build)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "no configuration asks for 'momentum'; valid parameters: " in line and "n_layers" in line
    assert not db.exists() and not (tmp_path / "t.parquet").exists()
    grid.write_text(
        grid.read_text().replace("momentum = [0.9]\n", "").replace("width = [32]", "width = [48]")
    )
    code, _, err = _greenml(*build)
    assert code == 2 and "width = 48 is outside the space; valid: one of 32, 64, 128, 256" in err


# --- a real build ---------------------------------------------------------------------------------

FAST_BUILD = [
    "--meter",
    "estimate",
    "--idle-seconds",
    "0",
    "--min-energy-window",
    "0.05",
    "--min-latency-window",
    "0.05",
]


def _grid(path: Path, widths: str) -> Path:
    path.write_text(
        "[params]\nn_layers = [1]\nwidth = ["
        + widths
        + "]\ndropout = [0.0]\nlr = [0.01]\nbatch_size = [64]\n"
        'epochs = [3]\npruning = ["none"]\nruntime = ["torch", "onnxruntime"]\nquantization = ["none"]\n'
    )
    return path


def test_build_measures_every_grid_point_and_resumes(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'bench.db'}"
    table_path = tmp_path / "table.parquet"
    args = ["bench", "build", "--storage", storage, "--study", "b", "-o", str(table_path), *FAST_BUILD]
    code, _, err = _greenml(*args, "--grid", str(_grid(tmp_path / "g.toml", "32")))
    assert code == 0, err
    assert "grid of 2 configurations; 2 queued now" in err
    first = load_table(table_path)
    assert len(first) == 2 and first.meta["grid_size"] == 2 and first.meta["missing"] == 0
    # The grid grows: the same study queues only the new points and keeps the old rows.
    code, _, err = _greenml(*args, "--grid", str(_grid(tmp_path / "g.toml", "32, 64")))
    assert code == 0, err
    assert "grid of 4 configurations; 2 queued now, 2 already complete" in err
    table = load_table(table_path)
    study = optuna.load_study(study_name="b", storage=storage)
    assert len(study.trials) == 4  # queued trials only: nothing sampled, nothing run twice
    assert len(table) == 4 and table.frame["config"].tolist() == [0, 1, 2, 3]
    first_rows = first.frame.set_index("trial")["latency_ms"]
    assert table.frame.set_index("trial").loc[first_rows.index, "latency_ms"].tolist() == first_rows.tolist()
    frame = table.frame
    assert sorted(zip(frame["param_width"], frame["param_runtime"], strict=True)) == [
        (32, "onnxruntime"),
        (32, "torch"),
        (64, "onnxruntime"),
        (64, "torch"),
    ]
    for _, row in frame.iterrows():
        assert len(row["val_accuracy_curve"]) == len(row["test_accuracy_curve"]) == 3
        assert all(0 <= a <= 1 for a in row["test_accuracy_curve"])
        assert all(e > 0 for e in row["epoch_energy_j"])
        # The epochs are windows inside the train phase; the test pass is outside them.
        assert sum(row["epoch_energy_j"]) <= row["train_energy_j"] * (1 + 1e-9)
        assert row["inference_energy_j"] > 0 and row["latency_ms"] > 0 and row["model_bytes"] > 0
    assert frame["energy_basis"].unique().tolist() == ["estimated"]
    meta = table.meta
    assert meta["footprint"]["energy_j"] > 0 and meta["hardware"]["cpu"]
    assert meta["command"][:3] == ["greenml", "bench", "build"] or meta["command"][:2] == ["greenml", "bench"]
    # The table replays: every proposal lands on one of its rows.
    result = run_bench(TableProblem(table), parse_strategies("random"), seeds=2, budget_trials=5, jobs=1)
    assert all(r in range(4) for run in result.replays for r in run.rows)


def test_the_shipped_table() -> None:
    """benchmarks/tables/mlp-digits.parquet: the grid greenml ships, measured on this project's machine."""
    table = load_table(SHIPPED)
    meta = table.meta
    assert meta["space"] == "mlp" and meta["dataset"] == "digits" and meta["grid_size"] == 576
    assert len(table) >= 500 and len(table) + meta["missing"] == 576
    assert table.epochs == 20 and table.val_curves.shape == (len(table), 20)
    assert meta["hardware"]["cpu"] and meta["footprint"]["energy_j"] > 0
    assert meta["command"][:3] == ["greenml", "bench", "build"]
    problem = TableProblem(table)
    front = table.true_front(problem.objectives)
    assert 1 <= len(front) < len(table)
    # Every row is a distinct grid point, and each snaps back to itself.
    for row in range(0, len(table), 37):
        assert problem.row(table.config_params(row)) == row


def test_two_workers_build_each_grid_point_once(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'bench.db'}"
    table_path = tmp_path / "table.parquet"
    grid = _grid(tmp_path / "g.toml", "32, 64")
    args = [
        "bench",
        "build",
        "--storage",
        storage,
        "--study",
        "w",
        "--grid",
        str(grid),
        "-o",
        str(table_path),
    ]
    code, _, err = _greenml(*args, "--workers", "2", *FAST_BUILD)
    assert code == 0, err
    study = optuna.load_study(study_name="w", storage=storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4
    assert len({json.dumps(sorted(t.params.items())) for t in complete}) == 4  # each point once
    # A worker that found the queue empty in the same instant ends its sampled trial at once.
    extra = [t for t in study.trials if t.state.name != "COMPLETE"]
    assert all(t.state.name == "PRUNED" and not t.params for t in extra)
    assert {t.user_attrs["worker"]["number"] for t in complete} <= {0, 1}
    assert len(load_table(table_path)) == 4


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


class _Slow(optuna.samplers.RandomSampler):
    """Random proposals after ``cpu_s`` of CPU time per parameter (``where="suggest"``: where GP's
    fit runs) or per result (``"tell"``: in ``after_trial``, inside Optuna's tell)."""

    def __init__(self, cpu_s: float, where: str, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self.cpu_s, self.where = cpu_s, where

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
        if self.where == "suggest":
            _burn(self.cpu_s)
        return super().sample_independent(study, trial, name, distribution)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        if self.where == "tell":
            _burn(self.cpu_s)


def test_the_samplers_own_cpu_time_is_measured_live_and_kept_out_of_the_joules(tmp_path: Path) -> None:
    problem = TableProblem(str(four(tmp_path / "t.parquet")))
    (quick,) = parse_strategies([optuna.samplers.RandomSampler(seed=0)])
    (suggesting,) = parse_strategies([_Slow(0.02, "suggest", seed=0)])
    (telling,) = parse_strategies([_Slow(0.02, "tell", seed=0)])
    fast_run = replay(problem, quick, 0, budget_trials=20)
    # both the suggestions and the tell are timed
    for where, slow in (("suggest", suggesting), ("tell", telling)):
        slow_run = replay(problem, slow, 0, budget_trials=20)
        assert slow_run.sampler_cpu_s >= 20 * 0.02, where
        assert fast_run.sampler_cpu_s < slow_run.sampler_cpu_s / 4
        # each evaluation is charged its row's recorded energy, and nothing for the sampler's time
        recorded = problem.table.frame["trial_energy_j"].to_numpy(dtype=float)
        assert slow_run.energy_j == [float(recorded[row]) for row in slow_run.rows]
    (summary, *_), _ = summarise([slow_run])
    assert summary.median_sampler_ms_per_evaluation == pytest.approx(1e3 * slow_run.sampler_cpu_s / 20)
    assert summary.median_sampler_ms_per_evaluation >= 20


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
