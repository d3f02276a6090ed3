"""Where studies live: storage URLs, heartbeats, the artifact store and the gRPC storage proxy.

Every greenml command opens its storage here, so a URL means the same thing everywhere:

- ``sqlite:///FILE``, ``postgresql://USER@HOST/DB`` (and any other SQLAlchemy URL): Optuna's
  :class:`~optuna.storages.RDBStorage`, with Optuna's heartbeat when a search runs on it;
- ``grpc://HOST:PORT``: Optuna's :class:`~optuna.storages.GrpcStorageProxy`, talking to a
  ``greenml storage-proxy`` (Optuna's ``run_grpc_proxy_server``) in front of an RDB.

Heartbeats. A worker's running trial sends a heartbeat every ``heartbeat_interval`` seconds; a
running trial whose last heartbeat is older than ``grace_period`` is marked FAIL by the next
worker that starts a trial, and Optuna's :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`
queues its parameters again (once by default). On an RDB the heartbeat is Optuna's own (a row
per trial, stamped by the database's clock). Optuna's gRPC proxy has no heartbeat call, so
through it the heartbeat is the trial system attribute ``greenml:heartbeat``, stamped by the
worker's clock: workers on several machines need their clocks agreeing to well within the grace
period (NTP does that).

Artifacts (the distillation teacher, the trials' models) go through :mod:`optuna.artifacts`:

- ``--artifacts DIR``, or by default a folder beside a SQLite file, or ``./greenml-artifacts``
  for a database server: Optuna's :class:`~optuna.artifacts.FileSystemArtifactStore`. Workers
  on several machines need ``DIR`` on a filesystem they share.
- ``--artifacts s3://BUCKET[/PREFIX]``: Optuna's :class:`~optuna.artifacts.Boto3ArtifactStore`
  (``pip install greenml[s3]``). boto3 finds credentials, region and endpoint as it always does
  (``AWS_*`` variables, ``~/.aws``; ``AWS_ENDPOINT_URL`` for MinIO or another S3-compatible
  server).
- ``--artifacts gs://BUCKET[/PREFIX]``: Optuna's :class:`~optuna.artifacts.GCSArtifactStore`
  (``pip install greenml[gcs]``), with Google's default credentials (``STORAGE_EMULATOR_HOST``
  for an emulator).

Optuna's bucket stores take no key prefix, so greenml puts ``PREFIX/`` in front of every artifact
id it hands them; the ids stored in the study stay Optuna's own.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenml import records
from greenml.errors import ConfigError, StorageLostError
from greenml.optuna_compat import study_storage, trial_id, with_heartbeat

__all__ = [
    "DEFAULT_GRPC_PORT",
    "DEFAULT_STORAGE_FILE",
    "HELPER_MARK",
    "Heartbeat",
    "Pulse",
    "artifact_location",
    "artifact_store",
    "default_storage",
    "helper_name",
    "helper_study",
    "open_storage",
    "open_study",
    "parse_grpc",
    "redact_url",
    "remember_artifacts",
    "remembered_artifacts",
    "run_proxy",
    "scratch_file",
    "shared_by_processes",
    "sqlite_file",
    "study_names",
]

DEFAULT_GRPC_PORT = 13000
# greenml keeps its coordination records beside each search study, in studies named
# NAME::greenml-workers (worker numbers) and NAME::greenml-claims (who trains the teacher);
# listings leave those out.
HELPER_MARK = "::greenml-"
DEFAULT_STORAGE_FILE = "greenml.db"


def default_storage() -> str:
    """A SQLite file in the current directory, as Optuna's own examples use."""
    return f"sqlite:///{DEFAULT_STORAGE_FILE}"


