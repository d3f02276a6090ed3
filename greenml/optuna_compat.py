"""Every use greenml makes of Optuna's private API, in one place, each with why.

Optuna promises nothing about names that start with an underscore, so greenml reaches them only
through this module: a release that renames one breaks here, and
``tests/test_optuna_compat.py`` names the missing internal (:func:`missing_internals`) instead of
a search failing halfway through a trial. ``pyproject.toml`` caps Optuna below its next major
version for the same reason.

Optuna is imported inside each function, so importing this module stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "INTERNALS",
    "heartbeat_enabled",
    "missing_internals",
    "record_heartbeat",
    "study_storage",
    "trial_id",
    "trial_system_attrs",
    "with_heartbeat",
]

# Every private Optuna name greenml uses: (where it lives, the name, why greenml needs it).
INTERNALS: tuple[tuple[str, str, str], ...] = (
    (
        "optuna.storages._heartbeat",
        "BaseHeartbeat",
        "the gRPC proxy client gets heartbeats by mixing this base class in (with_heartbeat)",
    ),
    (
        "optuna.storages._heartbeat",
        "is_heartbeat_enabled",
        "a trial records its first heartbeat before its worker record, where the storage has them",
    ),
    (
        "optuna.storages._heartbeat.BaseHeartbeat",
        "_get_stale_trial_ids",
        "the method a heartbeat storage overrides to say which trials are stale (with_heartbeat)",
    ),
    (
        "a Study",
        "_storage",
        "a worker reads a running trial's system attributes, fails orphaned trials and opens "
        "helper studies in the study's own storage",
    ),
    (
        "a Trial, a FrozenTrial",
        "_trial_id",
        "the storage addresses a trial by its id, which neither trial class exposes",
    ),
)


def missing_internals() -> list[str]:
    """Each private Optuna name greenml uses that this Optuna lacks, with why greenml needs it.

    Module and class names are looked up; instance attributes are looked for on a real study
    and trial in an in-memory storage.
    """

    import optuna

    missing = []

    def lacks(owner: str, name: str, why: str) -> None:
        missing.append(f"{owner}.{name} (Optuna {optuna.__version__}): {why}")

    for owner, name, why in INTERNALS[:2]:
        try:
            getattr(importlib.import_module(owner), name)
        except (ImportError, AttributeError):
            lacks(owner, name, why)
    owner, name, why = INTERNALS[2]
    try:
        base = getattr(importlib.import_module(owner.rpartition(".")[0]), "BaseHeartbeat", None)
    except ImportError:
        base = None
    if base is None or not hasattr(base, name):
        lacks(owner, name, why)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line
    try:
        study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
        trial = study.ask() if hasattr(study, INTERNALS[3][1]) else None
    finally:
        optuna.logging.set_verbosity(verbosity)
    if trial is None:
        lacks(*INTERNALS[3])
    elif not hasattr(trial, INTERNALS[4][1]) or not hasattr(study.trials[0], INTERNALS[4][1]):
        lacks(*INTERNALS[4])
    return missing


def study_storage(study: Any) -> Any:
    """The study's storage object (``Study._storage``)."""
    return study._storage


def trial_id(trial: Any) -> int:
    """The storage's id of a live or frozen trial (``_trial_id``)."""
    return int(trial._trial_id)


def trial_system_attrs(study: Any, trial: Any) -> dict[str, Any]:
    """A running trial's system attributes as the storage holds them now (the live ``Trial``
    does not expose them)."""
    return dict(study_storage(study).get_trial_system_attrs(trial_id(trial)))


def with_heartbeat(storage_class: type) -> type:
    """``storage_class`` with Optuna's heartbeat interface mixed in.

    The subclass must define ``record_heartbeat``, ``get_heartbeat_interval``,
    ``get_heartbeat_stale_trial_callback`` (public in Optuna) and ``stale_trial_ids(study_id)``,
    which answers Optuna's private ``_get_stale_trial_ids``.
    """
    from optuna.storages._heartbeat import BaseHeartbeat

    class WithHeartbeat(storage_class, BaseHeartbeat):  # type: ignore[misc, valid-type]
        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            return list(self.stale_trial_ids(study_id))

        def stale_trial_ids(self, study_id: int) -> list[int]:
            raise NotImplementedError

    return WithHeartbeat


def heartbeat_enabled(storage: Any) -> bool:
    """Whether ``storage`` holds heartbeats and has them switched on."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return bool(is_heartbeat_enabled(storage))


def record_heartbeat(study: Any, trial: Any) -> None:
    """Record one heartbeat for a running trial now, where the study's storage holds them."""
    storage = study_storage(study)
    if heartbeat_enabled(storage):
        storage.record_heartbeat(trial_id(trial))
