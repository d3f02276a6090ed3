"""Compression: pruning, quantization, distillation, and export to a deployable artifact.

A trial compresses the trained model before it is deployed and measured: structured pruning
shrinks it for every runtime, unstructured pruning only zeroes weights, quantization makes an
int8 ONNX model (or an int8 eager model with torchao), and distillation trains a small student
from a larger teacher. Heavy libraries (torch, torch-pruning, onnxruntime, torchao) are imported
where they are used.
"""

from greenml.compress.distill import distillation_loss
from greenml.compress.export import artifact_key, export_onnx, export_torch_program, serialized_size_bytes
from greenml.compress.prune import PruneReport, prune_structured, prune_unstructured
from greenml.compress.quantize import quantize_onnx_dynamic, quantize_onnx_static, quantize_torch_dynamic

__all__ = [
    "PruneReport",
    "artifact_key",
    "distillation_loss",
    "export_onnx",
    "export_torch_program",
    "prune_structured",
    "prune_unstructured",
    "quantize_onnx_dynamic",
    "quantize_onnx_static",
    "quantize_torch_dynamic",
    "serialized_size_bytes",
]
