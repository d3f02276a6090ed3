"""``greenml search``, and ``greenml spaces`` and ``greenml datasets``: what a search can take."""

from __future__ import annotations

import argparse
import signal
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from greenml.cli._parents import measure_config, meter_options, options, storage_option, study_option
from greenml.errors import ConfigError, GreenMLError
from greenml.storage import Heartbeat
from greenml.units import human, number, quantity_of, scale_for

__all__ = ["add_datasets", "add_search", "add_spaces", "cmd_datasets", "cmd_search", "cmd_spaces"]


def add_search(commands: Any) -> None:
    from greenml.metrics import OBJECTIVE_METRICS, describe

    search = commands.add_parser(
        "search",
        parents=[
            _problem_options(),
            storage_option(
                "Optuna storage URL, e.g. postgresql://user@host/db (default: sqlite:///greenml.db in the current directory)"
            ),
            study_option("study name (default: SPACE-DATASET-SAMPLER-seedSEED, so the same command resumes)"),
            _run_options(),
            meter_options(idle_default=1.0),
        ],
        help="run a multi-objective search over architectures and compression",
        description="Run (or resume) an Optuna study over a search space's architectures crossed with "
        "training and compression settings, measuring accuracy, energy and latency on the deployed artifact.",
        epilog=textwrap.fill(
            "metrics (unit, direction): every trial stores these. --objectives takes "
            f"{', '.join(OBJECTIVE_METRICS)}; --constraint takes any but test_accuracy and "
            "latency_stderr_ms.",
            width=100,
        )
        + "\n  "
        + describe().replace("\n", "\n  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    search.set_defaults(handler=cmd_search)


def _problem_options() -> argparse.ArgumentParser:
    """What is searched and how long: the space, the data, the budget, objectives, sampler, seed."""
    search = options()
    search.add_argument(
        "--space",
        default="mlp",
        help="built-in space (mlp, cnn, tinybert), an installed plug-in's name, or a .py file (default: mlp)",
    )
    search.add_argument(
        "--dataset",
        default="digits",
        metavar="DATA",
        help="built-in (digits, mnist1d), an installed plug-in's name, or a file: .npz (x, y[, x_test, "
        "y_test]), .csv or .parquet (with --target), .py with a module-level DATA (default: digits); "
        "see greenml datasets",
    )
    search.add_argument(
        "--target", default=None, metavar="COL", help="the label column of a .csv or .parquet --dataset"
    )
    budget = search.add_mutually_exclusive_group()
    budget.add_argument(
        "--trials",
        type=int,
        default=None,
        metavar="N",
        help="complete trials in total, resumed ones included (default: 12 unless --timeout or --energy-budget)",
    )
    budget.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="stop starting trials after S seconds"
    )
    budget.add_argument(
        "--energy-budget",
        type=float,
        default=None,
        metavar="J",
        help="stop once the search's own measured energy passes J joules",
    )
    search.add_argument(
        "--objectives",
        default="accuracy,inference_energy_j,latency_ms",
        metavar="M1,M2,...",
        help="objectives, from the metrics listed below (default: accuracy,inference_energy_j,latency_ms)",
    )
    search.add_argument(
        "--constraint",
        action="append",
        default=[],
        metavar="EXPR",
        help="a comparison on a metric listed below, e.g. 'accuracy>=0.9' or 'latency_p99_ms<2'; repeatable",
    )
    search.add_argument(
        "--sampler",
        default="random",
        choices=["tpe", "nsga2", "nsga3", "gp", "random"],
        help="Optuna sampler (default: random, which with the default early stopping won the replay "
        "benchmark; gp for a few dozen complete trials; tpe is Optuna's default)",
    )
    search.add_argument(
        "--seed", type=int, default=0, help="seeds the data split and the sampler (default: 0)"
    )
    return search


def _run_options() -> argparse.ArgumentParser:
    """How trials run: devices, training, windows, workers, kept models, early stopping, report."""
    search = options()
    search.add_argument(
        "--device",
        default="cpu",
        metavar="DEVICE",
        help="where training runs: cpu, cuda or cuda:N (default: cpu)",
    )
    search.add_argument(
        "--deploy-device",
        default=None,
        metavar="DEVICE",
        help="where the deployed artifact is run and measured: cpu, cuda or cuda:N (default: --device); "
        "ONNX Runtime on cuda needs onnxruntime-gpu",
    )
    search.add_argument(
        "--max-failures",
        type=int,
        default=5,
        metavar="N",
        help="stop after N consecutive failed trials (default: 5)",
    )
    search.add_argument(
        "--no-distillation", action="store_true", help="leave knowledge distillation out of the space"
    )
    search.add_argument(
        "--epochs",
        default="5:30",
        metavar="LOW:HIGH",
        help="range of training epochs the search samples (default: 5:30)",
    )
    search.add_argument(
        "--min-energy-window",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds each energy-per-inference window lasts at least (default: 1; the meter's resolution needs >= 1 on NVML)",
    )
    search.add_argument(
        "--min-latency-window",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds of timed calls per batch size for each trial's latency, >= 50 calls either way "
        "(default: 1; shorter windows let slow spells of a shared machine decide a trial's latency)",
    )
    parallel = search.add_argument_group(
        "workers",
        "Many workers share one study through its storage: start --workers N here, or the same command "
        "on other machines with one --storage postgresql://... (or grpc://HOST:PORT, see storage-proxy).",
    )
    parallel.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes to start on this machine, each running trials of the study (default: 1)",
    )
    parallel.add_argument(
        "--heartbeat-interval",
        type=int,
        default=10,
        metavar="S",
        help="seconds between a running trial's heartbeats (default: 10)",
    )
    parallel.add_argument(
        "--grace-period",
        type=int,
        default=60,
        metavar="S",
        help="a running trial without a heartbeat for S seconds is failed and run again (default: 60)",
    )
    parallel.add_argument(
        "--stale-retries",
        type=int,
        default=1,
        metavar="N",
        help="times a trial whose worker died is run again with the same parameters (default: 1)",
    )
    search.add_argument(
        "--keep-models",
        choices=["front", "all", "none"],
        default="front",
        help="which trials' deployable models to keep when the search stops: the Pareto front's, "
        "all, or none (default: front); greenml model exports one",
    )
    parallel.add_argument(
        "--artifacts",
        default=None,
        metavar="DIR|URL",
        help="where the study's files (models, the distillation teacher) are kept: a folder, "
        "s3://BUCKET[/PREFIX] (greenml[s3]) or gs://BUCKET[/PREFIX] (greenml[gcs]); workers on several "
        "machines need one they share (default: beside a SQLite file, else ./greenml-artifacts)",
    )
    _add_stopping_options(search)
    report_group = search.add_mutually_exclusive_group()
    report_group.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="FILE",
        help="HTML report written when the search stops (default: reports/STUDY.html)",
    )
    report_group.add_argument("--no-report", action="store_true", help="write no HTML report")
    return search