@dataclass(frozen=True)
class Heartbeat:
    """How workers prove they are alive: Optuna's ``heartbeat_interval`` and ``grace_period``.

    ``retries``: how many times a trial whose worker died is run again with the same parameters
    (Optuna's ``RetryHeartbeatStaleTrialCallback(max_retry=...)``).
    """

    interval_s: int = 10
    grace_s: int = 60
    retries: int = 1

    def __post_init__(self) -> None:
        for name, value, low in (
            ("--heartbeat-interval", self.interval_s, 1),
            ("--grace-period", self.grace_s, 1),
            ("--stale-retries", self.retries, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}")
        if self.grace_s <= self.interval_s:
            raise ConfigError(
                f"--grace-period ({self.grace_s} s) must be longer than --heartbeat-interval "
                f"({self.interval_s} s), or live workers' trials would be failed"
            )


def parse_grpc(url: str) -> tuple[str, int] | None:
    """``grpc://HOST:PORT`` as (host, port); None for any other URL."""
    if not url.startswith("grpc://"):
        return None
    rest = url[len("grpc://") :].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, str(DEFAULT_GRPC_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"malformed gRPC storage URL {url!r}; expected grpc://HOST:PORT, e.g. grpc://localhost:13000"
        )
    return host, int(port)


def _check_url(url: str) -> None:
    if "://" not in url:
        raise ConfigError(
            f"malformed storage URL {url!r}; expected e.g. sqlite:///greenml.db, "
            "postgresql://user@host:5432/dbname or grpc://host:13000"
        )


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for reports, cards and messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///FILE`` URL; None for an in-memory database, a
    ``file:`` URI (``?uri=true``) and every other kind of storage."""
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:  # a malformed URL: opening it says so
        return None
    if not parsed.database or parsed.database == ":memory:" or parsed.query.get("uri") in ("true", "1"):
        return None
    return Path(parsed.database)


def _require_database(url: str) -> None:
    """A one-line ConfigError, before anything is created, when ``url`` is a SQLite file that is not there."""
    database = sqlite_file(url)
    if database is not None and not database.exists():
        raise ConfigError(f"no study database at {database}; run greenml search first, or give --storage URL")


def open_storage(url: str, heartbeat: Heartbeat | None = None, *, create: bool = True) -> Any:
    """The storage behind ``url``, with heartbeats if ``heartbeat`` is given; or a one-line ConfigError.

    ``create=False`` is for commands that only read studies: a SQLite file that does not exist
    is a one-line ConfigError, and nothing is created (SQLite would create an empty file).
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    _check_url(url)
    if not create:
        _require_database(url)
    grpc = parse_grpc(url)
    if grpc is not None:
        return _open_grpc(url, *grpc, heartbeat)
    kwargs: dict[str, Any] = {"engine_kwargs": {"pool_pre_ping": True}}
    if url.startswith("sqlite"):
        # Workers on one SQLite file wait for each other's writes instead of failing at once.
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    if heartbeat is not None:
        kwargs.update(
            heartbeat_interval=heartbeat.interval_s,
            grace_period=heartbeat.grace_s,
            heartbeat_stale_trial_callback=_retry_callback(heartbeat),
        )
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, **kwargs)
    except (SQLAlchemyError, ImportError, RuntimeError, optuna.exceptions.OptunaError) as error:
        # The database's, its driver's (ImportError: not installed) and Optuna's (RuntimeError:
        # a schema from another Optuna version) errors: the first line only. Anything else is a bug.
        raise ConfigError(f"cannot open storage {url!r}: {_first_line(error)}") from error


def _retry_callback(heartbeat: Heartbeat) -> Any:
    """Optuna's ``RetryHeartbeatStaleTrialCallback``, queueing a dead trial's parameters once.

    Two workers can fail the same stale trial at the same moment where the database does not
    lock rows (SQLite ignores ``SELECT ... FOR UPDATE``); the second then finds the retry the
    first queued and adds none.
    """
    import warnings

    import optuna

    class RetryOnce(optuna.storages.RetryHeartbeatStaleTrialCallback):  # type: ignore[misc]
        def __call__(self, study: Any, trial: Any) -> None:
            queued = study.get_trials(deepcopy=False)
            if any(
                records.trial_retry_of(t) is not None and trial.number in records.trial_retry_history(t)
                for t in queued
            ):
                return
            super().__call__(study, trial)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryOnce(max_retry=heartbeat.retries)


