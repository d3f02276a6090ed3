"""Compression on tiny models: pruning, ONNX export, int8 quantization and the distillation loss."""

from __future__ import annotations

import copy
import importlib.util
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from greenml.compress import (
    PruneReport,
    distillation_loss,
    export_onnx,
    prune_structured,
    prune_unstructured,
    quantize_onnx_dynamic,
    quantize_onnx_static,
    quantize_torch_dynamic,
    serialized_size_bytes,
)
from greenml.errors import ConfigError

FEATURES = 12
CLASSES = 4
SEQ_LEN = 6


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models: waking a second thread costs more than the work, badly so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(FEATURES, 48),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(48, 48),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(48, CLASSES),
    )


def _separable(cin: int, cout: int) -> nn.Sequential:
    """MobileNet's block: a depthwise 3x3 conv, then a pointwise 1x1 conv, each with BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class MobileNetish(nn.Module):
    def __init__(self, width: float = 0.75) -> None:
        super().__init__()
        c16, c32, c64 = (max(1, int(n * width)) for n in (16, 32, 64))
        self.stem = nn.Sequential(nn.Conv2d(1, c16, 3, padding=1, bias=False), nn.BatchNorm2d(c16), nn.ReLU())
        self.blocks = nn.Sequential(_separable(c16, c32), _separable(c32, c64))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c64, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))  # type: ignore[no-any-return]


class TinyTransformer(nn.Module):
    def __init__(self, d_model: int = 32, heads: int = 4, ff: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.proj = nn.Linear(FEATURES, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.proj(x)).mean(dim=1))  # type: ignore[no-any-return]


ModelCase = tuple[Callable[[], nn.Module], tuple[int, ...]]
KINDS: dict[str, ModelCase] = {
    "mlp": (make_mlp, (FEATURES,)),
    "cnn": (MobileNetish, (1, 10, 10)),
    "transformer": (TinyTransformer, (SEQ_LEN, FEATURES)),
}


def build(kind: str, batch: int = 3) -> tuple[nn.Module, torch.Tensor]:
    factory, shape = KINDS[kind]
    torch.manual_seed(0)
    return factory(), torch.randn(batch, *shape)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _prunable_weights(model: nn.Module) -> list[torch.Tensor]:
    weights: list[torch.Tensor] = []
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            weights.append(module.weight)
        elif isinstance(module, nn.MultiheadAttention):
            assert module.in_proj_weight is not None
            weights.append(module.in_proj_weight)
    return weights


# --- unstructured pruning ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_unstructured_reaches_the_sparsity_and_leaves_no_masks(kind: str) -> None:
    model, x = build(kind)
    weights_before = [w.detach().clone() for w in _prunable_weights(model)]
    report = prune_unstructured(model, 0.6)

    weights = [w.detach() for w in _prunable_weights(model)]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(0.6 * total)
    # Global magnitude: every zeroed weight was no larger than every kept one.
    before = torch.cat([w.flatten() for w in weights_before]).abs()
    after = torch.cat([w.flatten() for w in weights])
    assert before[after == 0].max() <= before[after != 0].min()
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())
    assert all(not m._forward_pre_hooks for m in model.modules())
    assert report.kind == "unstructured"
    assert report.params_after == report.params_before
    assert report.nonzero_params_after == report.nonzero_params_before - zeros
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()


# --- structured pruning -----------------------------------------------------------------------


def _classifier(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


@pytest.mark.parametrize("kind", list(KINDS))
def test_structured_makes_each_model_kind_smaller_and_keeps_the_classes(kind: str) -> None:
    model, x = build(kind)
    model.train()
    size_before = serialized_size_bytes(model)
    report = prune_structured(model, 0.5, x)

    assert report.kind == "structured"
    assert report.params_after < report.params_before
    assert report.params_after == sum(p.numel() for p in model.parameters())
    assert serialized_size_bytes(model) < size_before
    assert _classifier(model).out_features == CLASSES
    assert model.training, "the model's train/eval mode is kept"
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (len(x), CLASSES)
        assert model(torch.randn(1, *x.shape[1:])).shape == (1, CLASSES)
    model.train()
    model(x).sum().backward()  # still trainable (fine-tuning after pruning)


def test_structured_mlp_is_the_subnetwork_of_the_kept_neurons() -> None:
    model, x = build("mlp")
    original = copy.deepcopy(model)
    prune_structured(model, 0.5, x)
    first, second, head = (m for m in model.modules() if isinstance(m, nn.Linear))
    first0, second0, head0 = (m for m in original.modules() if isinstance(m, nn.Linear))

    def rows(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """Where each row of ``new`` sits in ``old``."""
        match = (new[:, None, :] == old[None, :, :]).all(dim=2)
        assert (match.sum(dim=1) == 1).all()
        return match.float().argmax(dim=1)

    kept1 = rows(first.weight, first0.weight)
    kept2 = rows(second.weight, second0.weight[:, kept1])
    assert len(kept1) == len(kept2) == 24
    assert torch.equal(first.bias, first0.bias[kept1])
    assert torch.equal(second.bias, second0.bias[kept2])
    assert torch.equal(head.weight, head0.weight[:, kept2])
    # Removed neurons had the smallest L1 norms among their layer's out rows and the next layer's in columns.
    importance = first0.weight.abs().sum(1) + second0.weight.abs().sum(0)
    dropped = torch.ones(48, dtype=torch.bool)
    dropped[kept1] = False
    assert importance[dropped].max() <= importance[kept1].min() * 1.0001


def test_structured_prunes_attention_head_uniformly() -> None:
    model, x = build("transformer")
    assert isinstance(model, TinyTransformer)
    report = prune_structured(model, 0.5, x)
    for layer in model.encoder.layers:
        attention = layer.self_attn
        assert (attention.num_heads, attention.head_dim, attention.embed_dim) == (4, 4, 16)
        assert attention.in_proj_weight is not None
        assert attention.in_proj_weight.shape == (48, 16)
        assert layer.linear1.out_features == 32
    assert any("embed_dim 32 -> 16" in note for note in report.notes)
    model.eval()
    slow = model(x)  # with autograd on, the encoder takes its Python path
    with torch.no_grad():
        fast = model(x)  # and its fused kernel without: both must agree on the pruned shapes
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-4)


def test_structured_can_leave_attention_alone_and_prune_the_feed_forward_only() -> None:
    model, x = build("transformer")
    assert isinstance(model, TinyTransformer)
    report = prune_structured(model, 0.5, x, prune_attention=False)
    assert report.params_after < report.params_before
    for layer in model.encoder.layers:
        assert layer.self_attn.embed_dim == 32
        assert layer.linear1.out_features == 32
    assert any("attention kept at full width" in note for note in report.notes)


def test_structured_keeps_at_least_one_channel_per_layer_and_head() -> None:
    model, x = build("transformer")
    assert isinstance(model, TinyTransformer)
    report = prune_structured(model, 0.99, x)
    assert model.encoder.layers[0].self_attn.head_dim == 1
    assert model.encoder.layers[0].linear1.out_features == 1
    assert any("capped" in note for note in report.notes)
    with torch.no_grad():
        assert model.eval()(x).shape == (len(x), CLASSES)


@pytest.mark.parametrize("kind", list(KINDS))
def test_amount_zero_leaves_the_model_unchanged(kind: str) -> None:
    model, x = build(kind)
    state = _state(model)
    for report in (prune_unstructured(model, 0.0), prune_structured(model, 0, x)):
        assert isinstance(report, PruneReport)
        assert report.params_after == report.params_before
        assert report.nonzero_params_after == report.nonzero_params_before
    after = model.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[k], v) for k, v in state.items())


@pytest.mark.parametrize("amount", [-0.1, 1.0, 1.5, math.nan, math.inf, "0.5", True])
def test_bad_amounts_are_config_errors(amount: Any) -> None:
    model, x = build("mlp")
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        prune_unstructured(model, amount)
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        prune_structured(model, amount, x)


def test_report_serialises() -> None:
    model, x = build("mlp")
    data = prune_structured(model, 0.25, x).to_dict()
    assert data["kind"] == "structured" and isinstance(data["notes"], list)


# --- ONNX export ------------------------------------------------------------------------------


def _session(onnx_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def _run(onnx_bytes: bytes, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    session = _session(onnx_bytes)
    return session.run(None, {session.get_inputs()[0].name: x})[0]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def exported() -> dict[str, tuple[nn.Module, bytes]]:
    """Each kind exported once from a batch-1 example (the case torch.export likes to specialise)."""
    out: dict[str, tuple[nn.Module, bytes]] = {}
    for kind in KINDS:
        model, x = build(kind, batch=1)
        model.train()
        out[kind] = (model, export_onnx(model, x))
        assert model.training, "export restores the train/eval mode"
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_onnx_export_round_trips_with_a_dynamic_batch(
    kind: str, exported: dict[str, tuple[nn.Module, bytes]]
) -> None:
    model, onnx_bytes = exported[kind]
    graph = onnx.load_from_string(onnx_bytes).graph
    assert not any(init.HasField("data_location") and init.data_location for init in graph.initializer)
    model.eval()
    for batch in (1, 5):
        x = torch.randn(batch, *KINDS[kind][1])
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(_run(onnx_bytes, x.numpy()), expected, atol=1e-4, rtol=0)


def test_export_of_a_pruned_transformer_runs() -> None:
    model, x = build("transformer")
    prune_structured(model, 0.5, x)
    model.eval()
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_run(export_onnx(model, x), x.numpy()), expected, atol=1e-4, rtol=0)


def test_export_rejects_a_scalar_example() -> None:
    with pytest.raises(ConfigError):
        export_onnx(make_mlp(), torch.tensor(1.0))


# --- quantization -----------------------------------------------------------------------------


def _task(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Four Gaussian blobs in 12 dimensions: separable, so a briefly trained MLP gets ~100 %."""
    centres = torch.randn(CLASSES, FEATURES, generator=torch.Generator().manual_seed(7)) * 2.5
    labels = torch.randint(0, CLASSES, (n,), generator=generator)
    return centres[labels] + torch.randn(n, FEATURES, generator=generator), labels


