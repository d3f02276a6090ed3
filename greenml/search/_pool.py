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

No process raises the interrupt inside a call to the study's storage: raised halfway through a
SQLAlchemy session (its commit, the connection's return to the pool), it can leave the session's
SQLite transaction open on a connection that nothing closes. That process then holds the
database's lock for good, and each write of every other process (marking its trial failed)
waits out SQLite's busy timeout in C, where no signal reaches it, fails, and waits again: the
group never exits. A signal that lands in the storage is sent again a moment later, until it
lands outside it (:func:`_deferring`).
"""

from __future__ import annotations

import contextlib
import datetime
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from greenml import records
from greenml.errors import GreenMLError
from greenml.ledger import spent_energy_j
from greenml.models import prune_models
from greenml.search._config import SearchConfig
from greenml.search._loop import INTERRUPTED, SearchOutcome, run
from greenml.search._open import Evaluate, SearchRun, prepare
from greenml.search._progress import FRONT_HINT, Progress, step_of, trial_line
from greenml.units import human

__all__ = ["run_workers"]

POLL_S = 0.5
EXIT_USAGE = 2
# The code a signal handler must not raise into: Optuna's storages, SQLAlchemy, the database drivers.
_STORAGE_PACKAGES = frozenset({"sqlalchemy", "sqlite3", "psycopg", "psycopg2"})
RESEND_S = 0.05
MAX_DEFERRALS = 100


def _in_storage(frame: Any) -> bool:
    """Whether the interrupted code (``frame`` or one of its callers) is inside a storage call."""
    while frame is not None:
        name = frame.f_globals.get("__name__") or ""
        if name.partition(".")[0] in _STORAGE_PACKAGES or (name + ".").startswith("optuna.storages."):
            return True
        frame = frame.f_back
    return False


def _resend(signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(os.getpid(), signum)


def _deferring(handle: Callable[[int], None]) -> Callable[[int, Any], None]:
    """A signal handler that calls ``handle(signum)``, unless the signal landed inside a storage
    call: then the same signal is sent to this process again ``RESEND_S`` later, and again,
    until it lands outside one (a storage call takes milliseconds, or SQLite's busy timeout at
    most). ``handle`` raises KeyboardInterrupt, or returns where the signal is to be ignored."""

    deferred = [0]

    def handler(signum: int, frame: Any) -> None:
        # At most MAX_DEFERRALS times (5 s): a process that is nearly always inside the storage
        # is interrupted there all the same, as before.
        if _in_storage(frame) and deferred[0] < MAX_DEFERRALS:
            deferred[0] += 1
            timer = threading.Timer(RESEND_S, _resend, (signum,))
            timer.daemon = True
            timer.start()
            return
        handle(signum)

    return handler


def _raise_interrupt(_signum: int) -> None:
    raise KeyboardInterrupt


def _quiet_lost_interrupts() -> None:
    """A KeyboardInterrupt that lands in a garbage-collector callback is lost, and Python prints
    its traceback; the next signal stops the process, so say nothing."""

    def unraisable(report: Any) -> None:
        if not issubclass(report.exc_type, KeyboardInterrupt):
            sys.__unraisablehook__(report)

    sys.unraisablehook = unraisable


def _worker_main(
    config: SearchConfig,
    command: list[str],
    idle: Any,
    evaluate: Evaluate | None,
    messages: Any,
    stop: Any,
) -> None:
    """One worker process: prepare, run until the study's budget is spent, report why it stopped.

    It starts with SIGINT ignored (inherited from the parent while it was started), so a Ctrl-C
    during its imports cannot print a traceback; the parent's ``stop`` event covers that time.
    """

    def interrupted(_signum: int) -> None:
        # Ctrl-C or SIGTERM stops the worker. Once the interrupted trial is being marked failed,
        # another signal (the parent passing it on) must not break that; before then it must
        # still stop the worker, since a first one that lands in a garbage-collector callback
        # is lost.
        if not INTERRUPTED.is_set():
            raise KeyboardInterrupt

    def handler(signum: int, frame: Any) -> None:
        stop.set()  # no next trial, even while the interrupt waits for a storage call to return
        deferring(signum, frame)

    deferring = _deferring(interrupted)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    _quiet_lost_interrupts()
    code = 0
    try:
        if stop.is_set():
            raise KeyboardInterrupt
        search = prepare(config, command, evaluate=evaluate)
        try:
            if idle is not None:
                search.meter.idle = idle
            outcome = run(search, should_stop=stop.is_set)
            messages.put(("stopped", outcome.stop_reason))
        finally:
            search.close()
    except KeyboardInterrupt:
        code = 130
    except GreenMLError as error:
        messages.put(("error", str(error)))
        code = EXIT_USAGE
    sys.exit(code)


def run_workers(
    search: SearchRun,
    progress: Progress | Callable[[str], None] | None = None,
    evaluate: Evaluate | None = None,
) -> SearchOutcome:
    """Run ``search.config.workers`` worker processes on ``search``'s study until its budget is spent.

    ``search`` comes from ``prepare(config, register=False)``; ``evaluate`` defaults to its own.
    Raises KeyboardInterrupt after the workers have stopped, when the run was interrupted (Ctrl-C,
    or SIGTERM to the parent or to the whole process group), and the first worker's
    :class:`~greenml.errors.GreenMLError` when every worker stopped on one.
    """
    from optuna.trial import TrialState

    config, study = search.config, search.study
    show = progress if isinstance(progress, Progress) or progress is None else Progress(write=progress)
    idle = None
    if config.measure.idle_seconds > 0:
        idle = search.meter.measure_idle(config.measure.idle_seconds)
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    stop = context.Event()
    workers = [
        context.Process(
            target=_worker_main,
            args=(config, search.command, idle, evaluate or search.evaluate, messages, stop),
            name=f"greenml-worker-{i}",
        )
        for i in range(config.workers)
    ]
    seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    teacher_seen = records.TEACHER_ENTRY in records.ledger_entries(study.user_attrs)
    hinted = bool(seen)

    # The parent reads the storage twice a second: Ctrl-C or SIGTERM must not land in a read
    # either (a SHARED lock left open would keep every worker from writing).
    previous = signal.signal(signal.SIGTERM, _deferring(_raise_interrupt))
    previous_int = signal.getsignal(signal.SIGINT)
    previous_hook = sys.unraisablehook
    _quiet_lost_interrupts()
    interrupted = False
    try:
        # Started with SIGINT ignored: the workers inherit that until they install their handler.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for process in workers:
                process.start()
        finally:
            signal.signal(signal.SIGINT, _deferring(_raise_interrupt))
        while True:
            alive = any(p.is_alive() for p in workers)
            if show is not None:
                teacher_seen = _report_teacher(study, teacher_seen, show)
                trials = study.get_trials(deepcopy=False)
                finished = [t for t in trials if t.state.is_finished()]
                spent = spent_energy_j(study)
                for trial in sorted(finished, key=lambda t: t.datetime_complete or datetime.datetime.max):
                    if trial.number not in seen:
                        seen.add(trial.number)
                        show.line(trial_line(study, trial, config, spent, True))
                        if not hinted:
                            show.note(FRONT_HINT)
                            hinted = True
                running = [step_of(t) for t in trials if t.state == TrialState.RUNNING]
                show.running([step for step in running if step is not None], spent, workers=True)
            if not alive:
                break
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        # A terminal's Ctrl-C (a group's SIGTERM) reached every worker too: let them stop on it,
        # then pass it on to any still running (a signal to the parent alone, or one lost).
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(p.is_alive() for p in workers):
            time.sleep(0.1)
        _interrupt(workers)
        for process in workers:
            process.join(timeout=120)
            if process.is_alive():
                process.terminate()
                process.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        sys.unraisablehook = previous_hook
    codes = [p.exitcode for p in workers]
    if interrupted or any(code == 130 or (code is not None and code < 0) for code in codes):
        raise KeyboardInterrupt
    stopped: list[str] = []
    errors: list[str] = []
    while not messages.empty():
        kind, text = messages.get()
        (errors if kind == "error" else stopped).append(text)
    if errors and not stopped:
        raise GreenMLError(errors[0])
    broken = [f"worker process {i} exited with {c}" for i, c in enumerate(codes) if c]
    if broken and not stopped and not errors:
        # Each worker stopped on an unexpected error (one worker alone would have raised it):
        # a bug keeps its meaning, exit status 1, not a search that merely "stopped".
        raise RuntimeError(f"every worker process failed ({'; '.join(broken)}); their tracebacks are above")
    prune_models(study, search.artifacts, config.keep_models)
    completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    reason = "; ".join(dict.fromkeys([*stopped, *errors, *broken])) or "done"
    return SearchOutcome(completed, failed, reason, spent_energy_j(study))


def _interrupt(workers: list[Any]) -> None:
    for process in workers:
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)


def _report_teacher(study: Any, seen: bool, show: Progress) -> bool:
    if seen:
        return True
    entry = records.ledger_entries(study.user_attrs).get(records.TEACHER_ENTRY)
    if entry is None:
        return False
    worker = (entry.get("worker") or {}).get("number", "?")
    show.note(
        f"distillation teacher trained by worker {worker}: {human('duration', entry['seconds'])}, "
        f"{human('energy', entry['energy_j'])} ({entry.get('energy_basis', '?')}), booked as the study's "
        "'teacher' entry"
    )
    return True
