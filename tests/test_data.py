"""Datasets as plug-ins: files (.npz, .csv, .parquet, .py), entry points, checks, splits, scaling."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from greenml import data as data_module
from greenml.cli import main
from greenml.data import load_dataset
from greenml.errors import ConfigError

FAST = [
    "--trials",
    "1",
    "--epochs",
    "1:1",
    "--min-energy-window",
    "0.05",
    "--min-latency-window",
    "0.05",
    "--idle-seconds",
    "0",
    "--no-distillation",
    "--no-report",
]


@pytest.fixture
def cancer_csv(tmp_path: Path) -> Path:
    """scikit-learn's breast-cancer table saved as CSV, as the README shows."""
    from sklearn.datasets import load_breast_cancer

    path = tmp_path / "cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(path, index=False)
    return path


def test_a_csv_table_is_split_stratified_and_standardised_on_train_only(cancer_csv: Path) -> None:
    data = load_dataset(str(cancer_csv), seed=0, target="target")
    assert data.spec.kind == "tabular" and data.spec.input_shape == (30,)
    assert data.spec.classes == (0, 1) and data.spec.features[0] == "mean radius"
    sizes = [len(data.y_train), len(data.y_val), len(data.y_test)]
    assert sum(sizes) == 569 and sizes == [341, 114, 114]
    share = [float(np.mean(y)) for y in (data.y_train, data.y_val, data.y_test)]
    assert max(share) - min(share) < 0.01  # stratified: each split keeps the label balance
    assert np.allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(data.x_train.std(axis=0), 1, atol=1e-4)
    # The statistics are the raw training rows', recorded to go with the model.
    raw = pd.read_csv(cancer_csv).drop(columns=["target"]).to_numpy(dtype=np.float32)
    mean, std = np.array(data.preprocessing["mean"]), np.array(data.preprocessing["std"])
    restored = data.x_val * std + mean
    assert all(any(np.allclose(row, r, atol=1e-3) for r in raw) for row in restored[:5])
    assert not np.allclose(data.x_val.mean(axis=0), 0, atol=1e-3)


def test_splits_are_fixed_by_the_seed(cancer_csv: Path) -> None:
    first = load_dataset(str(cancer_csv), seed=3, target="target")
    again = load_dataset(str(cancer_csv), seed=3, target="target")
    other = load_dataset(str(cancer_csv), seed=4, target="target")
    assert np.array_equal(first.x_test, again.x_test) and first.fingerprint == again.fingerprint
    assert not np.array_equal(first.x_test, other.x_test)
    assert first.fingerprint == other.fingerprint  # same contents, another split


def test_npz_with_a_given_test_split_keeps_it_as_given(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 3, 16)).astype(np.float32), np.repeat(["cat", "dog"], 100)
    x_test, y_test = rng.normal(size=(30, 3, 16)), np.array(["dog", "cat"] * 15)
    np.savez(tmp_path / "seq.npz", x=x, y=y, x_test=x_test, y_test=y_test)
    data = load_dataset(str(tmp_path / "seq.npz"))
    assert data.spec.kind == "sequence" and data.spec.input_shape == (3, 16)
    assert data.spec.classes == ("cat", "dog")
    assert list(data.y_test) == [1, 0] * 15  # order and labels as given
    assert len(data.y_train) == 160 and len(data.y_val) == 40
    assert data.preprocessing["per"] == "channel" and len(data.preprocessing["mean"]) == 3
    mean, std = np.array(data.preprocessing["mean"]), np.array(data.preprocessing["std"])
    assert np.allclose(data.x_test, (x_test - mean[None, :, None]) / std[None, :, None], atol=1e-5)


def test_a_python_file_with_data_and_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "blobs.py").write_text(
        textwrap.dedent(
            """
            from sklearn.datasets import make_blobs

            def DATA():
                x, y = make_blobs(n_samples=120, centers=3, n_features=5, random_state=0)
                return {"x": x, "y": y}
            """
        )
    )
    data = load_dataset(str(tmp_path / "blobs.py"))
    assert data.spec.kind == "tabular" and data.spec.num_classes == 3

    class EntryPoint:
        value = "mypkg.data:IMAGES"

        def load(self) -> Any:
            rng = np.random.default_rng(1)
            return {"x": rng.random((60, 1, 4, 4)), "y": np.arange(60) % 2}

    monkeypatch.setattr(data_module, "_entry_points", lambda: {"tiles": EntryPoint()})
    tiles = load_dataset("tiles")
    assert tiles.spec.kind == "image" and tiles.spec.input_shape == (1, 4, 4)
    assert "tiles" in data_module.available_datasets()


