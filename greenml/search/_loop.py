"""One worker's loop over a study's trials: the budget, the objective, and what each trial records.

Every worker reads the study's state from the storage before each trial: how many trials are
complete or running (``--trials`` counts the study's, not the worker's), and the energy the
whole study has spent (:mod:`greenml.ledger`). Trials run under Optuna's heartbeat
(:mod:`greenml.storage`), so a worker that dies leaves a trial that the next worker fails and
runs again. What a trial records is written through :mod:`greenml.records`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from greenml import records
from greenml.errors import ConfigError, MeasurementError
from greenml.ledger import spent_energy_j
from greenml.measure import Meter, Window, WindowResult
from greenml.models import prune_models, save_model
from greenml.optuna_compat import record_heartbeat, study_storage, trial_id, trial_system_attrs
from greenml.search._config import SearchConfig
from greenml.search._open import SearchRun
from greenml.search._progress import FRONT_HINT, Progress, Step, StepRecorder, trial_line
from greenml.search._rungs import StudyStopping, counts_toward_trials
from greenml.search._workers import live_workers
from greenml.trial import TrialContext, TrialResult, TrialStopped, partial_result, window_metrics

__all__ = [
    "INTERRUPTED",
    "SearchOutcome",
    "interrupted_message",
    "pareto_rows",
    "run",
]

# Set once a KeyboardInterrupt has reached the objective: the trial is being marked failed.
INTERRUPTED = threading.Event()
_WAIT_S = 1.0


@dataclass(frozen=True)
class SearchOutcome:
    completed: int
    failed: int
    stop_reason: str
    energy_j: float


def _interrupted(error: BaseException) -> bool:
    """Whether a KeyboardInterrupt (Ctrl-C or SIGTERM) is this error or caused it.

    A library may turn one into its own error: an interrupt that lands in a lazy import inside
    ``torch.onnx.export`` surfaces as ``TorchExportError``, with the interrupt at the end of its
    chain. The run must still stop, and the trial's record must say it was interrupted.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        pending.extend((current.__cause__, current.__context__))
    return False


def pareto_rows(study: Any) -> list[dict[str, Any]]:
    """The Pareto-optimal feasible trials, as rows of number, metrics and parameters."""
    rows = []
    for trial in sorted(study.best_trials, key=lambda t: t.number):
        rows.append({"number": trial.number, **records.trial_metrics(trial), "params": dict(trial.params)})
    return rows


def interrupted_message(study_name: str, storage_url: str, command: list[str]) -> str:
    argv = " ".join(command) if command else "the same greenml search command"
    return (
        f"interrupted: running trials were marked failed; study {study_name!r} in "
        f"{storage_url} is intact. Resume with: {argv}"
    )


@dataclass
class _RunState:
    started: float
    ran: int = 0
    consecutive_failures: int = 0
    reason: str = ""
    # The next trial's window, and its first phase (propose), open until the trial takes them.
    window: Window | None = None
    proposal: Window | None = None


