"""The parser class every command uses and the options commands share, each declared once.

A shared option is a parent parser (argparse's ``parents=``). argparse puts a parent's options
where the parent is listed, so a command whose own options come before and after shared ones
lists those own options as parents too (see :mod:`greenml.cli.search`): the order users see in
``--help`` stays the order the options were always shown in.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from greenml.config import METER_CHOICES, MeasureConfig
from greenml.errors import ConfigError

__all__ = [
    "STORAGE_HELP",
    "Parser",
    "measure_config",
    "meter_options",
    "options",
    "storage_option",
    "stored_study_options",
    "study_option",
]

STORAGE_HELP = "Optuna storage URL (default: sqlite:///greenml.db)"


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage, so every error is one line."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message}")


def options() -> argparse.ArgumentParser:
    """An empty parent parser, for a group of options that several parsers (or places) take."""
    return argparse.ArgumentParser(add_help=False)


def storage_option(
    help: str = STORAGE_HELP, *, required: bool = False, append: bool = False
) -> argparse.ArgumentParser:
    """``--storage URL``: the Optuna storage; ``append`` takes it once per study."""
    parent = options()
    if append:
        parent.add_argument("--storage", action="append", default=None, metavar="URL", help=help)
    else:
        parent.add_argument("--storage", required=required, default=None, metavar="URL", help=help)
    return parent


def study_option(help: str) -> argparse.ArgumentParser:
    """``--study NAME``: the study a command reads or writes."""
    parent = options()
    parent.add_argument("--study", default=None, metavar="NAME", help=help)
    return parent


def stored_study_options() -> list[argparse.ArgumentParser]:
    """``--study`` and ``--storage`` of a command that reads a stored study (omit --study to list them)."""
    return [study_option("the study (omit to list them)"), storage_option()]


def meter_options(idle_default: float = 2.0) -> argparse.ArgumentParser:
    """The measurement options, as a "measurement" group: read them with :func:`measure_config`."""
    parent = options()
    group = parent.add_argument_group("measurement")
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
    return parent


def measure_config(args: argparse.Namespace) -> MeasureConfig:
    """The :class:`~greenml.config.MeasureConfig` of the options :func:`meter_options` declares."""
    return MeasureConfig(
        meter=args.meter,
        country=args.country,
        pue=args.pue,
        idle_seconds=args.idle_seconds,
        watts_per_core=args.cpu_watts_per_core,
        sample_hz=args.sample_hz,
    )
