"""Which GPUs NVML meters: loading NVML, and matching the GPUs CUDA uses to NVML's devices.

The GPUs are the ones this process's CUDA sees (``greenml measure``), or the ones a search uses
(:class:`~greenml.measure.nvml.NvmlSource`'s ``cuda_indices``). ``CUDA_VISIBLE_DEVICES`` may hold
CUDA indices, ``GPU-<uuid>`` prefixes or ``MIG-<uuid>`` instances; CUDA numbers devices
differently from NVML, so every device is matched by UUID.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from greenml.errors import MeterUnavailableError

__all__ = ["GpuDevice", "init", "load_nvml", "nvml_text", "select_gpus"]


def nvml_text(value: Any) -> str:
    """A string NVML returned, as ``str`` (older pynvml versions return bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def load_nvml() -> Any:
    """Import pynvml and initialise NVML, or say why that is impossible here."""
    try:
        import pynvml
    except ImportError as error:  # pragma: no cover - nvidia-ml-py is a dependency
        raise MeterUnavailableError("the pynvml module (nvidia-ml-py) is not installed") from error
    init(pynvml)
    return pynvml


def init(nvml: Any) -> None:
    """Initialise NVML, or raise MeterUnavailableError saying why it cannot be."""
    try:
        nvml.nvmlInit()
    except nvml.NVMLError_LibraryNotFound as error:
        raise MeterUnavailableError(
            "no NVML library (libnvidia-ml.so): the NVIDIA driver is not installed"
        ) from error
    except nvml.NVMLError_DriverNotLoaded as error:
        raise MeterUnavailableError("the NVIDIA driver is not loaded") from error
    except nvml.NVMLError as error:
        raise MeterUnavailableError(f"NVML failed to initialise: {error}") from error


@dataclass(frozen=True)
class GpuDevice:
    """One physical GPU as NVML sees it."""

    handle: Any
    nvml_index: int
    uuid: str
    name: str
    pci_bus_id: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.uuid})"


def _devices(nvml: Any) -> list[GpuDevice]:
    devices = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        devices.append(
            GpuDevice(
                handle=handle,
                nvml_index=index,
                uuid=nvml_text(nvml.nvmlDeviceGetUUID(handle)),
                name=nvml_text(nvml.nvmlDeviceGetName(handle)),
                pci_bus_id=nvml_text(nvml.nvmlDeviceGetPciInfo(handle).busId).upper(),
            )
        )
    return devices


def _torch_visible_uuids() -> list[str] | None:
    """UUIDs of the CUDA devices, in CUDA order, if this process already initialised CUDA."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is None or not cuda.is_initialized():
        return None
    uuids = []
    for index in range(cuda.device_count()):
        uuid = getattr(cuda.get_device_properties(index), "uuid", None)
        if uuid is None:
            return None
        text = str(uuid)
        uuids.append(text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}")
    return uuids


def select_gpus(nvml: Any, environ: Mapping[str, str] | None = None) -> tuple[list[GpuDevice], list[str]]:
    """The GPUs CUDA would use in this process, matched to NVML devices by UUID.

    Returns the devices and warnings for the provenance. Raises MeterUnavailableError when no GPU
    is visible.
    """
    env = os.environ if environ is None else environ
    devices = _devices(nvml)
    if not devices:
        raise MeterUnavailableError("NVML found no NVIDIA GPU")
    by_uuid = {device.uuid: device for device in devices}
    warnings: list[str] = []

    torch_uuids = _torch_visible_uuids() if environ is None else None
    if torch_uuids is not None:
        chosen = [by_uuid[u] for u in torch_uuids if u in by_uuid]
        if chosen:
            return chosen, warnings

    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return devices, warnings

    # CUDA's own numbering: FASTEST_FIRST by default, ties broken by PCI bus id.
    cuda_order = sorted(devices, key=lambda d: d.pci_bus_id)
    order_setting = env.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST").upper()
    if order_setting != "PCI_BUS_ID" and len({d.name for d in devices}) > 1:
        warnings.append(
            "GPUs of different models with CUDA_VISIBLE_DEVICES given as indices: CUDA's "
            "FASTEST_FIRST order was assumed to follow the PCI bus; set CUDA_DEVICE_ORDER=PCI_BUS_ID "
            "or name GPUs by UUID to be sure the right GPU is measured"
        )
    chosen = []
    for raw in visible.split(","):
        entry = raw.strip()
        if not entry:
            break
        if entry.startswith("MIG-"):
            parent = _mig_parent(nvml, entry, by_uuid)
            if parent is None:
                break
            warnings.append(
                f"{entry} is a MIG instance: NVML measures the whole {parent.name} "
                f"({parent.uuid}), shared with every other instance on it"
            )
            chosen.append(parent)
            continue
        if entry.startswith("GPU-"):
            matches = [d for d in devices if d.uuid.startswith(entry)]
            if len(matches) != 1:
                break  # CUDA ignores this entry and every later one
            chosen.append(matches[0])
            continue
        try:
            index = int(entry)
        except ValueError:
            break
        if not 0 <= index < len(cuda_order):
            break
        chosen.append(cuda_order[index])
    chosen = list({device.uuid: device for device in chosen}.values())
    if not chosen:
        raise MeterUnavailableError(f"CUDA_VISIBLE_DEVICES={visible!r} leaves no GPU visible to this process")
    return chosen, warnings


def _mig_parent(nvml: Any, mig_uuid: str, by_uuid: dict[str, GpuDevice]) -> GpuDevice | None:
    try:
        handle = nvml.nvmlDeviceGetHandleByUUID(mig_uuid)
        parent = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
        return by_uuid.get(nvml_text(nvml.nvmlDeviceGetUUID(parent)))
    except nvml.NVMLError:
        return None
