"""The report's data on workers, their hardware, the ledger's items and retried trials."""

from __future__ import annotations

import optuna
import pytest
from _report_helpers import OBJECTIVES

from greenml.ledger import spent_energy_j
from greenml.report import default_reference, footprint, hypervolume_history, load_record
from greenml.report._basis import energy_basis
from greenml.report._workers import hardware_differences, workers
from greenml.testing.studies import make_study, worker

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _workers_study(*machines: dict[str, object], **options: object) -> optuna.Study:
    return make_study(None, n_trials=13, workers=machines, **options)  # type: ignore[arg-type]


def test_every_worker_seen_in_the_trials_is_listed() -> None:
    study = _workers_study(worker("node-a"), worker("node-b"), worker("node-c"), stale=[4, 12])
    listed = workers(load_record(study))
    # Read back from the raw records: the worker of every trial that ran (a waiting retry has not).
    ran: dict[int, int] = {}
    for trial in study.get_trials():
        if trial.state != optuna.trial.TrialState.WAITING:
            number = trial.user_attrs["worker"]["number"]
            ran[number] = ran.get(number, 0) + 1
    assert [(w.number, w.host, w.pid, w.trials) for w in listed] == [
        (0, "node-a", 1000, ran[0]),
        (1, "node-b", 1001, ran[1]),
        (2, "node-c", 1002, ran[2]),
    ]
    assert sum(ran.values()) == 13  # the stale last trial's waiting retry is not counted
    assert {w.hardware["cpu"] for w in listed} == {"synthetic CPU"}
    assert {w.hardware["meter"] for w in listed} == {"estimate"}
    assert hardware_differences(listed) == []  # identical machines: comparable


@pytest.mark.parametrize(
    ("other", "differs"),
    [
        (worker("node-b", cpu="AMD EPYC 9654 (synthetic)"), ["CPU model"]),
        (worker("node-b", cpu_count=64), ["logical CPUs"]),
        (worker("node-b", gpus=["cuda:0 NVIDIA H100 (synthetic)"]), ["GPUs"]),
        (worker("node-b", basis="measured"), ["meter"]),  # RAPL beside the CPU-time estimate
        (
            worker("node-b", cpu="other", cpu_count=8, basis="measured"),
            ["CPU model", "logical CPUs", "meter"],
        ),
    ],
)
def test_workers_on_different_hardware_are_told_apart(other: dict[str, object], differs: list[str]) -> None:
    listed = workers(load_record(_workers_study(worker("node-a"), other)))
    assert len(listed) == 2
    assert hardware_differences(listed) == differs


def test_the_same_gpu_model_on_another_index_is_no_difference() -> None:
    listed = workers(
        load_record(
            _workers_study(
                worker("node-a", gpus=["cuda:0 NVIDIA H100 (synthetic)"], basis="partly estimated"),
                worker("node-a", gpus=["cuda:1 NVIDIA H100 (synthetic)"], basis="partly estimated"),
            )
        )
    )
    assert [w.number for w in listed] == [0, 1] and {w.host for w in listed} == {"node-a"}
    assert hardware_differences(listed) == []


def test_an_older_study_lists_its_study_hardware_as_one_worker(study: optuna.Study) -> None:
    record = load_record(study)
    assert all("worker" not in t.user_attrs for t in study.get_trials())  # as before workers
    (only,) = workers(record)
    assert (only.number, only.host, only.pid, only.trials) == (None, None, None, len(record.trials))
    assert only.hardware == study.user_attrs["hardware"]
    assert hardware_differences([only]) == []
    # a study created by an older greenml with no trial yet: its attribute alone
    empty = make_study(None, n_trials=0)
    (alone,) = workers(load_record(empty))
    assert alone.trials == 0 and alone.hardware == empty.user_attrs["hardware"]


def test_the_teacher_is_an_item_of_the_footprint_and_counted_in_its_total() -> None:
    study = _workers_study(worker("node-a"), worker("node-b"), ledger={"teacher": 250.0}, stale=[5])
    record = load_record(study)
    fp = footprint(record)
    (teacher,) = fp.ledger
    assert (teacher.name, teacher.energy_j, teacher.worker, teacher.host) == ("teacher", 250.0, 0, "node-a")
    assert teacher.seconds == study.user_attrs["ledger:teacher"]["seconds"]
    assert teacher.energy_basis == "estimated"
    assert teacher.co2_g == pytest.approx(250.0 / 3.6e6 * 475.0)
    # the total is the study's spent energy as the ledger counts it: trials (the stale one with
    # what it spent before its worker died) and the teacher, never inside a trial's phase
    trials_j = sum(
        t.user_attrs.get("trial_energy_j", t.user_attrs.get("trial_energy_so_far_j", 0.0))
        for t in study.get_trials()
    )
    assert fp.energy_j == pytest.approx(trials_j + 250.0)
    assert fp.energy_j == pytest.approx(spent_energy_j(study))
    assert fp.trial_energy_j == pytest.approx(trials_j)
    assert sum(fp.phase_energy_j.values()) == pytest.approx(trials_j)  # the phases hold the trials alone
    assert fp.co2_g == pytest.approx(fp.energy_j / 3.6e6 * 475.0)
    assert fp.energy_basis == "estimated"
    # the hypervolume's energy axis counts the teacher from the start
    reference = default_reference([record], OBJECTIVES)
    assert reference is not None
    history = hypervolume_history(record, OBJECTIVES, reference)
    first = record.finished()[0]
    assert history[0].energy_kwh == pytest.approx((250.0 + (first.energy_j or 0.0)) / 3.6e6)
    finished_j = sum(t.energy_j or 0.0 for t in record.finished())
    assert history[-1].energy_kwh == pytest.approx((250.0 + finished_j) / 3.6e6)


