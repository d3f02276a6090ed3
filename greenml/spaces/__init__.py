"""Search spaces are plug-ins: a small protocol, found by name, by file path or by entry point.

A search space is any object with ``name``, ``description`` and ``build(trial, data)``, and
optionally ``data_kinds`` (the :attr:`DataSpec.kind` values it takes; all if absent), which
samples an architecture with the Optuna ``trial`` and returns a ``torch.nn.Module`` mapping a
batch shaped ``(B, *data.input_shape)`` to ``(B, data.num_classes)`` logits. greenml samples the
training and compression settings itself, for every space alike.

Where spaces come from:

* built-in names (``mlp``, ``cnn``, ``tinybert``): modules of the ``search_spaces`` package;
* a Python file (``--space path/to/space.py``) that defines a module-level ``SPACE``;
* installed packages, through the entry-point group ``greenml.search_spaces``, each entry point
  naming a space object (or a class that takes no arguments).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from greenml.errors import ConfigError

if TYPE_CHECKING:
    import optuna
    import torch

    from greenml.data import DataSpec

__all__ = [
    "BUILTIN_SPACES",
    "ENTRY_POINT_GROUP",
    "SearchSpace",
    "available_spaces",
    "check_data_kind",
    "load_space",
]

ENTRY_POINT_GROUP = "greenml.search_spaces"
BUILTIN_SPACES: dict[str, str] = {
    "mlp": "search_spaces.mlp",
    "cnn": "search_spaces.cnn",
    "tinybert": "search_spaces.tinybert",
}


@runtime_checkable
class SearchSpace(Protocol):
    name: str
    description: str

    def build(self, trial: optuna.Trial, data: DataSpec) -> torch.nn.Module: ...


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_spaces() -> dict[str, str]:
    """Name -> one-line description of every space: built-in, then installed plug-ins."""
    found: dict[str, str] = {}
    for name in BUILTIN_SPACES:
        found[name] = load_space(name).description
    for name, entry_point in _entry_points().items():
        if name in found:
            continue
        try:
            found[name] = _check(entry_point.load(), f"entry point {name!r}").description
        except ConfigError as error:
            found[name] = f"(unusable: {error})"
        except Exception as error:  # a broken plug-in must not hide the others
            found[name] = f"(unusable: {type(error).__name__}: {error})"
    return found


def load_space(spec: str) -> SearchSpace:
    """A space by built-in name, entry-point name, or path to a ``.py`` file."""
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        return _from_file(Path(spec))
    if spec in BUILTIN_SPACES:
        return _check(importlib.import_module(BUILTIN_SPACES[spec]), f"built-in space {spec!r}")
    entry_point = _entry_points().get(spec)
    if entry_point is not None:
        try:
            loaded = entry_point.load()
        except Exception as error:
            raise ConfigError(
                f"space {spec!r} (entry point {entry_point.value}) failed to load: {error}"
            ) from error
        return _check(loaded, f"entry point {spec!r}")
    known = [*BUILTIN_SPACES, *(n for n in _entry_points() if n not in BUILTIN_SPACES)]
    raise ConfigError(f"unknown space {spec!r}; valid: {', '.join(known)}, or a path to a .py file")


def _from_file(path: Path) -> SearchSpace:
    if not path.is_file():
        raise ConfigError(f"space file {str(path)!r} does not exist")
    module_name = f"greenml_user_space_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"space file {str(path)!r} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(module_name, None)
        raise ConfigError(
            f"space file {str(path)!r} failed to import: {type(error).__name__}: {error}"
        ) from error
    return _check(module, f"space file {str(path)!r}")


def _check(candidate: Any, origin: str) -> SearchSpace:
    """Accept a space object, a no-argument class of one, or a module defining ``SPACE``."""
    if hasattr(candidate, "__file__") and not hasattr(candidate, "build"):
        if not hasattr(candidate, "SPACE"):
            raise ConfigError(
                f"{origin} defines no search space: expected a module-level SPACE with "
                "name, description and build(trial, data)"
            )
        candidate = candidate.SPACE
    if isinstance(candidate, type):
        candidate = candidate()
    missing = [
        attribute
        for attribute, ok in (
            ("name", isinstance(getattr(candidate, "name", None), str)),
            ("description", isinstance(getattr(candidate, "description", None), str)),
            ("build(trial, data)", callable(getattr(candidate, "build", None))),
        )
        if not ok
    ]
    if missing:
        raise ConfigError(f"{origin} is not a search space: it lacks {', '.join(missing)}")
    return candidate  # type: ignore[no-any-return]


def check_data_kind(space: SearchSpace, kind: str) -> None:
    """A one-line ConfigError when ``space`` says it cannot take ``kind`` data."""
    kinds = getattr(space, "data_kinds", None)
    if kinds is None or kind in kinds:
        return
    why = (
        ": convolutions and attention need neighbouring positions, and a table's columns have no order"
        if kind == "tabular"
        else ""
    )
    able = [name for name in BUILTIN_SPACES if kind in getattr(load_space(name), "data_kinds", (kind,))]
    raise ConfigError(
        f"space {space.name!r} takes {' or '.join(kinds)} data, not {kind}{why}; spaces for {kind} data: "
        f"{', '.join(able) or 'none built in'}"
    )
