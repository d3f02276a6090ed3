"""What a page says about a study before its figures: its set-up, trials, devices, hardware,
workers and measurement provenance."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from greenml import records
from greenml.metrics import MAXIMIZED
from greenml.report._display import PageUnits
from greenml.report._record import StudyRecord, TrialRecord
from greenml.report._workers import WorkerSummary, hardware_differences
from greenml.units import plain

__all__ = [
    "counts_text",
    "devices_text",
    "hardware_lines",
    "hardware_text",
    "objectives_text",
    "provenance_groups",
    "study_setup",
    "workers_context",
]


def study_setup(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The study's space, dataset, sampler, seed and constraints as its header shows them: the
    subtitle's (``?`` where not recorded) and the description list's (``not recorded``)."""
    space = attrs.get(records.SPACE_SPEC)
    constraints = attrs.get(records.CONSTRAINTS)
    return {
        "space_short": space or attrs.get(records.SPACE, "?"),
        "space": space or attrs.get(records.SPACE, "not recorded"),
        "dataset_short": attrs.get(records.DATASET, "?"),
        "dataset": attrs.get(records.DATASET, "not recorded"),
        "sampler_short": attrs.get(records.SAMPLER, "?"),
        "sampler": attrs.get(records.SAMPLER, "not recorded"),
        "seed": attrs.get(records.SEED, "?"),
        "constraints": ", ".join(map(str, constraints)) if constraints else "none",
    }


def counts_text(record: StudyRecord) -> str:
    """``36 complete, 4 fail, 6 stopped early``: a pruned trial the early-stopping rule stopped
    is "stopped early"; one pruned otherwise (a surplus trial, which never ran) "pruned"."""
    counts = record.counts()
    stopped = sum(1 for t in record.trials if t.stopped is not None)
    counts["PRUNED"] = counts.get("PRUNED", 0) - stopped
    counts["STOPPED EARLY"] = stopped
    order = ["COMPLETE", "FAIL", "STOPPED EARLY", "RUNNING", "PRUNED", "WAITING"]
    parts = [f"{counts[state]} {state.lower()}" for state in order if counts.get(state)]
    return ", ".join(parts) or "no trials"


def objectives_text(objectives: Sequence[str]) -> str:
    """``accuracy (max), latency_ms (min)``."""
    return ", ".join(f"{name} ({'max' if name in MAXIMIZED else 'min'})" for name in objectives)


def devices_text(record: StudyRecord) -> dict[str, str]:
    """The study's training and deploy devices, and where its trials' artifacts really ran when
    that is not (only) the study's deploy device (ONNX Runtime artifacts run on the CPU)."""
    device = str(record.attrs.get(records.DEVICE) or "not recorded")
    recorded = record.attrs.get(records.DEPLOY_DEVICE)
    deploy = str(recorded) if recorded else "not recorded"
    counts = Counter(t.deploy_device for t in record.trials if t.deploy_device)
    if counts and (len(counts) > 1 or recorded not in counts):
        deploy += " (by trial: " + ", ".join(f"{n} on {name}" for name, n in counts.most_common()) + ")"
    return {"device": device, "deploy": deploy}


def hardware_text(info: Mapping[str, Any]) -> str:
    """``CPU (8 logical CPUs); GPUs or "no GPU used"; platform``; "not recorded" where empty."""
    if not info:
        return "not recorded"
    gpus = ", ".join(info.get("gpus") or []) or "no GPU used"
    return f"{info.get('cpu', '?')} ({info.get('cpu_count', '?')} logical CPUs); {gpus}; {info.get('platform', '?')}"


def hardware_lines(
    attrs: Mapping[str, Any], summaries: Sequence[WorkerSummary] = ()
) -> tuple[list[str], str]:
    """The distinct hardware lines (the workers', where they recorded it; else the study's,
    written by its first worker) and the software line (the study's)."""
    info = attrs.get(records.HARDWARE) or {}
    texts = list(dict.fromkeys(hardware_text(w.hardware) for w in summaries if w.hardware))
    hardware = texts or [hardware_text(info)]
    version = attrs.get(records.GREENML_VERSION, "?")
    if not info:
        return hardware, "greenml " + str(version)
    software = ", ".join(
        f"{name} {info[key]}"
        for name, key in (
            ("Python", "python"),
            ("torch", "torch"),
            ("ONNX Runtime", "onnxruntime"),
            ("Optuna", "optuna"),
        )
        if key in info
    )
    return hardware, f"greenml {version}, {software}"


def workers_context(summaries: Sequence[WorkerSummary], units: PageUnits) -> dict[str, Any]:
    """The workers' table (one row each, plain text) and, where their machines differ in what
    energy and latency depend on, the warning that says so (else "")."""
    rows = []
    for worker in summaries:
        info = worker.hardware
        gpus = info.get("gpus")
        rows.append(
            {
                "number": "not recorded" if worker.number is None else str(worker.number),
                "host": worker.host or info.get("host") or "not recorded",
                "pid": "" if worker.pid is None else str(worker.pid),
                "cpu": str(info.get("cpu") or "not recorded"),
                "cpu_count": str(info.get("cpu_count") or "?"),
                "gpus": "not recorded" if gpus is None else ", ".join(map(str, gpus)) or "no GPU used",
                "meter": str(info.get("meter") or "not recorded"),
                "trials": str(worker.trials),
                "energy_j": units.scale("energy").format(worker.energy_j),
            }
        )
    differ = hardware_differences(summaries)
    warning = (
        f"The workers ran on different hardware ({', '.join(differ)} differ): their trials' energy "
        "and latency are not comparable with each other. The trial table's worker and host columns "
        "say where each trial ran."
        if differ
        else ""
    )
    return {"rows": rows, "warning": warning}


def provenance_groups(trials: Sequence[TrialRecord]) -> list[dict[str, Any]]:
    """The distinct measurement set-ups of a study's trials (a resumed study may have several)."""
    groups: dict[str, dict[str, Any]] = {}
    for trial in trials:
        prov = trial.provenance
        if not prov:
            continue
        components = [c for c in (prov.get("components") or {}).values() if c]
        idle = prov.get("idle")
        if idle:
            watts = ", ".join(f"{k} {plain(v, 3)} W" for k, v in idle["power_w"].items() if v is not None)
            idle_text = f"{watts or 'none'} (over {plain(idle['seconds'], 3)} s)"
        else:
            idle_text = "not measured (no idle baseline: dynamic energy not available)"
        carbon = prov.get("carbon")
        carbon_text = (
            f"{plain(carbon['intensity_g_per_kwh'])} gCO2e/kWh ({carbon['source']}), PUE {plain(carbon['pue'])}"
            if carbon
            else "not recorded"
        )
        drivers = ", ".join(f"{k} {v}" for k, v in (prov.get("drivers") or {}).items())
        group = {
            "meter": prov.get("meter", "?"),
            "basis": prov.get("energy_basis", "unknown"),
            "components": components,
            "drivers": drivers,
            "idle": idle_text,
            "carbon": carbon_text,
            "warnings": list(prov.get("warnings") or []),
            "notes": list(prov.get("notes") or []),
        }
        key = json.dumps(group, sort_keys=True, default=str)
        groups.setdefault(key, {**group, "trials": 0})["trials"] += 1
    return list(groups.values())