def _add_stopping_options(search: argparse.ArgumentParser) -> None:
    stopping = search.add_argument_group(
        "early stopping",
        "stop hopeless trials: the deployment cost is measured before training, then trials are "
        "ranked at rungs on (validation error, cost) and the best 1/reduction-factor go on "
        "(multi-objective asynchronous successive halving)",
    )
    stopping.add_argument(
        "--early-stopping",
        choices=["auto", "none", "mo-asha"],
        default="auto",
        help="the stopping rule (default: auto = mo-asha when accuracy is an objective, else none)",
    )
    stopping.add_argument(
        "--reduction-factor",
        type=float,
        default=3.0,
        metavar="ETA",
        help="the best 1/ETA of the trials at a rung go on; rungs at MIN·ETA^k epochs (default: 3)",
    )
    stopping.add_argument(
        "--min-epochs", type=int, default=1, metavar="N", help="the first rung's epoch (default: 1)"
    )
    stopping.add_argument(
        "--rungs",
        type=_rungs,
        default=None,
        metavar="E1,E2,...",
        help="the rungs' epochs, instead of the geometric ladder (e.g. 1,3,9,27)",
    )
    stopping.add_argument(
        "--cost-window",
        type=float,
        default=0.25,
        metavar="S",
        help="seconds of each latency and energy window of the cost phase, which only ranks trials "
        "(default: 0.25; never longer than --min-latency-window and --min-energy-window)",
    )
    stopping.add_argument(
        "--no-keep-front",
        dest="keep_front",
        action="store_false",
        help="also stop trials that no other trial at their rung dominates, when they fall outside "
        "the best 1/ETA (MO-ASHA as published; default: such trials go on)",
    )
    stopping.add_argument(
        "--stop-before-training",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="stop a trial before it trains when its measured deployment cost would be dominated "
        "even at the best accuracy seen so far (default: off; every trial trains to the first rung)",
    )


