"""Quantization to int8: ONNX Runtime's dynamic and static (QDQ) quantizers, and torchao for eager torch.

The ONNX functions take and return model bytes (from :func:`greenml.compress.export_onnx`);
ONNX Runtime's quantization API works on files, so they go through a temporary directory.

x86 CPUs without VNNI multiply int8 through 16-bit intermediates that can saturate; ONNX
Runtime's advice there is 7-bit weights (``reduce_range=True``), and without it a transformer's
outputs drift far from the float model's. ``reduce_range=None`` (the default) follows that advice
for the CPU this runs on, which is the CPU the search measures on.

onnx, onnxruntime and torchao are imported inside the functions, so importing
:mod:`greenml.compress` stays fast.
"""

from __future__ import annotations

import functools
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenml.compress.export import quiet_export
from greenml.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

__all__ = ["quantize_onnx_dynamic", "quantize_onnx_static", "quantize_torch_dynamic"]

_X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})
# Calibration runs the float model on this many rows at a time when given one big array.
_CALIBRATION_BATCH_ROWS = 64


@functools.cache
def _is_x86() -> bool:
    return platform.machine().lower() in _X86_MACHINES


@functools.cache
def _cpu_has_vnni() -> bool:
    """Whether the CPU has an int8 dot-product instruction (AVX512-VNNI or AVX-VNNI); Linux only."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):  # the same on every core; the first will do
            return bool(set(line.split()) & {"avx512_vnni", "avx_vnni"})
    return False


def _default_reduce_range() -> bool:
    return _is_x86() and not _cpu_has_vnni()


def _load(onnx_bytes: bytes) -> Any:
    import onnx
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]  # onnx's protobuf

    if not isinstance(onnx_bytes, (bytes, bytearray, memoryview)):
        raise ConfigError(f"expected ONNX model bytes, got {type(onnx_bytes).__name__}")
    try:
        return onnx.load_from_string(bytes(onnx_bytes))
    except DecodeError as e:
        raise ConfigError(f"the bytes are not an ONNX model: {e}") from e


def _preprocess(model: Any, directory: Path) -> Path:
    """ONNX Runtime's recommended pre-processing: shape inference and graph optimisation.

    The dynamic quantizer needs it for the exporter's Gemm nodes (it otherwise fails shape
    inference after turning them into MatMul). Symbolic shape inference is skipped where it
    cannot handle the model.
    """
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, target = directory / "float.onnx", directory / "preprocessed.onnx"
    onnx.save_model(model, source)
    try:
        quant_pre_process(source, target)
    except Exception:
        # Symbolic shape inference gives up on some graphs with whatever it raises (assertions,
        # KeyError, plain Exception): the same pre-processing without it is the fallback.
        # Nothing is lost: if the model itself is at fault, this call raises too, with the
        # first error chained to it.
        quant_pre_process(source, target, skip_symbolic_shape=True)
    return target


def _unshare_gemm_weights(model: Any) -> None:
    """Give every Gemm its own copy of a weight it shares with another node.

    The exporter stores identical weights once (freshly built ``nn.TransformerEncoder`` layers are
    copies of each other), and ONNX Runtime's dynamic quantizer, turning ``Gemm(transB=1)`` into
    MatMul, transposes the shared weight once per Gemm, so every second layer reads it the wrong
    way round.
    """
    import onnx

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            if name in initializers:
                readers[name] = readers.get(name, 0) + 1
    for index, node in enumerate(graph.node):
        # The last reader of a weight keeps the original.
        if node.op_type != "Gemm" or len(node.input) < 2 or readers.get(node.input[1], 0) < 2:
            continue
        shared = node.input[1]
        copy = onnx.TensorProto()
        copy.CopyFrom(initializers[shared])
        copy.name = f"{shared}__gemm{index}"
        graph.initializer.append(copy)
        node.input[1] = copy.name
        readers[shared] -= 1


def quantize_onnx_dynamic(onnx_bytes: bytes, *, reduce_range: bool | None = None) -> bytes:
    """Int8 weights (QInt8), activations quantized on the fly at run time: no calibration needed.

    ONNX Runtime's ``quantize_dynamic`` after its pre-processing; MatMul/Gemm (and the other
    operators it supports) run as integer kernels. ``reduce_range=None`` picks 7-bit weights on
    x86 CPUs without VNNI, as ONNX Runtime advises.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = _load(onnx_bytes)
    if reduce_range is None:
        reduce_range = _default_reduce_range()
    with tempfile.TemporaryDirectory(prefix="greenml-quant-") as tmp, quiet_export():
        directory = Path(tmp)
        preprocessed = onnx.load_model(_preprocess(model, directory))
        _unshare_gemm_weights(preprocessed)
        target = directory / "quantized.onnx"
        quantize_dynamic(preprocessed, target, weight_type=QuantType.QInt8, reduce_range=reduce_range)
        return target.read_bytes()


