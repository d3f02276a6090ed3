"""Pruning: zero the smallest weights, or remove whole channels so the model really shrinks.

Unstructured pruning (:func:`prune_unstructured`) zeroes individual weights; the tensors keep
their shapes, so a dense runtime spends the same time and energy on them. It is here because a
search should be able to see that. Structured pruning (:func:`prune_structured`) removes whole
neurons, channels and attention head dimensions with torch-pruning's dependency graph, which also
shrinks every layer coupled to them (BatchNorm, depthwise convolutions, residual adds, LayerNorm),
so the deployed model has fewer parameters and does less work.

Both work in place and return a :class:`PruneReport`. torch and torch-pruning are imported inside
the functions, so importing :mod:`greenml.compress` stays fast.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from greenml.errors import ConfigError, GreenMLError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["PruneReport", "prune_structured", "prune_unstructured"]

# torch-pruning keeps int(width * (1 - ratio)) channels and skips a layer that would keep none;
# capping the ratio just below (width - 1) / width keeps one channel instead of silently none.
_KEEP_ONE_SLACK = 1e-6


@dataclass(frozen=True)
class PruneReport:
    """What a pruning call did: parameter counts before and after, and how it went."""

    kind: Literal["unstructured", "structured"]
    amount: float
    params_before: int
    params_after: int
    nonzero_params_before: int
    nonzero_params_after: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "notes": list(self.notes)}


def _check_amount(amount: float) -> float:
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise ConfigError(f"pruning amount must be a number in [0, 1), got {amount!r}")
    if not (math.isfinite(amount) and 0.0 <= amount < 1.0):
        raise ConfigError(f"pruning amount must be in [0, 1) (0 leaves the model as it is), got {amount!r}")
    return float(amount)


def _count(model: nn.Module) -> tuple[int, int]:
    """All parameters and the nonzero ones; shared parameters are counted once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(int(p.count_nonzero()) for p in params)


def _report(
    kind: Literal["unstructured", "structured"],
    amount: float,
    model: nn.Module,
    before: tuple[int, int],
    notes: tuple[str, ...],
) -> PruneReport:
    params_after, nonzero_after = _count(model)
    return PruneReport(
        kind=kind,
        amount=amount,
        params_before=before[0],
        params_after=params_after,
        nonzero_params_before=before[1],
        nonzero_params_after=nonzero_after,
        notes=notes,
    )


