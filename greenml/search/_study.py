"""Opening, resuming and running the Optuna study: one worker's loop over trials.

Every worker reads the study's state from the storage before each trial: how many trials are
complete or running (``--trials`` counts the study's, not the worker's), and the energy the
whole study has spent (:mod:`greenml.ledger`). Trials run under Optuna's heartbeat
(:mod:`greenml.storage`), so a worker that dies leaves a trial that the next worker fails and
runs again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenml import __version__
from greenml.data import Dataset, load_dataset
from greenml.devices import host_info
from greenml.errors import ConfigError
from greenml.ledger import SO_FAR_ATTR, spent_energy_j
from greenml.measure import Meter, Window, WindowResult, build_meter
from greenml.models import prune_models, save_model
from greenml.results import ARTIFACT_KEY_ATTR, COST_ATTR, COST_FROM_ATTR, CURVE_ATTR, STOPPED_ATTR
from greenml.search._config import SAMPLERS, SearchConfig
from greenml.search._progress import FRONT_HINT, Progress, Step, StepRecorder, trial_line
from greenml.search._rungs import StudyStopping, counts_toward_trials
from greenml.search._workers import Worker, live_workers, register_worker, worker_seed
from greenml.spaces import SearchSpace, check_data_kind, load_space
from greenml.storage import (
    artifact_location,
    artifact_store,
    open_storage,
    remember_artifacts,
    shared_by_processes,
    study_names,
)
from greenml.trial import TrialContext, TrialStopped, run_trial, window_metrics

__all__ = [
    "SearchOutcome",
    "SearchRun",
    "host_info",
    "pareto_rows",
    "prepare",
    "run",
]

Evaluate = Callable[[Any, TrialContext], dict[str, float]]
# A trial started when the study's --trials were already complete or running (pruned at once).
SURPLUS_ATTR = "surplus"
# Set once a KeyboardInterrupt has reached the objective: the trial is being marked failed.
INTERRUPTED = threading.Event()


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


@dataclass
class SearchRun:
    config: SearchConfig
    study: Any
    space: SearchSpace
    dataset: Dataset
    meter: Meter
    context: TrialContext
    command: list[str] = field(default_factory=list)
    # What the user should know as the search starts (a sampler's random first generation, say).
    notes: list[str] = field(default_factory=list)
    # This process as a registered worker of the study; None for the parent of --workers N.
    worker: Worker | None = None
    artifacts: Any = None
    # Where the artifacts go, as the user would write it: a folder or an s3:// or gs:// URL.
    artifacts_at: str = "greenml-artifacts"
    hardware: dict[str, Any] = field(default_factory=dict)
    # The trial itself: greenml.trial.run_trial, or a stand-in (greenml.testing.synthetic).
    evaluate: Evaluate = run_trial

    def close(self) -> None:
        """Stop this worker's pulse and close the meter."""
        if self.worker is not None:
            self.worker.close()
        self.meter.close()


@dataclass(frozen=True)
class SearchOutcome:
    completed: int
    failed: int
    stop_reason: str
    energy_j: float


def _check_devices(config: SearchConfig) -> None:
    """Both devices reachable, and ONNX Runtime able to run on the deployment device."""
    from greenml.devices import check_available

    check_available(config.device, "--device")
    assert config.deploy_device is not None
    check_available(config.deploy_device, "--deploy-device")
    if config.deploy_device != "cpu":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigError(
                f"--deploy-device {config.deploy_device} runs ONNX Runtime models on the GPU, but this "
                "onnxruntime has no CUDAExecutionProvider (it has: "
                f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu, or use "
                "--deploy-device cpu"
            )


def population_size(config: SearchConfig) -> int | None:
    """NSGA-II/III's population, sized to a trial budget: at least 3 generations, at most 50.

    Optuna's default of 50 makes a 12-trial search a random search: every trial is in the first,
    random generation. None for other samplers.
    """
    return _population(config.sampler, config.trials)


