"""Many workers on one study: nothing lost, nothing repeated, throughput, and storage time per trial.

    python benchmarks/workers.py [--storage postgresql://postgres@127.0.0.1:5432/test] [--quick]

The workers are greenml's own (``greenml.search.run_workers``: registration, per-worker seeds,
heartbeats, the study's budget read before each trial); the trial is the synthetic stand-in
``greenml.testing.synthetic.evaluate``, which sleeps for a set time, so the figures measure the
machinery and not the CPU (this machine has 2 cores).

1. Loss and repeats: 4 workers, 100 trials (25 each on average), 0.2 s trials. Counts complete,
   failed, running and waiting trials, and repeated parameter sets (expected: 100, 0, 0, 0, 0).
2. Throughput: trials per second of 1 worker and of 2 workers, 20 trials of 1 s asleep each, TPE.
   Measured from the first trial's start to the last trial's end (process start-up left out).
   Target: 2 workers >= 1.9x 1 worker.
3. Storage time per trial at 8 workers (random sampler, so sampling costs ~nothing): for each
   worker, the time between its trials' windows (storage reads and writes before, during and
   after each trial, and Optuna's ask/tell), divided by its trials.
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import time
import uuid
from collections import defaultdict
from typing import Any

from greenml import records

DEFAULT_STORAGE = "postgresql://postgres@127.0.0.1:5432/test"


def _run(storage: str, workers: int, trials: int, sleep_s: float, sampler: str = "tpe") -> Any:
    from greenml.config import MeasureConfig
    from greenml.search import SearchConfig, prepare, run_workers
    from greenml.testing.synthetic import evaluate

    config = SearchConfig(
        storage=storage,
        study=f"bench-workers-{uuid.uuid4().hex[:8]}",
        trials=trials,
        sampler=sampler,
        workers=workers,
        distillation=False,
        measure=MeasureConfig(meter="estimate", idle_seconds=0),
    )
    parent = prepare(config, register=False)
    try:
        run_workers(parent, evaluate=functools.partial(evaluate, sleep_s=sleep_s))
    finally:
        parent.close()
    return parent.study


def _span_s(study: Any) -> float:
    trials = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    return float((end - start).total_seconds())


def loss_and_repeats(storage: str, trials: int) -> None:
    from optuna.trial import TrialState

    study = _run(storage, workers=4, trials=trials, sleep_s=0.2)
    count = {state: len(study.get_trials(states=(state,))) for state in TrialState}
    params = [tuple(sorted(t.params.items())) for t in study.trials if t.params]
    per_worker = defaultdict(int)
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        per_worker[(records.trial_worker(trial) or {})["number"]] += 1
    print(
        f"4 workers, {trials} trials: complete {count[TrialState.COMPLETE]}, failed {count[TrialState.FAIL]}, "
        f"not run (started when {trials} were complete or running) {count[TrialState.PRUNED]}, "
        f"running {count[TrialState.RUNNING]}, waiting {count[TrialState.WAITING]}, "
        f"repeated parameter sets {len(params) - len(set(params))}; trials per worker {dict(sorted(per_worker.items()))}"
    )


def throughput(storage: str, trials: int) -> None:
    rates = {}
    for workers in (1, 2):
        study = _run(storage, workers=workers, trials=trials, sleep_s=1.0)
        rates[workers] = len(study.trials) / _span_s(study)
        print(f"{workers} worker(s), {trials} trials of 1 s asleep: {rates[workers]:.3f} trials/s")
    print(f"throughput 2 workers / 1 worker: {rates[2] / rates[1]:.2f}x (target >= 1.9x)")


def storage_time(storage: str, trials: int) -> None:
    study = _run(storage, workers=8, trials=trials, sleep_s=0.5, sampler="random")
    by_worker: dict[int, list[Any]] = defaultdict(list)
    for trial in study.trials:
        by_worker[(records.trial_worker(trial) or {})["number"]].append(trial)
    overheads = []
    for runs in by_worker.values():
        runs.sort(key=lambda t: t.datetime_start)
        span = (runs[-1].datetime_complete - runs[0].datetime_start).total_seconds()
        inside = sum(records.trial_metrics(t)["trial_seconds"] for t in runs)
        overheads.append((span - inside) / len(runs))
    print(
        f"8 workers, {trials} trials of 0.5 s: time per trial outside the trial's window (storage, "
        f"ask/tell) median {statistics.median(overheads) * 1e3:.0f} ms, max {max(overheads) * 1e3:.0f} ms "
        f"over {len(overheads)} workers"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help=f"default: {DEFAULT_STORAGE}")
    parser.add_argument("--quick", action="store_true", help="fewer trials (a smoke run, not the figures)")
    args = parser.parse_args()
    print(f"CPU: {_cpu()}; storage: {args.storage}")
    started = time.monotonic()
    loss_and_repeats(args.storage, 20 if args.quick else 100)
    throughput(args.storage, 6 if args.quick else 20)
    storage_time(args.storage, 16 if args.quick else 64)
    print(f"benchmark took {time.monotonic() - started:.0f} s")
    return 0


def _cpu() -> str:
    from greenml.devices import host_info

    return f"{host_info()['cpu']} ({platform.machine()})"


if __name__ == "__main__":
    raise SystemExit(main())
