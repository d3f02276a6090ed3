"""Opening or resuming a search's study: every check first, then the study, then this worker.

A study records the settings that make its trials comparable (:data:`COMPARABLE_FLAGS`); a
resumed study, or a worker joining it, must agree on each of them, or nothing is written.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenml import __version__, records
from greenml.data import Dataset, load_dataset
from greenml.devices import host_info
from greenml.errors import ConfigError
from greenml.measure import Meter, build_meter
from greenml.search._config import SearchConfig
from greenml.search._samplers import population_size, sampler_for
from greenml.search._workers import Worker, register_worker, worker_seed
from greenml.spaces import SearchSpace, check_data_kind, load_space
from greenml.storage import (
    artifact_location,
    artifact_store,
    open_storage,
    remember_artifacts,
    shared_by_processes,
    study_names,
)
from greenml.trial import TrialContext, TrialResult, run_trial

__all__ = [
    "COMPARABLE_FLAGS",
    "Evaluate",
    "SearchRun",
    "check_resumable",
    "comparable_settings",
    "prepare",
    "start_notes",
]

# The trial itself: greenml.trial.run_trial, or a stand-in (greenml.testing.synthetic) that gives
# back a TrialResult (a plain mapping of metrics is taken as one with nothing else recorded).
Evaluate = Callable[[Any, TrialContext], TrialResult | Mapping[str, float]]


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


def check_devices(config: SearchConfig) -> None:
    """Both devices reachable, and ONNX Runtime able to run on the deployment device."""
    from greenml.devices import check_available

    check_available(config.device, "--device")
    assert config.deploy_device is not None
    check_available(config.deploy_device, "--deploy-device")
    if config.deploy_device != "cpu":
        from greenml.devices import ort_cuda_missing

        if (available := ort_cuda_missing()) is not None:
            raise ConfigError(
                f"--deploy-device {config.deploy_device} runs ONNX Runtime models on the GPU, but this "
                f"onnxruntime has no CUDAExecutionProvider (it has: {available}); install "
                "onnxruntime-gpu, or use --deploy-device cpu"
            )


# What makes two trials of a study comparable: a resumed or joining worker must agree on each.
# (study attribute, how the user sets it)
COMPARABLE_FLAGS: tuple[tuple[str, str], ...] = (
    (records.SPACE, "--space"),
    (records.DATASET, "--dataset"),
    (records.TARGET, "--target"),
    (records.DATASET_FINGERPRINT, "--dataset (its contents)"),
    (records.OBJECTIVES, "--objectives"),
    (records.CONSTRAINTS, "--constraint"),
    (records.DEVICE, "--device"),
    (records.DEPLOY_DEVICE, "--deploy-device"),
    (records.METER, "--meter (the meter it resolves to on this machine)"),
    (records.PUE, "--pue"),
    (records.CPU_WATTS_PER_CORE, "--cpu-watts-per-core"),
    (records.EPOCHS, "--epochs"),
    (records.DISTILLATION, "--no-distillation"),
    (records.ENERGY_WINDOW_S, "--min-energy-window"),
    (records.LATENCY_S, "--min-latency-window"),
    (records.HEARTBEAT, "--heartbeat-interval and --grace-period"),
    (
        records.EARLY_STOPPING,
        "--early-stopping, --reduction-factor, --min-epochs, --rungs, --no-keep-front, --[no-]stop-before-training",
    ),
)


def comparable_settings(
    config: SearchConfig, space: SearchSpace, dataset: Dataset, meter: Meter
) -> dict[str, Any]:
    """The settings :data:`COMPARABLE_FLAGS` names, as the study stores them (JSON values)."""
    return {
        records.SPACE: space.name,
        records.DATASET: config.dataset,
        records.TARGET: config.target,
        records.DATASET_FINGERPRINT: dataset.fingerprint,
        records.OBJECTIVES: list(config.objectives),
        records.CONSTRAINTS: [str(c) for c in config.constraints],
        records.DEVICE: config.device,
        records.DEPLOY_DEVICE: config.deploy_device,
        records.METER: meter.name,
        records.PUE: config.measure.pue,
        records.CPU_WATTS_PER_CORE: config.measure.watts_per_core,
        records.EPOCHS: list(config.epochs),
        records.DISTILLATION: config.distillation,
        records.ENERGY_WINDOW_S: config.energy_window_s,
        records.LATENCY_S: config.latency_s,
        # A joiner with a shorter grace period would fail live workers' trials as stale.
        records.HEARTBEAT: [config.heartbeat.interval_s, config.heartbeat.grace_s],
        records.EARLY_STOPPING: (
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


def check_resumable(study: Any, settings: dict[str, Any]) -> None:
    """Refuse to add trials that could not be compared with the study's (exit 2, naming the difference)."""
    stored = records.study_comparable(study.user_attrs)
    for key, flag in COMPARABLE_FLAGS:
        if key in stored and stored[key] != settings[key]:
            raise ConfigError(
                f"study {study.study_name!r} was created with {key} {stored[key]!r} ({flag}), not "
                f"{settings[key]!r}; its trials would not be comparable. Rerun with the same settings "
                "to resume it, or give a new --study name"
            )


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
    check_devices(config)
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
        if records.study_comparable(stored).get(records.EARLY_STOPPING, "none") == "none":
            config = dataclasses.replace(config, early_stopping="none")
    settings = comparable_settings(config, space, dataset, meter)
    if existing:
        check_resumable(optuna.load_study(study_name=name, storage=storage), settings)
    hardware = {**host_info(config.gpus), "meter": meter.name}
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=config.directions,  # type: ignore[arg-type]
        load_if_exists=True,
    )
    if not existing and records.COMPARABLE not in study.user_attrs:
        # The comparable settings in one attribute, written first: a worker joining while the
        # study is being created compares against all of it or waits for it, never half of it.
        attributes = records.study_attrs(
            settings,
            greenml_version=__version__,
            space_spec=config.space,
            sampler=config.sampler,
            seed=config.seed,
            command=command or [],
            hardware=hardware,
            data_spec={
                "name": dataset.spec.name,
                "kind": dataset.spec.kind,
                "input_shape": list(dataset.spec.input_shape),
                "num_classes": dataset.spec.num_classes,
                "classes": list(dataset.spec.classes),
                "features": list(dataset.spec.features),
            },
            preprocessing=dataset.preprocessing,
        )
        records.record_study(study, {records.COMPARABLE: attributes.pop(records.COMPARABLE)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(config.objectives))
        records.record_study(study, attributes)
    remember_artifacts(study, config.artifacts)
    # Another worker may have created it at the same moment: the settings that stuck must be ours.
    check_resumable(study, settings)
    worker = register_worker(study, hardware, config.heartbeat) if register else None
    study.sampler = sampler_for(config, worker_seed(config.seed, worker.number if worker else 0))
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
    notes = start_notes(config, meter)
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


def start_notes(config: SearchConfig, meter: Meter) -> list[str]:
    """What the user should know as the search starts: the meter's notes, a population's size,
    and an energy that is estimated rather than measured."""
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
