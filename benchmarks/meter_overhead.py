"""Meter overhead: wall time of a ~5 s CPU workload with the meter running, over without it.

    python benchmarks/meter_overhead.py [--meter auto|nvml|rapl|estimate] [--simulated-nvml] [--pairs 5]

The workload is pure Python (it holds the GIL, the worst case for a sampling thread). Runs are
interleaved (without, with, without, with, ...); the figure is the median of the per-pair ratios,
which cancels slow drift in the machine's speed. The ratio of the fastest run with the meter to
the fastest without is printed beside it. Target: <= 1.01. ``--simulated-nvml`` runs the NVML power-sampling thread at 20 Hz against the
simulated NVML from ``greenml.testing`` (its cost, not a real GPU's readings).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")

from greenml.config import MeasureConfig
from greenml.measure import Meter, build_meter


def workload(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += (i * i) % 7
    return total


def calibrate(seconds: float) -> int:
    iterations = 200_000
    while True:
        start = time.perf_counter()
        workload(iterations)
        elapsed = time.perf_counter() - start
        if elapsed > 0.5:
            return int(iterations * seconds / elapsed)
        iterations *= 2


def make_meter(args: argparse.Namespace) -> Meter:
    if args.simulated_nvml:
        from greenml.measure.nvml import NvmlSource
        from greenml.testing.fake_nvml import FakeGpu, FakeNvml

        return Meter([NvmlSource(FakeNvml([FakeGpu(counter_supported=False)]), environ={})])
    return build_meter(MeasureConfig(meter=args.meter))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--meter", default="auto", choices=["auto", "nvml", "rapl", "estimate"])
    parser.add_argument("--simulated-nvml", action="store_true")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pairs", type=int, default=7)
    args = parser.parse_args()

    iterations = calibrate(args.seconds)
    meter = make_meter(args)
    ratios, withouts, withs = [], [], []
    for pair in range(args.pairs):
        start = time.perf_counter()
        workload(iterations)
        without = time.perf_counter() - start

        start = time.perf_counter()
        with meter.window("workload"):
            workload(iterations)
        with_meter = time.perf_counter() - start
        ratios.append(with_meter / without)
        withouts.append(without)
        withs.append(with_meter)
        print(f"pair {pair + 1}: without {without:.3f} s, with {with_meter:.3f} s, ratio {ratios[-1]:.4f}")
    meter.close()
    label = "simulated NVML sampling at 20 Hz" if args.simulated_nvml else meter.name
    best = min(withs) / min(withouts)
    median = statistics.median(ratios)
    print(
        f"meter {label}: wall-time ratio {median:.4f} (median of {args.pairs} pairs of {args.seconds:g} s; "
        f"target <= 1.01); fastest with / fastest without {best:.4f}"
    )
    return 0 if median <= 1.01 else 1


if __name__ == "__main__":
    sys.exit(main())
