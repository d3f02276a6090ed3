"""Optuna's private names greenml uses are all there; a missing one is named with why greenml needs it."""

from __future__ import annotations

import optuna
import pytest

from greenml import optuna_compat


def test_every_private_optuna_name_greenml_uses_exists_in_this_optuna() -> None:
    missing = optuna_compat.missing_internals()
    assert missing == [], (
        f"Optuna {optuna.__version__} lacks internals greenml uses; mend greenml/optuna_compat.py:\n"
        + "\n".join(missing)
    )


def test_a_vanished_internal_is_named_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from optuna.storages import _heartbeat

    monkeypatch.delattr(_heartbeat, "is_heartbeat_enabled")
    monkeypatch.delattr(_heartbeat.BaseHeartbeat, "_get_stale_trial_ids")
    missing = optuna_compat.missing_internals()
    assert len(missing) == 2, missing
    assert "optuna.storages._heartbeat.is_heartbeat_enabled" in missing[0]
    assert "first heartbeat" in missing[0]
    assert "_get_stale_trial_ids" in missing[1]


def test_a_vanished_instance_attribute_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real_init = optuna.trial.Trial.__init__

    def without_id(self: optuna.trial.Trial, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        del self._trial_id

    monkeypatch.setattr(optuna.trial.Trial, "__init__", without_id)
    missing = optuna_compat.missing_internals()
    assert any("_trial_id" in m and "addresses a trial" in m for m in missing), missing


def test_the_pyproject_caps_optuna_below_its_next_major_version() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    major = int(optuna.__version__.split(".")[0])
    assert f'"optuna>={major}.0,<{major + 1}"' in text
