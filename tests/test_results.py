"""Trial records as ``greenml export`` writes them: the worker and host of each trial, and retries."""

from __future__ import annotations

import optuna
import pytest

from greenml.results import STALE_ERROR, trial_rows
from greenml.testing.studies import make_study, worker

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, object]]:
    study = make_study(
        None, n_trials=10, workers=(worker("node-a"), worker("node-b")), stale=[4, 9], fail_every=8
    )
    return trial_rows(study)


def test_rows_name_the_worker_and_host_of_each_trial(rows: list[dict[str, object]]) -> None:
    ran = [row for row in rows if row["state"] != "WAITING"]
    assert [(row["worker"], row["host"]) for row in ran] == [
        (n % 2, f"node-{'ab'[n % 2]}") for n in range(10)
    ]
    # the queued retry has not run: the worker its attributes copy is the dead trial's, not its own
    assert (rows[10]["state"], rows[10]["worker"], rows[10]["host"]) == ("WAITING", None, None)


def test_stale_trials_say_their_worker_died_and_where_they_were_retried(
    rows: list[dict[str, object]],
) -> None:
    assert rows[4]["error"] == f"{STALE_ERROR}; retried as trial 5"
    assert rows[9]["error"] == f"{STALE_ERROR}; retried as trial 10"
    assert STALE_ERROR == "its worker stopped sending heartbeats (killed or lost)"
    assert [row["number"] for row in rows if row["retry_of"] is not None] == [5, 10]
    assert (rows[5]["retry_of"], rows[10]["retry_of"]) == (4, 9)
    assert rows[5]["state"] == "COMPLETE" and rows[5]["error"] is None
    assert rows[7]["error"] == "RuntimeError: CUDA out of memory (synthetic)"  # an error of its own
    assert {row["retry_of"] for row in rows[:5]} == {None}


def test_rows_keep_their_columns(rows: list[dict[str, object]]) -> None:
    assert list(rows[0])[:5] == ["number", "state", "worker", "host", "retry_of"]
    assert {
        "started",
        "seconds",
        "feasible",
        "param_lr",
        "accuracy",
        "trial_energy_j",
        "energy_basis",
    } <= set(rows[0])
    assert {"device", "deploy_device", "notes", "error"} <= set(rows[0])


def test_an_older_study_has_no_workers() -> None:
    rows = trial_rows(make_study(None, n_trials=3))
    assert {(row["worker"], row["host"], row["retry_of"]) for row in rows} == {(None, None, None)}