def test_other_ledger_entries_are_items_too() -> None:
    record = load_record(make_study(None, n_trials=6, ledger={"teacher": 10.0, "calibration": 2.5}))
    fp = footprint(record)
    assert [(item.name, item.energy_j, item.worker) for item in fp.ledger] == [
        ("calibration", 2.5, None),  # booked by no recorded worker (a study without workers)
        ("teacher", 10.0, None),
    ]
    assert fp.energy_j == pytest.approx(sum(t.energy_j or 0.0 for t in record.trials) + 12.5)
    assert footprint(load_record(make_study(None, n_trials=6))).ledger == []


def test_a_trial_whose_worker_died_is_told_and_its_retry_linked() -> None:
    study = _workers_study(worker("node-a"), worker("node-b"), stale=[2, 12], fail_every=0)
    record = load_record(study)
    by_number = {t.number: t for t in record.trials}
    dead, retry = by_number[2], by_number[3]
    assert dead.state == "FAIL" and dead.stale and dead.traceback is None
    assert dead.error == "its worker stopped sending heartbeats (killed or lost); retried as trial 3"
    assert (dead.worker_number, dead.host) == (0, "node-a")
    assert dead.energy_j == study.trials[2].user_attrs["trial_energy_so_far_j"] > 0  # spent before it died
    assert (retry.retry_of, retry.state, retry.error, retry.worker_number) == (2, "COMPLETE", None, 1)
    assert retry.params == dead.params
    # the last trial's retry is queued, not run: no worker, no energy, though it copies the dead one's
    last, queued = by_number[12], by_number[13]
    assert last.error is not None and last.error.endswith("; retried as trial 13")
    assert (queued.state, queued.retry_of, queued.worker, queued.energy_j) == ("WAITING", 12, None, None)
    assert "worker" in study.trials[13].user_attrs
    assert [t.number for t in record.trials if t.stale] == [2, 12]
    # a stale trial never wrote its provenance: the study's basis stays what its trials recorded
    assert energy_basis(record.trials).basis == "estimated"
    assert footprint(record).energy_basis == "estimated"
    assert footprint(record).co2_g is not None
    # a trial that failed with an error of its own is no stale trial
    failed = load_record(make_study(None, n_trials=9, fail_every=9)).trials[8]
    assert failed.error == "RuntimeError: CUDA out of memory (synthetic)" and not failed.stale
    # nor is a stale trial nobody retried (its retries spent) told it was
    bare = optuna.create_study()
    bare.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    (alone,) = load_record(bare).trials
    assert alone.stale and alone.error == "its worker stopped sending heartbeats (killed or lost)"


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_synthetic_workers_and_retries_record_what_the_search_and_optuna_write() -> None:
    machines = (worker("node-a"), worker("node-b", basis="partly estimated"))
    study = make_study(None, n_trials=8, workers=machines, ledger={"teacher": 40.0}, stale=[3, 7])
    trials = study.get_trials()
    for trial in trials[:-1]:  # every trial that ran: its worker, and its machine with its meter
        index = trial.number % 2
        assert trial.user_attrs["worker"] == {
            "number": index,
            "host": f"node-{'ab'[index]}",
            "pid": 1000 + index,
        }
        assert trial.user_attrs["hardware"]["host"] == trial.user_attrs["worker"]["host"]
        if "provenance" in trial.user_attrs:
            assert trial.user_attrs["hardware"]["meter"] == trial.user_attrs["provenance"]["meter"]
    assert [t.user_attrs["hardware"]["meter"] for t in trials[:2]] == ["estimate", "nvml+estimate"]
    assert study.user_attrs["hardware"] == trials[0].user_attrs["hardware"]  # the first worker's
    entry = study.user_attrs["ledger:teacher"]
    assert entry["worker"] == trials[0].user_attrs["worker"] and entry["energy_j"] == 40.0
    assert study.user_attrs["teacher"]["artifact_id"] == "synthetic"
    dead = trials[3]
    assert dead.state == optuna.trial.TrialState.FAIL
    assert set(dead.user_attrs) == {"worker", "hardware", "trial_energy_so_far_j"}  # no error, no window
    # The retries are what Optuna's own callback makes of the dead trials.
    for number, retry in ((3, trials[4]), (7, trials[8])):
        replay = optuna.create_study(directions=study.directions)
        optuna.storages.RetryHeartbeatStaleTrialCallback()(replay, trials[number])
        (made,) = replay.get_trials()
        kept = {key: retry.system_attrs[key] for key in ("failed_trial", "retry_history")}
        assert made.system_attrs == kept == {"failed_trial": number, "retry_history": [number]}
        assert made.params == retry.params
    assert trials[8].state == optuna.trial.TrialState.WAITING
    assert trials[8].user_attrs == trials[7].user_attrs  # the queued retry copies them, as Optuna's does
