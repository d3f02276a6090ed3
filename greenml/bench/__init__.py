"""Tabular benchmarks from greenml's own measurements: build a table once, replay searches against it.

The data path: a grid file (:mod:`greenml.bench.grid`) -> a build study whose trials are the
grid's points (:mod:`greenml.bench.build`) -> a Parquet table (:mod:`greenml.bench.table`) -> the
table as an optimisation problem (:mod:`greenml.bench.problem`) -> replays of search strategies
(:mod:`greenml.bench.replay`, :mod:`greenml.bench.run`) -> medians, ranks and a test
(:mod:`greenml.bench.summary`) -> an HTML report (:mod:`greenml.report.bench`).
"""

from greenml.bench.problem import TableProblem
from greenml.bench.table import Table, load_table

__all__ = ["Table", "TableProblem", "load_table"]
