"""The commands on stored studies: ``report``, ``compare``, ``export``, ``model``, ``storage-proxy``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from greenml import records
from greenml.cli._parents import storage_option, stored_study_options
from greenml.errors import ConfigError

__all__ = [
    "add_compare",
    "add_export",
    "add_model",
    "add_report",
    "add_storage_proxy",
    "cmd_compare",
    "cmd_export",
    "cmd_model",
    "cmd_report",
    "cmd_storage_proxy",
]

IMPORTANCE_CHOICES = ("mdi", "fanova", "ped-anova")


def _add_reference_option(parser: argparse.ArgumentParser) -> None:
    # Not a parent parser: report and compare show it at different places in their --help.
    parser.add_argument(
        "--reference",
        default=None,
        metavar="M=V,...",
        help="hypervolume reference point in the metrics' units, e.g. accuracy=0.5,latency_ms=2; "
        "the same point makes reports compare (default: 1.1 x the worst feasible value)",
    )


def add_report(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        parents=stored_study_options(),
        help="write a study's self-contained HTML report",
        description="Write one HTML file (plotly.js inlined, renders offline) with the study's Pareto "
        "front, hypervolume history, search footprint, parameter importances and every trial.",
    )
    report.add_argument(
        "-o", "--output", type=Path, default=None, help="file to write (default: reports/STUDY.html)"
    )
    _add_reference_option(report)
    report.add_argument(
        "--importance",
        choices=IMPORTANCE_CHOICES,
        default="mdi",
        help="Optuna importance evaluator: mdi (random forest, fast), fanova (slower: ~15 s per "
        "objective at 1,000 trials on 2 cores) or ped-anova (default: mdi)",
    )
    report.set_defaults(handler=cmd_report)


def add_compare(commands: Any) -> None:
    compare = commands.add_parser(
        "compare",
        parents=[
            storage_option(
                "Optuna storage URL: once for every study, or once per study in order "
                "(default: sqlite:///greenml.db)",
                append=True,
            )
        ],
        help="compare studies' fronts and hypervolumes in one HTML file",
        description="Draw several studies' fronts on the same axes and their hypervolumes on one shared "
        "reference point: other hardware, other spaces, other samplers.",
    )
    compare.add_argument("studies", nargs="+", metavar="STUDY", help="two or more study names")
    compare.add_argument(
        "-o", "--output", type=Path, default=None, help="file to write (default: reports/compare-....html)"
    )
    compare.add_argument(
        "--objectives",
        default=None,
        metavar="M1,M2,...",
        help="axes to compare on (default: the studies' objectives, which must then agree)",
    )
    _add_reference_option(compare)
    compare.set_defaults(handler=cmd_compare)


def add_export(commands: Any) -> None:
    export = commands.add_parser(
        "export", parents=stored_study_options(), help="export a study's trials as CSV, JSON or Parquet"
    )
    export.add_argument("--format", required=True, choices=["csv", "json", "parquet"])
    export.add_argument(
        "-o", "--output", type=Path, default=None, help="file to write (default: stdout for csv and json)"
    )
    export.set_defaults(handler=cmd_export)


def add_model(commands: Any) -> None:
    model = commands.add_parser(
        "model",
        parents=stored_study_options(),
        help="write a trial's deployable model and its model card",
        description="Write the model of one trial (ONNX for ONNX Runtime trials, a torch.export .pt2 "
        "program for torch ones) and a model card (JSON) beside it: parameters, metrics, provenance, the "
        "data's shape, classes and preprocessing, and how to run it.",
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
    model.set_defaults(handler=cmd_model)


def add_storage_proxy(commands: Any) -> None:
    proxy = commands.add_parser(
        "storage-proxy",
        parents=[storage_option("the database, e.g. postgresql://user@host/db", required=True)],
        help="serve a database storage to many workers over gRPC (Optuna's gRPC storage proxy)",
        description="Run Optuna's run_grpc_proxy_server in front of a database, so hundreds of workers "
        "share one study without a database connection each; workers use --storage grpc://HOST:PORT.",
    )
    proxy.add_argument(
        "--host",
        default="localhost",
        help="address to listen on; 0.0.0.0 for every interface (default: localhost)",
    )
    proxy.add_argument("--port", type=int, default=13000, help="port to listen on (default: 13000)")
    proxy.set_defaults(handler=cmd_storage_proxy)


def _require_study(args: argparse.Namespace) -> str:
    """The storage URL; a one-line error listing the studies there when --study is missing.

    Reading never writes: a SQLite file that is not there is an error, never created.
    """
    from greenml.storage import default_storage, open_storage, study_names

    storage: str = args.storage or default_storage()
    if args.study is None:
        names = study_names(open_storage(storage, create=False))
        raise ConfigError(f"give --study NAME; studies in {storage}: {', '.join(names) or 'none'}")
    return storage


def cmd_report(args: argparse.Namespace) -> int:
    from greenml.report import write_report

    storage = _require_study(args)
    path = write_report(args.study, storage, args.output, args.reference, args.importance)
    print(f"report: {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from greenml.metrics import parse_objectives
    from greenml.report import write_comparison
    from greenml.storage import default_storage

    objectives = parse_objectives(args.objectives) if args.objectives else None
    path = write_comparison(
        args.studies, args.storage or [default_storage()], args.output, objectives, args.reference
    )
    print(f"report: {path}")
    return 0


def cmd_model(args: argparse.Namespace) -> int:
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
    store = artifact_store(
        artifact_location(storage, remembered_artifacts(study, args.artifacts)), create=False
    )
    path, card = export_model(study, trial, args.output, store, redact_url(storage))
    metrics = records.trial_metrics(trial)
    shown = ", ".join(
        f"{name} {metrics[name]:.4g}"
        for name in study.user_attrs.get(records.OBJECTIVES, [])
        if name in metrics
    )
    print(f"trial {trial.number}: {shown}")
    print(f"model: {path}")
    print(f"card: {card}")
    return 0


def cmd_storage_proxy(args: argparse.Namespace) -> int:
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


def cmd_export(args: argparse.Namespace) -> int:
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
