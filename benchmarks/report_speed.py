"""How long a 1,000-trial report takes to write and to load, and how big it is.

Targets (issue 4): written in under 3 s, under 10 MB, loads in the browser in under 3 s.

The study is synthetic (``greenml.testing.studies``: the records ``greenml search`` writes, with
made-up numbers), 1,000 trials of which every ninth failed, three objectives and a constraint,
in SQLite. "Written" is the wall time of the ``greenml report`` command, interpreter start-up
included, median of ``--repeat`` runs. "Loaded" is measured in headless Chromium (Debian's, via
Playwright) from navigation start to (a) the load event and (b) the last figure drawn, median of
``--repeat`` fresh pages.

    python benchmarks/report_speed.py [--trials 1000] [--repeat 5] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    import optuna

    from greenml.testing.studies import make_study

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="greenml-report-bench-"))
    storage = f"sqlite:///{work / 'bench.db'}"
    make_study(storage, "bench", n_trials=args.trials)
    out = work / "bench.html"

    writes = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "greenml",
                "report",
                "--study",
                "bench",
                "--storage",
                storage,
                "-o",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        writes.append(time.perf_counter() - start)
    size_mb = out.stat().st_size / 1e6

    from playwright.sync_api import sync_playwright

    loads, drawn = [], []
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=flags)
        for _ in range(args.repeat):
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(out.as_uri())
            page.wait_for_function(
                "document.querySelectorAll('div.figure').length === "
                "document.querySelectorAll('div.figure[data-drawn]').length",
                timeout=60_000,
            )
            timings = page.evaluate(
                """() => ({
                    load: performance.getEntriesByType('navigation')[0].loadEventEnd,
                    drawn: Math.max(...Array.from(document.querySelectorAll('div.figure'))
                                        .map(d => Number(d.getAttribute('data-drawn')))),
                })"""
            )
            loads.append(timings["load"] / 1000)
            drawn.append(timings["drawn"] / 1000)
            page.close()
        version = browser.version
        browser.close()

    def show(values: list[float]) -> str:
        return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"

    print(f"{args.trials} trials, {args.repeat} runs each; Chromium {version}")
    print(f"written (greenml report, wall): {show(writes)}")
    print(f"size: {size_mb:.2f} MB")
    print(f"browser load event: {show(loads)}")
    print(f"every figure drawn: {show(drawn)}")


if __name__ == "__main__":
    main()
