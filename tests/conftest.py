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


POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_url() -> str:
    """The local PostgreSQL (trust auth, database ``test``); tests that need it skip without it."""
    import psycopg

    try:
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3").close()
    except psycopg.OperationalError as error:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({error})")
    return POSTGRES_URL


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """Headless Chromium from the system (Debian's ``chromium``) driven by Playwright.

    Module-scoped: Playwright's driver (a node process and asyncio threads) stops with the
    browser tests.

    Missing Chromium fails the browser tests (they are the only check that reports render):
    install it with ``apt-get install -y chromium``, point GREENML_CHROMIUM at another build,
    or deselect them with ``-m "not browser"``.
    """
    import shutil

    executable = os.environ.get("GREENML_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail(
            f"no Chromium at {executable}: apt-get install -y chromium, set GREENML_CHROMIUM, "
            "or deselect with -m 'not browser'"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
