"""The study's energy ledger: every joule spent counted once, a queued retry's copied energy never."""

from __future__ import annotations

import warnings

import optuna
import pytest
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState, create_trial

from greenml import records
from greenml.ledger import spent_energy_j

optuna.logging.set_verbosity(optuna.logging.ERROR)

PARAMS = {"x": 0.5}
DISTRIBUTIONS: dict[str, BaseDistribution] = {"x": FloatDistribution(0.0, 1.0)}


def _study_with_queued_retries() -> optuna.Study:
    """A complete trial (10 J), a running one (2 J so far), two trials whose workers died (one
    after 3 J, before its window was written; one with its 4 J window written), each queued again
    by Optuna's retry callback as a WAITING copy of its attributes, and the teacher (7 J)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback()  # what the heartbeat does with a dead trial
    study = optuna.create_study(directions=["maximize"])
    running = study.ask()  # before anything is queued: ask() would take a waiting trial
    running.set_user_attr(records.ENERGY_SO_FAR, 2.0)
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            values=[0.9],
            params=PARAMS,
            distributions=DISTRIBUTIONS,
            user_attrs={records.ENERGY: 10.0, records.ENERGY_SO_FAR: 10.0},
        )
    )
    for dead_attrs in (
        {records.ENERGY_SO_FAR: 3.0},
        {records.ENERGY: 4.0, records.ENERGY_SO_FAR: 4.0},
    ):
        study.add_trial(
            create_trial(
                state=TrialState.FAIL, params=PARAMS, distributions=DISTRIBUTIONS, user_attrs=dead_attrs
            )
        )
        retry(study, study.trials[-1])
    study.set_user_attr(f"{records.LEDGER_PREFIX}teacher", {"energy_j": 7.0, "seconds": 1.0})
    return study


def test_a_queued_retry_has_spent_nothing_though_it_carries_the_dead_trials_energy() -> None:
    study = _study_with_queued_retries()
    waiting = study.get_trials(states=(TrialState.WAITING,))
    # What makes this a test: the queued copies do carry the dead trials' energy attributes.
    assert [t.user_attrs for t in waiting] == [
        {records.ENERGY_SO_FAR: 3.0},
        {records.ENERGY: 4.0, records.ENERGY_SO_FAR: 4.0},
    ]
    assert [records.trial_spent_j(t) for t in waiting] == [0.0, 0.0]
    by_state = {t.state: records.trial_spent_j(t) for t in study.trials if t.state != TrialState.WAITING}
    assert by_state[TrialState.RUNNING] == 2.0 and by_state[TrialState.COMPLETE] == 10.0
    # 10 complete + 2 running + 3 and 4 dead + 7 teacher; the copies (3 and 4 again) not at all
    assert spent_energy_j(study) == pytest.approx(26.0)


def test_a_retry_that_ran_counts_its_own_energy_only() -> None:
    study = _study_with_queued_retries()
    retry = study.ask()  # the worker takes the first queued copy and runs it
    assert retry.number == 3 and records.is_retry(study.trials[3].system_attrs)
    retry.set_user_attr(records.ENERGY_SO_FAR, 1.5)  # its own first phase, over the copied 3 J
    assert spent_energy_j(study) == pytest.approx(26.0 + 1.5)