def add_spaces(commands: Any) -> None:
    commands.add_parser("spaces", help="list the available search spaces").set_defaults(handler=cmd_spaces)


def add_datasets(commands: Any) -> None:
    datasets = commands.add_parser(
        "datasets", help="list the available datasets and the data files --dataset takes"
    )
    datasets.set_defaults(handler=cmd_datasets)


def cmd_spaces(args: argparse.Namespace) -> int:
    from greenml.spaces import available_spaces

    _print_catalog(available_spaces())
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from greenml.data import available_datasets

    _print_catalog(available_datasets())
    print(
        "\nor a file: --dataset data.npz (arrays x, y and optionally x_test, y_test), "
        "data.csv or data.parquet with --target LABEL_COLUMN, or data.py defining DATA"
    )
    return 0


def _print_catalog(entries: dict[str, str]) -> None:
    width = max(map(len, entries))
    for name, description in entries.items():
        print(f"{name.ljust(width)}  {description}")


def cmd_search(args: argparse.Namespace) -> int:
    from greenml.metrics import parse_condition, parse_objectives
    from greenml.search import SearchConfig

    budget_given = args.trials is not None or args.timeout is not None or args.energy_budget is not None
    config = SearchConfig(
        space=args.space,
        dataset=args.dataset,
        target=args.target,
        trials=args.trials if budget_given else 12,
        timeout_s=args.timeout,
        energy_budget_j=args.energy_budget,
        objectives=parse_objectives(args.objectives),
        constraints=tuple(parse_condition(text) for text in args.constraint),
        sampler=args.sampler,
        seed=args.seed,
        storage=args.storage,
        study=args.study,
        device=args.device,
        deploy_device=args.deploy_device,
        measure=measure_config(args),
        max_consecutive_failures=args.max_failures,
        distillation=not args.no_distillation,
        epochs=_epochs(args.epochs),
        energy_window_s=args.min_energy_window,
        latency_s=args.min_latency_window,
        workers=args.workers,
        heartbeat=Heartbeat(args.heartbeat_interval, args.grace_period, args.stale_retries),
        artifacts=args.artifacts,
        keep_models=args.keep_models,
        early_stopping=args.early_stopping,
        reduction_factor=args.reduction_factor,
        min_epochs=args.min_epochs,
        rungs=args.rungs,
        keep_front=args.keep_front,
        stop_before_training=args.stop_before_training,
        cost_window_s=args.cost_window,
    )
    from greenml.search import Progress, interrupted_message, pareto_rows, prepare, run, run_workers

    command = ["greenml", "search", *sys.argv[2:]] if sys.argv[1:2] == ["search"] else ["greenml", "search"]
    search = prepare(config, command, register=config.workers == 1)
    workers = f"; {config.workers} worker processes" if config.workers > 1 else ""
    print(
        f"greenml: study {search.study.study_name!r} in {config.storage_url} "
        f"({len(search.study.trials)} trials so far); meter {search.meter.name}; "
        f"training on {config.device}, deployed on {config.deploy_device}{workers}",
        file=sys.stderr,
    )
    for line in search.notes:
        print(f"greenml: {line}", file=sys.stderr)

    sigterm = signal.getsignal(signal.SIGTERM)
    if config.workers == 1:
        # A scheduler's SIGTERM (preemption, a time limit) stops the search as Ctrl-C does: the
        # running trial is marked failed and the study stays resumable. (The parent of
        # --workers N passes SIGTERM on to its workers itself.)
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with Progress(sys.stderr) as progress:  # a live line on a terminal, a line per phase in logs
            outcome = run_workers(search, progress) if config.workers > 1 else run(search, progress)
    except KeyboardInterrupt:
        print(
            f"greenml: {interrupted_message(search.study.study_name, config.storage_url, search.command)}",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, sigterm)  # main() may run inside a longer-lived process
        search.close()
    print(
        f"greenml: stopped after {outcome.stop_reason}: {outcome.completed} complete, {outcome.failed} failed; "
        f"search energy {human('energy', outcome.energy_j)}",
        file=sys.stderr,
    )
    _print_front(pareto_rows(search.study), config.objectives)
    print(f"study: {search.study.study_name!r} in {config.storage_url}")
    if config.keep_models != "none" and search.study.best_trials:
        import shlex

        storage = "" if args.storage is None else f" --storage {shlex.quote(args.storage)}"
        if args.artifacts is not None:
            storage += f" --artifacts {shlex.quote(args.artifacts)}"
        print(
            f"models: {search.artifacts_at} (kept: {config.keep_models}); take the front's knee with: "
            f"greenml model --study {shlex.quote(search.study.study_name)}{storage} --pick knee -o model"
        )
    _search_report(args, search)
    return 0


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _search_report(args: argparse.Namespace, search: Any) -> None:
    """The report at the end of a search; a failure here loses no result, so it only warns."""
    if args.no_report:
        return
    from greenml.report import write_report

    try:
        path = write_report(search.study.study_name, search.config.storage_url, args.report)
    except (GreenMLError, OSError) as error:  # the study is stored: say how to retry, keep the exit code
        print(f"greenml: warning: report not written ({error}); retry with greenml report", file=sys.stderr)
        return
    except Exception:
        # greenml's own bug: it keeps its traceback and exit status, and the user learns that
        # the search's results are safe.
        print(
            "greenml: the study is stored, but writing its report failed (a bug in greenml; the "
            "traceback follows)",
            file=sys.stderr,
        )
        raise
    print(f"report: {path}")


