"""Trial records as ``greenml export`` writes them: the worker and host of each trial, and retries."""

from __future__ import annotations

import optuna
import pytest

from greenml.records import STALE_ERROR
from greenml.results import trial_rows
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


def test_export_columns_come_in_a_stable_order_with_integers_as_integers(
    rows: list[dict[str, object]], tmp_path: object
) -> None:
    import io

    from greenml.metrics import METRIC_NAMES
    from greenml.results import export_frame

    frame = export_frame(rows)
    columns = list(frame.columns)
    params = [c for c in columns if c.startswith("param_")]
    metrics = [c for c in columns if c in METRIC_NAMES]
    assert columns[0] == "number"
    assert columns[1 : 1 + len(params)] == sorted(params)
    assert columns[1 + len(params) : 1 + len(params) + len(metrics)] == metrics
    assert columns.index("state") > columns.index(metrics[-1]) and columns[-1] == "error"
    # Whole-number columns stay whole numbers, missing values and all (the waiting retry has none).
    assert str(frame["worker"].dtype) == "Int64" and str(frame["number"].dtype) == "Int64"
    integer_params = [c for c in params if all(isinstance(v, int) for v in frame[c].dropna().tolist())]
    assert integer_params and all(str(frame[c].dtype) == "Int64" for c in integer_params)
    text = frame.to_csv(index=False)
    import csv

    written = {row["worker"] for row in csv.DictReader(io.StringIO(text))}
    assert written == {"0", "1", ""}  # written 0, not 0.0; the waiting retry's is empty
    assert text.splitlines()[0].split(",")[0] == "number"


def test_the_knee_is_nearest_the_ideal_point_by_euclidean_distance_not_l1() -> None:
    from greenml.results import knee_index

    # Two losses, each already spanning 0..1 over the front, so normalising leaves them as they are:
    #   point        (a, b)        L1 = a + b     Euclidean = sqrt(a^2 + b^2)
    #   0  A         (0.00, 1.00)  1.00           1.000
    #   1  D         (0.10, 0.75)  0.85 (least)   sqrt(0.01 + 0.5625) = sqrt(0.5725) = 0.757
    #   2  C         (0.45, 0.45)  0.90           sqrt(0.2025 + 0.2025) = sqrt(0.405) = 0.636 (least)
    #   3  B         (1.00, 0.00)  1.00           1.000
    # None dominates another. L1 would pick D (index 1); the Euclidean knee is C (index 2).
    front = [[0.0, 1.0], [0.1, 0.75], [0.45, 0.45], [1.0, 0.0]]
    assert knee_index(front) == 2
    # Units do not matter: each loss is min-max normalised over the front (joules and an offset
    # error rate here), so the same point is the knee.
    assert knee_index([[1000.0 * a, 0.2 + 0.1 * b] for a, b in front]) == 2
