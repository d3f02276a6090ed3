"""Many workers on one study, as real processes on SQLite, PostgreSQL and the gRPC storage proxy.

The workers run greenml's own loop (prepare, register, budget checks, heartbeats, the teacher
claim); the trial itself is :func:`greenml.testing.synthetic.evaluate`, which spends a set time
asleep and on the CPU, so the tests can kill a worker in the middle of a trial.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from greenml.config import MeasureConfig
from greenml.errors import ConfigError, GreenMLError
from greenml.ledger import spent_energy_j
from greenml.records import SURPLUS as SURPLUS_ATTR
from greenml.search import SearchConfig, prepare, run, run_workers
from greenml.search import _loop as _study
from greenml.search._pool import _worker_main
from greenml.search._workers import Claim, register_worker, worker_seed
from greenml.storage import Heartbeat, helper_name, open_storage
from greenml.testing.synthetic import evaluate

FAST_HEARTBEAT = Heartbeat(interval_s=1, grace_s=3)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def grpc_proxy(tmp_path: Path) -> Iterator[str]:
    """``greenml storage-proxy`` in front of a SQLite file, as a user would start it."""
    port = _free_port()
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "greenml",
            "storage-proxy",
            "--storage",
            f"sqlite:///{tmp_path}/proxied.db",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proxy.poll() is None, proxy.stderr.read() if proxy.stderr else ""
            time.sleep(0.2)
        yield f"grpc://127.0.0.1:{port}"
    finally:
        proxy.send_signal(signal.SIGINT)
        proxy.wait(timeout=30)


@pytest.fixture(params=["sqlite", "postgresql", "grpc"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/workers.db"
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(request.getfixturevalue("grpc_proxy"))


def _config(storage: str, tmp_path: Path, **overrides: Any) -> SearchConfig:
    settings: dict[str, Any] = {
        "storage": storage,
        "study": f"workers-{uuid.uuid4().hex[:8]}",
        "trials": 6,
        "measure": MeasureConfig(meter="estimate", idle_seconds=0, watts_per_core=10.0),
        "heartbeat": FAST_HEARTBEAT,
        "distillation": False,
        "artifacts": str(tmp_path / "artifacts"),
    }
    settings.update(overrides)
    return SearchConfig(**settings)


def _param_sets(study: Any) -> list[tuple[Any, ...]]:
    return [tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False) if t.params]


def _reload(config: SearchConfig) -> Any:
    return optuna.load_study(study_name=config.study_name, storage=open_storage(config.storage_url))


def test_two_workers_share_one_study_without_loss_or_repeats(storage_url: str, tmp_path: Path) -> None:
    config = _config(storage_url, tmp_path, workers=2, trials=8)
    parent = prepare(config, register=False)
    lines: list[str] = []
    try:
        outcome = run_workers(parent, lines.append, evaluate=functools.partial(evaluate, sleep_s=0.3))
    finally:
        parent.close()
    study = _reload(config)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 8 == outcome.completed
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    params = _param_sets(study)
    assert len(params) == len(set(params)), "two trials got the same parameters"
    assert {t.user_attrs["worker"]["number"] for t in study.trials} == {0, 1}
    assert all(t.user_attrs["hardware"]["cpu"] for t in study.trials)
    # The parent printed each finished trial once, whichever worker ran it.
    printed = [line for line in lines if line.startswith("[")]
    assert sorted(int(line.split("trial ")[1].split()[0]) for line in printed) == sorted(
        t.number for t in study.trials
    )


def _start_worker(config: SearchConfig, sleep_s: float) -> Any:
    context = multiprocessing.get_context("spawn")
    messages, stop = context.Queue(), context.Event()
    process = context.Process(
        target=_worker_main,
        args=(config, [], None, functools.partial(evaluate, sleep_s=sleep_s), messages, stop),
    )
    process.keep = (messages, stop)  # kept alive with the process
    process.start()
    return process


def _wait_for(condition: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "grpc"])
def test_killed_worker_trial_is_failed_within_the_grace_period_and_retried(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = {
        "sqlite": lambda: f"sqlite:///{tmp_path}/kill.db",
        "postgresql": lambda: request.getfixturevalue("postgres_url"),
        "grpc": lambda: request.getfixturevalue("grpc_proxy"),
    }[backend]()
    config = _config(url, tmp_path, trials=3)
    victim = _start_worker(config, sleep_s=120.0)
    try:
        running = _wait_for(
            lambda: (
                [
                    t
                    for t in _reload(config).get_trials(states=(TrialState.RUNNING,))
                    if "worker" in t.user_attrs and len(t.params) == 3  # asleep mid-trial
                ]
                if config.study_name in optuna.get_all_study_names(open_storage(url))
                else None
            ),
            90,
            "the victim's first trial",
        )
        victim.kill()  # SIGKILL: no cleanup, no last heartbeat
        victim.join()
        killed_at = time.time()
    finally:
        if victim.is_alive():
            victim.kill()
    dead = running[0]

    # The next run of the same command: it fails the stale trial and runs its parameters again.
    search = prepare(config, evaluate=functools.partial(evaluate, sleep_s=0.05))
    try:
        run(search)
    finally:
        search.close()
    study = _reload(config)
    original = study.trials[dead.number]
    assert original.state == TrialState.FAIL
    assert original.datetime_complete is not None
    grace = config.heartbeat.grace_s
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retries) == 1
    assert original.params and retries[0].params == original.params
    assert retries[0].state == TrialState.COMPLETE
    assert retries[0].user_attrs["worker"]["number"] == 1  # the rerun registered as worker 1
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    # Failed once its last heartbeat was older than the grace period: not before, and not much
    # after (the rerun checks before each trial; it takes a few seconds to start).
    failed_after = original.datetime_complete.timestamp() - killed_at
    interval = config.heartbeat.interval_s
    assert grace - interval <= failed_after <= grace + interval + 20


def test_a_budget_is_the_studys_not_each_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/budget.db"
    # Each trial spends 0.3 s of CPU time: about 3 J at the fixed 10 W per core.
    budget = 10.0
    config = _config(url, tmp_path, workers=2, trials=None, energy_budget_j=budget)
    parent = prepare(config, register=False)
    try:
        outcome = run_workers(parent, evaluate=functools.partial(evaluate, cpu_s=0.3))
    finally:
        parent.close()
    study = _reload(config)
    spent = spent_energy_j(study)
    per_trial = [t.user_attrs["trial_energy_j"] for t in study.trials]
    assert "energy budget" in outcome.stop_reason
    assert spent >= budget
    # Overshoot is bounded by the trials in flight when the budget was crossed: one per worker.
    assert spent <= budget + config.workers * max(per_trial)
    # Counted per worker, each would have spent the whole budget: about twice as many trials.
    assert len(study.trials) < 2 * budget / min(per_trial)


def test_the_teacher_is_trained_once_for_two_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/teacher.db"
    config = _config(url, tmp_path, workers=2, trials=4, distillation=True)
    parent = prepare(config, register=False)
    try:
        run_workers(parent, evaluate=functools.partial(evaluate, sleep_s=0.1))
    finally:
        parent.close()
    study = _reload(config)
    helper = optuna.load_study(study_name=helper_name(config.study_name, "claims"), storage=open_storage(url))
    claims = [t for t in helper.trials if t.user_attrs.get("kind") == "claim:teacher"]
    assert [t.state for t in claims].count(TrialState.COMPLETE) == 1
    stored = list((tmp_path / "artifacts").rglob("*"))
    assert len([p for p in stored if p.is_file()]) == 1
    entry = study.user_attrs["ledger:teacher"]
    assert entry["energy_j"] > 0 and entry["seconds"] > 0
    assert study.user_attrs["teacher"]["val_accuracy"] > 0.9
    # The teacher's energy is the study's, outside every trial, and counted once.
    # (A trial started in the same instant as the last one is stored as surplus: it ran nothing.)
    ran = [t for t in study.trials if SURPLUS_ATTR not in t.user_attrs]
    trials_j = sum(t.user_attrs["trial_energy_j"] for t in ran)
    assert spent_energy_j(study) == pytest.approx(trials_j + entry["energy_j"])
    assert all(set(t.user_attrs["phases"]) == {"propose", "train", "benchmark"} for t in ran)


def test_a_claim_goes_to_the_first_live_claimer_and_passes_on_when_it_dies(tmp_path: Path) -> None:
    config = _config(f"sqlite:///{tmp_path}/claims.db", tmp_path)
    search = prepare(config)
    try:
        other = register_worker(search.study, {"cpu": "x"}, FAST_HEARTBEAT)
        first = Claim(search.study, "teacher", search.worker, FAST_HEARTBEAT)
        second = Claim(search.study, "teacher", other, FAST_HEARTBEAT)
        assert first.won and not second.won
        assert second.holder["worker"]["number"] == search.worker.number
        second.release(done=False)
        # The first claimer dies: its pulse stops, and after the grace period a new claim wins.
        first._pulse.stop()
        third = Claim(search.study, "teacher", other, FAST_HEARTBEAT)
        assert not third.won
        third.release(done=False)
        time.sleep(FAST_HEARTBEAT.grace_s + 0.5)
        fourth = Claim(search.study, "teacher", other, FAST_HEARTBEAT)
        assert fourth.won
        fourth.release(done=True)
        # Done is done: nobody claims it again.
        fifth = Claim(search.study, "teacher", search.worker, FAST_HEARTBEAT)
        assert not fifth.won
        fifth.release(done=False)
        other.close()
    finally:
        search.close()


def test_worker_numbers_are_unique_and_seeds_differ(tmp_path: Path) -> None:
    config = _config(f"sqlite:///{tmp_path}/numbers.db", tmp_path)
    search = prepare(config)
    try:
        workers = [register_worker(search.study, {}, FAST_HEARTBEAT) for _ in range(4)]
        numbers = [search.worker.number, *(w.number for w in workers)]
        assert numbers == [0, 1, 2, 3, 4]
        for worker in workers:
            worker.close()
    finally:
        search.close()
    assert worker_seed(7, 0) == 7
    seeds = {worker_seed(7, n) for n in range(50)}
    assert len(seeds) == 50
    assert worker_seed(7, 3) == worker_seed(7, 3)


def test_one_worker_samples_the_same_sequence_as_before_workers(tmp_path: Path) -> None:
    """Worker 0 with seed S asks what a plain Optuna study with greenml's old sampler asked."""
    config = _config(f"sqlite:///{tmp_path}/seq.db", tmp_path, trials=14, seed=3, sampler="tpe")
    search = prepare(config, evaluate=evaluate)
    try:
        run(search)
    finally:
        search.close()
    ours = [t.params for t in _reload(config).trials]

    sampler = optuna.samplers.TPESampler(seed=3, n_startup_trials=7)  # greenml before workers
    plain = optuna.create_study(directions=config.directions, sampler=sampler)

    def objective(trial: optuna.Trial) -> list[float]:
        class Context:
            meter = search.meter
            on_phase = None

        metrics = evaluate(trial, Context())
        return [metrics[name] for name in config.objectives]

    plain.optimize(objective, n_trials=14)
    assert ours == [t.params for t in plain.trials]
    # and past the random start-up, TPE's own choices matched too
    assert len(ours) > 7


