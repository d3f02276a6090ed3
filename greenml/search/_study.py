"""Opening, resuming and running the Optuna study."""

from __future__ import annotations

import dataclasses
import hashlib
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from greenml import __version__
from greenml.data import Dataset, load_dataset
from greenml.errors import ConfigError
from greenml.measure import Meter, build_meter
from greenml.search._config import SearchConfig
from greenml.spaces import SearchSpace, load_space
from greenml.trial import TrialContext, run_trial

__all__ = ["SearchOutcome", "SearchRun", "open_study", "pareto_rows", "prepare", "run"]

# The distillation teacher per kind of data: strong on it and quick to train on a CPU.
# (Measured: digits, 2x256 MLP, 30 epochs: 0.98 validation accuracy in ~1 s; MNIST-1D needs a
# CNN, 2 separable blocks of 32 channels, 15 epochs: 0.95 in ~35-70 s.)
TEACHERS: dict[str, tuple[str, dict[str, Any], int]] = {
    "image": ("mlp", {"n_layers": 2, "width": 256, "dropout": 0.1}, 30),
    "sequence": ("cnn", {"width_multiplier": 1.0, "n_blocks": 2, "base_channels": 32}, 15),
}


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
    if config.sampler not in ("nsga2", "nsga3"):
        return None
    if config.trials is None:
        return 50
    return max(4, min(50, config.trials // 3))


def _make_sampler(config: SearchConfig) -> Any:
    import optuna

    seed = config.seed
    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=min(10, max(2, (config.trials or 10) // 2))
        )
    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population_size(config) or 50)
    if config.sampler == "nsga3":
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=population_size(config) or 50)
    if config.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def open_storage(url: str) -> Any:
    """An Optuna RDB storage, or a one-line ConfigError saying why it cannot be opened."""
    import optuna

    if "://" not in url:
        raise ConfigError(
            f"malformed storage URL {url!r}; expected e.g. sqlite:///greenml.db or "
            "postgresql://user@host:5432/dbname"
        )
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    except Exception as error:  # SQLAlchemy and driver errors: report the first line only
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"cannot open storage {url!r}: {reason}") from error


def open_study(name: str, storage_url: str) -> Any:
    import optuna

    storage = open_storage(storage_url)
    names = optuna.get_all_study_names(storage)
    if name not in names:
        raise ConfigError(f"no study {name!r} in {storage_url}; studies there: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage)


def prepare(config: SearchConfig, command: list[str] | None = None) -> SearchRun:
    """Validate everything, then open (or resume) the study. Nothing is written before the end."""
    import optuna

    # Failed trials are reported on the progress line and stored with their traceback; Optuna's
    # own warning would print that traceback on the terminal too.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if "://" not in config.storage_url:
        open_storage(config.storage_url)  # the one-line error for a malformed URL, before slow imports
    space = load_space(config.space)
    dataset = load_dataset(config.dataset, config.seed)
    _check_devices(config)
    sampler = _make_sampler(config)
    storage = open_storage(config.storage_url)
    name = config.study_name
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    if name in existing:
        _check_resumable(existing[name], storage, config, space)
    meter = build_meter(dataclasses.replace(config.measure, gpus=config.gpus))
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=config.directions,  # type: ignore[arg-type]
        sampler=sampler,
        load_if_exists=True,
    )
    if name not in existing:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(config.objectives))
        attributes = {
            "greenml_version": __version__,
            "space": space.name,
            "space_spec": config.space,
            "dataset": config.dataset,
            "sampler": config.sampler,
            "seed": config.seed,
            "objectives": list(config.objectives),
            "constraints": [str(c) for c in config.constraints],
            "device": config.device,
            "deploy_device": config.deploy_device,
            "command": command or [],
            "hardware": host_info(config.gpus),
        }
        for key, value in attributes.items():
            study.set_user_attr(key, value)
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
    )
    search = SearchRun(
        config, study, space, dataset, meter, context, command or [], _start_notes(config, meter)
    )
    if config.distillation:
        context.teacher = _teacher(search)
    return search


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


def host_info(gpus: tuple[int, ...] = ()) -> dict[str, Any]:
    """The machine a study ran on, for the report's header."""
    import os
    import platform

    import onnxruntime
    import optuna
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    names = []
    if gpus and torch.cuda.is_available():
        names = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in gpus]
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpus": names,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "optuna": optuna.__version__,
    }


def _check_resumable(summary: Any, storage: Any, config: SearchConfig, space: SearchSpace) -> None:
    import optuna

    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    stored = study.user_attrs
    wanted = {
        "objectives": list(config.objectives),
        "dataset": config.dataset,
        "space": space.name,
        "constraints": [str(c) for c in config.constraints],
    }
    for key, value in wanted.items():
        if key in stored and stored[key] != value:
            raise ConfigError(
                f"study {summary.study_name!r} was created with {key} {stored[key]!r}, not {value!r}; "
                "rerun with the same settings to resume it, or give a new --study name"
            )


def _teacher(search: SearchRun) -> Callable[[], Any]:
    """The distillation teacher: trained once per study (on first use) and cached on disk."""
    cached: dict[str, Any] = {}

    def get() -> Any:
        if "model" in cached:
            return cached["model"]
        import optuna
        import torch

        from greenml.data import _cache_dir

        ctx = search.context
        space_name, params, epochs = TEACHERS[ctx.dataset.spec.kind]
        space = load_space(space_name)
        identity = f"{search.config.storage_url}|{search.study.study_name}|{ctx.dataset.spec}|{ctx.seed}|{space_name}{params}{epochs}"
        key = hashlib.sha256(identity.encode()).hexdigest()[:16]
        path = _cache_dir() / "teachers" / f"{key}.pt"
        fixed: Any = optuna.trial.FixedTrial(params)
        model = space.build(fixed, ctx.dataset.spec).to(ctx.device)
        if path.exists():
            model.load_state_dict(torch.load(path, map_location=ctx.device))
        else:
            from greenml.trial import _train

            settings = {"lr": 3e-3, "batch_size": 64}
            generator = torch.Generator().manual_seed(ctx.seed)
            with ctx.meter.window("teacher") as window:
                _train(model, ctx, epochs, settings, generator, None)
            search.study.set_user_attr("teacher_energy_j", window.result.total_energy_j)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(model.state_dict(), tmp)
            tmp.replace(path)
        model.eval()
        cached["model"] = model
        return model

    return get


