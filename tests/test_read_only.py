"""Reading never writes: the commands that only read studies create no database and no folder."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from greenml.cli import main
from greenml.errors import ConfigError
from greenml.storage import open_storage, sqlite_file

MISSING = "greenml: error: no study database at greenml.db; run greenml search first, or give --storage URL\n"

READERS = [
    ["report"],
    ["report", "--study", "s"],
    ["export", "--format", "csv"],
    ["export", "--format", "json", "--study", "s"],
    ["model", "--pick", "knee", "-o", "m"],
    ["model", "--study", "s", "--trial", "0", "-o", "m"],
    ["compare", "s", "t"],
]


@pytest.mark.parametrize("argv", READERS, ids=" ".join)
def test_a_read_command_without_a_database_is_one_line_and_creates_nothing(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err == MISSING
    assert list(tmp_path.iterdir()) == []


def test_a_missing_database_named_by_storage_is_named_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "runs" / "study.db"
    assert main(["report", "--study", "s", "--storage", f"sqlite:///{database}"]) == 2
    assert capsys.readouterr().err == (
        f"greenml: error: no study database at {database}; run greenml search first, or give --storage URL\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("given", [True, False], ids=["--artifacts", "default"])
def test_reading_a_model_creates_no_artifact_folder(
    given: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "studies.db"
    storage = f"sqlite:///{database}"
    kept = {"artifact_id": "a1", "format": "onnx", "runtime": "onnxruntime", "quantization": "none"}
    study = optuna.create_study(study_name="alpha", storage=storage)
    study.add_trial(optuna.create_trial(value=1.0, user_attrs={"model": {**kept, "bytes": 1, "sha256": "0"}}))
    capsys.readouterr()  # Optuna's log of the study it made
    folder = tmp_path / "elsewhere" if given else tmp_path / "studies-artifacts"
    argv = ["model", "--study", "alpha", "--storage", storage, "--trial", "0", "-o", str(tmp_path / "m")]
    assert main([*argv, "--artifacts", str(folder)] if given else argv) == 2
    assert list(tmp_path.iterdir()) == [database]
    err = capsys.readouterr().err
    assert err.startswith("greenml: error: the model of trial 0 is no longer stored") and err.count("\n") == 1
    assert "give --artifacts DIR|URL" in err


def test_only_a_reader_refuses_a_missing_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    with pytest.raises(ConfigError, match="no study database at"):
        open_storage(url, create=False)
    assert not (tmp_path / "new.db").exists()
    open_storage(url)  # greenml search's way: the file is made
    assert (tmp_path / "new.db").is_file()
    open_storage(url, create=False)


@pytest.mark.parametrize(
    ("url", "file"),
    [
        ("sqlite:///greenml.db", "greenml.db"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
        ("sqlite+pysqlite:///a/b.db?timeout=3", "a/b.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///file:x.db?mode=ro&uri=true", None),
        ("postgresql://u@h/db", None),
        ("grpc://localhost:13000", None),
    ],
)
def test_the_file_of_a_sqlite_url(url: str, file: str | None) -> None:
    assert sqlite_file(url) == (None if file is None else Path(file))