def test_a_second_worker_does_not_repeat_the_first(tmp_path: Path) -> None:
    config = _config(f"sqlite:///{tmp_path}/two.db", tmp_path, sampler="random", trials=3)
    first = prepare(config, evaluate=evaluate)
    try:
        run(first)
    finally:
        first.close()
    again = _config(config.storage_url, tmp_path, study=config.study, sampler="random", trials=6)
    second = prepare(again, evaluate=evaluate)
    try:
        assert second.worker is not None and second.worker.number == 1
        run(second)
    finally:
        second.close()
    params = _param_sets(_reload(config))
    assert len(params) == 6 == len(set(params))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"epochs": (2, 3)}, "epochs"),
        ({"energy_window_s": 0.5}, "energy_window_s"),
        ({"latency_s": 0.5}, "latency_s"),
        (
            {"measure": MeasureConfig(meter="estimate", idle_seconds=0, watts_per_core=5.0)},
            "cpu_watts_per_core",
        ),
        ({"dataset": "mnist1d"}, "dataset"),
        ({"space": "cnn"}, "space"),
        ({"distillation": True}, "distillation"),
        ({"objectives": ("accuracy", "latency_ms")}, "objectives"),
        ({"heartbeat": Heartbeat(interval_s=1, grace_s=10)}, "heartbeat"),
    ],
)
def test_resume_refuses_settings_that_make_trials_incomparable(
    tmp_path: Path, change: dict[str, Any], named: str
) -> None:
    config = _config(f"sqlite:///{tmp_path}/resume.db", tmp_path)
    prepare(config).close()
    changed = _config(config.storage_url, tmp_path, study=config.study, **change)
    with pytest.raises(ConfigError, match=rf"created with {named} .*\(--"):
        prepare(changed)
    # Nothing was written: still one worker registered.
    helper = optuna.load_study(
        study_name=helper_name(config.study_name, "workers"), storage=open_storage(config.storage_url)
    )
    assert len(helper.trials) == 1