def run(
    search: SearchRun,
    progress: Progress | Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SearchOutcome:
    """Run trials until the study's budget is spent; failed trials are kept with their errors.

    ``progress`` shows each trial's phases and a line per finished trial: a :class:`Progress`
    (live on a terminal), or a function that takes plain lines. Every trial stores its latest
    step either way. ``should_stop`` is asked before each trial (the parent of ``--workers N``
    stopping them).
    """
    import optuna
    from optuna.trial import TrialState

    config, study, ctx = search.config, search.study, search.context
    if search.worker is None:
        raise ConfigError("run() needs a registered worker: prepare(config) with register=True")
    if ctx.meter.idle is None and config.measure.idle_seconds > 0:
        ctx.meter.measure_idle(config.measure.idle_seconds)
    show = progress if isinstance(progress, Progress) or progress is None else Progress(write=progress)
    if config.distillation and ctx.teacher is None and ctx.dataset.spec.kind in _teachers():
        ctx = search.context = dataclasses.replace(ctx, teacher=_teacher(search, show))
    state = _RunState(started=time.monotonic())
    worker = search.worker.number if search.worker is not None else None
    rule = config.stopping_rule() if config.early_stopping != "none" else None

    def objective(trial: optuna.Trial) -> list[float]:
        recorder: StepRecorder | None = None
        shared_note: str | None = None
        try:
            spent_before = spent_energy_j(study) if show is not None else 0.0
            so_far = [0.0]
            on_phase, shared_note = _start_trial(trial, search, so_far)
            recorder = StepRecorder(trial, show, lambda: spent_before + so_far[0], worker)
            trial_ctx = dataclasses.replace(
                ctx,
                on_phase=on_phase,
                on_progress=recorder,
                early_stopping=None if rule is None else StudyStopping(rule, study, trial, config.objectives),
                open_window=state.window,
            )
            # A dead worker's parameters, queued again, are never dropped as surplus.
            system_attrs = trial_system_attrs(study, trial)
            retry = records.is_retry(system_attrs)
            queued = records.was_queued(system_attrs)
            if config.queued_only and not retry and not queued:
                # Another worker took the last queued trial in the same instant: this one was
                # sampled, not queued. It ends before sampling anything, with nothing spent.
                surplus = "no queued trial was left"
                records.record_surplus(trial, surplus)
                raise optuna.TrialPruned(surplus)
            if config.trials is not None and not retry and _ahead(study, trial, config) >= config.trials:
                # Another worker started the last trial in the same instant: this one would be
                # one too many. It ends before sampling anything, as pruned, with nothing spent.
                surplus = f"the study already had {config.trials} trials complete or running"
                records.record_surplus(trial, surplus)
                raise optuna.TrialPruned(surplus)
            # A relative sampler (GP, NSGA-II, CMA-ES, multivariate TPE) computes its proposal at
            # the trial's first suggest: ask for it here, so that it is metered as the propose
            # phase (an independent sampler's work stays where each parameter is suggested). A
            # queued trial's parameters are fixed: Optuna never asks the sampler for them.
            if not queued:
                _ = trial.relative_params
            if state.proposal is not None and state.proposal.is_open:
                state.proposal.end()
            result = _as_result(search.evaluate(trial, trial_ctx))
        except optuna.TrialPruned:
            raise
        except TrialStopped as stopped:
            # Stopped by the rule: pruned, with its cost, curve and energy (never on the front,
            # always in the study's energy).
            partial = _partial(stopped)
            measured = window_metrics(partial.window) if partial.window is not None else {}
            records.record_outcome(
                trial,
                _outcome(
                    ctx,
                    partial,
                    partial.window,
                    shared_note,
                    stopped=stopped.reason,
                    metrics={**(partial.early_cost or {}), **measured},
                ),
            )
            raise optuna.TrialPruned(stopped.reason) from None
        except BaseException as error:
            # Whatever stopped it (Ctrl-C included, wherever it landed), the record says why.
            interrupted = _interrupted(error)
            if interrupted:
                INTERRUPTED.set()
            if recorder is not None:
                recorder.flush()
            partial = _partial(error)
            # Failed before it took its window (the sampler's proposal raised, or an interrupt
            # landed in it): what it spent so far is still its own.
            untaken = _end_untaken(state)
            message = f"{type(error).__name__}: {error}".strip()
            if interrupted and not isinstance(error, KeyboardInterrupt):
                message = f"KeyboardInterrupt, surfaced as {message}"
            records.record_outcome(
                trial,
                _outcome(
                    ctx,
                    partial,
                    untaken if untaken is not None else partial.window,
                    shared_note,
                    error=message,
                    traceback=traceback.format_exc(),
                ),
            )
            if interrupted and not isinstance(error, KeyboardInterrupt):
                raise KeyboardInterrupt from error
            raise
        records.record_outcome(
            trial, _outcome(ctx, result, result.window, shared_note, metrics=result.metrics)
        )
        metrics = result.metrics
        if result.model is not None:
            save_model(trial, dict(result.model), search.artifacts)
        for constraint in config.constraints:
            trial.set_constraint(str(constraint), constraint.value(metrics))
        return [metrics[name] for name in config.objectives]

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        state.ran += 1
        if trial.state == TrialState.FAIL:
            state.consecutive_failures += 1
        else:
            state.consecutive_failures = 0
        if show is not None:
            show.running([], None)  # the finished trial leaves the live line
            show.line(trial_line(study, trial, config, spent_energy_j(study), False))
            if state.ran == 1:
                show.note(FRONT_HINT)
        if state.consecutive_failures >= config.max_consecutive_failures:
            state.reason = (
                f"{config.max_consecutive_failures} consecutive failed trials "
                f"(last error: {trial.user_attrs.get(records.ERROR, 'unknown')})"
            )

    def measured(trial: optuna.Trial) -> list[float]:
        try:
            return objective(trial)
        finally:
            # From here on, this worker's work (storing this trial's result, the loop's checks,
            # asking for the next trial) is the next trial's propose phase. A meter that fails
            # here must not turn this trial's outcome into its error: the loop opens them again,
            # and a meter that stays broken fails there, at the next window's begin, as an error.
            with contextlib.suppress(MeasurementError):
                _end_untaken(state)
            with contextlib.suppress(Exception):
                _open_trial_windows(ctx.meter, state)

    try:
        while not state.reason:
            # A worker whose heartbeat has lost the storage stops here (StorageLostError).
            search.worker.check()

            if state.proposal is None or not state.proposal.is_open:
                _open_trial_windows(ctx.meter, state)
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt
            _fail_stale(study, config.heartbeat.grace_s)
            state.reason = _budget_spent(search, state)
            if (
                not state.reason
                and config.queued_only
                and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            ):
                state.reason = "no queued trial left"
            if state.reason:
                break
            if config.trials is not None and _pending(study) >= config.trials:
                # The other workers' running trials may finish the budget, or fail and leave
                # room. Waiting is no trial's work: a machine-wide meter would charge this
                # trial the other workers' energy.
                _end_untaken(state)
                time.sleep(_WAIT_S)
                continue
            try:
                study.optimize(
                    measured, n_trials=1, callbacks=[callback], catch=(Exception,), gc_after_trial=False
                )
            except (ValueError, optuna.exceptions.UpdateFinishedTrialError) as error:
                # Another worker failed this trial as stale (this worker stalled past the grace
                # period): its parameters are queued again; this result cannot be told.
                if isinstance(error, ValueError) and "Cannot tell" not in str(error):
                    raise
                if show is not None:
                    show.note(
                        f"a trial of this worker was failed by another worker as stale ({error}); going on"
                    )
    finally:
        _end_untaken(state)
    prune_models(study, search.artifacts, config.keep_models)
    completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    return SearchOutcome(completed, failed, state.reason, spent_energy_j(study))


def _teachers() -> dict[str, Any]:
    from greenml.search._teacher import TEACHERS

    return TEACHERS


def _teacher(search: SearchRun, show: Progress | None) -> Callable[[], Any]:
    """The study's distillation teacher, acquired now (downloaded, or trained by this worker)."""
    from greenml.search._teacher import acquire_teacher

    on_progress: Callable[[str, int, int], None] | None = None
    if show is not None:
        shown, started = show, time.time()

        def on_progress(_phase: str, epoch: int, epochs: int) -> None:
            shown.running([Step(None, "training", epoch, epochs, started)], None)

    teacher = acquire_teacher(search, None if show is None else show.note, on_progress)
    return lambda: teacher


def _as_result(result: TrialResult | Mapping[str, float]) -> TrialResult:
    """What an evaluate function gave back, as a :class:`TrialResult` (a stand-in may give metrics)."""
    return result if isinstance(result, TrialResult) else TrialResult(metrics=dict(result))


def _partial(error: BaseException) -> TrialResult:
    """What the trial that raised ``error`` measured before it did (nothing, for a stand-in's error)."""
    partial = partial_result(error)
    return TrialResult() if partial is None else partial


def _outcome(
    ctx: TrialContext,
    result: TrialResult,
    window: WindowResult | None,
    shared_note: str | None,
    **ending: Any,
) -> records.TrialOutcome:
    """The record of a trial that gave back ``result`` (partial when stopped or failed), measured
    in ``window``; ``ending`` holds its ``metrics``, or why it stopped or failed."""
    notes = list(result.notes)
    if shared_note:
        notes.append(shared_note)
    return records.TrialOutcome(
        device=ctx.device,
        deploy_device=ctx.deploy_device,
        notes=notes,
        inference=result.inference,
        learning_curve=result.curve,
        early_cost=result.early_cost,
        early_cost_from=result.cost_from,
        artifact_key=result.artifact_key,
        window=None if window is None else records.WindowRecord.from_window(window),
        **ending,
    )


def _open_trial_windows(meter: Meter, state: _RunState) -> None:
    """Open the next trial's window and its first phase, ``propose``: what this worker does until
    the space builds the trial's model (the loop's checks, Optuna's ask, a relative sampler's
    proposal) is that trial's."""
    window = meter.begin("trial")
    try:
        state.proposal = meter.begin("propose")
    except BaseException:
        window.end()
        raise
    state.window = window


def _end_untaken(state: _RunState) -> WindowResult | None:
    """End the windows no trial took (the loop stopped or waited, the ask failed, or a trial ended
    as surplus or failed before it began), and give the trial window's result: the one this ends,
    or the one a trial took and ended itself before it raised (an evaluate that hands no partial
    result on its error, as a stand-in's may not)."""
    if state.proposal is not None and state.proposal.is_open:
        state.proposal.end()
    window, state.window = state.window, None
    if window is None:
        return None
    if window.is_open:
        return window.end()
    # A window whose end failed (a meter that could not read) has no figure to give.
    return None if window.failure is not None else window.result


def _start_trial(
    trial: Any, search: SearchRun, so_far: list[float]
) -> tuple[Callable[[float], None], str | None]:
    """What a trial records before it runs: its worker and hardware, and 0 J spent so far.

    Returns the trial's ``on_phase`` callback (after each phase, the trial's energy so far goes to
    the storage and into ``so_far[0]``) and the note its record gets when other workers share
    this host's machine-wide meters.
    """
    # The first heartbeat before the worker record: a trial that has a worker record always has
    # a heartbeat to go stale (Optuna's heartbeat thread starts beside the objective).
    record_heartbeat(search.study, trial)
    records.begin_trial(trial, search.hardware, search.worker.record if search.worker is not None else None)

    def on_phase(joules: float) -> None:
        so_far[0] = joules
        records.record_energy_so_far(trial, joules)

    return on_phase, _shared_host_note(search)


def _shared_host_note(search: SearchRun) -> str | None:
    """A note when other workers run on this host while its meter reads machine-wide counters."""
    machine_wide = [s for s in search.meter.component_sources if s.kind == "measured"]
    if not machine_wide or search.worker is None:
        return None
    host = search.worker.host
    others = [
        w
        for w in live_workers(search.study, search.config.heartbeat.grace_s)
        if w.get("host") == host and w["number"] != search.worker.number
    ]
    if not others:
        return None
    components = ", ".join(sorted({s.component for s in machine_wide}))
    return (
        f"{len(others)} other worker(s) ran on this host during the trial; the measured {components} "
        "energy is the whole machine's, so it includes their work"
    )


# --- the budget, read from the storage -----------------------------------------------------------
def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    return sum(
        1
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if counts_toward_trials(t)
    )


def _pending(study: Any) -> int:
    """Counted trials plus those running now under a heartbeat (trials that may still count)."""
    from optuna.trial import TrialState

    trials = study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    )
    # A trial left RUNNING by a greenml without heartbeats (no worker record) never finishes.
    return sum(
        1
        for t in trials
        if counts_toward_trials(t) or (t.state == TrialState.RUNNING and records.WORKER in t.user_attrs)
    )


