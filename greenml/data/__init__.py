"""Datasets are plug-ins, as spaces are: a built-in name, a file, or an installed entry point.

Built-in (they work offline):

* ``digits``: scikit-learn's 8x8 handwritten digits (ships with scikit-learn), 1797 images,
  split 60/20/20.
* ``mnist1d``: MNIST-1D generated locally with the ``mnist1d`` package's ``make_dataset`` (never
  its download), with the package's default generation settings (4000 train + 1000 test, 40
  points each); the seed splits the 4000 into 3200 train and 800 validation.

The user's data (:mod:`greenml.data._files`): a ``.npz`` file with ``x``, ``y`` and optionally
``x_test``, ``y_test``; a ``.csv`` or ``.parquet`` table with a label column (``--target COL``);
a ``.py`` file with a module-level ``DATA`` (a mapping or object with those arrays, or a function
returning one); or an entry point in the group ``greenml.datasets`` naming such an object. The
user's data is split stratified by label, fixed by the seed (a given test split is kept), and
standardised with the training split's statistics, which the dataset keeps
(``Dataset.preprocessing``) to go with the model. The built-ins keep the splits and scaling they
always had, so their studies stay comparable.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from greenml.errors import ConfigError

__all__ = ["DATASETS", "ENTRY_POINT_GROUP", "DataSpec", "Dataset", "available_datasets", "load_dataset"]

ENTRY_POINT_GROUP = "greenml.datasets"

DATASETS: dict[str, str] = {
    "digits": "scikit-learn's 8x8 handwritten digits, 1797 images, 10 classes",
    "mnist1d": "MNIST-1D (generated locally), 5000 sequences of 40 points, 10 classes",
}


@dataclass(frozen=True)
class DataSpec:
    """What a search space needs to know to build a model for the data."""

    name: str
    kind: str  # "image" (C, H, W), "sequence" (C, L) or "tabular" (F,)
    input_shape: tuple[int, ...]
    num_classes: int
    # The label values behind classes 0..K-1, and a table's feature columns, where known.
    classes: tuple[Any, ...] = ()
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dataset:
    spec: DataSpec
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    seed: int
    # What was done to the raw features (the same must be done before calling the model).
    preprocessing: dict[str, Any] = field(default_factory=dict)
    # sha256 of the raw arrays: the same name with other contents is another dataset.
    fingerprint: str = ""

    def tensors(self, split: str) -> tuple[Any, Any]:
        """(inputs float32, labels int64) torch tensors of ``split`` (train, val or test)."""
        import torch

        x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
        return torch.from_numpy(x), torch.from_numpy(y)


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_datasets() -> dict[str, str]:
    """Name -> one-line description: built-ins, then installed plug-ins, then what files work."""
    found = dict(DATASETS)
    for name, entry_point in _entry_points().items():
        if name not in found:
            found[name] = f"plug-in ({entry_point.value})"
    return found


def _is_file_spec(spec: str) -> bool:
    from greenml.data._files import FILE_SUFFIXES

    return spec.lower().endswith(FILE_SUFFIXES) or "/" in spec or "\\" in spec or Path(spec).is_file()


def load_dataset(name: str, seed: int = 0, target: str | None = None) -> Dataset:
    """A dataset by built-in name, file path or entry-point name, checked and split by ``seed``."""
    from greenml.data import _files

    if name in DATASETS:
        if target is not None:
            raise ConfigError(f"--target is for .csv and .parquet tables, not the built-in {name!r}")
        return _builtin(name, seed)
    if _is_file_spec(name):
        arrays = _files.arrays_from_file(Path(name), target)
        label = Path(name).name
    elif name in _entry_points():
        try:
            data = _entry_points()[name].load()
        except Exception as error:
            raise ConfigError(
                f"dataset plug-in {name!r} failed to load: {type(error).__name__}: {error}"
            ) from None
        arrays = _files.arrays_from_object(data, f"dataset plug-in {name!r}")
        label = name
    else:
        from greenml.data._files import FILE_SUFFIXES

        plugins = sorted(set(_entry_points()) - set(DATASETS))
        raise ConfigError(
            f"unknown dataset {name!r}; valid: {', '.join([*DATASETS, *plugins])}, or a file "
            f"({', '.join(FILE_SUFFIXES)})"
        )
    kind, classes = _files.check_arrays(arrays, label)
    fingerprint = _fingerprint(arrays, target)
    split, preprocessing = _files.split_and_normalise(arrays, classes, seed)
    x = split["x_train"]
    spec = DataSpec(
        name=label,
        kind=kind,
        input_shape=tuple(int(d) for d in x.shape[1:]),
        num_classes=len(classes),
        classes=tuple(classes),
        features=tuple(arrays.get("features", ())),
    )
    return Dataset(spec=spec, seed=seed, preprocessing=preprocessing, fingerprint=fingerprint, **split)


def _fingerprint(arrays: dict[str, Any], target: str | None) -> str:
    digest = hashlib.sha256(repr(target).encode())
    for key in ("x", "y", "x_test", "y_test"):
        if key in arrays:
            values = np.ascontiguousarray(arrays[key])
            digest.update(f"{key}{values.shape}{values.dtype}".encode())
            digest.update(values.tobytes() if values.dtype != object else repr(values.tolist()).encode())
    return digest.hexdigest()[:16]


def _builtin(name: str, seed: int) -> Dataset:
    x, y, x_test, y_test, spec = _digits() if name == "digits" else _mnist1d()
    preprocessing = (
        {"kind": "scale", "formula": "x' = x / 16 (pixel values 0-16)"}
        if name == "digits"
        else {"kind": "none", "formula": "x' = x (as mnist1d generates it)"}
    )
    rng = np.random.default_rng(seed)
    if x_test is None or y_test is None:
        order = rng.permutation(len(x))
        n_train, n_val = int(0.6 * len(x)), int(0.2 * len(x))
        train, val, test = np.split(order, [n_train, n_train + n_val])
        x_test, y_test = x[test], y[test]
    else:
        order = rng.permutation(len(x))
        n_train = int(0.8 * len(x))
        train, val = order[:n_train], order[n_train:]
    return Dataset(
        spec=spec,
        x_train=x[train],
        y_train=y[train],
        x_val=x[val],
        y_val=y[val],
        x_test=x_test,
        y_test=y_test,
        seed=seed,
        preprocessing=preprocessing,
        fingerprint=name,
    )


def _digits() -> tuple[np.ndarray, np.ndarray, None, None, DataSpec]:
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = (images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    spec = DataSpec("digits", "image", (1, 8, 8), 10, classes=tuple(range(10)))
    return x, labels.astype(np.int64), None, None, spec


@functools.cache
def _mnist1d() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, DataSpec]:
    cache = _cache_dir() / f"mnist1d-{_mnist1d_fingerprint()}.npz"
    if cache.exists():
        with np.load(cache) as stored:
            arrays = {key: stored[key] for key in ("x", "y", "x_test", "y_test")}
    else:
        from mnist1d.data import get_dataset_args, make_dataset

        generated = make_dataset(get_dataset_args())  # generates; mnist1d's get_dataset downloads
        arrays = {
            "x": np.asarray(generated["x"], dtype=np.float32),
            "y": np.asarray(generated["y"], dtype=np.int64),
            "x_test": np.asarray(generated["x_test"], dtype=np.float32),
            "y_test": np.asarray(generated["y_test"], dtype=np.int64),
        }
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only home only costs the 5 s of generating it again
    spec = DataSpec("mnist1d", "sequence", (1, arrays["x"].shape[1]), 10, classes=tuple(range(10)))
    return (
        arrays["x"][:, None, :],
        arrays["y"],
        arrays["x_test"][:, None, :],
        arrays["y_test"],
        spec,
    )


def _mnist1d_fingerprint() -> str:
    from importlib.metadata import version

    from mnist1d.data import get_dataset_args

    args = get_dataset_args()
    settings = repr(sorted(vars(args).items()) if hasattr(args, "__dict__") else args)
    return hashlib.sha256(f"{version('mnist1d')}{settings}".encode()).hexdigest()[:12]


def _cache_dir() -> Path:
    base = os.environ.get("GREENML_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "greenml" if base else Path.home() / ".cache" / "greenml"
