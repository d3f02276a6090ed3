from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")

from greenml.measure import rapl
from greenml.testing.fake_nvml import FakeClock
from greenml.testing.fake_powercap import is_unreadable

if TYPE_CHECKING:
    import optuna


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


# The report tests' synthetic studies: shared by their files, built once per test process (the
# tests only read them).


@pytest.fixture(scope="session")
def study(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    """The report data tests' study: 60 synthetic trials under a constraint, some failed."""
    from greenml.testing.studies import make_study

    storage = f"sqlite:///{tmp_path_factory.mktemp('data') / 'studies.db'}"
    return make_study(storage, n_trials=60, constraints=(("accuracy", 0.8),), fail_every=7, seed=3)


@pytest.fixture(scope="session")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The report page tests' storage: a study for each thing a page shows (about 15 s to build)."""
    from _report_helpers import HOSTILE

    from greenml.testing.studies import make_study, worker

    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'studies.db'}"
    make_study(url, "tpe-like", n_trials=40, seed=1)
    make_study(url, "random-like", n_trials=30, seed=2, attrs={"sampler": "random"})
    make_study(url, "two", n_trials=30, objectives=("accuracy", "model_bytes"), seed=4)
    make_study(
        url, "four", n_trials=30, objectives=("accuracy", "inference_energy_j", "latency_ms", "model_bytes")
    )
    make_study(url, "one", n_trials=10, objectives=("accuracy",), constraints=())
    make_study(url, HOSTILE, n_trials=12, error=f"RuntimeError: {HOSTILE}", fail_every=3)
    make_study(url, "measured", n_trials=30, seed=5, basis="measured")
    make_study(url, "partly", n_trials=40, seed=6, basis="partly estimated")
    same = (worker("node-a"), worker("node-b"), worker("node-c"))
    make_study(url, "workers", n_trials=16, seed=7, workers=same, ledger={"teacher": 300.0}, stale=[5])
    differ = (worker("node-a"), worker("gpu-box", cpu="AMD EPYC (synthetic)", basis="partly estimated"))
    make_study(url, "mixed-hardware", n_trials=16, seed=8, workers=differ, stale=[3])
    make_study(url, "few", n_trials=6, seed=3, fail_every=0)
    # --early-stopping mo-asha, on an 8 kW node: energies in Wh, so a figure left in joules shows
    make_study(url, "early", n_trials=30, seed=10, stop_every=3, watts=8000.0)
    make_study(url, "curves", n_trials=12, seed=11, curves=True)  # learning curves, no early stopping
    return url