def _layer_types() -> tuple[type[nn.Module], ...]:
    """The layers whose weights are pruned and whose outputs are channels or neurons."""
    from torch import nn

    return (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _weight_targets(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """The weight matrices of Linear, Conv and attention input projections."""
    from torch import nn

    targets: list[tuple[nn.Module, str]] = []
    for module in model.modules():
        if isinstance(module, _layer_types()):
            targets.append((module, "weight"))
        elif isinstance(module, nn.MultiheadAttention):
            # out_proj is an nn.Linear and is found on its own.
            names = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")
            targets.extend((module, name) for name in names if getattr(module, name, None) is not None)
    return targets


def prune_unstructured(model: nn.Module, amount: float) -> PruneReport:
    """Zero the ``amount`` fraction of smallest-magnitude weights, ranked across the whole model.

    Global L1 ranking (``torch.nn.utils.prune.global_unstructured``) over the weights of every
    Linear and Conv1d/2d/3d layer and the input projections of ``nn.MultiheadAttention``; biases
    and normalisation layers are left alone. The pruning is made permanent, so the weights hold
    the zeros and no masks or hooks stay behind. In place.
    """
    import torch
    from torch.nn.utils import prune

    amount = _check_amount(amount)
    params_before, nonzero_before = _count(model)
    targets = _weight_targets(model)
    notes: list[str] = []
    if amount == 0:
        notes.append("amount 0: the model is unchanged")
    elif not targets:
        notes.append("no Linear, Conv or attention weights to prune; the model is unchanged")
    else:
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
        for module, name in targets:
            prune.remove(module, name)
        with torch.no_grad():
            weights = [getattr(module, name) for module, name in targets]
            total = sum(w.numel() for w in weights)
            zeros = sum(w.numel() - int(w.count_nonzero()) for w in weights)
        notes.append(
            f"{zeros} of {total} weights in {len(targets)} weight tensors are zero "
            f"(global L1 magnitude); biases and normalisation parameters are untouched"
        )
        notes.append("the zeros are stored densely: the model is no smaller and no faster on a dense runtime")
    return _report("unstructured", amount, model, (params_before, nonzero_before), tuple(notes))


def _as_inputs(example_input: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    import torch

    if isinstance(example_input, torch.Tensor):
        return (example_input,)
    inputs = tuple(example_input)
    if not inputs or not all(isinstance(x, torch.Tensor) for x in inputs):
        raise ConfigError("example_input must be a torch.Tensor or a non-empty sequence of tensors")
    return inputs


def _output_tensors(output: Any) -> list[torch.Tensor]:
    import torch

    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        return [t for value in output.values() for t in _output_tensors(value)]
    if isinstance(output, (list, tuple)):
        return [t for value in output for t in _output_tensors(value)]
    return []


def _output_layers_and_shapes(
    model: nn.Module, inputs: tuple[torch.Tensor, ...]
) -> tuple[list[nn.Module], list[tuple[int, ...]]]:
    """The Linear/Conv layers whose outputs the model returns, and the output shapes.

    Those layers' outputs are the classes (or whatever the model predicts), so they must keep
    their width. When no returned tensor comes straight from one of them (a softmax or reshape in
    between), the last such layer to run is taken.
    """
    import torch

    produced: list[tuple[nn.Module, torch.Tensor]] = []

    def record(module: nn.Module, _args: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            produced.append((module, output))

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, _layer_types())]
    try:
        with torch.no_grad():
            outputs = _output_tensors(model(*inputs))
    finally:
        for handle in handles:
            handle.remove()
    layers: list[nn.Module] = []
    for module, tensor in produced:
        if any(tensor is out for out in outputs) and module not in layers:
            layers.append(module)
    if not layers and produced:
        layers.append(produced[-1][0])
    return layers, [tuple(t.shape) for t in outputs]


def _channel_unit(module: nn.Module, attention: Sequence[nn.MultiheadAttention]) -> int:
    """The smallest number of channels torch-pruning removes from ``module``'s group at once.

    A layer writing into an attention block's embedding is pruned head by head (the same
    positions in every head), so its unit is the head dimension.
    """
    from torch import nn

    if isinstance(module, nn.Linear):
        width = module.out_features
    elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        groups = module.groups if 1 < module.groups < module.out_channels else 1
        width = module.out_channels // groups
    else:
        return 1
    head_dims = [int(mha.head_dim) for mha in attention if mha.embed_dim == width]
    return min([width, *head_dims])


def _capped_ratio(amount: float, unit: int) -> float:
    if unit <= 1:
        return amount
    return min(amount, (unit - 1 - _KEEP_ONE_SLACK) / unit)


def prune_structured(
    model: nn.Module,
    amount: float,
    example_input: torch.Tensor | Sequence[torch.Tensor],
    *,
    prune_attention: bool = True,
) -> PruneReport:
    """Remove the ``amount`` fraction of output channels / neurons of every layer, by L1 magnitude.

    Uses torch-pruning (``tp.pruner.BasePruner`` with ``tp.importance.MagnitudeImportance(p=1)``)
    and its dependency graph, traced on ``example_input``: the layers coupled to a removed channel
    (BatchNorm, depthwise convolutions, residual adds, LayerNorm, the next layer's inputs) lose
    it too. Each Linear/Conv layer keeps ``int(width * (1 - amount))`` channels, at least one; the
    layers whose outputs the model returns (the classifier) keep every output. ``nn.MultiheadAttention``
    with equal query/key/value sizes is pruned head-uniformly (every head loses the same number of
    dimensions, the number of heads stays), which narrows the residual stream it writes into;
    ``prune_attention=False`` leaves attention and the residual stream as they are and prunes only
    the other layers (in a transformer, the feed-forward hidden units). In place; the model's
    train/eval mode is kept, its parameters are new tensors (build the optimizer afterwards).
    """
    import torch
    import torch_pruning as tp  # type: ignore[import-untyped]
    from torch import nn

    amount = _check_amount(amount)
    inputs = _as_inputs(example_input)
    params_before, nonzero_before = _count(model)
    if amount == 0:
        return _report(
            "structured",
            amount,
            model,
            (params_before, nonzero_before),
            ("amount 0: the model is unchanged",),
        )
    names = {module: name or type(module).__name__ for name, module in model.named_modules()}
    was_training = model.training
    model.eval()  # tracing in train mode would update BatchNorm's running statistics
    notes: list[str] = []
    try:
        output_layers, shapes_before = _output_layers_and_shapes(model, inputs)
        attention = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
        # torch-pruning's attention pruner handles the packed in_proj_weight only.
        prunable_attention = [m for m in attention if prune_attention and m._qkv_same_embed_dim]
        kept_attention = [m for m in attention if m not in prunable_attention]
        ignored: list[nn.Module] = [*output_layers, *kept_attention]
        ignored_all = {sub for layer in ignored for sub in layer.modules()}
        roots = [m for m in model.modules() if isinstance(m, _layer_types()) and m not in ignored_all]
        widths_before = {m: (m.embed_dim, m.head_dim) for m in prunable_attention}
        if roots:
            ratios = {m: _capped_ratio(amount, _channel_unit(m, prunable_attention)) for m in roots}
            capped = sorted(names[m] for m, ratio in ratios.items() if ratio < amount)
            # One ranking scope per layer (pruning_ratio_dict): with torch-pruning's default
            # scopes an attention group can share a scope name with a feed-forward layer and be
            # skipped.
            pruner = tp.pruner.BasePruner(
                model,
                inputs,
                importance=tp.importance.MagnitudeImportance(p=1),
                pruning_ratio=amount,
                pruning_ratio_dict=dict(ratios),
                ignored_layers=ignored,
                num_heads={m: m.num_heads for m in prunable_attention},
                prune_head_dims=True,
                prune_num_heads=False,
            )
            with torch.enable_grad():  # the dependency graph is traced from autograd
                pruner.step()
            notes.append(
                f"removed {amount:.1%} of the output channels of each Linear/Conv layer by L1 "
                f"magnitude (torch-pruning), with the layers coupled to them"
            )
            if capped:
                notes.append(
                    f"amount capped so each layer keeps at least one channel (per head): {', '.join(capped)}"
                )
        else:
            notes.append("no Linear or Conv layer to prune besides the output layer; the model is unchanged")
        if output_layers:
            notes.append(f"output layer kept at full width: {', '.join(names[m] for m in output_layers)}")
        for mha, (embed_before, head_before) in widths_before.items():
            packed = mha.in_proj_weight
            if (
                mha.embed_dim != mha.num_heads * mha.head_dim
                or packed is None
                or (tuple(packed.shape) != (3 * mha.embed_dim, mha.embed_dim))
            ):
                raise GreenMLError(
                    f"structured pruning left attention {names[mha]} inconsistent "
                    f"(embed_dim {mha.embed_dim}, {mha.num_heads} heads); prune with prune_attention=False"
                )
            if mha.embed_dim != embed_before:
                notes.append(
                    f"attention {names[mha]}: embed_dim {embed_before} -> {mha.embed_dim} "
                    f"({mha.num_heads} heads, head_dim {head_before} -> {mha.head_dim}); "
                    f"the residual stream narrows with it"
                )
        if kept_attention:
            why = "prune_attention=False" if not prune_attention else "separate query/key/value sizes"
            notes.append(
                f"attention kept at full width ({why}): {', '.join(names[m] for m in kept_attention)}; "
                f"only the other layers (feed-forward hidden units) were pruned"
            )
        _, shapes_after = _output_layers_and_shapes(model, inputs)
    finally:
        model.train(was_training)
    if shapes_after != shapes_before:
        raise GreenMLError(
            f"structured pruning changed the model's output shapes from {shapes_before} to {shapes_after}: "
            f"no Linear/Conv layer's output is returned as is, so the output layer was not recognised"
        )
    return _report("structured", amount, model, (params_before, nonzero_before), tuple(notes))