def _population(sampler: str, trials: int | None) -> int | None:
    if sampler not in ("nsga2", "nsga3"):
        return None
    if trials is None:
        return 50
    return max(4, min(50, trials // 3))


def _make_sampler(config: SearchConfig, seed: int) -> Any:
    return make_sampler(config.sampler, seed, config.trials)


def make_sampler(name: str, seed: int, trials: int | None = None) -> Any:
    """The sampler ``name`` (one of :data:`SAMPLERS`) as a search of ``trials`` trials runs it.

    TPE runs with Optuna's ``constant_liar`` (its default): a running trial counts as a bad one,
    so parallel workers do not all sample near the same good trial. NSGA-II/III keep their
    generations in the storage, so workers share one population. (``greenml bench run`` replays
    with the same samplers.)
    """
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=min(10, max(2, (trials or 10) // 2)),
            constant_liar=True,
        )
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=_population(name, trials) or 50)
    if name == "nsga3":
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=_population(name, trials) or 50)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")


# What makes two trials of a study comparable: a resumed or joining worker must agree on each.
# (study attribute, how the user sets it)
COMPARABLE: tuple[tuple[str, str], ...] = (
    ("space", "--space"),
    ("dataset", "--dataset"),
    ("target", "--target"),
    ("dataset_fingerprint", "--dataset (its contents)"),
    ("objectives", "--objectives"),
    ("constraints", "--constraint"),
    ("device", "--device"),
    ("deploy_device", "--deploy-device"),
    ("meter", "--meter (the meter it resolves to on this machine)"),
    ("pue", "--pue"),
    ("cpu_watts_per_core", "--cpu-watts-per-core"),
    ("epochs", "--epochs"),
    ("distillation", "--no-distillation"),
    ("energy_window_s", "--min-energy-window"),
    ("latency_s", "--min-latency-window"),
    ("heartbeat", "--heartbeat-interval and --grace-period"),
    (
        "early_stopping",
        "--early-stopping, --reduction-factor, --min-epochs, --rungs, --no-keep-front, --[no-]stop-before-training",
    ),
)
# All of COMPARABLE in one study attribute (older studies have only the separate ones).
COMPARABLE_ATTR = "comparable"


def comparable_settings(
    config: SearchConfig, space: SearchSpace, dataset: Dataset, meter: Meter
) -> dict[str, Any]:
    """The settings :data:`COMPARABLE` names, as the study stores them (JSON values)."""
    return {
        "space": space.name,
        "dataset": config.dataset,
        "target": config.target,
        "dataset_fingerprint": dataset.fingerprint,
        "objectives": list(config.objectives),
        "constraints": [str(c) for c in config.constraints],
        "device": config.device,
        "deploy_device": config.deploy_device,
        "meter": meter.name,
        "pue": config.measure.pue,
        "cpu_watts_per_core": config.measure.watts_per_core,
        "epochs": list(config.epochs),
        "distillation": config.distillation,
        "energy_window_s": config.energy_window_s,
        "latency_s": config.latency_s,
        # A joiner with a shorter grace period would fail live workers' trials as stale.
        "heartbeat": [config.heartbeat.interval_s, config.heartbeat.grace_s],
        "early_stopping": (
            "none"
            if config.early_stopping == "none"
            else [
                config.early_stopping,
                config.reduction_factor,
                config.min_epochs,
                None if config.rungs is None else list(config.rungs),
                # Appended only when on, so studies from before the setting (which behaved as
                # --no-keep-front) still compare equal when resumed with --no-keep-front.
                *([True] if config.keep_front else []),
                # Likewise: studies from before this setting stopped before training.
                *([] if config.stop_before_training else ["no-stop-before-training"]),
            ]
        ),
    }


def prepare(
    config: SearchConfig,
    command: list[str] | None = None,
    *,
    register: bool = True,
    evaluate: Evaluate | None = None,
) -> SearchRun:
    """Validate everything, then open (or resume) the study and register this process as a worker.

    Nothing is written before every check has passed. ``register=False`` opens the study without
    becoming a worker (the parent of ``--workers N``).
    """
    import optuna

    # Failed trials are reported on the progress line and stored with their traceback; Optuna's
    # own warning would print that traceback on the terminal too.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if config.workers > 1 and (why := shared_by_processes(config.storage_url)) is not None:
        raise ConfigError(
            f"--workers {config.workers} needs a storage that several processes share and that holds "
            f"heartbeats, but {config.storage_url!r} cannot: {why}; use sqlite:///FILE or postgresql://..."
        )
    if "://" not in config.storage_url:
        open_storage(config.storage_url)  # the one-line error for a malformed URL, before slow imports
    space = load_space(config.space)
    dataset = load_dataset(config.dataset, config.seed, config.target)
    check_data_kind(space, dataset.spec.kind)
    _check_devices(config)
    store_at = artifact_location(config.storage_url, config.artifacts)
    store = artifact_store(store_at)
    storage = open_storage(config.storage_url, heartbeat=config.heartbeat)
    name = config.study_name
    meter = build_meter(dataclasses.replace(config.measure, gpus=config.gpus))
    existing = name in study_names(storage)
    if existing and getattr(config, "stopping_chosen", True) is False:
        # --early-stopping left at auto: a study started without early stopping (as every study
        # was before it became the default) resumes without it.
        stored = optuna.load_study(study_name=name, storage=storage).user_attrs
        if (stored.get(COMPARABLE_ATTR) or stored).get("early_stopping", "none") == "none":
            config = dataclasses.replace(config, early_stopping="none")
    settings = comparable_settings(config, space, dataset, meter)
    if existing:
        _check_resumable(optuna.load_study(study_name=name, storage=storage), settings)
    hardware = {**host_info(config.gpus), "meter": meter.name}
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=config.directions,  # type: ignore[arg-type]
        load_if_exists=True,
    )
    if not existing and COMPARABLE_ATTR not in study.user_attrs:
        # One attribute, written first: a worker joining while the study is being created
        # compares against all of it or waits for it, never against half of it.
        study.set_user_attr(COMPARABLE_ATTR, settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(config.objectives))
        attributes = {
            "greenml_version": __version__,
            "space_spec": config.space,
            "sampler": config.sampler,
            "seed": config.seed,
            **settings,
            "command": command or [],
            "hardware": hardware,
            "data_spec": {
                "name": dataset.spec.name,
                "kind": dataset.spec.kind,
                "input_shape": list(dataset.spec.input_shape),
                "num_classes": dataset.spec.num_classes,
                "classes": list(dataset.spec.classes),
                "features": list(dataset.spec.features),
            },
            "preprocessing": dataset.preprocessing,
        }
        for key, value in attributes.items():
            study.set_user_attr(key, value)
    remember_artifacts(study, config.artifacts)
    # Another worker may have created it at the same moment: the settings that stuck must be ours.
    _check_resumable(study, settings)
    worker = register_worker(study, hardware, config.heartbeat) if register else None
    study.sampler = _make_sampler(config, worker_seed(config.seed, worker.number if worker else 0))
    context = TrialContext(
        space=space,
        dataset=dataset,
        meter=meter,
        device=config.device,
        deploy_device=config.deploy_device or config.device,
        seed=config.seed,
        epochs=config.epochs,
        energy_window_s=config.energy_window_s,
        latency_s=config.latency_s,
        cost_window_s=config.cost_window_s,
        save_models=config.keep_models != "none",
        test_curve=config.test_curve,
    )
    notes = _start_notes(config, meter)
    if config.artifacts is None and not config.storage_url.startswith("sqlite"):
        notes.append(
            f"artifacts (models, the distillation teacher) go to {Path(store_at).resolve()}; workers on other machines "
            "need --artifacts on a filesystem they share"
        )
    return SearchRun(
        config,
        study,
        space,
        dataset,
        meter,
        context,
        command or [],
        notes,
        worker=worker,
        artifacts=store,
        artifacts_at=store_at,
        hardware=hardware,
        evaluate=evaluate or run_trial,
    )