def test_resume_refuses_another_device(tmp_path: Path) -> None:
    config = _config(f"sqlite:///{tmp_path}/device.db", tmp_path)
    search = prepare(config)
    settings = {**search.study.user_attrs["comparable"], "device": "cuda:0"}
    search.study.set_user_attr("comparable", settings)  # as if a GPU machine had created it
    search.close()
    with pytest.raises(ConfigError, match=r"created with device 'cuda:0' \(--device\), not 'cpu'"):
        prepare(config)


def test_workers_refuse_a_storage_only_one_process_can_see(tmp_path: Path) -> None:
    config = _config("sqlite:///:memory:", tmp_path, workers=2)
    with pytest.raises(ConfigError, match="in-memory SQLite database lives inside one process"):
        prepare(config, register=False)


def test_cli_workers_end_to_end(tmp_path: Path) -> None:
    """``greenml search --workers 2``: real trials, each one's progress printed once."""
    storage = f"sqlite:///{tmp_path}/cli.db"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenml",
            "search",
            "--trials",
            "3",
            "--epochs",
            "1:2",
            *_cli_common(storage),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    study = optuna.load_study(study_name="mlp-digits-random-seed0", storage=storage)
    assert len(progress) == len(study.trials)  # each trial once, not once per worker
    # The parent follows the running trials' phases through the storage (it polls every half
    # second, so a short phase can pass unseen; three trials' phases cannot all).
    seen = re.findall(r"^  trial (\d+) \(worker (\d)\): (\w+)", done.stderr, flags=re.MULTILINE)
    assert seen
    workers = {t.number: t.user_attrs["worker"]["number"] for t in study.trials}
    assert all(workers[int(number)] == int(worker) for number, worker, _ in seen)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    assert {t.user_attrs["worker"]["number"] for t in study.trials} <= {0, 1}


