"""Which meters work here, and the meter ``--meter`` asks for.

Work on a GPU that no meter can read is refused before anything runs: ``--meter auto`` never
quietly measures the CPU alone while a GPU does the work. ``--meter estimate`` (or ``rapl``)
goes on, and the provenance notes say the GPU is not metered.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenml.config import MeasureConfig
from greenml.errors import ConfigError, MeterUnavailableError
from greenml.measure._meter import Meter
from greenml.measure._types import EnergySource
from greenml.measure.carbon import carbon_intensity

__all__ = ["MeterStatus", "build_meter", "gpu_work", "probe_meters"]


@dataclass(frozen=True)
class MeterStatus:
    """One backend on this machine: can it measure, why not, and is it the one chosen."""

    name: str
    available: bool
    detail: str
    components: tuple[str, ...] = ()
    kind: str | None = None
    chosen: bool = False
    devices: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "available": self.available,
            "detail": self.detail,
            "components": list(self.components),
            "kind": self.kind,
            "chosen": self.chosen,
            "devices": list(self.devices),
        }


def _open(name: str, config: MeasureConfig, nvml: Any, powercap_root: Path | None) -> EnergySource:
    if name == "nvml":
        from greenml.measure.nvml import NvmlSource

        return NvmlSource(nvml, sample_hz=config.sample_hz, cuda_indices=config.gpus)
    if name == "rapl":
        from greenml.measure.rapl import RaplSource, powercap_root_from_env

        return RaplSource(powercap_root or powercap_root_from_env())
    from greenml.measure.estimate import CpuTimeEstimate, watts_per_core

    return CpuTimeEstimate(watts_per_core(config.watts_per_core))


def _unused_gpus(nvml: Any) -> tuple[str, ...]:
    """Notes naming the visible GPUs, for work that uses none of them."""
    from greenml.measure.nvml import NvmlSource

    try:
        source = NvmlSource(nvml, start_sampler=False, cuda_indices=())
    except MeterUnavailableError:
        return ()
    try:
        return source.notes()
    finally:
        source.close()


def gpu_work(config: MeasureConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """The GPUs the work runs on, in words ("cuda:0"), or None when it runs on none.

    A search names them (``config.gpus``); ``greenml measure`` (``gpus=None``) runs on the GPUs
    ``CUDA_VISIBLE_DEVICES`` names, when it names any (its first entry is an index, a
    ``GPU-`` or a ``MIG-`` UUID: CUDA ignores an entry that is not, and every one after it).
    """
    if config.gpus is not None:
        return ", ".join(f"cuda:{i}" for i in config.gpus) or None
    env = os.environ if environ is None else environ
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    first = visible.split(",")[0].strip()
    if first.isdigit() or first.startswith(("GPU-", "MIG-")):
        return f"the GPUs CUDA_VISIBLE_DEVICES={visible!r} names"
    return None


def _refuse_unmetered_gpu(
    config: MeasureConfig, sources: list[EnergySource], reasons: dict[str, str]
) -> None:
    """ConfigError where ``--meter auto`` would leave the work's GPUs unmetered."""
    if config.meter != "auto" or any(source.name == "nvml" for source in sources):
        return
    gpus = gpu_work(config)
    if gpus is None:
        return
    for source in sources:
        source.close()
    raise ConfigError(
        f"the work runs on {gpus}, but no meter can read it (nvml: {reasons.get('nvml', 'not tried')}); "
        "pass --meter estimate to go on with the GPU not metered"
    )


def _unmetered_gpu_note(config: MeasureConfig, sources: list[EnergySource]) -> str | None:
    """The provenance note for GPU work under a meter that reads no GPU (``--meter estimate``)."""
    gpus = gpu_work(config)
    if gpus is None or any(source.name == "nvml" for source in sources):
        return None
    return (
        f"the GPU is not metered: the work runs on {gpus}, but --meter {config.meter} reads no GPU, "
        "so every energy figure leaves out the GPU's"
    )


def _open_sources(
    config: MeasureConfig, nvml: Any, powercap_root: Path | None
) -> tuple[list[EnergySource], dict[str, str]]:
    """Open the sources ``config.meter`` asks for; also return why the others are unavailable.

    Raises ConfigError where ``--meter auto`` can read no GPU the work runs on.
    """
    reasons: dict[str, str] = {}
    if config.gpus == () and config.meter == "nvml":
        raise MeterUnavailableError(
            "meter 'nvml' measures GPUs, but the work runs on the CPU only; "
            "use --meter auto, rapl or estimate"
        )
    if config.meter != "auto":
        try:
            return [_open(config.meter, config, nvml, powercap_root)], reasons
        except MeterUnavailableError as error:
            raise MeterUnavailableError(
                f"meter {config.meter!r} is unavailable here: {error}; "
                "`greenml meters` lists what works (valid: auto, nvml, rapl, estimate)"
            ) from error
    sources: list[EnergySource] = []
    for name in ("nvml", "rapl"):
        if name == "nvml" and config.gpus == ():
            reasons[name] = "the work runs on the CPU only"
            continue
        try:
            sources.append(_open(name, config, nvml, powercap_root))
        except MeterUnavailableError as error:
            reasons[name] = str(error)
    _refuse_unmetered_gpu(config, sources, reasons)
    if "rapl" in reasons:
        sources.append(_open("estimate", config, nvml, powercap_root))
    return sources, reasons


def build_meter(config: MeasureConfig, *, nvml: Any = None, powercap_root: Path | None = None) -> Meter:
    """The meter for ``config``; raises MeterUnavailableError naming why a named meter cannot work,
    and ConfigError where ``--meter auto`` can read no GPU the work runs on (see :func:`gpu_work`)."""
    sources, _reasons = _open_sources(config, nvml, powercap_root)
    notes: list[str] = []
    unmetered = _unmetered_gpu_note(config, sources)
    if unmetered is not None:
        notes.append(unmetered)
    for source in sources:
        source_notes = getattr(source, "notes", None)
        if source_notes is not None:
            notes.extend(source_notes())
    if config.gpus == ():
        notes.extend(_unused_gpus(nvml))
    return Meter(sources, carbon=carbon_intensity(config.country, config.pue), notes=notes)


def probe_meters(
    config: MeasureConfig | None = None, *, nvml: Any = None, powercap_root: Path | None = None
) -> list[MeterStatus]:
    """Every backend, whether it is available here and why not, and which ``config.meter`` picks."""
    config = config or MeasureConfig()
    chosen: set[str] = set()
    try:
        sources, _ = _open_sources(config, nvml, powercap_root)
    except (MeterUnavailableError, ConfigError):
        sources = []
    chosen = {source.name for source in sources}
    for source in sources:
        source.close()
    statuses = []
    for name in ("nvml", "rapl", "estimate"):
        try:
            source = _open(name, config, nvml, powercap_root)
        except MeterUnavailableError as error:
            statuses.append(MeterStatus(name=name, available=False, detail=str(error)))
            continue
        try:
            entries = source.sources()
            statuses.append(
                MeterStatus(
                    name=name,
                    available=True,
                    detail="; ".join(f"{e.component}: {e.method}" for e in entries),
                    components=tuple(e.component for e in entries),
                    kind=entries[0].kind,
                    chosen=name in chosen,
                    devices=tuple(d for e in entries for d in e.devices),
                )
            )
        finally:
            source.close()
    return statuses