def study_energy_j(study: Any) -> float:
    """The energy the search has spent: every trial's window, failed ones too."""
    return float(sum(t.user_attrs.get("trial_energy_j", 0.0) for t in study.get_trials(deepcopy=False)))


def pareto_rows(study: Any) -> list[dict[str, Any]]:
    """The Pareto-optimal feasible trials, as rows of number, metrics and parameters."""
    rows = []
    for trial in sorted(study.best_trials, key=lambda t: t.number):
        rows.append(
            {"number": trial.number, **trial.user_attrs.get("metrics", {}), "params": dict(trial.params)}
        )
    return rows


def run(search: SearchRun, progress: Callable[[str], None] | None = None) -> SearchOutcome:
    """Run trials until the budget is spent; failed trials are kept with their errors."""
    import optuna
    from optuna.trial import TrialState

    config, study, ctx = search.config, search.study, search.context
    if ctx.meter.idle is None and config.measure.idle_seconds > 0:
        ctx.meter.measure_idle(config.measure.idle_seconds)
    state = _RunState(energy_j=study_energy_j(study))

    def completed() -> int:
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def objective(trial: optuna.Trial) -> list[float]:
        try:
            metrics = run_trial(trial, ctx)
        except BaseException as error:
            _record_window(trial, ctx)
            message = f"{type(error).__name__}: {error}".strip()
            trial.set_user_attr("error", message[:2000])
            trial.set_user_attr("traceback", traceback.format_exc()[-10_000:])
            raise
        _record_window(trial, ctx)
        trial.set_user_attr("metrics", metrics)
        for constraint in config.constraints:
            trial.set_constraint(str(constraint), constraint.value(metrics))
        return [metrics[name] for name in config.objectives]

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        state.energy_j += float(trial.user_attrs.get("trial_energy_j", 0.0))
        if trial.state == TrialState.FAIL:
            state.consecutive_failures += 1
        else:
            state.consecutive_failures = 0
        done = completed()
        if progress is not None:
            front = len(study.best_trials)
            target = f"/{config.trials}" if config.trials else ""
            outcome = (
                "failed: " + trial.user_attrs.get("error", "") if trial.state == TrialState.FAIL else "ok"
            )
            progress(
                f"[{done}{target} complete] trial {trial.number} {outcome[:80]} | front {front} | "
                f"search energy {state.energy_j:.1f} J"
            )
        if config.trials is not None and done >= config.trials:
            state.reason = f"{config.trials} complete trials"
            study.stop()
        elif config.energy_budget_j is not None and state.energy_j >= config.energy_budget_j:
            state.reason = f"energy budget of {config.energy_budget_j:g} J spent"
            study.stop()
        elif state.consecutive_failures >= config.max_consecutive_failures:
            state.reason = f"{config.max_consecutive_failures} consecutive failed trials (last error: {trial.user_attrs.get('error', 'unknown')})"
            study.stop()

    already_done = config.trials is not None and completed() >= config.trials
    over_budget = config.energy_budget_j is not None and state.energy_j >= config.energy_budget_j
    if already_done:
        state.reason = f"the study already has {completed()} complete trials"
    elif over_budget:
        state.reason = "the study already spent its energy budget"
    else:
        study.optimize(
            objective,
            timeout=config.timeout_s,
            callbacks=[callback],
            catch=(Exception,),
            gc_after_trial=False,
        )
        if not state.reason:
            state.reason = f"timeout of {config.timeout_s:g} s" if config.timeout_s else "done"
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    return SearchOutcome(completed(), failed, state.reason, state.energy_j)


@dataclass
class _RunState:
    energy_j: float
    consecutive_failures: int = 0
    reason: str = ""


def _record_window(trial: Any, ctx: TrialContext) -> None:
    trial.set_user_attr("device", ctx.device)
    trial.set_user_attr("deploy_device", ctx.deploy_device)
    if ctx.notes:
        trial.set_user_attr("notes", list(ctx.notes))
    if ctx.last_inference is not None:
        trial.set_user_attr("inference", ctx.last_inference)
    window = ctx.last_window
    if window is None:
        return
    trial.set_user_attr("trial_energy_j", window.total_energy_j)
    trial.set_user_attr("trial_energy_components_j", window.energy_j.to_dict())
    trial.set_user_attr("provenance", window.provenance.to_dict())
    # Per phase for every trial, failed ones too (their metrics are never written).
    phases: dict[str, dict[str, float]] = {}
    for child in window.children:
        part = phases.setdefault(child.name, {"seconds": 0.0, "energy_j": 0.0})
        part["seconds"] += child.seconds
        part["energy_j"] += child.total_energy_j
    trial.set_user_attr("phases", phases)


def interrupted_message(search: SearchRun) -> str:
    argv = " ".join(search.command) if search.command else "the same greenml search command"
    return (
        f"interrupted: the running trial was marked failed; study {search.study.study_name!r} in "
        f"{search.config.storage_url} is intact. Resume with: {argv}"
    )