def _training(storage: str, name: str) -> int:
    """Running trials past their start: worker recorded and parameters sampled (training by now)."""
    study = optuna.load_study(study_name=name, storage=storage)
    running = study.get_trials(states=(TrialState.RUNNING,))
    return sum(1 for t in running if "worker" in t.user_attrs and "runtime" in t.params)


def _cli_common(storage: str) -> list[str]:
    return [
        *("--storage", storage, "--workers", "2", "--no-distillation", "--idle-seconds", "0"),
        *("--min-energy-window", "0.05", "--min-latency-window", "0.05", "--no-report"),
    ]


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_cli_workers_stop_cleanly_on_ctrl_c_or_sigterm_to_the_group(tmp_path: Path, signal_name: str) -> None:
    """Ctrl-C as a terminal sends it, or a scheduler's SIGTERM: to every process of the group."""
    storage = f"sqlite:///{tmp_path}/cli.db"
    search = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "greenml",
            "search",
            "--study",
            "long",
            "--trials",
            "50",
            "--epochs",
            "200:300",
            *_cli_common(storage),
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        _wait_for(
            lambda: "long" in optuna.get_all_study_names(storage) and _training(storage, "long") == 2,
            120,
            "both workers' first trials",
        )
        os.killpg(search.pid, getattr(signal, signal_name))
        _, stderr = search.communicate(timeout=120)
    finally:
        if search.poll() is None:
            os.killpg(search.pid, signal.SIGKILL)
    assert search.returncode == 130, stderr
    assert "Resume with: greenml search --study long" in stderr
    assert "Traceback" not in stderr
    long = optuna.load_study(study_name="long", storage=storage)
    # (what each trial recorded, for a failure here to say where the signal landed)
    seen = [(t.state.name, t.user_attrs.get("error"), t.user_attrs.get("progress")) for t in long.trials]
    assert [t.state for t in long.trials] == [TrialState.FAIL, TrialState.FAIL], (seen, stderr)
    assert all("KeyboardInterrupt" in t.user_attrs["error"] for t in long.trials), (seen, stderr)


