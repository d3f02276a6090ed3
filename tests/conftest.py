from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")

from greenml.measure import rapl
from greenml.testing.fake_nvml import FakeClock
from greenml.testing.fake_powercap import is_unreadable


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
def as_non_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Reads of files without read bits fail, as they do for a normal user (tests may run as root)."""
    real = rapl._read_text

    def read(path: Path) -> str:
        if is_unreadable(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl, "_read_text", read)
    yield