@pytest.fixture(scope="module")
def trained_mlp() -> tuple[nn.Module, bytes]:
    torch.manual_seed(0)
    model = make_mlp()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(1)
    for _ in range(60):
        x, y = _task(128, generator)
        loss = nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    return model, export_onnx(model, torch.randn(2, FEATURES))


def _held_out() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    x, y = _task(1000, torch.Generator().manual_seed(2))
    return x.numpy(), y.numpy()


def _check_quantized(float_bytes: bytes, quantized: bytes) -> None:
    x, y = _held_out()
    assert len(quantized) < len(float_bytes)
    float_out, quant_out = _run(float_bytes, x), _run(quantized, x)
    assert (float_out.argmax(1) == y).mean() >= 0.95, "the float model learnt the task"
    assert (quant_out.argmax(1) == float_out.argmax(1)).mean() >= 0.95
    assert (quant_out.argmax(1) == y).mean() >= 0.95
    ops = {node.op_type for node in onnx.load_from_string(quantized).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear", "QuantizeLinear", "QLinearMatMul"}


def test_dynamic_quantization_is_smaller_and_agrees(trained_mlp: tuple[nn.Module, bytes]) -> None:
    _, float_bytes = trained_mlp
    _check_quantized(float_bytes, quantize_onnx_dynamic(float_bytes))


def test_static_quantization_is_smaller_and_agrees(trained_mlp: tuple[nn.Module, bytes]) -> None:
    _, float_bytes = trained_mlp
    calibration = _task(256, torch.Generator().manual_seed(3))[0].numpy()
    quantized = quantize_onnx_static(float_bytes, calibration)
    ops = [node.op_type for node in onnx.load_from_string(quantized).graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops  # QDQ format
    _check_quantized(float_bytes, quantized)
    as_batches = quantize_onnx_static(float_bytes, [calibration[:100], calibration[100:]])
    _check_quantized(float_bytes, as_batches)


def test_dynamic_quantization_of_layers_sharing_a_weight(
    exported: dict[str, tuple[nn.Module, bytes]],
) -> None:
    # A fresh nn.TransformerEncoder's layers are copies, so the exporter stores their identical
    # weights once; ONNX Runtime's quantizer used to transpose such a weight once per layer.
    _, float_bytes = exported["transformer"]
    x = np.random.default_rng(0).standard_normal((200, SEQ_LEN, FEATURES)).astype(np.float32)
    float_out = _run(float_bytes, x)
    # 7-bit weights on every CPU, so int8 saturation (CPUs without VNNI) cannot hide the bug.
    quant_out = _run(quantize_onnx_dynamic(float_bytes, reduce_range=True), x)
    assert np.abs(quant_out - float_out).mean() < 0.1 * float_out.std()


def test_quantizers_reject_bad_input(trained_mlp: tuple[nn.Module, bytes]) -> None:
    _, float_bytes = trained_mlp
    with pytest.raises(ConfigError):
        quantize_onnx_dynamic(b"not a model")
    with pytest.raises(ConfigError):
        quantize_onnx_static(float_bytes, [])
    with pytest.raises(ConfigError):
        quantize_onnx_static(float_bytes, np.zeros((0, FEATURES), dtype=np.float32))


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao is not installed")
def test_torchao_dynamic_quantization_is_smaller_and_agrees(trained_mlp: tuple[nn.Module, bytes]) -> None:
    model = copy.deepcopy(trained_mlp[0])
    x, _ = _held_out()
    inputs = torch.from_numpy(x)
    with torch.no_grad():
        expected = model(inputs).argmax(1)
    size = serialized_size_bytes(model)
    quantized = quantize_torch_dynamic(model)
    assert quantized is model
    assert serialized_size_bytes(model) < 0.75 * size  # int8 weights; pickling overhead dominates here
    with torch.no_grad():
        assert (model(inputs).argmax(1) == expected).float().mean() >= 0.95


# --- distillation -----------------------------------------------------------------------------


def _logits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(8, CLASSES, generator=generator, requires_grad=True)
    teacher = torch.randn(8, CLASSES, generator=generator) * 3
    return student, teacher, torch.randint(0, CLASSES, (8,), generator=generator)


def test_distillation_with_alpha_zero_is_cross_entropy() -> None:
    student, teacher, targets = _logits()
    loss = distillation_loss(student, teacher, targets, temperature=4.0, alpha=0.0)
    torch.testing.assert_close(loss, nn.functional.cross_entropy(student, targets))


def test_distillation_with_alpha_one_is_t_squared_kl() -> None:
    student, teacher, targets = _logits()
    t = 3.0
    p_teacher = torch.softmax(teacher / t, dim=1)
    kl = (p_teacher * (p_teacher.log() - torch.log_softmax(student / t, dim=1))).sum(1).mean()
    loss = distillation_loss(student, teacher, targets, temperature=t, alpha=1.0)
    torch.testing.assert_close(loss, t**2 * kl)


def test_distillation_gradients() -> None:
    student, teacher, targets = _logits()
    teacher.requires_grad_(True)
    distillation_loss(student, teacher, targets, temperature=2.0, alpha=0.5).backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()
    assert student.grad.abs().sum() > 0
    assert teacher.grad is None, "the teacher is not trained"
    # A student that already matches the teacher has nothing left to learn from it.
    same = teacher.detach().clone().requires_grad_(True)
    loss = distillation_loss(same, teacher, targets, temperature=2.0, alpha=1.0)
    loss.backward()
    assert abs(loss.item()) < 1e-6
    assert same.grad is not None
    torch.testing.assert_close(same.grad, torch.zeros_like(same.grad), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("temperature", "alpha"),
    [(0.0, 0.5), (-1.0, 0.5), (math.nan, 0.5), (2.0, -0.1), (2.0, 1.5), (2.0, math.nan), (True, 0.5)],
)
def test_distillation_rejects_bad_arguments(temperature: Any, alpha: Any) -> None:
    student, teacher, targets = _logits()
    with pytest.raises(ConfigError):
        distillation_loss(student, teacher, targets, temperature=temperature, alpha=alpha)


def test_distillation_rejects_mismatched_logits() -> None:
    student, teacher, targets = _logits()
    with pytest.raises(ConfigError, match="same"):
        distillation_loss(student, teacher[:, :2], targets, temperature=2.0, alpha=0.5)
