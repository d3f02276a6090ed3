"""Models made ready to call: eager torch, or ONNX Runtime sessions.

A :class:`Runner` holds zero-argument calls at batch 1 and at the larger batch, with the settings
the benchmark pins (eval mode, intra-op threads, inference mode, sequential ONNX Runtime
execution) in force while it is open. An ONNX Runtime runner's ``providers`` are the execution
providers its sessions actually run on, checked against the device it will be labelled with: ONNX
Runtime asked for CUDA falls back to the CPU when its CUDA provider cannot load, and such a
session is refused (a MeasurementError), never measured as the GPU.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenml import devices
from greenml.errors import ConfigError, MeasurementError

__all__ = [
    "ORT_COPIES",
    "Runner",
    "is_torch_module",
    "is_torch_tensor",
    "ort_runner",
    "ort_session",
    "torch_runner",
]

# Sessions of one ONNX model that the latency timing rotates over, a round each.
ORT_COPIES = 3

_MODEL_CHOICES = (
    "a torch.nn.Module, a path to an .onnx file (str or Path), ONNX model bytes, "
    "an onnx.ModelProto or an onnxruntime.InferenceSession"
)
# ONNX tensor element types an example input may be cast to, as numpy dtype names.
_ONNX_NUMPY_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


@dataclass
class Runner:
    """A model made ready to call: zero-argument calls at batch 1 and at the larger batch."""

    runtime: str
    device: str
    call_one: Callable[[], object]
    call_batch: Callable[[], object] | None
    notes: list[str]
    # Moves the calls to the next of several equal copies of the model (see ort_runner).
    next_copy: Callable[[], None] | None = None
    # The execution providers ONNX Runtime's sessions run on, in its order (None for torch).
    providers: tuple[str, ...] | None = None


def is_torch_module(model: object) -> bool:
    torch = sys.modules.get("torch")  # a Module can only exist once torch is imported
    return torch is not None and isinstance(model, torch.nn.Module)


def is_torch_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


# -- torch -------------------------------------------------------------------------------------


@contextlib.contextmanager
def torch_runner(
    model: Any, example_input: Any, batch_size: int, threads: int, device: str | None
) -> Iterator[Runner]:
    """Eval mode, ``threads`` intra-op threads and inference mode; all restored on the way out."""
    import numpy as np
    import torch

    target = _target_device(model, device)
    sample = (
        torch.from_numpy(np.ascontiguousarray(example_input))
        if isinstance(example_input, np.ndarray)
        else example_input.detach()
    ).to(target)
    modes = [(module, module.training) for module in model.modules()]
    previous_threads = torch.get_num_threads()
    cuda = target.type == "cuda"
    try:
        torch.set_num_threads(threads)
        model.eval()
        with torch.inference_mode():
            batch = sample.repeat(batch_size, *([1] * (sample.dim() - 1)))

            def call_one() -> object:
                output = model(sample)
                if cuda:  # the kernels are only queued until the device is synchronised
                    torch.cuda.synchronize(target)
                return output

            def call_batch() -> object:
                output = model(batch)
                if cuda:
                    torch.cuda.synchronize(target)
                return output

            yield Runner("torch", str(target), call_one, call_batch, [])
    finally:
        for module, training in modes:
            module.training = training
        torch.set_num_threads(previous_threads)


def _target_device(model: Any, device: str | None) -> Any:
    """The device to run on: where the model is when ``device`` is None, else ``device`` (a
    ConfigError if the model is elsewhere: moving it behind the caller's back would change it)."""
    import torch

    tensors = [*model.parameters(), *model.buffers()]
    model_device = tensors[0].device if tensors else None
    if device is None:
        return model_device or torch.device("cpu")
    target = devices.torch_device(device)
    if model_device is not None and model_device != target:
        raise ConfigError(
            f"the model is on {model_device} but device={device!r}; move it with model.to({device!r}) "
            "or leave device=None"
        )
    return target


# -- ONNX Runtime ------------------------------------------------------------------------------


@contextlib.contextmanager
def ort_runner(
    model: Any,
    example_input: Any,
    batch_size: int,
    threads: int,
    device: str | None,
    open_session: Callable[[Any, int, str | None, list[str]], tuple[Any, str]] | None = None,
) -> Iterator[Runner]:
    """Sessions of an ONNX model, ``ORT_COPIES`` of them unless a session was given, warmed up.

    ``open_session`` opens each (:func:`ort_session` by default), called as
    ``open_session(model, threads, device, notes)``. A session that does not run on the device it
    is named for (ONNX Runtime fell back to the CPU) is a MeasurementError, when opened and again
    once the calls are done (ONNX Runtime may switch a session to the CPU when a call fails on CUDA).
    """
    import numpy as np

    open_session = open_session or ort_session
    notes: list[str] = []
    session, device_name = open_session(model, threads, device, notes)
    # Each InferenceSession of one model runs at a level of its own (seen here: sessions of one
    # 64-256-256-10 MLP differed with a CV of 2-3% and each kept its level within 0.3%, likely
    # where its buffers landed in memory). Timing rotates over ORT_COPIES sessions, so a model's
    # latency is not one memory layout's luck.
    sessions = [session]
    if not _is_ort_session(model):
        sessions += [open_session(model, threads, device, [])[0] for _ in range(ORT_COPIES - 1)]
    providers = _check_providers(sessions, device_name)
    current = [0]
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise ConfigError(
            f"the ONNX model has {len(inputs)} inputs ({names}); benchmark_inference supports models "
            "with exactly one input"
        )
    spec = inputs[0]
    sample = example_input.detach().cpu().numpy() if is_torch_tensor(example_input) else example_input
    wanted = _ONNX_NUMPY_TYPES.get(spec.type)
    if wanted is not None and sample.dtype != np.dtype(wanted):
        notes.append(f"example_input cast from {sample.dtype} to {wanted}, the ONNX input's type")
        sample = sample.astype(wanted)
    sample = np.ascontiguousarray(sample)
    feed_one = {spec.name: sample}

    leading = spec.shape[0] if spec.shape else None
    call_batch: Callable[[], object] | None = None
    if isinstance(leading, int) and leading != 1:
        raise ConfigError(
            f"the ONNX model's input {spec.name!r} has a fixed batch dimension of {leading}; "
            "benchmark_inference needs batch 1 (export with a dynamic batch dimension)"
        )
    if leading == 1 and batch_size != 1:
        notes.append(
            f"the ONNX model's input {spec.name!r} has a fixed batch dimension of 1, so there are "
            f"no batch-{batch_size} figures; export it with a dynamic batch dimension to get them"
        )
    else:
        feed_batch = {spec.name: np.ascontiguousarray(np.repeat(sample, batch_size, axis=0))}

        def call_batch() -> object:
            return sessions[current[0]].run(None, feed_batch)

    def call_one() -> object:
        return sessions[current[0]].run(None, feed_one)

    def next_copy() -> None:
        current[0] = (current[0] + 1) % len(sessions)

    for _ in sessions:  # a session's first calls allocate: keep them out of every timed block
        next_copy()
        call_one()
        if call_batch is not None:
            call_batch()
    yield Runner("onnxruntime", device_name, call_one, call_batch, notes, next_copy, providers)
    if _check_providers(sessions, device_name) != providers:
        raise MeasurementError(
            f"ONNX Runtime switched its session from {', '.join(providers)} to "
            f"{', '.join(sessions[0].get_providers())} while it was measured on {device_name}"
        )


def _check_providers(sessions: list[Any], device_name: str) -> tuple[str, ...]:
    """The providers the sessions run on (the first's); a MeasurementError where any of them does not
    run on ``device_name`` (see :func:`greenml.devices.ort_fallback`)."""
    for session in sessions:
        reason = devices.ort_fallback(session, device_name)
        if reason is not None:
            raise MeasurementError(reason)
    return tuple(sessions[0].get_providers())


def _is_ort_session(model: object) -> bool:
    ort = sys.modules.get("onnxruntime")
    return ort is not None and isinstance(model, ort.InferenceSession)


def _ort_options(threads: int, optimization_level: Any = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimization_level is None else optimization_level
    )
    # Errors only: provider chatter is not a benchmark result. A CUDA provider that did not load
    # is caught by what the session says it runs on (ort_runner), not by a log line.
    options.log_severity_level = 3
    return options


def ort_session(model: Any, threads: int, device: str | None, notes: list[str]) -> tuple[Any, str]:
    """An InferenceSession whose thread settings are ours; a given session is rebuilt if they differ."""
    import onnxruntime as ort

    if isinstance(model, ort.InferenceSession):
        return _reuse_session(model, threads, device, notes)

    source: str | bytes
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise ConfigError(f"model path {str(model)!r} is not a file; expected an .onnx file")
        source = str(path)
    elif isinstance(model, (bytes, bytearray)):
        source = bytes(model)
    elif _is_onnx_model_proto(model):
        source = model.SerializeToString()
    else:
        raise ConfigError(f"unsupported model type {type(model).__name__}; expected {_MODEL_CHOICES}")
    providers, device_name = devices.ort_providers(device)
    try:
        session = ort.InferenceSession(source, sess_options=_ort_options(threads), providers=providers)
    except Exception as error:  # onnxruntime raises its own untyped errors for a bad model
        what = f"from {source!r}" if isinstance(source, str) else "from the given model"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"onnxruntime could not load the ONNX model {what}: {first_line}") from error
    # A call that fails on CUDA raises, rather than moving the session to the CPU mid-measurement.
    session.disable_fallback()
    return session, device_name


