"""The distillation teacher: trained once per study, by one worker, and shared through the storage.

A worker that needs the teacher looks for the study's ``teacher`` attribute. When it is there,
the worker downloads the weights from the artifact store. When it is not, the worker claims the
training through the storage (:class:`~greenml.search._workers.Claim`): the winner trains it in
a measurement window of its own, uploads it through :mod:`optuna.artifacts`, and books its
energy and time in the study's ledger as ``teacher``; the others wait for it. A claimer that
dies stops renewing its claim, and after the grace period another worker trains the teacher.

It is trained before the worker's first trial, outside every trial's window, so no trial is
charged for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from greenml import records
from greenml.errors import ConfigError
from greenml.spaces import load_space
from greenml.storage import scratch_file
from greenml.training import accuracy, predictor, train
from greenml.units import human

__all__ = ["TEACHERS", "acquire_teacher"]

# The distillation teacher per kind of data: strong on it and quick to train on a CPU.
# (Measured: digits, 2x256 MLP, 30 epochs: 0.98 validation accuracy in ~1 s; MNIST-1D needs a
# CNN, 2 separable blocks of 32 channels, 15 epochs: 0.95 in ~35-70 s.)
TEACHERS: dict[str, tuple[str, dict[str, Any], int]] = {
    "image": ("mlp", {"n_layers": 2, "width": 256, "dropout": 0.1}, 30),
    "sequence": ("cnn", {"width_multiplier": 1.0, "n_blocks": 2, "base_channels": 32}, 15),
    "tabular": ("mlp", {"n_layers": 2, "width": 256, "dropout": 0.1}, 30),
}
POLL_S = 1.0


def _build(ctx: Any) -> tuple[Any, str, dict[str, Any], int]:
    import optuna

    space_name, params, epochs = TEACHERS[ctx.dataset.spec.kind]
    fixed: Any = optuna.trial.FixedTrial(params)
    model = load_space(space_name).build(fixed, ctx.dataset.spec).to(ctx.device)
    return model, space_name, params, epochs


def acquire_teacher(
    search: Any,
    say: Callable[[str], None] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> Any:
    """The study's teacher model, in eval mode on the training device: downloaded, or trained here
    (``on_progress(phase, epoch, epochs)`` after each of its training epochs)."""
    from greenml.search._workers import Claim, claim_alive

    study, config = search.study, search.config
    waiting_for: dict[str, Any] | None = None
    while True:
        record = records.study_teacher(study)
        if record is not None:
            return _load(search, record)
        holder = claim_alive(study, "teacher", config.heartbeat.grace_s)
        if holder is None:
            claim = Claim(study, "teacher", search.worker, config.heartbeat)
            if claim.won:
                try:
                    model = _train_and_publish(search, say, on_progress)
                except BaseException:
                    claim.release(done=False)
                    raise
                claim.release(done=True)
                return model
            claim.release(done=False)
            continue
        if say is not None and holder != waiting_for:
            say(
                f"waiting for worker {holder.get('number', '?')} on {holder.get('host', '?')} to train "
                "the distillation teacher (once per study)"
            )
        waiting_for = holder
        time.sleep(POLL_S)


def _train_and_publish(
    search: Any, say: Callable[[str], None] | None, on_progress: Callable[[str, int, int], None] | None
) -> Any:
    import optuna
    import torch

    ctx, study = search.context, search.study
    model, space_name, params, epochs = _build(ctx)
    if say is not None:
        say(f"training the distillation teacher ({space_name} {params}, {epochs} epochs; once per study)")
    generator = torch.Generator().manual_seed(ctx.seed)
    torch.manual_seed(ctx.seed)
    with ctx.meter.window("teacher") as window:
        settings = {"lr": 3e-3, "batch_size": 64}
        train(model, ctx.dataset, epochs, settings, generator, device=ctx.device, on_progress=on_progress)
    model.eval()
    result = window.result
    val_accuracy = accuracy(predictor(model, "torch", ctx.device), ctx.dataset, "val")
    with scratch_file("teacher.pt") as path:
        torch.save(model.state_dict(), path)
        artifact_id = optuna.artifacts.upload_artifact(
            artifact_store=search.artifacts, file_path=str(path), study_or_trial=study
        )
    entry = {
        "energy_j": result.total_energy_j,
        "seconds": result.seconds,
        "energy_basis": result.provenance.energy_basis,
        "energy_components_j": result.energy_j.to_dict(),
        "worker": search.worker.record if search.worker else None,
        "hardware": search.worker.hardware if search.worker else None,
    }
    teacher = {
        "artifact_id": artifact_id,
        "space": space_name,
        "params": params,
        "epochs": epochs,
        "val_accuracy": val_accuracy,
    }
    records.record_teacher(study, teacher, entry)
    if say is not None:
        say(
            f"teacher trained: validation accuracy {val_accuracy:.3f}, {human('duration', result.seconds)}, "
            f"{human('energy', result.total_energy_j)} ({result.provenance.energy_basis}), booked as the study's "
            "'teacher' entry"
        )
    return model


def _load(search: Any, record: dict[str, Any]) -> Any:
    import optuna
    import torch

    model, *_ = _build(search.context)
    with scratch_file("teacher.pt") as path:
        try:
            optuna.artifacts.download_artifact(
                artifact_store=search.artifacts, file_path=str(path), artifact_id=record["artifact_id"]
            )
        except optuna.artifacts.exceptions.ArtifactNotFound:
            raise ConfigError(
                f"the study's distillation teacher (artifact {record['artifact_id']}) is not in "
                f"{search.artifacts_at}; workers on several machines need --artifacts on a filesystem "
                "or a bucket they share"
            ) from None
        state = torch.load(path, map_location=search.context.device, weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model