def _start_notes(config: SearchConfig, meter: Meter) -> list[str]:
    notes = list(meter.notes)
    size = population_size(config)
    if size is not None:
        if config.trials is None:
            notes.append(
                f"{config.sampler}: population {size}; the first {size} trials are its random first "
                "generation (give --trials for a population sized to the budget)"
            )
        else:
            generations = config.trials / size
            notes.append(
                f"{config.sampler}: population {size}, sized to {config.trials} trials "
                f"({generations:.3g} generations; the first {size} trials are random)"
            )
    basis = meter.provenance().energy_basis
    if basis != "measured":
        notes.append(
            f"energy is {basis}: {'; '.join(s.method for s in meter.component_sources if s.kind == 'estimated')}"
        )
    return notes


def _check_resumable(study: Any, settings: dict[str, Any]) -> None:
    """Refuse to add trials that could not be compared with the study's (exit 2, naming the difference)."""
    stored = {**study.user_attrs, **study.user_attrs.get(COMPARABLE_ATTR, {})}
    for key, flag in COMPARABLE:
        if key in stored and stored[key] != settings[key]:
            raise ConfigError(
                f"study {study.study_name!r} was created with {key} {stored[key]!r} ({flag}), not "
                f"{settings[key]!r}; its trials would not be comparable. Rerun with the same settings "
                "to resume it, or give a new --study name"
            )


