"""greenml.storage: URLs, heartbeat settings, artifact folders, and the one-line errors around them."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import optuna
import pytest

from greenml.cli import main
from greenml.errors import ConfigError
from greenml.storage import (
    Heartbeat,
    artifact_location,
    artifact_store,
    helper_name,
    open_storage,
    open_study,
    parse_grpc,
    shared_by_processes,
    study_names,
)


def test_grpc_urls_are_parsed_and_malformed_ones_refused() -> None:
    assert parse_grpc("grpc://db.example:13001") == ("db.example", 13001)
    assert parse_grpc("grpc://localhost") == ("localhost", 13000)
    assert parse_grpc("postgresql://u@h/db") is None
    for bad in ("grpc://:13000", "grpc://host:port", "grpc://host:70000"):
        with pytest.raises(ConfigError, match="expected grpc://HOST:PORT"):
            parse_grpc(bad)


def test_an_unreachable_proxy_is_one_line_naming_the_command_to_start_one() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ConfigError, match=rf"cannot reach the storage proxy at 127.0.0.1:{port}") as error:
        open_storage(f"grpc://127.0.0.1:{port}")
    assert "greenml storage-proxy" in str(error.value) and "\n" not in str(error.value)
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("interval", "grace", "retries", "message"),
    [
        (0, 60, 1, "--heartbeat-interval must be a whole number >= 1"),
        (10, 10, 1, "must be longer than --heartbeat-interval"),
        (10, 60, -1, "--stale-retries must be a whole number >= 0"),
    ],
)
def test_heartbeat_settings_are_checked(interval: int, grace: int, retries: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Heartbeat(interval, grace, retries)


def test_in_memory_sqlite_is_private_to_one_process() -> None:
    assert shared_by_processes("sqlite:///:memory:") is not None
    assert shared_by_processes("sqlite://") is not None
    assert shared_by_processes("sqlite:///greenml.db") is None
    assert shared_by_processes("postgresql://u@h/db") is None


def test_artifacts_default_beside_a_sqlite_file_else_in_the_working_directory(tmp_path: Path) -> None:
    assert artifact_location(f"sqlite:///{tmp_path}/runs/greenml.db") == str(
        tmp_path / "runs" / "greenml-artifacts"
    )
    assert artifact_location("sqlite:///greenml.db") == "greenml-artifacts"
    assert artifact_location("postgresql://u@h/db") == "greenml-artifacts"
    assert artifact_location("postgresql://u@h/db", tmp_path / "shared") == str(tmp_path / "shared")
    assert artifact_location("postgresql://u@h/db", "s3://bucket/runs") == "s3://bucket/runs"
    store = artifact_store(tmp_path / "new" / "folder")
    assert (tmp_path / "new" / "folder").is_dir() and store is not None
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="--artifacts: cannot create"):
        artifact_store(tmp_path / "file" / "below")


def test_listings_leave_out_greenmls_helper_studies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/list.db"
    storage = open_storage(url)
    optuna.create_study(study_name="search", storage=storage)
    optuna.create_study(study_name=helper_name("search", "workers"), storage=storage)
    optuna.create_study(study_name=helper_name("search", "claims"), storage=storage)
    assert study_names(storage) == ["search"]
    with pytest.raises(ConfigError, match=r"no study 'x' in .*; studies there: search$"):
        open_study("x", url)
    with pytest.raises(ConfigError, match="no study"):
        open_study(helper_name("search", "workers"), url)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "--workers", "0"], "--workers must be a whole number >= 1"),
        (["search", "--workers", "2", "--storage", "sqlite:///:memory:"], "in-memory SQLite"),
        (
            ["search", "--grace-period", "5", "--heartbeat-interval", "10"],
            "--grace-period (5 s) must be longer",
        ),
        (["search", "--artifacts", "/proc/greenml-cannot"], "--artifacts: cannot create"),
        (["storage-proxy", "--storage", "grpc://localhost:1"], "must be a database URL"),
        (["storage-proxy", "--storage", "sqlite:///x.db", "--port", "0"], "--port must be from 1 to 65535"),
        (["storage-proxy", "--storage", "nonsense"], "malformed storage URL"),
    ],
)
def test_bad_worker_and_proxy_settings_are_one_line_and_exit_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1 or err.splitlines()[-1].startswith("greenml: error:")
    assert not list(tmp_path.glob("*.db"))  # nothing written


def test_a_busy_port_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert (
            main(
                [
                    "storage-proxy",
                    "--storage",
                    f"sqlite:///{tmp_path}/p.db",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ]
            )
            == 2
        )
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_database_error_is_one_line_and_a_bug_keeps_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy.exc

    url = f"sqlite:///{tmp_path}/x.db"

    def refused(*_: object, **__: object) -> None:
        raise sqlalchemy.exc.OperationalError("connect", {}, Exception("database is locked\ndetail"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", refused)
    with pytest.raises(ConfigError, match=r"cannot open storage .*database is locked") as error:
        open_storage(url)
    assert "\n" not in str(error.value)

    def buggy(*_: object, **__: object) -> None:
        raise TypeError("RDBStorage() got an unexpected keyword argument 'engine_kwarg'")

    monkeypatch.setattr(optuna.storages, "RDBStorage", buggy)
    with pytest.raises(TypeError, match="unexpected keyword"):
        open_storage(url)