def _is_onnx_model_proto(model: object) -> bool:
    onnx = sys.modules.get("onnx")
    return onnx is not None and isinstance(model, onnx.ModelProto)


def _reuse_session(session: Any, threads: int, device: str | None, notes: list[str]) -> tuple[Any, str]:
    """Keep the caller's providers and optimisation level; rebuild only to pin the thread count."""
    import onnxruntime as ort

    providers = session.get_providers()
    device_name = "cuda" if providers and providers[0] == "CUDAExecutionProvider" else "cpu"
    if device_name == "cuda":
        device_id = session.get_provider_options().get("CUDAExecutionProvider", {}).get("device_id", "0")
        device_name = f"cuda:{device_id}"
    if device is not None:
        _, wanted = devices.ort_providers(device)
        if wanted != device_name:
            raise ConfigError(
                f"the given InferenceSession runs on {device_name} but device={device!r}; "
                "leave device=None or pass the model itself (path, bytes or ModelProto)"
            )
    options = session.get_session_options()
    if (
        options.intra_op_num_threads == threads
        and options.inter_op_num_threads == 1
        and options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    ):
        return session, device_name
    # The public API cannot change a live session's threads; onnxruntime keeps what it was built from.
    source = getattr(session, "_model_bytes", None) or getattr(session, "_model_path", None)
    if source is None:
        notes.append(
            f"the given InferenceSession could not be rebuilt, so its own thread settings "
            f"(intra_op_num_threads={options.intra_op_num_threads}) were used, not threads={threads}"
        )
        return session, device_name
    rebuilt = ort.InferenceSession(
        source,
        sess_options=_ort_options(threads, options.graph_optimization_level),
        providers=providers,
        provider_options=[session.get_provider_options().get(name, {}) for name in providers],
    )
    notes.append(
        f"the given InferenceSession was rebuilt with intra_op_num_threads={threads}, "
        "inter_op_num_threads=1 and sequential execution (its optimisation level kept)"
    )
    return rebuilt, device_name
