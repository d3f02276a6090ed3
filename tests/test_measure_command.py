"""`greenml.measure.measure_command`, called as a Python user would: `greenml measure` without the CLI."""

from __future__ import annotations

import sys

import pytest

from greenml.config import MeasureConfig
from greenml.errors import ConfigError
from greenml.measure import CommandResult, WindowResult, measure_command

ESTIMATE = MeasureConfig(meter="estimate", idle_seconds=0)
SPIN = "import time\nt=time.process_time()+{s}\nwhile time.process_time()<t: pass"


def test_a_command_is_measured_with_its_exit_code() -> None:
    command = [sys.executable, "-c", SPIN.format(s=0.3)]
    result = measure_command(command, ESTIMATE)
    assert isinstance(result, CommandResult)
    assert result.command == tuple(command)
    assert result.exit_code == 0
    assert isinstance(result.window, WindowResult)
    assert result.window.seconds >= 0.3
    assert result.window.total_energy_j > 0
    assert (result.window.energy_j.cpu or 0) > 0
    assert result.window.dynamic_total_energy_j is None  # no idle baseline asked for
    document = result.to_dict()
    assert document["command"] == command and document["exit_code"] == 0
    assert document["seconds"] > 0 and document["total_energy_j"] > 0


def test_a_failing_command_returns_its_exit_code() -> None:
    result = measure_command([sys.executable, "-c", "raise SystemExit(3)"], ESTIMATE)
    assert result.exit_code == 3
    assert result.window.seconds > 0


def test_the_idle_baseline_is_announced_and_measured() -> None:
    idled: list[float] = []
    config = MeasureConfig(meter="estimate", idle_seconds=0.2)
    result = measure_command([sys.executable, "-c", "pass"], config, on_idle=idled.append)
    assert idled == [0.2]
    assert result.window.provenance.idle is not None
    assert result.window.provenance.idle.seconds >= 0.2
    assert result.window.dynamic_total_energy_j is not None


@pytest.mark.parametrize(
    ("command", "message"),
    [([], "no command given"), (["no-such-command-greenml"], "command not found: 'no-such-command-greenml'")],
)
def test_a_command_that_cannot_run_is_a_config_error(command: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        measure_command(command, ESTIMATE)
