"""greenml.records: the schema is documented where it is defined, the writer and readers agree, and
a study written before the module existed still opens, exports and reports the same."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from greenml import records
from greenml.records import TrialOutcome, WindowRecord, outcome_attrs
from greenml.results import export_frame, trial_rows
from greenml.testing.studies import make_study, worker

LEGACY = Path(__file__).parent / "data" / "study-main-31989b3"
LEGACY_STUDIES = ("mlp-digits-random-seed0", "synthetic-main")


def _documented(section: str) -> set[str]:
    """The attribute names in the first column of one of the module docstring's tables."""
    doc = records.__doc__ or ""
    table = doc.split(section, 1)[1].split("\n\n", 2)[1]
    names: set[str] = set()
    for line in table.splitlines():
        first = line[:36]
        names.update(re.findall(r"``([^`]+)``", first))
    return names


def test_every_trial_attribute_is_documented_in_the_module_table_and_back() -> None:
    assert _documented("Trial attributes (Optuna user attributes") == set(records.TRIAL_ATTRIBUTES)


def test_every_study_attribute_is_documented_in_the_module_table_and_back() -> None:
    assert _documented("Study attributes (Optuna user attributes") == set(records.STUDY_ATTRIBUTES)


def _keys_outside_schema(study: Any) -> set[str]:
    study_keys = {k for k in study.user_attrs if not k.startswith(records.LEDGER_PREFIX)}
    outside = study_keys - set(records.STUDY_ATTRIBUTES)
    for trial in study.get_trials(deepcopy=False):
        outside |= set(trial.user_attrs) - set(records.TRIAL_ATTRIBUTES)
    return outside


@pytest.fixture
def legacy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A copy of the study file written by main at 31989b3 (its README says how), as the cwd."""
    for item in LEGACY.iterdir():
        if item.is_dir():
            shutil.copytree(item, tmp_path / item.name)
        else:
            shutil.copy(item, tmp_path / item.name)
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'greenml.db'}"


def test_a_study_written_before_the_records_module_holds_only_names_the_schema_knows(legacy: str) -> None:
    for name in LEGACY_STUDIES:
        assert _keys_outside_schema(optuna.load_study(study_name=name, storage=legacy)) == set(), name


def test_a_synthetic_study_holds_only_names_the_schema_knows(tmp_path: Path) -> None:
    study = make_study(
        f"sqlite:///{tmp_path / 's.db'}",
        n_trials=20,
        workers=[worker("a"), worker("b")],
        ledger={"teacher": 5.0},
        stale=[4],
        stop_every=3,
    )
    assert _keys_outside_schema(study) == set()


@pytest.mark.parametrize("name", LEGACY_STUDIES)
def test_a_study_written_before_the_records_module_exports_the_same_rows(legacy: str, name: str) -> None:
    expected = json.loads((LEGACY / f"export-{name}.json").read_text())
    frame = export_frame(trial_rows(optuna.load_study(study_name=name, storage=legacy)))
    exported = json.loads(frame.to_json(orient="records", indent=2))  # as greenml export writes it
    assert len(exported) == len(expected)
    for row, old in zip(exported, expected, strict=True):
        assert row == old, row["number"]


def test_a_study_written_before_the_records_module_reports_the_same_figures(legacy: str) -> None:
    """The report's figures of both studies, computed now, equal those main at 31989b3 computed."""
    done = subprocess.run(
        [sys.executable, str(LEGACY / "figures.py"), legacy], capture_output=True, text=True, check=True
    )
    now = json.loads(done.stdout)
    before = json.loads((LEGACY / "report-figures.json").read_text())
    assert sorted(now) == sorted(before)
    for name in before:
        for figure in before[name]:
            assert now[name][figure] == before[name][figure], (name, figure)


