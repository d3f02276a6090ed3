"""``greenml meters`` and ``greenml measure``: the meters here, and any command's energy."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenml.cli._parents import measure_config, meter_options
from greenml.config import METER_CHOICES, MeasureConfig
from greenml.errors import ConfigError

if TYPE_CHECKING:
    from greenml.measure import WindowResult

__all__ = ["add_measure", "add_meters", "cmd_measure", "cmd_meters"]


def add_meters(commands: Any) -> None:
    meters = commands.add_parser("meters", help="list the energy meters, whether each works here and why not")
    meters.add_argument("--json", action="store_true", help="print one JSON object")
    meters.add_argument(
        "--meter", choices=METER_CHOICES, default="auto", help="show which meters this choice takes"
    )
    meters.set_defaults(handler=cmd_meters)


def add_measure(commands: Any) -> None:
    measure = commands.add_parser(
        "measure",
        parents=[meter_options(idle_default=2.0)],
        help="run a command under the energy meters and print its energy",
        usage="greenml measure [options] -- COMMAND [ARGS ...]",
    )
    measure.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    measure.add_argument(
        "-o", "--output", type=Path, default=None, help="also write the JSON result to this file"
    )
    measure.add_argument(
        "cmd", nargs=argparse.REMAINDER, metavar="COMMAND", help="the command to run, after --"
    )
    measure.set_defaults(handler=cmd_measure)


def cmd_meters(args: argparse.Namespace) -> int:
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


def cmd_measure(args: argparse.Namespace) -> int:
    from greenml.measure.command import check_command, measure_command

    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    config = measure_config(args)
    if not command:
        raise ConfigError("no command given; usage: greenml measure [options] -- COMMAND [ARGS ...]")
    check_command(command)  # before --output's check, as the command line always did
    if args.output is not None and not args.output.parent.is_dir():
        raise ConfigError(f"--output: directory {str(args.output.parent)!r} does not exist")

    def announce_idle(seconds: float) -> None:
        print(f"greenml: measuring idle power for {seconds:g} s", file=sys.stderr)

    measured = measure_command(command, config, on_idle=announce_idle)
    text = json.dumps(measured.to_dict(), indent=2)
    if args.output is not None:
        from greenml.results import write_atomic

        write_atomic(args.output, text + "\n")
    if args.json:
        print(text)
    else:
        _print_summary(measured.window, measured.exit_code)
    return measured.exit_code


def _print_summary(result: WindowResult, returncode: int) -> None:
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