def _calibration_batches(
    calibration_inputs: np.ndarray[Any, Any] | Sequence[np.ndarray[Any, Any]], dtype: Any
) -> list[np.ndarray[Any, Any]]:
    import numpy as np

    if isinstance(calibration_inputs, np.ndarray):
        whole = calibration_inputs
        if whole.ndim == 0 or len(whole) == 0:
            raise ConfigError("calibration_inputs must hold at least one row (leading batch dimension)")
        parts = [
            whole[i : i + _CALIBRATION_BATCH_ROWS] for i in range(0, len(whole), _CALIBRATION_BATCH_ROWS)
        ]
    else:
        parts = [np.asarray(batch) for batch in calibration_inputs]
        if not parts or any(part.ndim == 0 or len(part) == 0 for part in parts):
            raise ConfigError(
                "calibration_inputs must be an array or a non-empty list of arrays, each with a leading batch dimension"
            )
    return [np.ascontiguousarray(part, dtype=dtype) for part in parts]


def quantize_onnx_static(
    onnx_bytes: bytes,
    calibration_inputs: np.ndarray[Any, Any] | Sequence[np.ndarray[Any, Any]],
    *,
    reduce_range: bool | None = None,
) -> bytes:
    """Int8 weights and activations in QDQ format, activation ranges calibrated on sample inputs.

    ``calibration_inputs`` is one array (split into batches of 64 rows) or a list of batches, each
    with a leading batch dimension, fed to the model's single input; use inputs like the ones the
    model will serve. Weights are QInt8 per output channel where the operator supports it,
    activations QUInt8 on x86 (ONNX Runtime's advice for its x86 kernels) and QInt8 elsewhere,
    ranges by MinMax. ``reduce_range=None`` picks 7-bit weights on x86 CPUs without VNNI.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = _load(onnx_bytes)
    initializer_names = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializer_names]
    if len(inputs) != 1:
        raise ConfigError(f"static quantization supports models with one input, this one has {len(inputs)}")
    input_name = inputs[0].name
    dtype = onnx.helper.tensor_dtype_to_np_dtype(inputs[0].type.tensor_type.elem_type)
    batches = _calibration_batches(calibration_inputs, dtype)
    if reduce_range is None:
        reduce_range = _default_reduce_range()

    class _Batches(CalibrationDataReader):  # type: ignore[misc]
        """Feeds the calibration batches to ONNX Runtime's calibrator, one per call."""

        def __init__(self) -> None:
            self._feeds = iter([{input_name: batch} for batch in batches])

        def get_next(self) -> dict[str, Any] | None:
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory(prefix="greenml-quant-") as tmp, quiet_export():
        directory = Path(tmp)
        target = directory / "quantized.onnx"
        quantize_static(
            _preprocess(model, directory),
            target,
            _Batches(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8 if _is_x86() else QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
        return target.read_bytes()


def quantize_torch_dynamic(model: nn.Module, *, reduce_range: bool | None = None) -> nn.Module:
    """Int8 weights and dynamically quantized int8 activations for every ``nn.Linear``, with torchao.

    For the eager torch runtime (torchao's ``Int8DynamicActivationInt8WeightConfig``). In place;
    returns the model. The weights shrink about 4x, but on CPU without ``torch.compile`` the int8
    matmul is slower than the float one. ``nn.MultiheadAttention``'s output projection is left in
    float (torchao skips it). ``reduce_range=None`` picks 7-bit weights on x86 CPUs without VNNI
    when the model is on the CPU.
    """
    try:
        with quiet_export():  # its CUDA kernels fail to load on CPU-only machines, with a warning each
            from torchao.quantization import (  # type: ignore[import-untyped]
                Int8DynamicActivationInt8WeightConfig,
                quantize_,
            )
    except ImportError as e:
        raise ConfigError("quantize_torch_dynamic needs torchao: pip install 'torchao>=0.18'") from e
    if reduce_range is None:
        on_cpu = all(p.device.type == "cpu" for p in model.parameters())
        reduce_range = on_cpu and _default_reduce_range()
    config = Int8DynamicActivationInt8WeightConfig(reduce_range=reduce_range, set_inductor_config=False)
    with quiet_export():
        quantize_(model, config)
    return model
