"""The ``greenml`` command line: ``main(argv) -> int`` with one error handler.

Errors the user can fix (:class:`~greenml.errors.GreenMLError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from greenml import __version__
from greenml.bench._cli import add_bench_parser, cmd_bench
from greenml.config import METER_CHOICES, MeasureConfig
from greenml.errors import ConfigError, GreenMLError
from greenml.storage import Heartbeat
from greenml.units import human, number, quantity_of, scale_for

__all__ = ["main"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage, so every error is one line."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message}")


def _add_meter_options(parser: argparse.ArgumentParser, idle_default: float = 2.0) -> None:
    group = parser.add_argument_group("measurement")
    group.add_argument(
        "--meter",
        choices=METER_CHOICES,
        default="auto",
        help="energy meter (default: auto = NVML for GPUs, RAPL for CPU/DRAM, else the CPU-time estimate)",
    )
    group.add_argument(
        "--country",
        default=None,
        metavar="ISO3",
        help="grid carbon intensity of this country, ISO 3166-1 alpha-3 such as FRA "
        "(default: codecarbon's world average)",
    )
    group.add_argument(
        "--pue", type=float, default=1.0, help="data-centre power usage effectiveness (default: 1.0)"
    )
    group.add_argument(
        "--idle-seconds",
        type=float,
        default=idle_default,
        metavar="S",
        help=f"seconds of idle power measured first, for dynamic energy; 0 skips (default: {idle_default:g})",
    )
    group.add_argument(
        "--cpu-watts-per-core",
        type=float,
        default=None,
        metavar="W",
        help="watts per busy core for the CPU estimate (default: from codecarbon's TDP table)",
    )
    group.add_argument(
        "--sample-hz",
        type=float,
        default=20.0,
        metavar="HZ",
        help="power-sampling rate for GPUs without an energy counter, >= 10 (default: 20)",
    )


IMPORTANCE_CHOICES = ("mdi", "fanova", "ped-anova")


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reference",
        default=None,
        metavar="M=V,...",
        help="hypervolume reference point in the metrics' units, e.g. accuracy=0.5,latency_ms=2; "
        "the same point makes reports compare (default: 1.1 x the worst feasible value)",
    )


def _measure_config(args: argparse.Namespace) -> MeasureConfig:
    return MeasureConfig(
        meter=args.meter,
        country=args.country,
        pue=args.pue,
        idle_seconds=args.idle_seconds,
        watts_per_core=args.cpu_watts_per_core,
        sample_hz=args.sample_hz,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="greenml",
        description="Energy-aware AutoML benchmarking: measure what models and searches cost.",
    )
    parser.add_argument("--version", action="version", version=f"greenml {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    meters = commands.add_parser("meters", help="list the energy meters, whether each works here and why not")
    meters.add_argument("--json", action="store_true", help="print one JSON object")
    meters.add_argument(
        "--meter", choices=METER_CHOICES, default="auto", help="show which meters this choice takes"
    )

    measure = commands.add_parser(
        "measure",
        help="run a command under the energy meters and print its energy",
        usage="greenml measure [options] -- COMMAND [ARGS ...]",
    )
    _add_meter_options(measure)
    measure.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    measure.add_argument(
        "-o", "--output", type=Path, default=None, help="also write the JSON result to this file"
    )
    measure.add_argument(
        "cmd", nargs=argparse.REMAINDER, metavar="COMMAND", help="the command to run, after --"
    )
    from greenml.metrics import OBJECTIVE_METRICS, describe

    search = commands.add_parser(
        "search",
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
    search.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="Optuna storage URL, e.g. postgresql://user@host/db (default: sqlite:///greenml.db in the current directory)",
    )
    search.add_argument(
        "--study",
        default=None,
        metavar="NAME",
        help="study name (default: SPACE-DATASET-SAMPLER-seedSEED, so the same command resumes)",
    )
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
    report_group = search.add_mutually_exclusive_group()
    report_group.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="FILE",
        help="HTML report written when the search stops (default: reports/STUDY.html)",
    )
    report_group.add_argument("--no-report", action="store_true", help="write no HTML report")
    _add_meter_options(search, idle_default=1.0)

    report = commands.add_parser(
        "report",
        help="write a study's self-contained HTML report",
        description="Write one HTML file (plotly.js inlined, renders offline) with the study's Pareto "
        "front, hypervolume history, search footprint, parameter importances and every trial.",
    )
    report.add_argument("--study", default=None, metavar="NAME", help="the study (omit to list them)")
    report.add_argument(
        "--storage", default=None, metavar="URL", help="Optuna storage URL (default: sqlite:///greenml.db)"
    )
    report.add_argument(
        "-o", "--output", type=Path, default=None, help="file to write (default: reports/STUDY.html)"
    )
    _add_report_options(report)
    report.add_argument(
        "--importance",
        choices=IMPORTANCE_CHOICES,
        default="mdi",
        help="Optuna importance evaluator: mdi (random forest, fast), fanova (slower: ~15 s per "
        "objective at 1,000 trials on 2 cores) or ped-anova (default: mdi)",
    )

    compare = commands.add_parser(
        "compare",
        help="compare studies' fronts and hypervolumes in one HTML file",
        description="Draw several studies' fronts on the same axes and their hypervolumes on one shared "
        "reference point: other hardware, other spaces, other samplers.",
    )
    compare.add_argument("studies", nargs="+", metavar="STUDY", help="two or more study names")
    compare.add_argument(
        "--storage",
        action="append",
        default=None,
        metavar="URL",
        help="Optuna storage URL: once for every study, or once per study in order "
        "(default: sqlite:///greenml.db)",
    )
    compare.add_argument(
        "-o", "--output", type=Path, default=None, help="file to write (default: reports/compare-....html)"
    )
    compare.add_argument(
        "--objectives",
        default=None,
        metavar="M1,M2,...",
        help="axes to compare on (default: the studies' objectives, which must then agree)",
    )
    _add_report_options(compare)

    export = commands.add_parser("export", help="export a study's trials as CSV, JSON or Parquet")
    export.add_argument("--study", default=None, metavar="NAME", help="the study (omit to list them)")
    export.add_argument(
        "--storage", default=None, metavar="URL", help="Optuna storage URL (default: sqlite:///greenml.db)"
    )
    export.add_argument("--format", required=True, choices=["csv", "json", "parquet"])
    export.add_argument(
        "-o", "--output", type=Path, default=None, help="file to write (default: stdout for csv and json)"
    )

    model = commands.add_parser(
        "model",
        help="write a trial's deployable model and its model card",
        description="Write the model of one trial (ONNX for ONNX Runtime trials, a torch.export .pt2 "
        "program for torch ones) and a model card (JSON) beside it: parameters, metrics, provenance, the "
        "data's shape, classes and preprocessing, and how to run it.",
    )
    model.add_argument("--study", default=None, metavar="NAME", help="the study (omit to list them)")
    model.add_argument(
        "--storage", default=None, metavar="URL", help="Optuna storage URL (default: sqlite:///greenml.db)"
    )
    which = model.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, default=None, metavar="N", help="the trial's number")
    which.add_argument(
        "--pick",
        default=None,
        metavar="RULE",
        help="'knee' (nearest the ideal point, objectives scaled over the front) or "
        "'max|min METRIC [where METRIC OP NUMBER [and ...]]', e.g. 'max accuracy where latency_ms<1'",
    )
    model.add_argument("-o", "--output", type=Path, required=True, help="model file to write (suffix added)")
    model.add_argument(
        "--artifacts",
        default=None,
        metavar="DIR|URL",
        help="the study's artifact folder or s3:// / gs:// URL (default: the --artifacts its search was "
        "given, else beside a SQLite file, else ./greenml-artifacts)",
    )
    commands.add_parser("spaces", help="list the available search spaces")
    commands.add_parser("datasets", help="list the available datasets and the data files --dataset takes")

    add_bench_parser(commands, _add_meter_options, _Parser)

    proxy = commands.add_parser(
        "storage-proxy",
        help="serve a database storage to many workers over gRPC (Optuna's gRPC storage proxy)",
        description="Run Optuna's run_grpc_proxy_server in front of a database, so hundreds of workers "
        "share one study without a database connection each; workers use --storage grpc://HOST:PORT.",
    )
    proxy.add_argument(
        "--storage", required=True, metavar="URL", help="the database, e.g. postgresql://user@host/db"
    )
    proxy.add_argument(
        "--host",
        default="localhost",
        help="address to listen on; 0.0.0.0 for every interface (default: localhost)",
    )
    proxy.add_argument("--port", type=int, default=13000, help="port to listen on (default: 13000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        handler = {
            "meters": _cmd_meters,
            "measure": _cmd_measure,
            "search": _cmd_search,
            "export": _cmd_export,
            "report": _cmd_report,
            "compare": _cmd_compare,
            "spaces": _cmd_spaces,
            "datasets": _cmd_datasets,
            "storage-proxy": _cmd_storage_proxy,
            "model": _cmd_model,
            "bench": lambda args: cmd_bench(args, _measure_config),
        }[args.command]
        return handler(args)
    except GreenMLError as error:
        print(f"greenml: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("greenml: interrupted", file=sys.stderr)
        return 130


def _cmd_meters(args: argparse.Namespace) -> int:
    from greenml.measure import probe_meters

    statuses = probe_meters(MeasureConfig(meter=args.meter))
    if args.json:
        print(json.dumps({"meter": args.meter, "meters": [s.to_dict() for s in statuses]}, indent=2))
        return 0
    rows = [("meter", "available", "chosen", "measures", "detail")]
    for s in statuses:
        measures = ", ".join(f"{c} ({s.kind})" for c in s.components) or "-"
        rows.append((s.name, "yes" if s.available else "no", "*" if s.chosen else "", measures, s.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[4])
    if not any(s.chosen for s in statuses):
        print(f"\nno meter available for --meter {args.meter}")
    return 0


def _cmd_measure(args: argparse.Namespace) -> int:
    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    config = _measure_config(args)
    if not command:
        raise ConfigError("no command given; usage: greenml measure [options] -- COMMAND [ARGS ...]")
    if shutil.which(command[0]) is None:
        raise ConfigError(f"command not found: {command[0]!r} (not an executable file or on PATH)")
    if args.output is not None and not args.output.parent.is_dir():
        raise ConfigError(f"--output: directory {str(args.output.parent)!r} does not exist")

    from greenml.measure import build_meter

    with build_meter(config) as meter:
        if config.idle_seconds > 0:
            print(f"greenml: measuring idle power for {config.idle_seconds:g} s", file=sys.stderr)
            meter.measure_idle(config.idle_seconds)
        window = meter.begin("command")
        returncode = _run_forwarding_signals(command)
        result = window.end()

    document: dict[str, Any] = {"command": command, "exit_code": returncode, **result.to_dict()}
    text = json.dumps(document, indent=2)
    if args.output is not None:
        from greenml.results import write_atomic

        write_atomic(args.output, text + "\n")
    if args.json:
        print(text)
    else:
        _print_summary(result, returncode)
    return returncode


def _run_forwarding_signals(command: list[str]) -> int:
    """Run ``command`` and keep measuring until it exits, whatever signals arrive meanwhile.

    Ctrl-C reaches the command from the terminal (it shares our process group), so here it is
    only kept from stopping the measurement; SIGTERM, which a scheduler sends to us alone, is
    passed on.
    """
    process = subprocess.Popen(command)

    def forward(signum: int, _frame: Any) -> None:
        if signum != signal.SIGINT and process.poll() is None:
            process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def _print_summary(result: Any, returncode: int) -> None:
    from greenml.measure import WindowResult

    assert isinstance(result, WindowResult)
    prov = result.provenance
    out = sys.stderr
    print(
        f"greenml: {result.seconds:.2f} s, energy {result.total_energy_j:.4g} J "
        f"({prov.energy_basis}: {' + '.join(prov.total_components)})",
        file=out,
    )
    if result.dynamic_total_energy_j is not None:
        print(f"  dynamic (idle-subtracted): {result.dynamic_total_energy_j:.4g} J", file=out)
    if result.co2_g is not None and prov.carbon is not None:
        where = prov.carbon.country or "world average"
        print(
            f"  {result.co2_g:.4g} gCO2e ({where}, {prov.carbon.intensity_g_per_kwh:g} g/kWh, "
            f"PUE {prov.carbon.pue:g})",
            file=out,
        )
    for component, joules in result.energy_j.items():
        source = next((s for s in prov.sources if s.component == component), None)
        if joules is None or source is None:
            print(f"  {component:<5} not measured", file=out)
        else:
            print(
                f"  {component:<5} {joules:10.4g} J  {source.kind}: {source.backend}, {source.method}",
                file=out,
            )
    for warning in prov.warnings:
        print(f"  warning: {warning}", file=out)
    if returncode != 0:
        print(f"  the command exited with status {returncode}", file=out)


def _cmd_spaces(args: argparse.Namespace) -> int:
    from greenml.spaces import available_spaces

    spaces = available_spaces()
    width = max(map(len, spaces))
    for name, description in spaces.items():
        print(f"{name.ljust(width)}  {description}")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from greenml.data import available_datasets

    datasets = available_datasets()
    width = max(map(len, datasets))
    for name, description in datasets.items():
        print(f"{name.ljust(width)}  {description}")
    print(
        "\nor a file: --dataset data.npz (arrays x, y and optionally x_test, y_test), "
        "data.csv or data.parquet with --target LABEL_COLUMN, or data.py defining DATA"
    )
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from greenml.search import SearchConfig, parse_constraint
    from greenml.search._config import parse_objectives

    budget_given = args.trials is not None or args.timeout is not None or args.energy_budget is not None
    config = SearchConfig(
        space=args.space,
        dataset=args.dataset,
        target=args.target,
        trials=args.trials if budget_given else 12,
        timeout_s=args.timeout,
        energy_budget_j=args.energy_budget,
        objectives=parse_objectives(args.objectives),
        constraints=tuple(parse_constraint(text) for text in args.constraint),
        sampler=args.sampler,
        seed=args.seed,
        storage=args.storage,
        study=args.study,
        device=args.device,
        deploy_device=args.deploy_device,
        measure=_measure_config(args),
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
    from greenml.search import pareto_rows, prepare, run, run_workers
    from greenml.search._study import interrupted_message

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
    from greenml.search._progress import Progress

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
    except Exception as error:  # the study is stored: say how to retry, keep the exit code
        print(f"greenml: warning: report not written ({error}); retry with greenml report", file=sys.stderr)
        return
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


def _require_study(args: argparse.Namespace) -> str:
    """The storage URL; a one-line error listing the studies there when --study is missing."""
    from greenml.storage import default_storage, open_storage, study_names

    storage: str = args.storage or default_storage()
    if args.study is None:
        names = study_names(open_storage(storage))
        raise ConfigError(f"give --study NAME; studies in {storage}: {', '.join(names) or 'none'}")
    return storage


def _cmd_report(args: argparse.Namespace) -> int:
    from greenml.report import write_report
    from greenml.storage import default_storage

    _require_study(args)
    path = write_report(
        args.study, args.storage or default_storage(), args.output, args.reference, args.importance
    )
    print(f"report: {path}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from greenml.report import write_comparison
    from greenml.search._config import parse_objectives
    from greenml.storage import default_storage

    objectives = parse_objectives(args.objectives) if args.objectives else None
    path = write_comparison(
        args.studies, args.storage or [default_storage()], args.output, objectives, args.reference
    )
    print(f"report: {path}")
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    from greenml.models import export_model, pick_trial
    from greenml.storage import (
        artifact_location,
        artifact_store,
        open_study,
        redact_url,
        remembered_artifacts,
    )

    storage = _require_study(args)
    if args.trial is None and args.pick is None:
        raise ConfigError(
            "give --trial N or --pick RULE (e.g. --pick knee, --pick 'max accuracy where latency_ms<1')"
        )
    study = open_study(args.study, storage)
    if args.trial is not None:
        numbers = [t.number for t in study.get_trials(deepcopy=False)]
        if args.trial not in numbers:
            raise ConfigError(
                f"no trial {args.trial} in study {args.study!r}; trials: 0..{max(numbers, default=-1)}"
            )
        trial = study.trials[numbers.index(args.trial)]
    else:
        trial = pick_trial(study, args.pick)
    store = artifact_store(artifact_location(storage, remembered_artifacts(study, args.artifacts)))
    path, card = export_model(study, trial, args.output, store, redact_url(storage))
    metrics = trial.user_attrs.get("metrics", {})
    shown = ", ".join(
        f"{name} {metrics[name]:.4g}" for name in study.user_attrs.get("objectives", []) if name in metrics
    )
    print(f"trial {trial.number}: {shown}")
    print(f"model: {path}")
    print(f"card: {card}")
    return 0


def _cmd_storage_proxy(args: argparse.Namespace) -> int:
    from greenml.storage import run_proxy

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be from 1 to 65535, got {args.port}")
    print(
        f"greenml: storage proxy for {args.storage} on {args.host}:{args.port}; workers use "
        f"--storage grpc://{args.host}:{args.port} (Ctrl-C stops it)",
        file=sys.stderr,
        flush=True,
    )
    try:
        run_proxy(args.storage, args.host, args.port)
    except KeyboardInterrupt:
        print("greenml: storage proxy stopped", file=sys.stderr)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from greenml.results import export_study

    storage = _require_study(args)
    if args.output is None and args.format == "parquet":
        raise ConfigError("--format parquet needs -o FILE (Parquet is binary)")
    if args.output is not None and not args.output.parent.is_dir():
        raise ConfigError(f"--output: directory {str(args.output.parent)!r} does not exist")
    text = export_study(args.study, storage, args.format, args.output)
    if text is not None:
        sys.stdout.write(text)
    return 0