def test_workers_that_all_stop_on_one_error_report_it_once(tmp_path: Path) -> None:
    """The study's teacher is in another artifact folder: every worker stops on the same error."""
    config = _config(f"sqlite:///{tmp_path}/err.db", tmp_path, distillation=True)
    first = prepare(config)
    first.study.set_user_attr(
        "teacher", {"artifact_id": "missing", "space": "mlp", "params": {}, "epochs": 1}
    )
    first.close()
    parent = prepare(dataclasses.replace(config, workers=2), register=False)
    try:
        with pytest.raises(GreenMLError, match="distillation teacher \\(artifact missing\\) is not in"):
            run_workers(parent, evaluate=evaluate)
    finally:
        parent.close()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_a_stale_trial_failed_twice_at_once_is_queued_once(tmp_path: Path) -> None:
    from greenml.storage import _retry_callback

    config = _config(f"sqlite:///{tmp_path}/twice.db", tmp_path)
    search = prepare(config)
    try:
        trial = search.study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        search.study.tell(trial, state=TrialState.FAIL)
        dead = search.study.trials[trial.number]
        retry = _retry_callback(FAST_HEARTBEAT)
        retry(search.study, dead)
        retry(search.study, dead)  # the second worker that failed it in the same instant
        waiting = search.study.get_trials(states=(TrialState.WAITING,))
        assert len(waiting) == 1 and waiting[0].params == dead.params
    finally:
        search.close()


def test_a_claim_not_yet_labelled_still_counts(tmp_path: Path) -> None:
    from greenml.search._workers import _ask, _helper

    config = _config(f"sqlite:///{tmp_path}/label.db", tmp_path)
    search = prepare(config)
    try:
        _ask(_helper(search.study, "claims"))  # another worker's claim, a moment before its label
        claim = Claim(search.study, "teacher", search.worker, FAST_HEARTBEAT)
        assert not claim.won
        claim.release(done=False)
    finally:
        search.close()


