"""The workers of a study, as its trials and ledger entries recorded them, and where their
machines differ in what energy and latency depend on."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from greenml import records
from greenml.report._record import StudyRecord

__all__ = ["WorkerSummary", "hardware_differences", "workers"]


@dataclass(frozen=True)
class WorkerSummary:
    """A worker of the study, as its trials (and ledger entries) recorded it."""

    number: int | None  # None: trials that recorded no worker (a study from before workers were)
    host: str | None
    pid: int | None
    hardware: dict[str, Any]  # cpu, cpu_count, gpus, meter, ...; {} where not recorded
    trials: int  # trials it ran (running and failed ones included, waiting ones not)
    energy_j: float  # what those trials spent

    def comparable(self) -> dict[str, Any]:
        """What makes energy and latency comparable, by label: CPU model, logical CPUs, GPU models
        (a device index such as ``cuda:1`` is no difference), meter. None where not recorded."""
        gpus = self.hardware.get("gpus")
        return {
            "CPU model": self.hardware.get("cpu"),
            "logical CPUs": self.hardware.get("cpu_count"),
            "GPUs": None
            if gpus is None
            else tuple(sorted(re.sub(r"^cuda:\d+\s+", "", str(g)) for g in gpus)),
            "meter": self.hardware.get("meter"),
        }


def workers(record: StudyRecord) -> list[WorkerSummary]:
    """Every worker seen in the trials and the ledger, in number order; trials that recorded no
    worker (an older study) are one entry, first, with the study's ``hardware`` (written by its
    first worker). A study with no trials yet lists that attribute alone, where it is recorded."""
    study_hardware = record.attrs.get(records.HARDWARE)
    found: dict[tuple[int, int, str], dict[str, Any]] = {}

    def tally(number: int | None, host: str | None, hardware: dict[str, Any] | None) -> dict[str, Any]:
        # Unrecorded first, then by worker number, then trials that name a host but no worker.
        key = (1, number, "") if number is not None else (2, 0, host) if host else (0, 0, "")
        if key[0] == 0 and not hardware and isinstance(study_hardware, dict):
            hardware = study_hardware
        entry = found.setdefault(
            key, {"number": number, "host": host, "pid": None, "hardware": {}, "trials": 0, "energy_j": 0.0}
        )
        if not entry["hardware"] and hardware:
            entry["hardware"] = dict(hardware)
        entry["host"] = entry["host"] or host
        return entry

    for trial in record.trials:
        if trial.state == "WAITING":  # not run yet
            continue
        entry = tally(trial.worker_number, trial.host, trial.hardware)
        entry["trials"] += 1
        entry["energy_j"] += trial.energy_j or 0.0
        pid = (trial.worker or {}).get("pid")
        if entry["pid"] is None and isinstance(pid, int):
            entry["pid"] = pid
    for item in records.ledger_entries(record.attrs).values():
        # An entry records its worker and machine as a trial does (greenml.records).
        worker, hardware = item.get(records.WORKER), item.get(records.HARDWARE)
        if isinstance(worker, dict) and isinstance(worker.get("number"), int):
            entry = tally(
                worker["number"], worker.get("host"), hardware if isinstance(hardware, dict) else None
            )
            if entry["pid"] is None and isinstance(worker.get("pid"), int):
                entry["pid"] = worker["pid"]
    if not found and isinstance(study_hardware, dict) and study_hardware:
        tally(None, None, None)
    return [WorkerSummary(**found[key]) for key in sorted(found)]


def hardware_differences(summaries: Sequence[WorkerSummary]) -> list[str]:
    """What differs between the workers' machines (CPU model, logical CPUs, GPUs, meter): the
    labels of :meth:`WorkerSummary.comparable` with more than one recorded value."""
    values: dict[str, set[Any]] = {}
    for summary in summaries:
        for label, value in summary.comparable().items():
            if value is not None:
                values.setdefault(label, set()).add(value)
    return [label for label, seen in values.items() if len(seen) > 1]
