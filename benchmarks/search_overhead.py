"""The search's own overhead per trial, with SQLite storage, on the default space.

    python benchmarks/search_overhead.py [--trials 12] [--space mlp] [--dataset digits]

Runs ``greenml search`` (default settings, a fresh SQLite file in a temporary folder) and, for each
complete trial, compares the trial's whole window (``trial_seconds``: from the previous trial's
end, through its propose phase, to the end of its benchmark) with the time spent in the phases
that do the trial's work (cost, train, compress, fine-tune, evaluate, benchmark). The rest is the
search's overhead: the propose phase (storing the previous result, the loop's checks, sampling,
storage writes) and, outside the phases, building the model and bookkeeping. Target: <= 5% of
the trial time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from greenml import records


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--space", default="mlp")
    parser.add_argument("--dataset", default="digits")
    args = parser.parse_args()

    import optuna

    from greenml.metrics import PHASES

    with tempfile.TemporaryDirectory() as folder:
        storage = f"sqlite:///{Path(folder) / 'bench.db'}"
        command = [
            sys.executable,
            "-m",
            "greenml",
            "search",
            "--space",
            args.space,
            "--dataset",
            args.dataset,
            "--trials",
            str(args.trials),
            "--storage",
            storage,
            "--study",
            "bench",
        ]
        subprocess.run(command, check=True, cwd=folder, stdout=subprocess.DEVNULL)
        study = optuna.load_study(study_name="bench", storage=storage)
        trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        durations, overheads = [], []
        for trial in trials:
            metrics = records.trial_metrics(trial)
            duration = metrics["trial_seconds"]
            inside = sum(metrics[f"{phase}_seconds"] for phase in PHASES if phase != "propose")
            durations.append(duration)
            overheads.append(duration - inside)
    share = sum(overheads) / sum(durations)
    print(
        f"{len(trials)} trials of {args.space} on {args.dataset}: mean trial {statistics.mean(durations):.2f} s, "
        f"mean overhead {statistics.mean(overheads) * 1e3:.0f} ms = {share:.1%} of trial time (target <= 5%)"
    )
    return 0 if share <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