def test_a_second_proxy_on_a_taken_port_is_refused(
    grpc_proxy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from greenml.cli import main

    port = grpc_proxy.rsplit(":", 1)[1]
    argv = [
        "storage-proxy",
        "--storage",
        f"sqlite:///{tmp_path}/other.db",
        "--host",
        "127.0.0.1",
        "--port",
        port,
    ]
    assert main(argv) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_the_meter_compared_on_resume_is_the_one_used(tmp_path: Path) -> None:
    config = _config(
        f"sqlite:///{tmp_path}/meter.db", tmp_path, measure=MeasureConfig(meter="auto", idle_seconds=0)
    )
    prepare(config).close()
    # auto resolves to the CPU-time estimate here: the same meter, so the study resumes.
    same = _config(
        config.storage_url,
        tmp_path,
        study=config.study,
        measure=MeasureConfig(meter="estimate", idle_seconds=0),
    )
    prepare(same).close()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_a_trial_started_alongside_the_last_one_is_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers see 2 of 3 trials complete at the same instant and both start: one is surplus."""
    import threading

    from greenml.report import write_report
    from greenml.search import _loop as _study

    config = _config(f"sqlite:///{tmp_path}/race.db", tmp_path, trials=3)
    search = prepare(config, evaluate=evaluate)
    try:
        run(search)  # 3 complete
        # Rewind to the race: "another worker" holds trial 3 running, 2 complete before it.
        study = search.study
        racing = study.ask()
        racing.set_user_attr("worker", {"number": 9, "host": "elsewhere", "pid": 1})
        search.config = dataclasses.replace(config, trials=4)
        calls = {"n": 0}
        real = _study._pending

        def pending_as_seen_a_moment_ago(study: Any) -> int:
            calls["n"] += 1
            return 3 if calls["n"] == 1 else real(study)

        monkeypatch.setattr(_study, "_pending", pending_as_seen_a_moment_ago)
        threading.Timer(2.0, lambda: study.tell(racing, [0.5, 1e-4, 0.1])).start()
        run(search)
    finally:
        search.close()
    study = _reload(config)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4
    surplus = [t for t in study.trials if "surplus" in t.user_attrs]
    assert len(surplus) == 1
    assert surplus[0].state == TrialState.PRUNED and surplus[0].params == {}
    assert "already had 4 trials complete or running" in surplus[0].user_attrs["surplus"]
    # The report takes it in its stride.
    assert write_report(config.study_name, config.storage_url, tmp_path / "race.html").exists()


def _export_interrupted(trial: Any, ctx: Any) -> dict[str, float]:
    """As ``torch.onnx.export`` does when Ctrl-C lands in one of its lazy imports: its own error,
    caused by an AttributeError (the half-imported module), raised while handling the interrupt."""
    trial.suggest_int("width", 1, 4)
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        try:
            raise AttributeError("module 'torch._dynamo' has no attribute 'exc'")
        except AttributeError as missing:
            raise RuntimeError("Failed to export the model with torch.export.") from missing


def test_an_interrupt_a_library_wraps_in_its_own_error_still_stops_the_run(tmp_path: Path) -> None:
    """CI once saw a SIGTERM during a worker's first ONNX export (the cost phase) recorded as
    ``TorchExportError``; without workers, the search would have gone on to its next trial."""
    config = _config(f"sqlite:///{tmp_path}/wrapped.db", tmp_path, trials=3)
    search = prepare(config, evaluate=_export_interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(search)
    finally:
        search.close()
        _study.INTERRUPTED.clear()
    trials = _reload(config).trials
    assert [t.state for t in trials] == [TrialState.FAIL]
    assert trials[0].user_attrs["error"] == (
        "KeyboardInterrupt, surfaced as RuntimeError: Failed to export the model with torch.export."
    )


def test_an_unrelated_error_fails_only_its_trial(tmp_path: Path) -> None:
    """The other side: an error with no interrupt in its chain is an ordinary failed trial."""

    def broken(trial: Any, ctx: Any) -> dict[str, float]:
        if trial.number == 0:
            raise RuntimeError("export failed")
        return evaluate(trial, ctx)

    config = _config(f"sqlite:///{tmp_path}/broken.db", tmp_path, trials=2)
    search = prepare(config, evaluate=broken)
    try:
        run(search)
    finally:
        search.close()
    trials = _reload(config).trials
    assert [t.state for t in trials][:2] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[0].user_attrs["error"] == "RuntimeError: export failed"


def test_an_interrupt_is_found_through_the_cause_and_the_context_alike() -> None:
    """``except KeyboardInterrupt: raise X from other``: the interrupt is X's context, behind
    its cause."""
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("export failed") from ValueError("unrelated")
    except RuntimeError as error:
        assert _study._interrupted(error)
    assert not _study._interrupted(RuntimeError("export failed"))
