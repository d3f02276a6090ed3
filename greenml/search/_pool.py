"""``greenml search --workers N``: N worker processes on this machine, one study, one progress stream.

The parent validates the settings and opens the study (:func:`~greenml.search.prepare` without
registering as a worker), measures the idle baseline once while the machine is quiet, and starts
N processes. Each is a full worker (:func:`~greenml.search.run`): it registers in the storage,
samples with its own seed, and checks the study's budget before each trial. The parent prints
each finished trial once, read from the storage, so the progress is the study's, not N
interleaved streams. Workers started by hand on other machines show up in it too.

Ctrl-C reaches every process of the terminal's process group: each worker marks its running
trial failed and exits, and the parent waits for them and prints the command that resumes.
A SIGTERM sent to the parent alone is passed on to the workers as SIGINT.
"""

from __future__ import annotations

import contextlib
import datetime
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from greenml.errors import GreenMLError
from greenml.ledger import spent_energy_j
from greenml.search._config import SearchConfig
from greenml.search._study import Evaluate, SearchOutcome, SearchRun, prepare, progress_line, run

__all__ = ["run_workers"]

POLL_S = 0.5
EXIT_USAGE = 2


def _worker_main(
    config: SearchConfig,
    command: list[str],
    idle: Any,
    evaluate: Evaluate | None,
    reasons: Any,
) -> None:
    """One worker process: prepare, run until the study's budget is spent, report why it stopped."""

    def interrupted(_signum: int, _frame: Any) -> None:
        # The first SIGINT stops the worker; a second one (the parent passing Ctrl-C on) must
        # not break the cleanup that marks the running trial failed.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)
    code = 0
    try:
        search = prepare(config, command, evaluate=evaluate)
        try:
            if idle is not None:
                search.meter.idle = idle
            outcome = run(search)
            reasons.put(outcome.stop_reason)
        finally:
            search.close()
    except KeyboardInterrupt:
        code = 130
    except GreenMLError as error:
        print(f"greenml: worker: error: {error}", file=sys.stderr)
        code = EXIT_USAGE
    sys.exit(code)


def run_workers(
    search: SearchRun,
    progress: Callable[[str], None] | None = None,
    evaluate: Evaluate | None = None,
) -> SearchOutcome:
    """Run ``search.config.workers`` worker processes on ``search``'s study until its budget is spent.

    ``search`` comes from ``prepare(config, register=False)``. Raises KeyboardInterrupt after the
    workers have stopped, when the run was interrupted.
    """
    from optuna.trial import TrialState

    config, study = search.config, search.study
    idle = None
    if config.measure.idle_seconds > 0:
        idle = search.meter.measure_idle(config.measure.idle_seconds)
    context = multiprocessing.get_context("spawn")
    reasons = context.Queue()
    workers = [
        context.Process(
            target=_worker_main,
            args=(config, search.command, idle, evaluate, reasons),
            name=f"greenml-worker-{i}",
        )
        for i in range(config.workers)
    ]
    seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    teacher_seen = "ledger:teacher" in study.user_attrs
    previous = signal.signal(signal.SIGTERM, lambda *_: _interrupt(workers))
    interrupted = False
    try:
        for process in workers:
            process.start()
        while True:
            alive = any(p.is_alive() for p in workers)
            if progress is not None:
                teacher_seen = _report_teacher(study, teacher_seen, progress)
                finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
                for trial in sorted(finished, key=lambda t: t.datetime_complete or datetime.datetime.max):
                    if trial.number not in seen:
                        seen.add(trial.number)
                        progress(progress_line(study, trial, config, spent_energy_j(study)))
            if not alive:
                break
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        interrupted = True
        _interrupt(workers)
        for process in workers:
            process.join(timeout=120)
            if process.is_alive():
                process.terminate()
                process.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if interrupted or any(p.exitcode == 130 or p.exitcode == -signal.SIGINT for p in workers):
        raise KeyboardInterrupt
    stop_reasons = []
    while not reasons.empty():
        stop_reasons.append(reasons.get())
    codes = [p.exitcode for p in workers]
    if any(code not in (0, None) for code in codes):
        broken = ", ".join(f"worker process {i} exited with {c}" for i, c in enumerate(codes) if c)
        stop_reasons.append(broken)
    completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    reason = "; ".join(dict.fromkeys(stop_reasons)) or "done"
    return SearchOutcome(completed, failed, reason, spent_energy_j(study))


def _interrupt(workers: list[Any]) -> None:
    for process in workers:
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)


def _report_teacher(study: Any, seen: bool, progress: Callable[[str], None]) -> bool:
    if seen:
        return True
    entry = study.user_attrs.get("ledger:teacher")
    if entry is None:
        return False
    worker = (entry.get("worker") or {}).get("number", "?")
    progress(
        f"distillation teacher trained by worker {worker}: {entry['seconds']:.1f} s, "
        f"{entry['energy_j']:.1f} J ({entry.get('energy_basis', '?')}), booked as the study's 'teacher' entry"
    )
    return True
