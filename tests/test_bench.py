"""greenml bench: grids, tables, the problem object, building a table, and bad input.

Most tests run on small hand-made tables (no training), whose expected fronts, snaps and charges
were worked out by hand in the comments. One test builds a real table (4 grid points, 3 epochs).
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
from _bench_helpers import OBJECTIVES, _greenml, four, make_table

from greenml.bench.grid import load_grid, parse_grid
from greenml.bench.problem import TableProblem
from greenml.bench.replay import parse_strategies
from greenml.bench.run import run_bench
from greenml.bench.table import load_table
from greenml.errors import ConfigError

SHIPPED = Path(__file__).parent.parent / "benchmarks" / "tables" / "mlp-digits.parquet"


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
