"""The commands a page gives its reader to copy: the one that wrote the study, and the one that
writes a trial's kept model."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from greenml import records
from greenml.storage import default_storage

__all__ = ["model_command", "study_command"]


def study_command(attrs: Mapping[str, Any]) -> str:
    """The command line that created the study (it resumes the study), quoted for a shell."""
    command = attrs.get(records.COMMAND)
    return shlex.join(command) if command else "not recorded (study not created by greenml search)"


def model_command(study: str, storage: str, trial: int, attrs: Mapping[str, Any] | None = None) -> str:
    """The shell command that writes trial ``trial``'s kept model: ``greenml model --study NAME
    [--storage URL] --trial N -o model-N``, quoted for a POSIX shell. ``storage`` is the URL as
    the report knows it (a password already ``***``); it is left out where it is the default.
    The ``--artifacts`` folder the search was given (its recorded ``command``) goes with it:
    the model is there, not beside the storage."""
    argv = ["greenml", "model", "--study", study]
    if storage and storage != default_storage():
        argv += ["--storage", storage]
    argv += ["--trial", str(trial), "-o", f"model-{trial}"]
    artifacts = _option(list((attrs or {}).get(records.COMMAND) or ()), "--artifacts")
    if artifacts is not None:
        argv += ["--artifacts", artifacts]
    return shlex.join(argv)


def _option(argv: Sequence[Any], name: str) -> str | None:
    """The value of ``name`` in a recorded argv (``--name VALUE`` or ``--name=VALUE``), the last one wins."""
    found = None
    for index, item in enumerate(map(str, argv)):
        if item == name and index + 1 < len(argv):
            found = str(argv[index + 1])
        elif item.startswith(name + "="):
            found = item.split("=", 1)[1]
    return found
