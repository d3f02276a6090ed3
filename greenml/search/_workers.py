"""Workers of one study: numbers registered in the storage, their seeds, and claims on shared work.

Every process that runs trials of a study registers as a worker in the study's helper study
(``NAME::greenml-workers``, see :mod:`greenml.storage`): it asks a trial there, and that trial's number
is the worker's number. Optuna numbers a study's trials under a lock on the study's row, so two
workers never get the same number, on one machine or many. The registration holds the worker's
host, process and hardware, and an ``alive_at`` time its pulse renews every heartbeat interval.

Worker 0 samples with the study's seed, so a search run by one worker gives the same sequence as
before workers existed; worker k > 0 samples with a seed derived from (seed, k).

A claim ("who trains the teacher") is a trial of another helper study, ``NAME::greenml-claims``: of the live claims, the
lowest-numbered wins. A claim is live while it is complete, or running with a fresh ``alive_at``;
a claimer that died stops renewing it, and after the grace period another worker claims again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from greenml import records
from greenml.optuna_compat import study_storage
from greenml.storage import Heartbeat, Pulse, helper_name, helper_study

__all__ = ["Claim", "Worker", "live_workers", "register_worker", "worker_seed"]


def worker_seed(seed: int, number: int) -> int:
    """Worker 0 keeps the study's seed; the others get independent streams derived from it."""
    if number == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence(seed, spawn_key=(number,)).generate_state(1)[0])


def _helper(study: Any, purpose: str) -> Any:
    import optuna

    helper = helper_study(study, purpose)
    helper.sampler = optuna.samplers.RandomSampler()  # asks here sample nothing
    return helper


def _ask(helper: Any) -> Any:
    """A new record in the helper study (Optuna warns that heartbeats are for ``optimize``: they
    are, and these records keep their own ``alive_at`` instead)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return helper.ask()


def _alive(trial: Any, grace_s: float, now: float) -> bool:
    """Complete, or running and renewed within the grace period (or just asked, not yet renewed)."""
    if trial.state.name == "COMPLETE":
        return True
    if trial.state.name != "RUNNING":
        return False
    if records.ALIVE_AT in trial.user_attrs:
        return now - float(trial.user_attrs[records.ALIVE_AT]) < grace_s
    started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
    return now - started < grace_s


def _existing_helper(study: Any, purpose: str) -> Any | None:
    """The helper study for ``purpose`` if some worker has created it, without creating it."""
    import optuna

    if helper_name(study.study_name, purpose) not in optuna.get_all_study_names(study_storage(study)):
        return None
    return _helper(study, purpose)


def _first_live_claim(helper: Any, kind: str, grace_s: float, unlabelled: bool) -> Any | None:
    """The lowest-numbered live claim on ``kind``; ``unlabelled`` counts claims not labelled yet."""
    now = time.time()
    label = f"claim:{kind}"
    live = [
        t
        for t in helper.get_trials(deepcopy=False)
        if t.user_attrs.get(records.KIND, label if unlabelled else None) == label and _alive(t, grace_s, now)
    ]
    return min(live, key=lambda t: t.number, default=None)


@dataclass
class Worker:
    """This process as a registered worker of a study."""

    number: int
    host: str
    pid: int
    hardware: dict[str, Any] = field(default_factory=dict)
    _helper: Any = field(default=None, repr=False)
    _trial: Any = field(default=None, repr=False)
    _pulse: Pulse | None = field(default=None, repr=False)

    @property
    def record(self) -> dict[str, Any]:
        """What each of this worker's trials stores as its ``worker`` attribute."""
        return {"number": self.number, "host": self.host, "pid": self.pid}

    def check(self) -> None:
        """Raise :class:`~greenml.errors.StorageLostError` once this worker's pulse has failed
        for the heartbeat's grace period (the storage is gone: other workers take this one for dead)."""
        if self._pulse is not None:
            self._pulse.check()

    def close(self) -> None:
        if self._pulse is not None:
            self._pulse.stop()
            self._pulse = None
        if self._trial is not None:
            # Closing, often on the way out of an error: if the storage went away, the
            # registration just stops pulsing (and goes stale), and that first error is the one
            # to see.
            with contextlib.suppress(Exception):
                self._helper.tell(self._trial, 0.0)
            self._trial = None


def register_worker(study: Any, hardware: dict[str, Any], heartbeat: Heartbeat) -> Worker:
    """Register this process as the study's next worker; its pulse runs until ``close()``."""
    helper = _helper(study, "workers")
    trial = _ask(helper)
    host, pid = socket.gethostname(), os.getpid()
    for key, value in (
        (records.KIND, "worker"),
        (records.HOST, host),
        (records.PID, pid),
        (records.HARDWARE, hardware),
    ):
        trial.set_user_attr(key, value)
    pulse = Pulse(
        lambda: trial.set_user_attr(records.ALIVE_AT, time.time()), heartbeat.interval_s, heartbeat.grace_s
    )
    pulse.__enter__()
    return Worker(trial.number, host, pid, hardware, helper, trial, pulse)


def live_workers(study: Any, grace_s: float) -> list[dict[str, Any]]:
    """The registered workers that are running now (fresh pulse), as their registration records."""
    import optuna

    helper = _existing_helper(study, "workers")
    if helper is None:
        return []
    now = time.time()
    return [
        {"number": t.number, **t.user_attrs}
        for t in helper.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if t.user_attrs.get(records.KIND) == "worker" and _alive(t, grace_s, now)
    ]


class Claim:
    """A claim on work that one worker of the study must do once (``kind``: 'teacher')."""

    def __init__(self, study: Any, kind: str, worker: Worker, heartbeat: Heartbeat) -> None:
        self._helper = _helper(study, "claims")
        self._kind = kind
        self._grace_s = heartbeat.grace_s
        self._trial = _ask(self._helper)
        self._trial.set_user_attr(records.KIND, f"claim:{kind}")
        self._trial.set_user_attr(records.WORKER, worker.record)
        self._pulse = Pulse(
            lambda: self._trial.set_user_attr(records.ALIVE_AT, time.time()),
            heartbeat.interval_s,
            heartbeat.grace_s,
        )
        self._pulse.__enter__()
        self.holder = self._winner()

    def _winner(self) -> dict[str, Any]:
        # A claim asked a moment ago may not carry its kind yet: it counts, for every kind.
        first = _first_live_claim(self._helper, self._kind, self._grace_s, unlabelled=True)
        if first is None or first.number == self._trial.number:
            return {"number": self._trial.number, "won": True}
        return {"number": first.number, "won": False, "worker": first.user_attrs.get(records.WORKER, {})}

    @property
    def won(self) -> bool:
        return bool(self.holder["won"])

    def release(self, done: bool) -> None:
        """End the claim: complete when the work is done, failed when lost or abandoned."""
        import optuna

        self._pulse.stop()
        state = optuna.trial.TrialState.COMPLETE if done else optuna.trial.TrialState.FAIL
        with contextlib.suppress(Exception):  # already gone: a stale claim is as good as a failed one
            self._helper.tell(self._trial, 0.0 if done else None, state=state)


def claim_alive(study: Any, kind: str, grace_s: float) -> dict[str, Any] | None:
    """The live claim on ``kind`` (its worker record), or None when nobody holds one."""
    helper = _existing_helper(study, "claims")
    first = None if helper is None else _first_live_claim(helper, kind, grace_s, unlabelled=False)
    return None if first is None else dict(first.user_attrs.get(records.WORKER, {}))