def _write(tmp_path: Path, name: str, frame: pd.DataFrame) -> Path:
    path = tmp_path / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _table(**overrides: Any) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=30), "b": rng.normal(size=30), "label": ["x", "y", "z"] * 10})
    for column, values in overrides.items():
        frame[column] = values
    return frame


BAD_TABLES = [
    ("nan", _table(a=[np.nan] + [0.0] * 29), "label", "x has NaN in column(s) a"),
    ("text", _table(b=["high"] * 30), "label", "non-numeric feature column(s) b"),
    ("missing-target", _table(), "kind", "--target 'kind' is not a column of"),
    ("no-target", _table(), None, "a table needs --target COLUMN"),
    ("constant", _table(label=["x"] * 30), "label", "the label is constant"),
    ("missing-label", _table(label=[None] + ["x", "y"] * 14 + ["z"]), "label", "missing labels"),
    ("too-few", _table(label=["x"] * 14 + ["y"] * 14 + ["z"] * 2), "label", "class(es) with fewer samples"),
]


@pytest.mark.parametrize(("case", "frame", "target", "message"), BAD_TABLES, ids=[c[0] for c in BAD_TABLES])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_bad_tables_are_one_line_errors(
    tmp_path: Path, case: str, frame: pd.DataFrame, target: str | None, message: str, suffix: str
) -> None:
    path = _write(tmp_path, f"{case}{suffix}", frame)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        load_dataset(str(path), target=target)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros(10), "y": np.arange(10)}, r"x has shape \(10,\)"),
        ({"x": np.zeros((10, 1, 2, 2, 2)), "y": np.arange(10)}, "the spaces take"),
        ({"x": np.zeros((10, 2)), "y": np.arange(9)}, "one label per row"),
        ({"x": np.zeros((10, 2))}, "no y"),
        ({"x": np.full((12, 2), np.inf), "y": np.arange(12) % 2}, "infinite values"),
        (
            {
                "x": np.zeros((12, 2)),
                "y": np.arange(12) % 2,
                "x_test": np.zeros((4, 3)),
                "y_test": np.zeros(4),
            },
            "x_test rows have shape",
        ),
        ({"x": np.zeros((12, 2)), "y": np.arange(12) % 2, "x_test": np.zeros((4, 2))}, "come together"),
    ],
)
def test_bad_arrays_are_one_line_errors(tmp_path: Path, arrays: dict[str, Any], message: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ConfigError, match=message):
        load_dataset(str(tmp_path / "bad.npz"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nowhere/data.csv", "no such file"),
        ("data.txt", "unknown file type .txt"),
        ("imagenet", "unknown dataset 'imagenet'; valid: digits, mnist1d, or a file"),
    ],
)
def test_unknown_datasets_name_the_valid_ones(tmp_path: Path, spec: str, message: str) -> None:
    if spec == "data.txt":
        (tmp_path / spec).write_text("1,2\n")
        spec = str(tmp_path / spec)
    with pytest.raises(ConfigError, match=message):
        load_dataset(spec)


def test_a_python_file_without_data(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("X = 1\n")
    with pytest.raises(ConfigError, match="defines no module-level DATA"):
        load_dataset(str(tmp_path / "empty.py"))


def test_bad_data_writes_nothing_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "nan.csv", _table(a=[np.nan] + [0.0] * 29))
    assert main(["search", "--dataset", "nan.csv", "--target", "label", *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("greenml: error: nan.csv: x has NaN") and "\n" not in err
    assert not (tmp_path / "greenml.db").exists() and not (tmp_path / "greenml-artifacts").exists()


def test_the_cnn_refuses_a_table_and_the_mlp_searches_it(
    cancer_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    common = ["--dataset", str(cancer_csv), "--target", "target", *FAST]
    assert main(["search", "--space", "cnn", *common]) == 2
    assert "space 'cnn' takes image or sequence data, not tabular" in capsys.readouterr().err
    assert not (tmp_path / "greenml.db").exists()
    assert main(["search", "--space", "mlp", *common]) == 0
    import optuna

    study = optuna.load_study(study_name="mlp-cancer-random-seed0", storage="sqlite:///greenml.db")
    assert study.user_attrs["data_spec"]["features"][0] == "mean radius"
    assert study.user_attrs["preprocessing"]["kind"] == "standardize"
    assert study.trials[0].user_attrs["metrics"]["accuracy"] > 0
    # The same name with other contents is another dataset: the study refuses it.
    frame = pd.read_csv(cancer_csv)
    frame.iloc[:10].to_csv(cancer_csv, index=False)
    frame.iloc[:300].to_csv(cancer_csv, index=False)
    assert main(["search", "--space", "mlp", *common]) == 2
    assert "dataset_fingerprint" in capsys.readouterr().err


def test_datasets_command_lists_builtins_and_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digits") and "mnist1d" in out and ".csv" in out and "--target" in out