def _ahead(study: Any, trial: Any, config: SearchConfig) -> int:
    """Trials that count toward ``--trials`` before ``trial``: complete, or running and started
    earlier (a queued retry keeps its lower number but starts when it is taken)."""
    import datetime

    from optuna.trial import TrialState

    limit = datetime.datetime.now() - datetime.timedelta(seconds=config.heartbeat.grace_s)
    mine = (trial.datetime_start or datetime.datetime.max, trial.number)
    trials = study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    )
    complete = sum(1 for t in trials if counts_toward_trials(t))
    # Running ones, orphans left out: trials with no worker record older than the grace period.
    running = sum(
        1
        for t in trials
        if t.state == TrialState.RUNNING
        and t.number != trial.number
        and (t.datetime_start or datetime.datetime.max, t.number) < mine
        and not _orphan(t, limit)
    )
    return complete + running


def _orphan(trial: Any, limit: Any) -> bool:
    """A running trial with no worker record that started before ``limit`` (grace period ago)."""
    return (
        records.WORKER not in trial.user_attrs
        and trial.datetime_start is not None
        and trial.datetime_start <= limit
    )


def _fail_stale(study: Any, grace_s: float) -> None:
    """Fail (and queue again) trials whose worker died: Optuna's heartbeat check, and orphans.

    An orphan is a running trial with no worker record older than the grace period: left by a
    greenml without heartbeats, or by a worker killed between Optuna creating the trial and its
    first heartbeat.
    """
    import datetime

    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    storage = study_storage(study)
    limit = datetime.datetime.now() - datetime.timedelta(seconds=grace_s)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _orphan(trial, limit):
            continue
        try:
            if not storage.set_trial_state_values(trial_id(trial), state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        retry = (
            storage.get_heartbeat_stale_trial_callback()
            if hasattr(storage, "get_heartbeat_stale_trial_callback")
            else None
        )
        if retry is not None and trial.params:
            retry(study, storage.get_trial(trial_id(trial)))


def _budget_spent(search: SearchRun, state: _RunState) -> str:
    """Why this worker starts no more trials, read from the storage; '' to go on."""

    config, study = search.config, search.study
    completed = _finished(study)
    if config.trials is not None and completed >= config.trials:
        what = "complete or stopped" if config.early_stopping != "none" else "complete"
        return (
            f"{config.trials} {what} trials"
            if state.ran
            else f"the study already has {completed} {what} trials"
        )
    if config.energy_budget_j is not None:
        spent = spent_energy_j(study)
        if spent >= config.energy_budget_j:
            return (
                f"energy budget of {config.energy_budget_j:g} J spent ({spent:.1f} J by the whole study)"
                if state.ran
                else f"the study already spent its energy budget ({spent:.1f} of {config.energy_budget_j:g} J)"
            )
    if config.timeout_s is not None and time.monotonic() - state.started >= config.timeout_s:
        return f"timeout of {config.timeout_s:g} s"
    return ""
