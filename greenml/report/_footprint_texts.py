"""What a page says about the search's footprint: its headline figures, the ledger's items,
early stopping's account, and the learning curves' note."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from greenml.report._basis import energy_basis
from greenml.report._curves import CurveLine
from greenml.report._display import PageUnits
from greenml.report._footprint import Footprint
from greenml.report._record import StudyRecord, architecture
from greenml.report._stopping import ALL_COMPLETE, OWN_CURVE, SAME_ARCHITECTURE, stopping_rule

__all__ = [
    "LEGACY_TEACHER_ENERGY",
    "curves_context",
    "kpis",
    "ledger_note",
    "ledger_rows",
    "ledger_units",
    "stopping_context",
]

# The study attribute of a study from before the ledger, whose teacher was trained inside its
# first distilling trial (no longer written, so not in greenml.records).
LEGACY_TEACHER_ENERGY = "teacher_energy_j"


def curves_context(lines: Sequence[CurveLine], fp: Footprint) -> dict[str, Any]:
    """What the learning curves' note names: whether some drawn line was stopped or failed, and
    how many stopped trials have no line (stopped before training)."""
    return {
        "stopped": any(line.stopped_at is not None for line in lines),
        "failed": any(line.status == "failed" for line in lines),
        "unseen": fp.stopping.before_training if fp.stopping is not None else 0,
    }


def stopping_context(record: StudyRecord, fp: Footprint, units: PageUnits) -> dict[str, str] | None:
    """The footprint's early-stopping figures and the words that define them; None for a study
    that neither ran under early stopping nor has a stopped trial."""
    savings = fp.stopping
    if savings is None:
        return None
    energy = units.scale("energy")
    rule = stopping_rule(record.attrs)
    who = f"Early stopping ({rule})" if rule else "The early-stopping rule"
    stopped = [t for t in record.trials if t.stopped is not None]
    qualifier = energy_basis(stopped).qualifier() if stopped else ""
    cost = (
        f"Early stopping's own cost, measuring every trial's deployment cost before its training "
        f'(the "cost" phase below), was {energy.text(savings.cost_phase_j)}.'
    )
    if not savings.trials:
        return {
            "summary": f"{who} stopped no trial. {cost}",
            "spent": "",
            "spent_basis": "",
            "saved": "",
            "rule": "",
            "cost_phase": energy.text(savings.cost_phase_j),
        }
    count = len(savings.trials)
    trials = f"{count} trial{'s' if count != 1 else ''}"
    names = sorted({name for t in record.trials for name in architecture(t)})
    shape = (
        f"({', '.join(names)})"
        if names
        else "(this space records none: every parameter is a training setting)"
    )
    rule_text = (
        "The saving is an estimate, extrapolated, not measured: the training energy the stopped trials "
        "would have spent had they trained all E epochs they sampled (their epochs parameter). For a "
        "trial stopped after k ≥ 1 of its E epochs: its own training energy per epoch (its learning "
        "curve's energy at epoch k, divided by k) × (E − k). For a trial stopped before training (k = 0): "
        "the median training energy per epoch (a complete trial's curve energy at its last epoch, "
        f"divided by that epoch) of the complete trials with the same architecture parameters {shape}, "
        "or where there are none, of all complete trials, × E. It counts training only: a stopped trial "
        "also skipped compression, fine-tuning, evaluation and the benchmark, which it leaves out."
    )
    covered = [
        (savings.covered(OWN_CURVE), "from their own learning curve"),
        (savings.covered(SAME_ARCHITECTURE), "from complete trials of the same architecture"),
        (savings.covered(ALL_COMPLETE), "from all complete trials"),
    ]
    parts = [f"{n} {how}" for n, how in covered if n]
    missing = savings.covered(None)
    if missing:
        parts.append(
            f"{missing} left out, with no basis (no sampled epochs recorded, or no complete trial with "
            "a learning curve to take a median from)"
        )
    estimated = missing < count
    return {
        "summary": f"{who} stopped {trials}: {savings.at_rung} at a rung, {savings.before_training} "
        f"before training. They spent {energy.text(savings.spent_j)}"
        f"{f' ({qualifier})' if qualifier else ''}, counted in the energy above. {cost}",
        "spent": energy.text(savings.spent_j),
        "spent_basis": qualifier or "measured",
        "saved": f"≈ {energy.text(savings.saved_j)}" if estimated else "not estimated",
        "rule": f"{rule_text} Estimated here: {'; '.join(parts)}.",
        "cost_phase": energy.text(savings.cost_phase_j),
    }


def ledger_rows(fp: Footprint, units: PageUnits) -> list[dict[str, str]]:
    """The footprint's items: the trials, each ledger entry (the teacher), the total; [] when the
    study has no ledger entry (the trials are then the whole). Numbers in the page's units."""
    if not fp.ledger:
        return []
    energy, duration, mass = units.scale("energy"), units.scale("duration"), units.scale("mass")

    def co2(value: float | None) -> str:
        return "not recorded" if value is None else mass.format(value)

    trial_co2 = [row.co2_g for row in fp.trials]
    rows = [
        {
            "item": f"trials ({len(fp.trials)})",
            "energy_j": energy.format(fp.trial_energy_j),
            "seconds": duration.format(fp.trial_seconds),
            "co2_g": co2(None if None in trial_co2 else sum(v or 0.0 for v in trial_co2)),
            "basis": "",
            "by": "",
        }
    ]
    for item in fp.ledger:
        by = "" if item.worker is None else f"worker {item.worker}"
        if item.host:
            by = f"{by} on {item.host}" if by else item.host
        rows.append(
            {
                "item": item.name,
                "energy_j": energy.format(item.energy_j),
                "seconds": duration.format(item.seconds),
                "co2_g": co2(item.co2_g),
                "basis": item.energy_basis,
                "by": by,
            }
        )
    rows.append(
        {
            "item": "total",
            "energy_j": energy.format(fp.energy_j),
            "seconds": "",
            "co2_g": co2(fp.co2_g),
            "basis": fp.energy_basis,
            "by": "",
        }
    )
    return rows


