"""The package's layout: layers that only import downward, no circles, no private reaches, small files.

The layers follow the data path (command line -> configuration -> search -> trial -> measurement
-> records -> report), read as "who may import whom": a module imports only modules of its own
layer's package or of a lower layer. The README's Development section shows the same table.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "greenml"

# Lower numbers are lower layers. A module may import from its own layer's unit (the same
# top-level module or subpackage) or from any lower layer; never from a higher one.
LAYERS: dict[str, int] = {
    "greenml.errors": 0,
    "greenml.metrics": 0,
    "greenml.units": 1,
    "greenml.devices": 1,
    "greenml.workload": 1,
    "greenml.optuna_compat": 1,
    "greenml.config": 2,
    "greenml.storage": 2,
    "greenml.data": 2,
    # The schema every layer above reads or writes; it imports nothing of greenml's.
    "greenml.records": 2,
    "greenml.spaces": 3,
    "greenml.measure": 3,
    "greenml.compress": 3,
    "greenml.results": 5,
    "greenml.ledger": 5,
    "greenml.models": 5,
    "greenml.training": 5,
    "greenml.trial": 6,
    "greenml.search": 7,
    "greenml.report": 7,
    "greenml.bench": 8,
    "greenml.cli": 9,
    "greenml.__main__": 9,
    "greenml.testing": 10,
    "greenml": 0,  # the package's own __init__: its version, nothing else
}
MAX_LINES = 700
# Source checked for private reaches: the package, the built-in spaces and the benchmarks.
SOURCE_DIRS = ("greenml", "search_spaces", "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _files(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if ".venv" not in p.parts)


def _imports(path: Path, module: str | None = None) -> Iterator[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every greenml import in ``path``, lazy ones too."""
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "greenml":
                    yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] == "greenml":
                yield target, [a.name for a in node.names]


def _unit(module: str) -> str:
    """The layered unit a module belongs to: the longest LAYERS key that is a prefix of it."""
    parts = module.split(".")
    for end in range(len(parts), 1 if len(parts) > 1 else 0, -1):
        name = ".".join(parts[:end])
        if name in LAYERS:
            return name
    raise AssertionError(f"{module} has no layer in tests/test_layout.py's LAYERS")


def _resolve(target: str, names: list[str]) -> list[str]:
    """The modules an import really loads: ``from greenml.x import y`` loads greenml.x.y if it is one."""
    loaded = [target]
    for name in names:
        candidate = f"{target}.{name}"
        path = ROOT.joinpath(*candidate.split("."))
        if path.with_suffix(".py").exists() or (path / "__init__.py").exists():
            loaded.append(candidate)
    return loaded


def test_every_module_has_a_layer_and_imports_only_downward() -> None:
    upward = []
    for path in _files("greenml"):
        module = _module_name(path)
        unit = _unit(module)
        for target, names in _imports(path):
            for loaded in _resolve(target, names):
                other = _unit(loaded)
                if other != unit and LAYERS[other] > LAYERS[unit]:
                    upward.append(f"{module} (layer {LAYERS[unit]}) imports {loaded} (layer {LAYERS[other]})")
    assert not upward, "imports that run up the layers:\n" + "\n".join(sorted(set(upward)))


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for path in _files("greenml"):
        module = _module_name(path)
        edges = graph.setdefault(module, set())
        for target, names in _imports(path):
            edges.update(m for m in _resolve(target, names) if m != module)
    # A package's __init__ re-exporting its own modules is not a cycle of concepts.
    for module, edges in graph.items():
        graph[module] = {e for e in edges if not module.startswith(e + ".") and e in graph}

    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _private_reaches(path: Path, module: str | None = None) -> Iterator[str]:
    module = module or _module_name(path)
    own_package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for target, names in _imports(path, module):
        parts = target.split(".")
        for i, part in enumerate(parts):
            if part.startswith("_") and not part.startswith("__"):
                owner = ".".join(parts[:i])
                if owner != own_package:
                    yield f"{module} imports the private module {target}"
                break
        for name in names:
            if name.startswith("_") and not name.startswith("__"):
                candidate = f"{target}.{name}"
                is_module = ROOT.joinpath(*candidate.split(".")).with_suffix(".py").exists()
                if not is_module:
                    yield f"{module} imports the private name {name} from {target}"
                elif target != own_package:
                    yield f"{module} imports the private module {candidate}"


def test_no_private_reaches() -> None:
    found = [reach for path in _files(*SOURCE_DIRS) for reach in _private_reaches(path)]
    assert not found, "private reaches:\n" + "\n".join(sorted(set(found)))


@pytest.mark.parametrize("directory", SOURCE_DIRS)
def test_no_source_file_over_the_limit(directory: str) -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _files(directory)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_the_checks_catch_what_they_look_for(tmp_path: Path) -> None:
    """The checks above see an upward import, a private name and a private module from elsewhere."""
    source = (
        "from greenml.search import run\n"
        "from greenml.report._data import x\n"
        "from greenml.trial import _train\n"
        "def f():\n    from greenml.cli import main\n"
    )
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    reaches = list(_private_reaches(probe, "greenml.measure.probe"))
    imports = [t for t, _ in _imports(probe, "greenml.measure.probe")]
    assert any("private module greenml.report._data" in r for r in reaches), reaches
    assert any("private name _train" in r for r in reaches), reaches
    assert "greenml.cli" in imports  # a lazy import inside a function counts
    assert LAYERS[_unit("greenml.search")] > LAYERS[_unit("greenml.measure.inference")]