def pareto_rows(study: Any) -> list[dict[str, Any]]:
    """The Pareto-optimal feasible trials, as rows of number, metrics and parameters."""
    rows = []
    for trial in sorted(study.best_trials, key=lambda t: t.number):
        rows.append(
            {"number": trial.number, **trial.user_attrs.get("metrics", {}), "params": dict(trial.params)}
        )
    return rows


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
        from greenml.search._teacher import acquire_teacher

        if show is not None:
            started = time.time()
            ctx.on_progress = lambda _phase, epoch, epochs: show.running(
                [Step(None, "training", epoch, epochs, started)], None
            )
        try:
            teacher = acquire_teacher(search, None if show is None else show.note)
        finally:
            ctx.on_progress = None
        ctx.teacher = lambda: teacher
    state = _RunState(started=time.monotonic())
    worker = search.worker.number if search.worker is not None else None
    rule = config.stopping_rule() if config.early_stopping != "none" else None

    def objective(trial: optuna.Trial) -> list[float]:
        try:
            spent_before = spent_energy_j(study) if show is not None else 0.0
            so_far = [0.0]
            _start_trial(trial, search, so_far)
            ctx.on_progress = StepRecorder(trial, show, lambda: spent_before + so_far[0], worker)
            ctx.early_stopping = (
                None if rule is None else StudyStopping(rule, study, trial, config.objectives)
            )
            # A dead worker's parameters, queued again, are never dropped as surplus.
            system_attrs = study._storage.get_trial_system_attrs(trial._trial_id)
            retry = "failed_trial" in system_attrs
            if config.queued_only and not retry and "fixed_params" not in system_attrs:
                # Another worker took the last queued trial in the same instant: this one was
                # sampled, not queued. It ends before sampling anything, with nothing spent.
                surplus = "no queued trial was left"
                trial.set_user_attr(SURPLUS_ATTR, surplus)
                raise optuna.TrialPruned(surplus)
            if config.trials is not None and not retry and _ahead(study, trial, config) >= config.trials:
                # Another worker started the last trial in the same instant: this one would be
                # one too many. It ends before sampling anything, as pruned, with nothing spent.
                surplus = f"the study already had {config.trials} trials complete or running"
                trial.set_user_attr(SURPLUS_ATTR, surplus)
                raise optuna.TrialPruned(surplus)
            # A relative sampler (GP, NSGA-II, CMA-ES, multivariate TPE) computes its proposal at
            # the trial's first suggest: ask for it here, so that it is metered as the propose
            # phase (an independent sampler's work stays where each parameter is suggested). A
            # queued trial's parameters are fixed: Optuna never asks the sampler for them.
            if "fixed_params" not in system_attrs:
                _ = trial.relative_params
            if state.proposal is not None and state.proposal.is_open:
                state.proposal.end()
            metrics = search.evaluate(trial, ctx)
        except optuna.TrialPruned:
            raise
        except TrialStopped as stopped:
            # Stopped by the rule: pruned, with its cost, curve and energy (never on the front,
            # always in the study's energy).
            _record_window(trial, ctx)
            trial.set_user_attr(STOPPED_ATTR, stopped.reason)
            measured = window_metrics(ctx.last_window) if ctx.last_window is not None else {}
            trial.set_user_attr("metrics", {**(ctx.early_cost or {}), **measured})
            raise optuna.TrialPruned(stopped.reason) from None
        except BaseException as error:
            # Whatever stopped it (Ctrl-C included, wherever it landed), the record says why.
            interrupted = _interrupted(error)
            if interrupted:
                INTERRUPTED.set()
            if isinstance(ctx.on_progress, StepRecorder):
                ctx.on_progress.flush()
            # Failed before it took its window (the sampler's proposal raised, or an interrupt
            # landed in it): what it spent so far is still its own.
            untaken = _end_untaken(state.proposal, ctx)
            if untaken is not None:
                ctx.last_window = untaken
            _record_window(trial, ctx)
            message = f"{type(error).__name__}: {error}".strip()
            if interrupted and not isinstance(error, KeyboardInterrupt):
                message = f"KeyboardInterrupt, surfaced as {message}"
            trial.set_user_attr("error", message[:2000])
            trial.set_user_attr("traceback", traceback.format_exc()[-10_000:])
            if interrupted and not isinstance(error, KeyboardInterrupt):
                raise KeyboardInterrupt from error
            raise
        finally:
            ctx.on_phase = None
            ctx.on_progress = None
            ctx.early_stopping = None
        _record_window(trial, ctx)
        trial.set_user_attr("metrics", metrics)
        if ctx.last_model is not None:
            save_model(trial, ctx.last_model, search.artifacts)
            ctx.last_model = None
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
                f"(last error: {trial.user_attrs.get('error', 'unknown')})"
            )

    def measured(trial: optuna.Trial) -> list[float]:
        try:
            return objective(trial)
        finally:
            # From here on, this worker's work (storing this trial's result, the loop's checks,
            # asking for the next trial) is the next trial's propose phase. A meter that fails
            # here must not turn this trial's outcome into its error: the loop opens them again.
            _close_unused(state.proposal, ctx)
            with contextlib.suppress(Exception):
                _open_trial_windows(ctx, state)

    try:
        while not state.reason:
            if state.proposal is None or not state.proposal.is_open:
                _open_trial_windows(ctx, state)
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
                _close_unused(state.proposal, ctx)
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
        _close_unused(state.proposal, ctx)
    prune_models(study, search.artifacts, config.keep_models)
    completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    return SearchOutcome(completed, failed, state.reason, spent_energy_j(study))