def ledger_units(units: PageUnits) -> dict[str, str]:
    """The ledger table's column headers, each with the page's unit."""
    return {
        "energy": units.scale("energy").label("energy"),
        "time": units.scale("duration").label("time"),
        "co2": units.scale("mass").label("CO2e"),
    }


def ledger_note(attrs: Mapping[str, Any], fp: Footprint) -> str:
    """Where the footprint shows the study's own spending (the distillation teacher's above all)."""
    notes = []
    if any(item.name == "teacher" for item in fp.ledger):
        notes.append(
            "The distillation teacher, trained once for the whole study outside every trial, is an "
            'item of its own ("teacher"), counted in the total.'
        )
    elif LEGACY_TEACHER_ENERGY in attrs:  # a study from before the ledger: the teacher ran inside a trial
        notes.append("The distillation teacher was trained inside the first distilling trial's train phase.")
    others = [item.name for item in fp.ledger if item.name != "teacher"]
    if others:
        notes.append(
            f"The study's other ledger entries ({', '.join(others)}: spending that belongs to no trial) "
            "are items of their own too."
        )
    return " ".join(notes)


def kpis(fp: Footprint, units: PageUnits) -> dict[str, str]:
    """The footprint's headline figures, in the page's units like every other figure on it."""
    duration = units.scale("duration")
    return {
        "energy": units.scale("energy").text(fp.energy_j),
        "energy_basis": fp.energy_basis,
        "co2": units.scale("mass").text(fp.co2_g) if fp.co2_g is not None else "not recorded",
        "carbon": "at the recorded grid intensity and PUE",
        "wall": duration.text(fp.wall_seconds),
        "trial_time": duration.text(fp.trial_seconds),
    }