def _open_grpc(url: str, host: str, port: int, heartbeat: Heartbeat | None) -> Any:
    try:
        import grpc
    except ImportError:
        raise ConfigError(
            f"storage {url!r} needs the grpcio package; install greenml[grpc] (or pip install grpcio)"
        ) from None
    from optuna.storages import GrpcStorageProxy

    class GrpcWithHeartbeat(with_heartbeat(GrpcStorageProxy)):  # type: ignore[misc]
        """Optuna's gRPC client, with the heartbeat kept as a trial system attribute."""

        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, records.GRPC_HEARTBEAT, time.time())

        def stale_trial_ids(self, study_id: int) -> list[int]:
            from optuna.trial import TrialState

            assert heartbeat is not None
            limit = time.time() - heartbeat.grace_s
            running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            return [
                trial_id(t)
                for t in running
                if t.system_attrs.get(records.GRPC_HEARTBEAT, float("inf")) < limit
            ]

        def get_heartbeat_interval(self) -> int | None:
            return None if heartbeat is None else heartbeat.interval_s

        def get_heartbeat_stale_trial_callback(self) -> Callable[[Any, Any], None] | None:
            return None if heartbeat is None else _retry_callback(heartbeat)

    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = GrpcWithHeartbeat(host=host, port=port)
    try:
        storage.wait_server_ready(timeout=10)
    except (ConnectionError, grpc.RpcError) as error:  # Optuna's "GRPC connection timeout"
        storage.close()
        raise ConfigError(
            f"cannot reach the storage proxy at {host}:{port} ({_first_line(error)}); "
            f"start one with: greenml storage-proxy --storage URL --port {port}"
        ) from error
    return storage


def shared_by_processes(url: str) -> str | None:
    """Why several worker processes cannot share ``url``; None when they can."""
    if url.startswith("sqlite") and (url.endswith(":memory:") or url.rstrip("/") in ("sqlite:", "sqlite:/")):
        return "an in-memory SQLite database lives inside one process"
    return None


def study_names(storage: Any) -> list[str]:
    """The studies in ``storage``, without greenml's helper studies."""
    import optuna

    return [name for name in optuna.get_all_study_names(storage) if HELPER_MARK not in name]