def _rungs(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--rungs must be whole numbers of epochs separated by commas (e.g. 1,3,9), got {text!r}"
        ) from None


def _epochs(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(":")
    try:
        return (int(low), int(high)) if sep else (int(low), int(low))
    except ValueError:
        raise ConfigError(f"--epochs must be LOW:HIGH or N with whole numbers, got {text!r}") from None


def _print_front(rows: list[dict[str, Any]], objectives: Sequence[str]) -> None:
    if not rows:
        print("no feasible complete trial yet: the Pareto front is empty")
        return
    columns = list(dict.fromkeys(["number", *objectives, "test_accuracy", "model_bytes"]))
    header, cells = [], []
    for column in columns:
        quantity = quantity_of(column)
        values = [row.get(column) for row in rows]
        if quantity is None or quantity == "fraction":
            header.append(column)
            cells.append([_cell(v) for v in values])
        else:  # one unit per column, in its header
            scale = scale_for(quantity, values)
            header.append(f"{_shown_name(column)} ({scale.unit})")
            cells.append([scale.format(v) for v in values])
    table = [header] + [list(line) for line in zip(*cells, strict=True)]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    print(f"Pareto front ({len(rows)} trial{'s' if len(rows) != 1 else ''}):")
    for line in table:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))


def _shown_name(column: str) -> str:
    """A metric's name without the base unit it is stored in (the header gives the shown unit)."""
    if column == "model_bytes":
        return "model_size"
    for suffix in ("_j", "_ms", "_seconds"):
        if column.endswith(suffix):
            return column.removesuffix(suffix)
    return column


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return number(value, 4)
    return "—" if value is None else str(value)
