"""``greenml bench build`` and ``greenml bench run``: the command line of :mod:`greenml.bench`."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from greenml.cli._parents import (
    Parser,
    measure_config,
    meter_options,
    options,
    storage_option,
    study_option,
)
from greenml.errors import ConfigError

__all__ = ["add_bench", "cmd_build", "cmd_run"]

DEFAULT_SAMPLERS = "random,tpe,nsga2,gp"


def add_bench(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmark tables: measure a grid once (build), replay search strategies against it (run)",
        description="Tabular benchmarks from greenml's own measurements: build measures every point of "
        "a finite grid once; run replays samplers (and early stopping) against the table over many "
        "seeds, at no training cost.",
    )
    sub = bench.add_subparsers(dest="bench_command", metavar="{build,run}", parser_class=Parser)
    sub.required = True

    build = sub.add_parser(
        "build",
        parents=[
            _grid_options(),
            storage_option(),
            study_option("the build's study (default: bench-SPACE-DATASET)"),
            _build_options(),
            meter_options(idle_default=1.0),
        ],
        help="evaluate every configuration of a grid and write a Parquet table",
    )
    build.set_defaults(handler=cmd_build)

    run = sub.add_parser("run", help="replay search strategies against a table over many seeds")
    run.add_argument(
        "--table", type=Path, required=True, metavar="TABLE", help="a table from greenml bench build"
    )
    run.add_argument(
        "--samplers",
        default=DEFAULT_SAMPLERS,
        help="comma-separated strategies: random, tpe, nsga2, nsga3, gp; NAME+mo-asha for one with early "
        "stopping, NAME+mo-asha(key=value,...) with the rule's settings (reduction_factor, min_epochs, "
        "rungs as 1/3/9, keep_front, stop_before_training); MODULE:NAME or FILE.py:NAME for your own "
        f"BaseSampler (default: {DEFAULT_SAMPLERS})",
    )
    run.add_argument(
        "--early-stopping",
        default="none",
        metavar="RULES",
        help="comma-separated stopping rules every sampler runs with: none, mo-asha, or "
        "mo-asha(key=value,...) (default: none)",
    )
    run.add_argument("--seeds", type=int, default=10, help="seeds per strategy (default: 10)")
    run.add_argument(
        "--budget-trials",
        type=int,
        default=None,
        metavar="N",
        help="evaluations per replay (default: 100 without --budget-energy); with both, a replay ends "
        "at whichever is spent first",
    )
    run.add_argument(
        "--budget-energy", type=float, default=None, metavar="J", help="search energy per replay, in J"
    )
    run.add_argument("--objectives", default=None, help="comma-separated objectives (default: the table's)")
    run.add_argument("--jobs", type=int, default=None, metavar="N", help="processes (default: one per core)")
    run.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="HTML",
        help="report (default: reports/bench-TABLE.html)",
    )
    run.add_argument(
        "--csv",
        type=Path,
        default=None,
        metavar="FILE",
        help="per-seed results (default: beside the report, .csv)",
    )
    run.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the summary as JSON")
    run.set_defaults(handler=cmd_run)


def _grid_options() -> argparse.ArgumentParser:
    """What ``bench build`` measures: the space, the data and the grid."""
    build = options()
    build.add_argument(
        "--space",
        default="mlp",
        help="search space: a built-in name, a file or an entry point (default: mlp)",
    )
    build.add_argument("--dataset", default="digits", help="dataset name or data file (default: digits)")
    build.add_argument("--target", default=None, help="label column of a table data file")
    build.add_argument(
        "--grid",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML grid file (default: the grid greenml ships for the space)",
    )
    return build


def _build_options() -> argparse.ArgumentParser:
    """Where ``bench build`` writes its table and how it runs its trials."""
    build = options()
    build.add_argument(
        "-o", "--output", type=Path, required=True, metavar="TABLE", help="the Parquet table to write"
    )
    build.add_argument(
        "--workers", type=int, default=1, metavar="N", help="worker processes on this machine (default: 1)"
    )
    build.add_argument(
        "--seed", type=int, default=0, help="seed of the data split and of each trial's training (default: 0)"
    )
    build.add_argument("--device", default="cpu", help="training device (default: cpu)")
    build.add_argument(
        "--deploy-device", default=None, help="device the artifacts are benchmarked on (default: --device)"
    )
    build.add_argument(
        "--min-energy-window",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds of each energy-per-inference window (default: 1)",
    )
    build.add_argument(
        "--min-latency-window",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds of latency timing per batch size (default: 1)",
    )
    return build


def cmd_build(args: argparse.Namespace) -> int:
    from greenml.bench.build import build
    from greenml.bench.grid import load_grid
    from greenml.search import Progress, SearchConfig
    from greenml.spaces import load_space

    measure = measure_config(args)
    if args.output.is_dir():
        raise ConfigError(f"-o: {str(args.output)!r} is a directory; give a file name such as table.parquet")
    if not args.output.parent.is_dir():
        raise ConfigError(f"-o: directory {str(args.output.parent)!r} does not exist")
    space_name = load_space(args.space).name
    grid = load_grid(args.grid, space_name)
    dataset_name = Path(args.dataset).stem if "/" in args.dataset or "." in args.dataset else args.dataset
    config = SearchConfig(
        space=args.space,
        dataset=args.dataset,
        target=args.target,
        trials=None,
        sampler="random",
        seed=args.seed,
        storage=args.storage,
        study=args.study or f"bench-{space_name}-{dataset_name}",
        device=args.device,
        deploy_device=args.deploy_device,
        measure=measure,
        epochs=(grid.epochs, grid.epochs),
        distillation=False,
        energy_window_s=args.min_energy_window,
        latency_s=args.min_latency_window,
        workers=args.workers,
        keep_models="none",
        early_stopping="none",
        queued_only=True,
        test_curve=True,
    )
    command = (
        ["greenml", "bench", *sys.argv[2:]] if sys.argv[1:2] == ["bench"] else ["greenml", "bench", "build"]
    )
    with Progress(sys.stderr) as progress:
        result = build(config, grid, args.output, command, progress)
    print(
        f"greenml: table of {result.rows} of {result.grid_size} grid points"
        + (f" ({result.missing} failed: run the same command again to retry them)" if result.missing else "")
        + f"; build energy {result.energy_j:.1f} J",
        file=sys.stderr,
    )
    print(f"table: {result.path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from greenml.bench.problem import TableProblem
    from greenml.bench.replay import parse_strategies, split_list
    from greenml.bench.run import csv_text, run_bench
    from greenml.bench.summary import as_dict
    from greenml.bench.verdict import verdict_lines
    from greenml.metrics import parse_objectives
    from greenml.report import default_report_path
    from greenml.report.bench import write_bench_report
    from greenml.results import write_atomic

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    if args.budget_trials is not None and args.budget_trials < 1:
        raise ConfigError(f"--budget-trials must be >= 1, got {args.budget_trials}")
    if args.budget_energy is not None and not args.budget_energy > 0:
        raise ConfigError(f"--budget-energy must be > 0 J, got {args.budget_energy}")
    rules = split_list(args.early_stopping) or ["none"]
    strategies = parse_strategies(args.samplers, rules)
    objectives = parse_objectives(args.objectives) if args.objectives else None
    problem = TableProblem(str(args.table), objectives)
    output = args.output or default_report_path(f"bench-{args.table.stem}")
    for path, flag in ((args.output, "-o"), (args.csv, "--csv"), (args.json, "--json")):
        if path is not None and path.is_dir():
            raise ConfigError(f"{flag}: {str(path)!r} is a directory; give a file name")
        if path is not None and not path.parent.is_dir():
            raise ConfigError(f"{flag}: directory {str(path.parent)!r} does not exist")
    budget_trials = (
        args.budget_trials if args.budget_trials is not None or args.budget_energy is not None else 100
    )
    result = run_bench(problem, strategies, args.seeds, budget_trials, args.budget_energy, args.jobs)
    verdicts = verdict_lines(result)
    print(_text(result, verdicts))
    write_bench_report(result, verdicts, output)
    csv_path = args.csv or output.with_suffix(".csv")
    write_atomic(csv_path, csv_text(result))
    if args.json is not None:
        summary = as_dict(result.summaries, result.test)
        if result.hv_test is not None:
            summary["hv_test"] = as_dict([], result.hv_test)["test"]
        summary.update(
            table=str(args.table),
            hardware=problem.table.hardware,
            budget_trials=result.budget_trials,
            budget_energy_j=result.budget_energy_j,
            seconds=result.seconds,
            verdicts=verdicts,
        )
        write_atomic(args.json, json.dumps(summary, indent=2) + "\n")
    print(f"report: {output}\ncsv: {csv_path}")
    return 0


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _text(result: Any, verdicts: list[str]) -> str:
    width = max([24, *(len(s.name) for s in result.summaries)])
    lines = [
        f"replayed from a table built on {result.problem.table.hardware}; {len(result.replays)} replays in {result.seconds:.1f} s",
        f"{'strategy':{width}s} {'median J to 95%':>16s} {'reached':>8s} {'mean rank':>9s} {'median final HV':>16s}"
        f" {'sampler ms/eval (live)':>22s}",
    ]
    for s in result.summaries:
        median = s.median_energy_to_target_j
        lines.append(
            f"{s.name:{width}s} {('never' if median is None else f'{median:.4g}'):>16s} {f'{s.reached}/{s.seeds}':>8s} "
            f"{s.mean_rank:9.2f} {statistics.median(s.final_hv):16.3f} {_ms(s.median_sampler_ms_per_evaluation):>22s}"
        )
    test = result.test
    if test.test == "none":
        lines.append(f"rank test: none ({test.note})")
    else:
        lines.append(
            f"rank test on the energy to 95%: {test.test}, statistic {test.statistic:.3g}, p = {test.p_value:.3g}"
        )
    hv = result.hv_test
    if hv is not None and hv.test != "none":
        lines.append(
            f"rank test on the final hypervolume: {hv.test}, statistic {hv.statistic:.3g}, p = {hv.p_value:.3g}"
        )
    lines.extend(verdicts)
    return "\n".join(lines)
