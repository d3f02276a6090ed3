"""What a page says about its energy figures: what they rest on (measured, estimated, partly
or mixed), and how large the estimated part is."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from greenml.report._basis import EnergyBasis, EstimateShare
from greenml.report._labels import components_text
from greenml.report._record import TrialRecord

__all__ = ["energy_texts", "share_text"]


def _percent(share: float) -> str:
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


def share_text(share: EstimateShare) -> str:
    """``CPU estimate: 37% of inference energy (median over the 9 front trials; 35% over all 52
    complete trials), 22% of search energy.``"""
    parts = []
    if share.front is not None:
        over = f"median over the {share.front_trials} front trials"
        if share.complete is not None:
            over += f"; {_percent(share.complete)} over all {share.complete_trials} complete trials"
        parts.append(f"{_percent(share.front)} of inference energy ({over})")
    elif share.complete is not None:
        parts.append(
            f"{_percent(share.complete)} of inference energy (median over all {share.complete_trials} complete trials)"
        )
    if share.search is not None:
        parts.append(f"{_percent(share.search)} of search energy")
    estimate = f"{components_text(share.components)} estimate"
    if not parts:
        return f"{estimate}: its share is unknown (the trials record no per-component energy)."
    return f"{estimate}: {', '.join(parts)}."


def energy_texts(
    trials: Sequence[TrialRecord], basis: EnergyBasis, share: EstimateShare | None
) -> dict[str, str]:
    """What the page says about its energy figures: ``basis`` (a paragraph under the header, ""
    when measured), ``share`` (the estimated part's share, where only part is estimated),
    ``pareto`` (the front's note) and ``footprint`` (the footprint's note)."""
    measured_parts = "Accuracy, latency and size are measured on the deployed artifact"
    proportional = (
        "On this basis energy per inference is proportional to CPU time (CPU time × a fixed power "
        "per core), so it adds no information beyond latency × threads: an energy objective ranks "
        "trials as CPU time does."
    )
    shown_share = (
        share_text(share) if share is not None and basis.basis in ("partly estimated", "mixed") else ""
    )
    if basis.basis == "measured":
        return {
            "basis": "",
            "share": "",
            "pareto": "Accuracy, latency, energy and size are measured on the deployed artifact.",
            "footprint": "measured",
        }
    if basis.basis == "estimated":
        how = basis.estimate
        return {
            "basis": f"Energy is {how}, not measured: no power meter was read. "
            + (proportional if basis.cpu_time else ""),
            "share": "",
            "pareto": f"{measured_parts}; energy is not: it is {how} (see the energy basis above).",
            "footprint": f"{how} (not read from a power meter; see the provenance above)",
        }
    if basis.basis == "partly estimated":
        estimated = components_text(basis.estimated)
        measured = components_text([c for c in basis.measured if c not in basis.estimated])
        what = f"{estimated} part {basis.estimate}" + (f", {measured} measured" if measured else "")
        tail = (
            f" The {estimated} part is proportional to CPU time: it adds no information beyond latency × threads."
            if basis.cpu_time
            else ""
        )
        return {
            "basis": f"Energy is partly estimated: {what}.{tail}",
            "share": shown_share,
            "pareto": f"{measured_parts}; so is its energy, except the {estimated} part, {basis.estimate} "
            "(its share is stated above).",
            "footprint": f"partly estimated ({what}; see the share above)",
        }
    if basis.basis == "mixed":
        counts = Counter(
            str((t.provenance or {}).get("energy_basis") or "not recorded")
            for t in trials
            if t.provenance is not None or not t.unfinished  # not written yet is not "not recorded"
        )
        listed = ", ".join(f"{name} in {n} trials" for name, n in counts.most_common())
        return {
            "basis": f"Energy rests on different bases in different trials ({listed}): "
            "their energy figures do not compare with each other.",
            "share": shown_share,
            "pareto": f"{measured_parts}; energy is measured in some trials and estimated in others "
            "(see the energy basis above).",
            "footprint": "measured in some trials and estimated in others (see the provenance above)",
        }
    return {
        "basis": "No trial recorded whether its energy was measured or estimated.",
        "share": "",
        "pareto": f"{measured_parts}; whether energy was measured or estimated was not recorded.",
        "footprint": "of unknown basis (no trial recorded whether it was measured or estimated)",
    }