def test_the_outcome_writer_stores_what_the_readers_read() -> None:
    """One outcome through the writer, read back by every reader (an in-memory trial)."""
    window = WindowRecord(
        energy_j=12.5,
        energy_components_j={"gpu": None, "cpu": 12.5, "dram": None},
        provenance={"energy_basis": "estimated"},
        phases={"train": {"seconds": 2.0, "energy_j": 10.0}, "evaluate": {"seconds": 0.5, "energy_j": 2.5}},
    )
    outcome = TrialOutcome(
        device="cpu",
        deploy_device="cpu",
        notes=("pruning changed nothing",),
        learning_curve=({"epoch": 1, "accuracy": 0.5, "energy_j": 10.0, "seconds": 2.0},),
        early_cost={"latency_ms": 0.02},
        early_cost_from=3,
        artifact_key="k1",
        window=window,
        stopped="ranked 5 of 8",
        metrics={"accuracy": 0.5, "latency_ms": 0.02},
    )
    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED, user_attrs=outcome_attrs(outcome), system_attrs={}
    )
    assert records.trial_metrics(trial) == {"accuracy": 0.5, "latency_ms": 0.02}
    assert records.trial_energy_j(trial) == 12.5
    assert records.trial_spent_j(trial) == 12.5
    assert records.trial_phases(trial)["evaluate"] == {"seconds": 0.5, "energy_j": 2.5}
    assert records.trial_provenance(trial) == {"energy_basis": "estimated"}
    assert records.trial_notes(trial) == ["pruning changed nothing"]
    assert records.trial_curve(trial) == [{"epoch": 1, "accuracy": 0.5, "energy_j": 10.0, "seconds": 2.0}]
    assert records.trial_early_cost(trial) == {"latency_ms": 0.02}
    assert records.trial_early_cost_from(trial) == 3
    assert records.trial_artifact_key(trial) == "k1"
    assert records.trial_stopped(trial) == "ranked 5 of 8"
    assert records.trial_error(trial) is None
    assert set(trial.user_attrs) <= set(records.TRIAL_ATTRIBUTES)


def test_a_failed_outcome_keeps_its_error_short_and_its_traceback_tail() -> None:
    attrs = outcome_attrs(
        TrialOutcome(device="cpu", deploy_device="cpu", error="E" * 5000, traceback="x" * 20_000 + "END")
    )
    assert len(attrs[records.ERROR]) == 2000
    assert attrs[records.TRACEBACK].endswith("END") and len(attrs[records.TRACEBACK]) == 10_000
    assert records.METRICS not in attrs  # a failed trial's metrics are never written


def test_begin_trial_clears_what_a_retry_copied_from_its_dead_original() -> None:
    class Live:
        def __init__(self, attrs: dict[str, Any]) -> None:
            self.user_attrs = dict(attrs)

        def set_user_attr(self, key: str, value: Any) -> None:
            self.user_attrs[key] = value

    dead = {records.ERROR: "boom", records.ENERGY: 3.0, records.CURVE: [{}], records.ARTIFACT_KEY: "k"}
    trial = Live(dead)
    records.begin_trial(trial, {"host": "h"}, {"number": 1, "host": "h", "pid": 2})
    assert trial.user_attrs[records.ENERGY_SO_FAR] == 0.0
    assert all(trial.user_attrs[key] is None for key in dead)
    assert trial.user_attrs[records.WORKER] == {"number": 1, "host": "h", "pid": 2}


def test_study_attrs_refuses_a_name_outside_the_schema() -> None:
    with pytest.raises(ValueError, match="colour"):
        records.study_attrs({records.SPACE: "mlp"}, colour="green")
    attrs = records.study_attrs({records.SPACE: "mlp"}, seed=0)
    assert next(iter(attrs)) == records.COMPARABLE  # written first: a joining worker reads all of it


def _greenml(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "greenml", *args], capture_output=True, text=True)


def test_a_study_written_before_the_records_module_resumes_reports_and_gives_its_model(legacy: str) -> None:
    """The real study of main at 31989b3: the same command resumes it (its teacher is loaded, not
    trained again), its report and its knee's model are written."""
    name = "mlp-digits-random-seed0"
    before = optuna.load_study(study_name=name, storage=legacy)
    old = {t.number: (t.params, t.user_attrs, t.values) for t in before.trials}
    # The command that made it, one trial more (see tests/data/study-main-31989b3/README.md).
    done = _greenml("search", "--trials", "5", "--seed", "0", "--epochs", "1:3", "--no-report")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "training the distillation teacher" not in done.stderr  # the stored teacher was loaded
    after = optuna.load_study(study_name=name, storage=legacy)
    assert len(after.trials) == 5
    assert {t.number: (t.params, t.user_attrs, t.values) for t in after.trials[:4]} == old
    new = after.trials[4]
    assert new.state.name in ("COMPLETE", "PRUNED"), records.trial_error(new)
    assert set(new.user_attrs) <= set(records.TRIAL_ATTRIBUTES)
    assert records.trial_spent_j(new) > 0
    report = _greenml("report", "--study", name, "-o", "old.html")
    assert report.returncode == 0, report.stderr[-2000:]
    assert Path("old.html").stat().st_size > 100_000
    model = _greenml("model", "--study", name, "--trial", "3", "-o", "knee")
    assert model.returncode == 0, model.stderr[-2000:]
    card = json.loads(next(Path().glob("knee*.card.json")).read_text())
    assert card["trial"] == 3 and card["metrics"] == records.trial_metrics(after.trials[3])
