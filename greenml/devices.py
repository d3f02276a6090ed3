"""Device names, parsed in one place: ``cpu``, ``cuda`` and ``cuda:N``.

The search trains on one device and deploys on another; the meter meters the GPUs among them;
ONNX Runtime picks its execution provider from the deployment device. All of them read a device
through :func:`parse_device`, so ``cuda`` means ``cuda:0`` everywhere.
"""

from __future__ import annotations

from greenml.errors import ConfigError

__all__ = ["DEVICE_CHOICES", "check_available", "cuda_index", "parse_device"]

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