_WAIT_S = 1.0


def _teachers() -> dict[str, Any]:
    from greenml.search._teacher import TEACHERS

    return TEACHERS


@dataclass
class _RunState:
    started: float
    ran: int = 0
    consecutive_failures: int = 0
    reason: str = ""
    proposal: Window | None = None  # the running trial's propose phase


def _open_trial_windows(ctx: TrialContext, state: _RunState) -> None:
    """Open the next trial's window and its first phase, ``propose``: what this worker does until
    the space builds the trial's model (the loop's checks, Optuna's ask, a relative sampler's
    proposal) is that trial's."""
    window = ctx.meter.begin("trial")
    try:
        state.proposal = ctx.meter.begin("propose")
    except BaseException:
        window.end()
        raise
    ctx.open_window = window


def _end_untaken(proposal: Window | None, ctx: TrialContext) -> WindowResult | None:
    """End the windows no trial took, and give the trial window's result if one was open."""
    if proposal is not None and proposal.is_open:
        proposal.end()
    window, ctx.open_window = ctx.open_window, None
    return window.end() if window is not None and window.is_open else None


def _close_unused(proposal: Window | None, ctx: TrialContext) -> None:
    """End, unrecorded, the windows no trial took: the loop stopped or waited, the ask failed, or
    a trial ended as surplus before it began."""
    _end_untaken(proposal, ctx)


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
        if counts_toward_trials(t) or (t.state == TrialState.RUNNING and "worker" in t.user_attrs)
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
        "worker" not in trial.user_attrs
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
    storage = study._storage
    limit = datetime.datetime.now() - datetime.timedelta(seconds=grace_s)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _orphan(trial, limit):
            continue
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        retry = (
            storage.get_heartbeat_stale_trial_callback()
            if hasattr(storage, "get_heartbeat_stale_trial_callback")
            else None
        )
        if retry is not None and trial.params:
            retry(study, storage.get_trial(trial._trial_id))


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


