"""Sanity check against the MNIST-1D paper: best test accuracy of the CNN and MLP spaces.

    python benchmarks/mnist1d_accuracy.py [--trials 12] [--spaces cnn,mlp]

Runs ``greenml search --dataset mnist1d`` with the default budget for each space (a fresh SQLite
file in a temporary folder) and reports the best ``test_accuracy`` among complete trials. The
paper (Greydanus, 2020) reports about 0.94 for a CNN and 0.68 for an MLP; target: CNN >= 0.90.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from greenml import records


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--spaces", default="cnn,mlp")
    args = parser.parse_args()

    import optuna

    best: dict[str, float] = {}
    for space in args.spaces.split(","):
        with tempfile.TemporaryDirectory() as folder:
            storage = f"sqlite:///{Path(folder) / 'bench.db'}"
            start = time.monotonic()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "greenml",
                    "search",
                    "--space",
                    space,
                    "--dataset",
                    "mnist1d",
                    "--trials",
                    str(args.trials),
                    "--storage",
                    storage,
                    "--study",
                    space,
                ],
                check=True,
                cwd=folder,
                stdout=subprocess.DEVNULL,
            )
            elapsed = time.monotonic() - start
            study = optuna.load_study(study_name=space, storage=storage)
            done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            best[space] = max(records.trial_metrics(t)["test_accuracy"] for t in done)
            print(f"{space}: best test accuracy {best[space]:.3f} over {len(done)} trials ({elapsed:.0f} s)")
    return 0 if best.get("cnn", 1.0) >= 0.90 else 1


if __name__ == "__main__":
    sys.exit(main())
