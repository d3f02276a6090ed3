"""Artifacts in a bucket: ``--artifacts s3://…`` and ``gs://…`` through Optuna's bucket stores.

The buckets are served over HTTP on localhost: S3 by moto's server, GCS by gcp-storage-emulator.
The clients are the real boto3 and google-cloud-storage, found through ``AWS_ENDPOINT_URL`` and
``STORAGE_EMULATOR_HOST`` as a user would point them at MinIO or an emulator.
"""

from __future__ import annotations

import itertools
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from greenml.cli import main
from greenml.config import MeasureConfig
from greenml.errors import ConfigError
from greenml.search import SearchConfig, prepare, run
from greenml.storage import artifact_store

# moto's server keeps its buckets in the test process: each test gets a bucket of its own.
_BUCKETS = (f"greenml-test-{n}" for n in itertools.count())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Bucket:
    """One served bucket: its URL scheme and a way to list its keys behind greenml's back."""

    def __init__(self, scheme: str, name: str, keys: Any) -> None:
        self.scheme = scheme
        self.name = name
        self._keys = keys

    def url(self, prefix: str = "") -> str:
        return f"{self.scheme}://{self.name}" + (f"/{prefix}" if prefix else "")

    def keys(self) -> list[str]:
        return sorted(self._keys())


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for name, value in {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    import boto3

    name = next(_BUCKETS)
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)

    def keys() -> list[str]:
        return [item["Key"] for item in client.list_objects_v2(Bucket=name).get("Contents", [])]

    try:
        yield Bucket("s3", name, keys)
    finally:
        server.stop()


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    name = next(_BUCKETS)
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=name)
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    from google.cloud import storage

    client = storage.Client()

    def keys() -> list[str]:
        return [blob.name for blob in client.list_blobs(name)]

    try:
        yield Bucket("gs", name, keys)
    finally:
        server.stop()


@pytest.fixture(params=["s3", "gcs"])
def bucket(request: pytest.FixtureRequest) -> Bucket:
    return request.getfixturevalue(request.param)


def test_a_search_keeps_its_front_models_in_the_bucket_and_greenml_model_takes_them_out(
    s3: Bucket, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = s3  # GCS goes through the same calls: its round trip is tested below
    storage = f"sqlite:///{tmp_path}/bucket.db"
    url = bucket.url("runs/one")
    config = SearchConfig(
        storage=storage,
        study="bucket",
        trials=3,
        epochs=(1, 1),
        distillation=False,
        energy_window_s=0.05,
        latency_s=0.05,
        measure=MeasureConfig(meter="estimate", idle_seconds=0),
        artifacts=url,
        keep_models="front",
        early_stopping="none",  # every queued deployment must complete
    )
    search = prepare(config)
    assert search.artifacts_at == url
    for params in ({"runtime": "onnxruntime", "quantization": "static"}, {"runtime": "torch"}, {}):
        search.study.enqueue_trial(params, skip_if_exists=False)
    try:
        run(search)
    finally:
        search.close()
    study = optuna.load_study(study_name="bucket", storage=storage)
    front = {t.number for t in study.best_trials}
    ids = {t.number: t.user_attrs.get("model", {}).get("artifact_id") for t in study.trials}
    # Exactly the front's models are left, every one under the prefix, and nothing on local disk.
    assert bucket.keys() == sorted(f"runs/one/{ids[n]}" for n in front)
    assert not (tmp_path / "bucket-artifacts").exists()

    # greenml model finds the bucket from the study (the search's --artifacts is remembered).
    number = min(front)
    out = tmp_path / "model"
    assert (
        main(["model", "--study", "bucket", "--storage", storage, "--trial", str(number), "-o", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    model = Path(printed.split("model: ")[1].splitlines()[0])
    assert model.stat().st_size == study.trials[number].user_attrs["model"]["bytes"]  # sha256 checked too

    # Pointed at another place, it says the model is not there, in one line.
    other = ["--artifacts", str(tmp_path / "empty"), "-o", str(tmp_path / "other")]
    assert main(["model", "--study", "bucket", "--storage", storage, "--trial", str(number), *other]) == 2
    assert "is no longer stored" in capsys.readouterr().err


def test_prefix_and_bucket_ids_round_trip_through_optuna(bucket: Bucket, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"\x00\x01greenml" * 100)
    plain = artifact_store(bucket.url())
    nested = artifact_store(bucket.url("a/b/"))
    study = optuna.create_study()
    first = optuna.artifacts.upload_artifact(
        artifact_store=plain, file_path=str(source), study_or_trial=study
    )
    second = optuna.artifacts.upload_artifact(
        artifact_store=nested, file_path=str(source), study_or_trial=study
    )
    assert bucket.keys() == sorted([first, f"a/b/{second}"])
    back = tmp_path / "back.bin"
    optuna.artifacts.download_artifact(artifact_store=nested, file_path=str(back), artifact_id=second)
    assert back.read_bytes() == source.read_bytes()
    nested.remove(second)
    assert bucket.keys() == [first]
    with pytest.raises(optuna.artifacts.exceptions.ArtifactNotFound):
        nested.open_reader(first)  # the prefix is not optional: the plain id is not under it


def test_a_bucket_that_cannot_be_reached_is_one_line(bucket: Bucket) -> None:
    with pytest.raises(
        ConfigError, match=rf"^--artifacts {bucket.scheme}://no-such-bucket: cannot reach the bucket: \S"
    ):
        artifact_store(f"{bucket.scheme}://no-such-bucket")


@pytest.mark.parametrize(
    ("module", "url", "extra"),
    [("boto3", "s3://b/p", "greenml[s3]"), ("google.cloud.storage", "gs://b", "greenml[gcs]")],
)
def test_a_missing_client_names_the_package_and_writes_nothing(
    module: str,
    url: str,
    extra: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    database = tmp_path / "none.db"
    argv = ["search", "--storage", f"sqlite:///{database}", "--trials", "1", "--artifacts", url]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"pip install '{extra}'" in err and url in err
    assert not database.exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/dir", r"unknown URL scheme 'ftp://'; give a folder, s3://BUCKET, gs://BUCKET$"),
        ("s3://", r"'s3://' names no bucket; give s3://BUCKET\[/PREFIX\]$"),
        ("gs:///prefix", r"names no bucket"),
    ],
)
def test_bad_artifact_urls_are_one_line(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        artifact_store(url)
