"""Devices, in one place: their names, the torch and ONNX Runtime views of them, and the host.

Device names are ``cpu``, ``cuda`` and ``cuda:N``. The search trains on one device and deploys on
another; the meter meters the GPUs among them; ONNX Runtime picks its execution provider from the
deployment device. All of them read a device through :func:`parse_device`, so ``cuda`` means
``cuda:0`` everywhere. :func:`torch_device` and :func:`ort_providers` turn a device into what
torch and ONNX Runtime take; :func:`host_info` describes the machine every trial records.

torch and onnxruntime are imported inside the functions that use them, so importing this module
stays fast.
"""

from __future__ import annotations

from typing import Any

from greenml.errors import ConfigError

__all__ = [
    "DEVICE_CHOICES",
    "check_available",
    "cuda_index",
    "host_info",
    "ort_cuda_missing",
    "ort_fallback",
    "ort_providers",
    "parse_device",
    "torch_device",
]

DEVICE_CHOICES = "cpu, cuda, cuda:N"


def parse_device(text: str, option: str = "device") -> str:
    """``cpu`` or ``cuda:N`` (``cuda`` is ``cuda:0``); a ConfigError naming the valid forms."""
    name = str(text).strip().lower()
    if name == "cpu":
        return "cpu"
    if name == "cuda":
        return "cuda:0"
    if name.startswith("cuda:") and name[5:].isdigit():
        return f"cuda:{int(name[5:])}"
    raise ConfigError(f"unknown {option} {text!r}; valid: {DEVICE_CHOICES}")


def cuda_index(device: str) -> int | None:
    """The CUDA index of a parsed device, None for the CPU."""
    return None if device == "cpu" else int(device.split(":", 1)[1])


def check_available(device: str, option: str = "device") -> None:
    """Raise a ConfigError if torch cannot reach this (parsed) device here."""
    index = cuda_index(device)
    if index is None:
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"{option} {device!r} is not available: torch sees no CUDA GPU here; valid: cpu")
    count = torch.cuda.device_count()
    if index >= count:
        valid = ", ".join(["cpu", *(f"cuda:{i}" for i in range(count))])
        raise ConfigError(f"{option} {device!r} is not available: torch sees {count} GPU(s); valid: {valid}")


def torch_device(device: str) -> Any:
    """The ``torch.device`` for a device name as torch reads it; a ConfigError where torch cannot.

    torch parses the name itself (as ``torch.device`` does), and a bare ``cuda`` is torch's
    current CUDA device, which is what a model moved with ``.to("cuda")`` runs on.
    """
    import torch

    try:
        target = torch.device(device)
    except RuntimeError as error:
        raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from error
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device; use 'cpu'")
        if target.index is None:
            target = torch.device("cuda", torch.cuda.current_device())
    return target


def ort_cuda_missing() -> str | None:
    """None where this onnxruntime has its CUDA execution provider; else the providers it has.

    The providers come comma-separated, for the error that says ONNX Runtime cannot run on a GPU
    here (each caller words it for its own option).
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    return None if "CUDAExecutionProvider" in available else ", ".join(available)


def ort_providers(device: str | None) -> tuple[list[Any], str]:
    """ONNX Runtime's execution providers for ``device`` (the CPU when None), and the device's name.

    ``cuda[:N]`` gives the CUDA provider on GPU N with the CPU as fallback; a ConfigError where
    this onnxruntime has no CUDA provider or the name is not a device.
    """
    try:
        name = parse_device(device or "cpu")
    except ConfigError:
        raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if name == "cpu":
        return ["CPUExecutionProvider"], "cpu"
    available = ort_cuda_missing()
    if available is not None:
        raise ConfigError(
            f"device {device!r} needs onnxruntime's CUDAExecutionProvider, which this onnxruntime "
            f"lacks (it has: {available}); install onnxruntime-gpu or use 'cpu'"
        )
    return [("CUDAExecutionProvider", {"device_id": cuda_index(name)}), "CPUExecutionProvider"], name


def ort_fallback(session: Any, device: str | None, option: str = "device") -> str | None:
    """Why ``session`` does not run where ``device`` (the CPU when None) says, or None where it does.

    ONNX Runtime asked for ``[CUDA, CPU]`` (:func:`ort_providers`) falls back to the CPU when its
    CUDA provider cannot load (a missing or mismatched CUDA or cuDNN library), and says so only in
    a log line: ``session.get_providers()`` is what the session really runs on. The reason is one
    line, naming ``option`` (``device``, ``--deploy-device``), for the caller to raise.
    """
    name = parse_device(device or "cpu")
    index = cuda_index(name)
    if index is None:
        return None
    providers = list(session.get_providers())
    ran = providers[0] if providers else "no execution provider"
    if ran == "CUDAExecutionProvider":
        options = session.get_provider_options().get("CUDAExecutionProvider", {})
        device_id = str(options.get("device_id", index))
        if device_id == str(index):
            return None
        return (
            f"ONNX Runtime ran on CUDAExecutionProvider device_id {device_id}, not {index}, for {option} "
            f"{name}, and a figure measured on cuda:{device_id} is not one of {name}"
        )
    return (
        f"ONNX Runtime ran on {ran}, not CUDAExecutionProvider, for {option} {name}: its CUDA provider "
        "did not load here (onnxruntime-gpu needs the CUDA and cuDNN libraries it was built for), and "
        f"a figure measured on {ran} is not one of {name}"
    )


def host_info(gpus: tuple[int, ...] = ()) -> dict[str, Any]:
    """The machine a worker runs on: every trial stores it, and the report lists each one."""
    import os
    import platform
    import socket

    import onnxruntime
    import optuna
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            fields: dict[str, str] = {}
            for line in info:
                key, _, value = line.partition(":")
                if not key.strip():
                    break  # the first processor's block is enough
                fields.setdefault(key.strip(), value.strip())
        cpu = fields.get("model name", cpu)
        # Cloud VMs may name only the brand ("AMD EPYC"): the family and model tell generations
        # apart (two "AMD EPYC" VMs here differed 3x in latency).
        if "cpu family" in fields and "model" in fields:
            cpu += f" (family {fields['cpu family']}, model {fields['model']})"
    except OSError:
        pass
    names = []
    if gpus and torch.cuda.is_available():
        names = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in gpus]
    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpus": names,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "optuna": optuna.__version__,
    }
