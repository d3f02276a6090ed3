"""The ``greenml`` command line: ``main(argv) -> int`` with one error handler.

Errors the user can fix (:class:`~greenml.errors.GreenMLError`) print one line and exit 2.

Each command family is a thin adapter in its own module, which declares the command's options,
calls the library and prints what it returns: :mod:`greenml.cli.measure` (``meters``,
``measure``), :mod:`greenml.cli.search` (``search``, ``spaces``, ``datasets``),
:mod:`greenml.cli.studies` (``report``, ``compare``, ``export``, ``model``, ``storage-proxy``)
and :mod:`greenml.cli.bench` (``bench build``, ``bench run``). Options several commands take
(``--storage``, ``--study``, the measurement options) are declared once, as parent parsers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from greenml import __version__
from greenml.cli import bench, measure, search, studies
from greenml.cli._parents import Parser
from greenml.errors import GreenMLError

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The ``greenml`` parser; each command's parser sets ``handler``, the function that runs it."""
    parser = Parser(
        prog="greenml",
        description="Energy-aware AutoML benchmarking: measure what models and searches cost.",
    )
    parser.add_argument("--version", action="version", version=f"greenml {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    # In the order `greenml --help` lists them.
    measure.add_meters(commands)
    measure.add_measure(commands)
    search.add_search(commands)
    studies.add_report(commands)
    studies.add_compare(commands)
    studies.add_export(commands)
    studies.add_model(commands)
    search.add_spaces(commands)
    search.add_datasets(commands)
    bench.add_bench(commands)
    studies.add_storage_proxy(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``greenml ARGV`` (default: ``sys.argv[1:]``) and return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        code: int = args.handler(args)
        return code
    except GreenMLError as error:
        print(f"greenml: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("greenml: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
