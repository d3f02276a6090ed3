"""Built-in datasets that work offline, with a fixed train/validation/test split per seed.

* ``digits``: scikit-learn's 8x8 handwritten digits (ships with scikit-learn), 1797 images,
  split 60/20/20.
* ``mnist1d``: MNIST-1D generated locally with the ``mnist1d`` package's ``make_dataset`` (never
  its download), with the package's default generation settings (4000 train + 1000 test, 40
  points each); the seed splits the 4000 into 3200 train and 800 validation.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from greenml.errors import ConfigError

__all__ = ["DATASETS", "DataSpec", "Dataset", "load_dataset"]

DATASETS: dict[str, str] = {
    "digits": "scikit-learn's 8x8 handwritten digits, 1797 images, 10 classes",
    "mnist1d": "MNIST-1D (generated locally), 5000 sequences of 40 points, 10 classes",
}


@dataclass(frozen=True)
class DataSpec:
    """What a search space needs to know to build a model for the data."""

    name: str
    kind: str  # "image" (C, H, W) or "sequence" (C, L)
    input_shape: tuple[int, ...]
    num_classes: int


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

    def tensors(self, split: str) -> tuple[Any, Any]:
        """(inputs float32, labels int64) torch tensors of ``split`` (train, val or test)."""
        import torch

        x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
        return torch.from_numpy(x), torch.from_numpy(y)


def load_dataset(name: str, seed: int = 0) -> Dataset:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    x, y, x_test, y_test, spec = _digits() if name == "digits" else _mnist1d()
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
    )


def _digits() -> tuple[np.ndarray, np.ndarray, None, None, DataSpec]:
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = (images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return x, labels.astype(np.int64), None, None, DataSpec("digits", "image", (1, 8, 8), 10)


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
    spec = DataSpec("mnist1d", "sequence", (1, arrays["x"].shape[1]), 10)
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
