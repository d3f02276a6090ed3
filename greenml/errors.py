"""The exceptions greenml raises on purpose.

Everything greenml raises for a reason the user can act on derives from :class:`GreenMLError`.
The command line catches that one class in one place, prints its message on one line and exits
with status 2. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "GreenMLError",
    "MeasurementError",
    "MeterUnavailableError",
    "StorageLostError",
]


class GreenMLError(Exception):
    """Root of every error greenml raises deliberately."""


class ConfigError(GreenMLError, ValueError):
    """A setting is invalid; the message names the setting and the valid choices."""


class MeterUnavailableError(GreenMLError):
    """A meter was asked for by name but cannot measure on this machine; the message says why."""


class MeasurementError(GreenMLError):
    """A measurement window was misused or a meter failed while measuring."""


class StorageLostError(GreenMLError):
    """The study's storage stopped answering for longer than the heartbeat's grace period."""
