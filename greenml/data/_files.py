"""The user's data: arrays from a file, checked, split and normalised on the training split only.

Every check raises a one-line :class:`~greenml.errors.ConfigError` naming what is wrong, before
anything is written to a storage.

Shapes: ``x`` of ``(N, F)`` is tabular (F features, in no particular order); ``(N, C, L)`` a
sequence of length L with C channels; ``(N, C, H, W)`` an image. Labels ``y`` are ``(N,)`` of any
type; they are encoded as 0..K-1 in the sorted order of their values, which the spec keeps as
``classes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from greenml.errors import ConfigError

__all__ = ["FILE_SUFFIXES", "arrays_from_file", "arrays_from_object", "check_arrays", "split_and_normalise"]

FILE_SUFFIXES = (".npz", ".csv", ".parquet", ".py")
KINDS = {2: "tabular", 3: "sequence", 4: "image"}


def arrays_from_file(path: Path, target: str | None) -> dict[str, Any]:
    """``x``, ``y`` and optionally ``x_test``, ``y_test`` (and ``features``) from a data file."""
    if not path.is_file():
        raise ConfigError(f"--dataset {str(path)!r}: no such file")
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ConfigError(
            f"--dataset {str(path)!r}: unknown file type {suffix or '(none)'}; valid: {', '.join(FILE_SUFFIXES)}"
        )
    if suffix in (".csv", ".parquet"):
        return _table(path, target)
    if target is not None:
        raise ConfigError(f"--target is for .csv and .parquet tables, not {suffix} files")
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
        except Exception as error:
            raise ConfigError(f"--dataset {str(path)!r}: not a readable .npz file ({error})") from None
        return _named_arrays(arrays, str(path))
    return arrays_from_object(_module_data(path), str(path))


def arrays_from_object(data: Any, where: str) -> dict[str, Any]:
    """The arrays of a ``DATA`` object: a mapping or an object with ``x``, ``y`` (and the tests)."""
    if callable(data) and not isinstance(data, Mapping):
        data = data()
    if isinstance(data, Mapping):
        found = dict(data)
    else:
        found = {key: getattr(data, key) for key in ("x", "y", "x_test", "y_test") if hasattr(data, key)}
    return _named_arrays(found, where)


def _named_arrays(found: Mapping[str, Any], where: str) -> dict[str, Any]:
    missing = [key for key in ("x", "y") if key not in found]
    if missing:
        raise ConfigError(
            f"{where}: no {' or '.join(missing)}; a dataset holds x and y, and optionally x_test and y_test "
            f"(found: {', '.join(sorted(found)) or 'nothing'})"
        )
    if ("x_test" in found) != ("y_test" in found):
        raise ConfigError(f"{where}: x_test and y_test come together; found only one of them")
    return {key: found[key] for key in ("x", "y", "x_test", "y_test") if key in found}


def _module_data(path: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"greenml_user_data_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"--dataset {str(path)!r}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise ConfigError(
            f"--dataset {str(path)!r}: importing it failed: {type(error).__name__}: {error}"
        ) from None
    if not hasattr(module, "DATA"):
        raise ConfigError(
            f"--dataset {str(path)!r}: defines no module-level DATA (x, y and optionally x_test, y_test)"
        )
    return module.DATA


def _table(path: Path, target: str | None) -> dict[str, Any]:
    import pandas as pd

    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as error:
        raise ConfigError(
            f"--dataset {str(path)!r}: cannot be read as a table ({str(error).splitlines()[0]})"
        ) from None
    columns = [str(c) for c in frame.columns]
    if target is None:
        raise ConfigError(
            f"--dataset {path.name}: a table needs --target COLUMN naming its label column; columns: {', '.join(columns)}"
        )
    if target not in columns:
        raise ConfigError(
            f"--target {target!r} is not a column of {path.name}; columns: {', '.join(columns)}"
        )
    frame.columns = columns
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise ConfigError(f"{path.name}: no feature columns besides the label {target!r}")
    text = [
        c
        for c in features.columns
        if not pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c])
    ]
    if text:
        raise ConfigError(
            f"{path.name}: non-numeric feature column(s) {', '.join(text[:5])}{' ...' if len(text) > 5 else ''}; "
            "encode them as numbers first (e.g. pandas.get_dummies)"
        )
    return {
        "x": features.to_numpy(dtype=np.float32),
        "y": frame[target].to_numpy(),
        "features": list(features.columns),
    }


def check_arrays(arrays: dict[str, Any], where: str) -> tuple[str, list[Any]]:
    """Check shapes, values and labels; return the data kind and the sorted class values."""
    x, y = np.asarray(arrays["x"]), np.asarray(arrays["y"])
    for name in ("x", "x_test"):
        if name in arrays and not np.issubdtype(np.asarray(arrays[name]).dtype, np.number):
            raise ConfigError(f"{where}: {name} is not numeric (dtype {np.asarray(arrays[name]).dtype})")
    if x.ndim not in KINDS:
        raise ConfigError(
            f"{where}: x has shape {x.shape}; the spaces take (N, features) tables, (N, channels, length) "
            "sequences or (N, channels, height, width) images"
        )
    if y.ndim != 1 or len(y) != len(x):
        raise ConfigError(
            f"{where}: y must be one label per row of x: x has {len(x)} rows, y has shape {y.shape}"
        )
    labels = [y]
    if "x_test" in arrays:
        x_test, y_test = np.asarray(arrays["x_test"]), np.asarray(arrays["y_test"])
        if x_test.shape[1:] != x.shape[1:]:
            raise ConfigError(f"{where}: x_test rows have shape {x_test.shape[1:]}, x rows {x.shape[1:]}")
        if y_test.ndim != 1 or len(y_test) != len(x_test):
            raise ConfigError(f"{where}: y_test must be one label per row of x_test")
        labels.append(y_test)
    for name in ("x", "x_test"):
        if name in arrays:
            values = np.asarray(arrays[name], dtype=np.float64)
            bad = ~np.isfinite(values)
            if bad.any():
                what = "NaN" if np.isnan(values).any() else "infinite values"
                where_bad = ""
                if values.ndim == 2:
                    columns = arrays.get("features") or [f"feature {i}" for i in range(values.shape[1])]
                    hit = [str(columns[i]) for i in np.flatnonzero(bad.any(axis=0))]
                    where_bad = f" in column(s) {', '.join(hit[:5])}{' ...' if len(hit) > 5 else ''}"
                raise ConfigError(
                    f"{where}: {name} has {what}{where_bad} ({int(bad.sum())} values); fill or drop them first"
                )
    import pandas as pd

    for name, values in zip(("y", "y_test"), labels, strict=False):
        missing = int(pd.isna(values).sum())
        if missing:
            raise ConfigError(f"{where}: {name} has missing labels ({missing}); drop those rows first")
    try:
        classes = sorted(np.unique(np.concatenate(labels)).tolist())
    except TypeError:
        raise ConfigError(f"{where}: labels mix types that cannot be sorted (numbers and text?)") from None
    if len(np.unique(y)) < 2:
        raise ConfigError(f"{where}: the label is constant ({y[0]!r}): nothing to classify")
    unseen = sorted(set(classes) - set(np.unique(y).tolist()), key=str)
    if unseen:
        raise ConfigError(
            f"{where}: class(es) {', '.join(map(repr, unseen[:5]))} appear only in the test split"
        )
    needed = 2 if "x_test" in arrays else 3
    values, counts = np.unique(y, return_counts=True)
    few = [(v, c) for v, c in zip(values.tolist(), counts.tolist(), strict=True) if c < needed]
    if few:
        listed = ", ".join(f"{v!r} ({c})" for v, c in few[:5])
        splits = "train and validation" if needed == 2 else "train, validation and test"
        raise ConfigError(
            f"{where}: class(es) with fewer samples than the {splits} splits need ({needed} each): {listed}"
        )
    return KINDS[x.ndim], classes


def split_and_normalise(
    arrays: dict[str, Any], classes: list[Any], seed: int
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Stratified train/validation(/test) splits fixed by ``seed``; standardised on train only.

    Without a test split: 60/20/20. With one: it is kept as given, the rest split 80/20. Each
    feature (tabular) or channel (sequence, image) is shifted and scaled by the training split's
    mean and standard deviation; the statistics are returned to go with the model.
    """
    from sklearn.model_selection import train_test_split

    index = {value: i for i, value in enumerate(classes)}
    x = np.asarray(arrays["x"], dtype=np.float32)
    y = np.array([index[v] for v in np.asarray(arrays["y"]).tolist()], dtype=np.int64)
    rows = np.arange(len(x))
    if "x_test" in arrays:
        train, val = train_test_split(rows, test_size=0.2, stratify=y, random_state=seed)
        x_test = np.asarray(arrays["x_test"], dtype=np.float32)
        y_test = np.array([index[v] for v in np.asarray(arrays["y_test"]).tolist()], dtype=np.int64)
    else:
        rest, test = train_test_split(rows, test_size=0.2, stratify=y, random_state=seed)
        train, val = train_test_split(rest, test_size=0.25, stratify=y[rest], random_state=seed)
        x_test, y_test = x[test], y[test]
    axes = (0,) if x.ndim == 2 else tuple(i for i in range(x.ndim) if i != 1)
    mean = x[train].mean(axis=axes, keepdims=True)
    std = x[train].std(axis=axes, keepdims=True)
    std = np.where(std > 0, std, 1.0).astype(np.float32)

    def scaled(values: np.ndarray) -> np.ndarray:
        return np.asarray((values - mean) / std, dtype=np.float32)

    split = {
        "x_train": scaled(x[train]),
        "y_train": y[train],
        "x_val": scaled(x[val]),
        "y_val": y[val],
        "x_test": scaled(x_test),
        "y_test": y_test,
    }
    per = "feature" if x.ndim == 2 else "channel"
    preprocessing = {
        "kind": "standardize",
        "per": per,
        "mean": mean.reshape(-1).tolist(),
        "std": std.reshape(-1).tolist(),
        "formula": f"x' = (x - mean) / std, per {per}, from the training split",
    }
    return split, preprocessing
