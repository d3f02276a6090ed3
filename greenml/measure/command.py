"""Measure any command: run it under the energy meters, as ``greenml measure -- CMD`` does.

:func:`measure_command` opens the meters, measures the idle baseline, runs the command to its
end whatever signals arrive meanwhile, and returns a :class:`CommandResult`: the command, its
exit code and the window's :class:`~greenml.measure.WindowResult`.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from greenml.config import MeasureConfig
from greenml.errors import ConfigError

if TYPE_CHECKING:
    from greenml.measure import WindowResult

__all__ = ["CommandResult", "check_command", "measure_command"]


@dataclass(frozen=True)
class CommandResult:
    """What measuring a command gave: the command, its exit code and its energy window.

    ``exit_code`` is a shell's: the command's own status, or 128 + N when signal N ended it.
    """

    command: tuple[str, ...]
    exit_code: int
    window: WindowResult

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``greenml measure --json``: command, exit code, then the window's fields."""
        return {"command": list(self.command), "exit_code": self.exit_code, **self.window.to_dict()}


def check_command(command: Sequence[str]) -> None:
    """A one-line ConfigError when ``command`` is empty or its program is not found."""
    if not command:
        raise ConfigError("no command given")
    if shutil.which(command[0]) is None:
        raise ConfigError(f"command not found: {command[0]!r} (not an executable file or on PATH)")


def measure_command(
    command: Sequence[str],
    config: MeasureConfig | None = None,
    *,
    on_idle: Callable[[float], object] | None = None,
) -> CommandResult:
    """Run ``command`` (a program and its arguments) under the meters ``config`` chooses.

    With ``config.idle_seconds`` > 0 the meters first measure that many seconds of idle power,
    so the result also has the dynamic (idle-subtracted) energy; ``on_idle(seconds)`` is called
    just before, to say so. The command then runs to its end: Ctrl-C reaches it from the
    terminal and is only kept from stopping the measurement, and SIGTERM is passed on to it (the
    signal handlers are put back afterwards; they are only set from the main thread).

    A command that fails is measured all the same: its exit code is in the result, not raised.
    Raises :class:`~greenml.errors.ConfigError` before anything runs when the command is empty
    or not found, or when a meter ``config`` names is missing here.

    >>> result = measure_command(["sleep", "1"], MeasureConfig(meter="estimate", idle_seconds=0))
    >>> result.exit_code, result.window.seconds >= 1
    (0, True)
    """
    from greenml.measure import build_meter

    command = tuple(command)
    config = config or MeasureConfig()
    check_command(command)
    with build_meter(config) as meter:
        if config.idle_seconds > 0:
            if on_idle is not None:
                on_idle(config.idle_seconds)
            meter.measure_idle(config.idle_seconds)
        window = meter.begin("command")
        exit_code = _run_forwarding_signals(list(command))
        result = window.end()
    return CommandResult(command, exit_code, result)


def _run_forwarding_signals(command: list[str]) -> int:
    """Run ``command`` and keep measuring until it exits, whatever signals arrive meanwhile.

    Ctrl-C reaches the command from the terminal (it shares our process group), so here it is
    only kept from stopping the measurement; SIGTERM, which a scheduler sends to us alone, is
    passed on.
    """
    process = subprocess.Popen(command)

    def forward(signum: int, _frame: Any) -> None:
        if signum != signal.SIGINT and process.poll() is None:
            process.send_signal(signum)

    handles_signals = threading.current_thread() is threading.main_thread()
    previous = (
        {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
        if handles_signals
        else {}
    )
    try:
        code = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code
