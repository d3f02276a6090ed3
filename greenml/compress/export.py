"""Export to a deployable artifact: ONNX bytes for ONNX Runtime, and the size of an eager model.

The ONNX model is one self-contained blob with a symbolic batch dimension, so the same bytes
serve the latency benchmark's batch sizes and the quantizers in :mod:`greenml.compress.quantize`.
torch is imported inside the functions, so importing :mod:`greenml.compress` stays fast.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from greenml.errors import ConfigError, GreenMLError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["export_onnx", "export_torch_program", "serialized_size_bytes"]

INPUT_NAME = "input"
BATCH_DIM_NAME = "batch"


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """Hold back what a library call prints, warns and logs (up to WARNING); errors still raise.

    The exporter and the quantizers narrate every step; a search runs them once per trial. The
    logging switch is process-wide for the length of the call.
    """
    root = logging.getLogger()
    # logging.warning() on a root logger without handlers would install a stderr handler for good.
    guard = logging.NullHandler()
    root.addHandler(guard)
    previous = root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
        root.removeHandler(guard)


def export_onnx(model: nn.Module, example_input: torch.Tensor) -> bytes:
    """The model in eval mode as ONNX bytes whose first input dimension (the batch) is symbolic.

    Uses torch's default (dynamo) exporter, which needs onnxscript. The exporter's per-node
    debugging metadata (source stack traces, FX names) is dropped: no runtime reads it, and it is
    most of a small model's bytes. The model's train/eval mode is restored afterwards. The input
    is named ``"input"``.
    """
    import torch

    if not isinstance(example_input, torch.Tensor) or example_input.ndim == 0:
        raise ConfigError("example_input must be a torch.Tensor with a leading batch dimension")
    if example_input.shape[0] == 1:
        # An example batch of 1 lets torch.export specialise the batch to 1 in some models
        # (attention reshapes) without complaint; two rows keep it symbolic.
        example_input = torch.cat([example_input, example_input])
    was_training = model.training
    model.eval()
    try:
        with quiet_export():
            # No file: the returned program holds the whole model, weights inline, in memory.
            program = torch.onnx.export(
                model,
                (example_input,),
                dynamo=True,
                dynamic_shapes=({0: torch.export.Dim(BATCH_DIM_NAME)},),
                input_names=[INPUT_NAME],
                verbose=False,
            )
    finally:
        model.train(was_training)
    if program is None:
        raise GreenMLError(
            "torch.onnx.export returned no ONNX program; greenml needs its dynamo exporter (torch >= 2.6)"
        )
    return _deployable(program.model_proto)


def _deployable(model: Any) -> bytes:
    """The exported model as bytes, without node metadata, once its batch is known to be symbolic."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if not dims or not dims[0].dim_param:
        raise GreenMLError(
            "the ONNX export fixed the batch dimension; the model cannot serve other batch sizes"
        )
    for node in [*model.graph.node, *(node for function in model.functions for node in function.node)]:
        del node.metadata_props[:]
    serialized: bytes = model.SerializeToString()
    return serialized


def export_torch_program(model: nn.Module, example_input: torch.Tensor) -> bytes:
    """The eager model as a ``torch.export`` program (``torch.export.save`` bytes, a ``.pt2`` file).

    It reloads without the space's Python code: ``torch.export.load(path).module()(x)``. The
    batch dimension stays symbolic (an example of two rows keeps torch.export from fixing it).
    """
    import torch

    example = example_input if example_input.shape[0] > 1 else torch.cat([example_input, example_input])
    was_training = model.training
    model.eval()
    try:
        with quiet_export():
            program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    finally:
        model.train(was_training)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def serialized_size_bytes(model: nn.Module) -> int:
    """Bytes of the model's state_dict saved with ``torch.save``: what the eager runtime ships."""
    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def artifact_key(model: Any, runtime: str, quantization: str, device: str) -> str:
    """A digest of what decides a deployed artifact's cost, but not of its weights.

    Two models with the same key deploy to artifacts of the same shape on the same runtime,
    quantization and device, so their latency, energy per inference and size are the same up
    to measurement noise (dense kernels do the same work whatever the weights hold; zeroed
    weights are still stored and multiplied). The key is taken after pruning, from every module's
    type and ``extra_repr`` (layer sizes, strides, activations) and every state-dict entry's name,
    shape and dtype. Dropout, the identity at inference, is keyed by its type alone, so the dropout
    rate does not split a key; anything else a module prints does, which errs on the side of
    measuring again.
    """
    import hashlib
    import json

    import torch

    modules = []
    for name, module in model.named_modules():
        extra = "" if isinstance(module, torch.nn.modules.dropout._DropoutNd) else module.extra_repr()
        modules.append([name, f"{type(module).__module__}.{type(module).__qualname__}", extra])
    tensors = [[name, list(value.shape), str(value.dtype)] for name, value in model.state_dict().items()]
    text = json.dumps([runtime, quantization, device, modules, tensors], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
