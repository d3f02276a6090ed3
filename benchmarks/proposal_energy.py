"""What the sampler's own computation costs in a live search: the ``propose`` phase of each trial.

    python benchmarks/proposal_energy.py [--samplers random,tpe,nsga2,gp] [--trials 30] [--seed 0]
                                         [--threads 1] [--workdir DIR] [-o FILE]

For each sampler, one ``greenml search`` (in-process) with the defaults otherwise: ``mlp`` on
``digits``, MO-ASHA, the CPU-time estimate, distillation off (the teacher is the same for every
sampler). ``propose`` holds what the worker did since its previous trial (storing that result,
the loop's checks, the ask) and a relative sampler's proposal (GP, NSGA-II); an independent
sampler (random, Optuna's default TPE) draws each parameter as the space suggests it, inside the
trial's energy outside its phases, so its ``propose`` holds the storage's and the loop's work.

Figures per sampler: the median propose energy and time over all trials and over the last ten
(a GP's fit grows with the trials), and the propose phase's share of the search's energy.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from greenml import records


def run_sampler(sampler: str, args: argparse.Namespace) -> dict[str, Any]:
    from greenml.config import MeasureConfig
    from greenml.search import SearchConfig, prepare, run

    config = SearchConfig(
        trials=args.trials,
        seed=args.seed,
        sampler=sampler,
        storage=f"sqlite:///{args.workdir}/{sampler}.db",
        study=f"propose-{sampler}-seed{args.seed}",
        distillation=False,
        measure=MeasureConfig(meter="estimate", idle_seconds=0),
        artifacts=str(Path(args.workdir) / "artifacts"),
        keep_models="none",
    )
    search = prepare(config)
    started = time.monotonic()
    try:
        run(search)
    finally:
        search.close()
    wall = time.monotonic() - started
    trials = [
        t
        for t in sorted(search.study.trials, key=lambda t: t.number)
        if t.state.name in ("COMPLETE", "PRUNED") and "propose" in records.trial_phases(t)
    ]
    propose = [records.trial_phases(t)["propose"] for t in trials]
    energy = [records.trial_spent_j(t) for t in trials]
    last = propose[-10:]
    return {
        "sampler": sampler,
        "trials": len(trials),
        "complete": sum(t.state.name == "COMPLETE" for t in trials),
        "wall_s": round(wall, 1),
        "propose_energy_j_median": statistics.median(p["energy_j"] for p in propose),
        "propose_seconds_median": statistics.median(p["seconds"] for p in propose),
        "propose_energy_j_median_last_10": statistics.median(p["energy_j"] for p in last),
        "propose_seconds_median_last_10": statistics.median(p["seconds"] for p in last),
        "trial_energy_j_median": statistics.median(energy),
        "propose_share_of_search_energy": sum(p["energy_j"] for p in propose) / sum(energy),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", default="random,tpe,nsga2,gp")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable CPU-time estimates)")
    parser.add_argument("--workdir", default=None, help="where the studies go (default: a temporary folder)")
    parser.add_argument("-o", "--output", default=None, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        args.workdir = args.workdir or scratch
        rows = [run_sampler(name, args) for name in args.samplers.split(",")]
    for row in rows:
        print(
            f"{row['sampler']:7s} {row['trials']} trials ({row['complete']} complete), {row['wall_s']} s: "
            f"propose median {row['propose_energy_j_median']:.3f} J / {row['propose_seconds_median']:.3f} s, "
            f"last 10 {row['propose_energy_j_median_last_10']:.3f} J / {row['propose_seconds_median_last_10']:.3f} s; "
            f"trial median {row['trial_energy_j_median']:.1f} J; "
            f"propose share of search energy {100 * row['propose_share_of_search_energy']:.2f}%"
        )
    if args.output:
        from greenml.devices import host_info

        record = {
            "host": host_info(),
            "python": platform.python_version(),
            "args": {k: v for k, v in vars(args).items() if k != "workdir"},
            "rows": rows,
        }
        Path(args.output).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