def open_study(name: str, storage_url: str) -> Any:
    """An existing study, or a one-line ConfigError listing the studies that are there.

    Reading never writes: a SQLite file that is not there is a one-line ConfigError, not created.
    """
    import optuna

    storage = open_storage(storage_url, create=False)
    names = study_names(storage)
    if name not in names:
        raise ConfigError(f"no study {name!r} in {storage_url}; studies there: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage)


def helper_name(study_name: str, purpose: str) -> str:
    """The name of greenml's coordination study for ``purpose`` ('workers', 'claims')."""
    return f"{study_name}{HELPER_MARK}{purpose}"


def helper_study(study: Any, purpose: str) -> Any:
    """greenml's coordination study beside ``study`` (created on first use by whoever gets there)."""
    import optuna

    return optuna.create_study(
        storage=study_storage(study), study_name=helper_name(study.study_name, purpose), load_if_exists=True
    )


# URL scheme -> (what it is, the module its client needs, the extra that installs it)
REMOTE_ARTIFACTS = {
    "s3": ("S3", "boto3", "greenml[s3]"),
    "gs": ("Google Cloud Storage", "google.cloud.storage", "greenml[gcs]"),
}


def artifact_location(storage_url: str, given: str | os.PathLike[str] | None = None) -> str:
    """Where the study's artifacts go: ``given`` (a folder or a bucket URL), else beside a SQLite
    file, else ./greenml-artifacts."""
    if given is not None:
        return os.fspath(given)
    if storage_url.startswith("sqlite:///") and shared_by_processes(storage_url) is None:
        database = Path(storage_url[len("sqlite:///") :])
        return str(database.with_name(database.stem + "-artifacts"))
    return "greenml-artifacts"


def remember_artifacts(study: Any, given: str | os.PathLike[str] | None) -> None:
    """Record ``--artifacts`` (when given) in the study, for :func:`remembered_artifacts`, so
    that ``greenml model`` finds the models without being told again (a folder is remembered as
    an absolute path)."""
    if given is None:
        return
    location = os.fspath(given)
    if "://" not in location:
        location = str(Path(location).resolve())
    records.record_artifacts(study, location)


def remembered_artifacts(study: Any, given: str | os.PathLike[str] | None) -> str | None:
    """``given``, else the ``--artifacts`` the study's search was given, else None (the default)."""
    return os.fspath(given) if given is not None else records.study_artifacts(study)


def _bucket_url(location: str) -> tuple[str, str, str] | None:
    """``(scheme, bucket, prefix)`` of an ``s3://`` or ``gs://`` URL; None for a folder."""
    scheme, sep, rest = location.partition("://")
    if not sep:
        return None
    if scheme not in REMOTE_ARTIFACTS:
        choices = ", ".join(f"{name}://BUCKET" for name in REMOTE_ARTIFACTS)
        raise ConfigError(f"--artifacts: unknown URL scheme {scheme + '://'!r}; give a folder, {choices}")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigError(f"--artifacts: {location!r} names no bucket; give {scheme}://BUCKET[/PREFIX]")
    return scheme, bucket, prefix.strip("/")


def artifact_store(location: str | os.PathLike[str], *, create: bool = True) -> Any:
    """Optuna's artifact store for ``location`` (a folder, created; or a bucket URL), or a
    one-line ConfigError: a folder that cannot be written, a bucket client that is not installed,
    a bucket that cannot be reached.

    ``create=False`` is for reading models: the folder is neither created nor checked, so a
    model looked for in a folder that is not there is simply not found."""
    location = os.fspath(location)
    bucket = _bucket_url(location)
    if bucket is not None:
        return _bucket_store(location, *bucket)
    from optuna.artifacts import FileSystemArtifactStore

    directory = Path(location)
    if not create:
        return FileSystemArtifactStore(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--artifacts: cannot create {location!r}: {error.strerror}") from None
    if not os.access(directory, os.W_OK):
        raise ConfigError(f"--artifacts: {location!r} is not writable")
    return FileSystemArtifactStore(directory)


def _bucket_store(location: str, scheme: str, bucket: str, prefix: str) -> Any:
    import importlib

    what, module, extra = REMOTE_ARTIFACTS[scheme]
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"--artifacts {location}: the {what} client ({module}) is not installed; "
            f"pip install '{extra}', or give a folder"
        ) from None
    store: Any
    try:
        if scheme == "s3":
            from optuna.artifacts import Boto3ArtifactStore

            store = Boto3ArtifactStore(bucket)
            store.client.head_bucket(Bucket=bucket)
        else:
            import warnings

            from optuna.artifacts import GCSArtifactStore
            from optuna.exceptions import ExperimentalWarning

            with warnings.catch_warnings():  # "experimental": it is Optuna's only GCS store
                warnings.simplefilter("ignore", ExperimentalWarning)
                store = GCSArtifactStore(bucket)
            store.client.get_bucket(bucket)
    except (AttributeError, NameError, TypeError):
        raise  # a bug, greenml's or a changed client's: it keeps its traceback
    except Exception as error:  # credentials, network, a missing bucket: the clients share no base class
        raise ConfigError(f"--artifacts {location}: cannot reach the bucket: {_first_line(error)}") from None
    return _Prefixed(store, prefix) if prefix else store


class _Prefixed:
    """An artifact store whose ids live under ``prefix/`` in the wrapped store's bucket."""

    def __init__(self, store: Any, prefix: str) -> None:
        self._store = store
        self._prefix = prefix + "/"

    def open_reader(self, artifact_id: str) -> Any:
        return self._store.open_reader(self._prefix + artifact_id)

    def write(self, artifact_id: str, content_body: Any) -> None:
        self._store.write(self._prefix + artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self._store.remove(self._prefix + artifact_id)


@contextlib.contextmanager
def scratch_file(name: str) -> Iterator[Path]:
    """``name`` in a new private temporary folder (unique to this process and call), removed after.

    Files pass through it on their way into or out of the artifact store, so two workers never
    write or read each other's half-written file.
    """
    directory = Path(tempfile.mkdtemp(prefix="greenml-"))
    path = directory / name
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        directory.rmdir()


class Pulse:
    """A thread that calls ``beat()`` every ``interval_s`` until stopped (a record's 'alive at').

    The first beat runs in ``__enter__`` and raises whatever it raises. A later beat that fails
    is recorded (``failures`` in a row, ``last_error``) and the next one tries again, so a storage
    hiccup costs nothing. Beats that keep failing for ``grace_s`` since the last one that got
    through mean the storage is lost (by then other workers take this one for dead):
    :attr:`failed` holds a :class:`~greenml.errors.StorageLostError` naming the storage's error,
    and :meth:`check` raises it. Without ``grace_s`` failures are recorded, never raised.
    """

    def __init__(
        self,
        beat: Callable[[], None],
        interval_s: float,
        grace_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._beat = beat
        self._interval_s = interval_s
        self._grace_s = grace_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ok = clock()
        self.failures = 0
        self.last_error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="greenml-pulse", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.beat()

    def beat(self) -> None:
        """One beat now, its failure recorded rather than raised."""
        try:
            self._beat()
        except Exception as error:  # recorded, and raised by check() once the grace period is over
            # The same beat got through before, so what changed is the storage (a lost
            # connection, a locked or vanished database): not a bug to stop the thread on.
            with self._lock:
                self.failures += 1
                self.last_error = error
            return
        with self._lock:
            self.failures = 0
            self.last_error = None
            self._last_ok = self._clock()

    @property
    def failed(self) -> StorageLostError | None:
        """The error that stops this pulse's owner, once beats have failed for the grace period."""
        with self._lock:
            failures, error, since_s = self.failures, self.last_error, self._clock() - self._last_ok
        if self._grace_s is None or error is None or since_s < self._grace_s:
            return None
        lost = StorageLostError(
            f"lost the study's storage: {failures} heartbeats in a row failed over {since_s:.0f} s "
            f"(grace period {self._grace_s:g} s), the last with {type(error).__name__}: "
            f"{_first_line(error)}; this worker stops"
        )
        lost.__cause__ = error
        return lost

    def check(self) -> None:
        """Raise :attr:`failed` if the storage is lost."""
        lost = self.failed
        if lost is not None:
            raise lost

    def __enter__(self) -> Pulse:
        self._beat()
        with self._lock:
            self._last_ok = self._clock()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def run_proxy(storage_url: str, host: str, port: int) -> None:
    """Serve ``storage_url`` (an RDB) to gRPC workers until interrupted: Optuna's ``run_grpc_proxy_server``."""
    import logging

    import optuna

    if parse_grpc(storage_url) is not None:
        raise ConfigError(
            "storage-proxy --storage must be a database URL (postgresql://..., sqlite:///...), not grpc://"
        )
    try:
        import grpc  # noqa: F401
    except ImportError:
        raise ConfigError("greenml storage-proxy needs the grpcio package; pip install grpcio") from None
    # gRPC listens with SO_REUSEPORT, so a second proxy on a taken port would start and split
    # the workers between two databases: a plain bind finds out first.
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise ConfigError(f"storage-proxy cannot listen on {host}:{port}: {error.strerror}") from None
    storage = optuna.storages.get_storage(open_storage(storage_url))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("grpc").setLevel(logging.ERROR)
    import warnings

    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    try:
        optuna.storages.run_grpc_proxy_server(storage, host=host, port=port)
    except RuntimeError as error:  # grpc's "Failed to bind to address"
        raise ConfigError(f"storage-proxy cannot listen on {host}:{port}: {_first_line(error)}") from None