def _start_trial(trial: Any, search: SearchRun, so_far: list[float]) -> None:
    """What a trial records before it runs: its worker and hardware, and 0 J spent so far.

    After each phase, the trial's energy so far goes to the storage and into ``so_far[0]``.
    """
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    ctx = search.context
    storage = search.study._storage
    if is_heartbeat_enabled(storage):
        # The first heartbeat before the worker record: a trial that has a worker record always
        # has a heartbeat to go stale (Optuna's heartbeat thread starts beside the objective).
        assert isinstance(storage, BaseHeartbeat)
        storage.record_heartbeat(trial._trial_id)
    trial.set_user_attr(SO_FAR_ATTR, 0.0)
    if search.worker is not None:
        trial.set_user_attr("worker", search.worker.record)
    trial.set_user_attr("hardware", search.hardware)
    # A retried trial copies its dead original's attributes: not its outcome, curve or cost.
    for key in (
        "error",
        "traceback",
        "trial_energy_j",
        CURVE_ATTR,
        COST_ATTR,
        COST_FROM_ATTR,
        ARTIFACT_KEY_ATTR,
    ):
        if key in trial.user_attrs:
            trial.set_user_attr(key, None)

    def on_phase(joules: float) -> None:
        so_far[0] = joules
        trial.set_user_attr(SO_FAR_ATTR, joules)

    ctx.on_phase = on_phase
    ctx.curve, ctx.early_cost, ctx.last_window = [], None, None
    ctx.cost_from, ctx.artifact_key = None, None
    ctx.shared_host_note = _shared_host_note(search)


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


def _record_window(trial: Any, ctx: TrialContext) -> None:
    trial.set_user_attr("device", ctx.device)
    trial.set_user_attr("deploy_device", ctx.deploy_device)
    notes = list(ctx.notes)
    if ctx.shared_host_note:
        notes.append(ctx.shared_host_note)
    if notes:
        trial.set_user_attr("notes", notes)
    if ctx.last_inference is not None:
        trial.set_user_attr("inference", ctx.last_inference)
    if ctx.curve:
        trial.set_user_attr(CURVE_ATTR, list(ctx.curve))
    if ctx.early_cost is not None:
        trial.set_user_attr(COST_ATTR, ctx.early_cost)
    if ctx.cost_from is not None:
        trial.set_user_attr(COST_FROM_ATTR, ctx.cost_from)
    if ctx.artifact_key is not None:
        trial.set_user_attr(ARTIFACT_KEY_ATTR, ctx.artifact_key)
    window = ctx.last_window
    if window is None:
        return
    trial.set_user_attr("trial_energy_j", window.total_energy_j)
    trial.set_user_attr(SO_FAR_ATTR, window.total_energy_j)
    trial.set_user_attr("trial_energy_components_j", window.energy_j.to_dict())
    trial.set_user_attr("provenance", window.provenance.to_dict())
    # Per phase for every trial, failed ones too (their metrics are never written).
    phases: dict[str, dict[str, float]] = {}
    for child in window.children:
        part = phases.setdefault(child.name, {"seconds": 0.0, "energy_j": 0.0})
        part["seconds"] += child.seconds
        part["energy_j"] += child.total_energy_j
    trial.set_user_attr("phases", phases)


def interrupted_message(study_name: str, storage_url: str, command: list[str]) -> str:
    argv = " ".join(command) if command else "the same greenml search command"
    return (
        f"interrupted: running trials were marked failed; study {study_name!r} in "
        f"{storage_url} is intact. Resume with: {argv}"
    )
