"""Latency of single calls: interleaved timing in blocks, and the statistics of the blocks.

:func:`time_interleaved` times batch 1 and the larger batch in turns over the whole timed period;
:class:`LatencyStats` summarises the blocks robustly (the median of the block medians, with a
standard error from their spread).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["LatencyStats", "time_interleaved"]

# A normal distribution's standard deviation over its median absolute deviation (MAD).
_MAD_TO_SD = 1.4826
# sqrt(pi / 2): the standard error of a median of n normal values over that of their mean.
_MEDIAN_OVER_MEAN_SE = 1.2533


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock latency of single calls, in milliseconds, timed in interleaved blocks.

    The calls were timed in ``blocks`` blocks that took turns with the other batch size's
    (see :func:`time_interleaved`). ``p50_ms`` is the median of the blocks' medians: a slow
    spell moves only the medians of the blocks it overlaps, so it cannot move ``p50_ms`` off the
    usual level unless it lasts about half the timed period. ``stderr_ms`` is the standard error
    of ``p50_ms`` estimated from the spread of the block medians,
    ``1.2533 * 1.4826 * MAD / sqrt(blocks)``: 1.4826 × MAD (the median absolute deviation of
    the block medians from their median) is a robust estimate of their standard deviation, and
    1.2533 = sqrt(pi/2) is how much wider a median's sampling spread is than a mean's for normal
    data. It is 0 when the block medians agree exactly, and it cannot see a change of level that
    lasts the whole measurement (another tenant busy throughout, say). ``p90_ms``, ``p99_ms``
    and ``mean_ms`` pool every timed call (numpy's linear percentiles); ``iterations`` counts them.
    """

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    iterations: int
    stderr_ms: float
    blocks: int
    block_p10_ms: float = math.nan

    @property
    def disturbance(self) -> float:
        """How far ``p50_ms`` sits above the fast blocks, relative to it (0: all blocks agree).

        A slow spell over most of the timed period moves the median of block medians with it
        while the blocks' spread (``stderr_ms``) stays small; the blocks outside the spell still
        show the usual level in ``block_p10_ms``.
        """
        return (self.p50_ms - self.block_p10_ms) / self.p50_ms if self.p50_ms > 0 else 0.0

    @classmethod
    def from_blocks(cls, blocks_ns: Sequence[Sequence[int]]) -> LatencyStats:
        """Statistics of per-call durations in nanoseconds, one sequence per block (none empty)."""
        import numpy as np

        if not blocks_ns or not all(blocks_ns):
            raise ValueError("LatencyStats needs at least one block, and no empty block")
        medians_ms = np.array([np.median(block) for block in blocks_ns], dtype=np.float64) / 1e6
        samples_ms = np.concatenate([np.asarray(block, dtype=np.float64) for block in blocks_ns]) / 1e6
        p50 = float(np.median(medians_ms))
        mad = float(np.median(np.abs(medians_ms - p50)))
        p90, p99 = np.percentile(samples_ms, [90, 99])
        return cls(
            p50_ms=p50,
            p90_ms=float(p90),
            p99_ms=float(p99),
            mean_ms=float(samples_ms.mean()),
            iterations=len(samples_ms),
            stderr_ms=_MEDIAN_OVER_MEAN_SE * _MAD_TO_SD * mad / math.sqrt(len(medians_ms)),
            blocks=len(medians_ms),
            block_p10_ms=float(np.percentile(medians_ms, 10)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms,
            "iterations": self.iterations,
            "stderr_ms": self.stderr_ms,
            "blocks": self.blocks,
            "block_p10_ms": self.block_p10_ms,
        }


def time_interleaved(
    calls: Sequence[Callable[[], object]],
    warmup_iters: int,
    iterations: int,
    min_seconds: float,
    blocks: int,
    next_copy: Callable[[], None] | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> list[LatencyStats]:
    """Time each of ``calls`` (batch 1, then the larger batch) in ``blocks`` interleaved blocks.

    After ``warmup_iters`` untimed calls of each, the timed period is ``blocks`` rounds, and each
    round runs one block of every call in turn: batch 1, the larger batch, batch 1, ... So both
    batch sizes sample the machine's slow spells, frequency changes and busy neighbours over the
    whole period, rather than one getting its first half and the other its second, and
    :meth:`LatencyStats.from_blocks` can take the median of the block medians. Each call is
    timed separately. Block ``r`` of a call lasts until it has its share of ``iterations`` calls
    (the shares add up to ``iterations``; at least one call a block) *and* ``min_seconds /
    blocks`` seconds have passed, so every batch size gets at least ``iterations`` timed calls
    and at least ``min_seconds`` of them in all.

    The calling thread is not pinned to a CPU: on a 2-vCPU VM pinning did not narrow the spread
    when the machine was quiet, and when a neighbour kept the pinned CPU busy the scheduler could
    no longer move the thread to the idle one (single calls then stalled for up to 0.4 s).
    The collector is paused so its pauses are not a model's p99. ``clock`` reads nanoseconds.
    """
    for call in calls:
        for _ in range(warmup_iters):
            call()
    block_ns = int(min_seconds * 1e9 / blocks)
    shares = [max(1, (r + 1) * iterations // blocks - r * iterations // blocks) for r in range(blocks)]
    timed: list[list[list[int]]] = [[] for _ in calls]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for share in shares:
            if next_copy is not None:
                next_copy()
            for call, call_blocks in zip(calls, timed, strict=True):
                call_blocks.append(_time_block(call, share, block_ns, clock))
    finally:
        if gc_was_enabled:
            gc.enable()
    return [LatencyStats.from_blocks(call_blocks) for call_blocks in timed]


def _time_block(call: Callable[[], object], count: int, min_ns: int, clock: Callable[[], int]) -> list[int]:
    """Durations of calls, in ns, made until there are ``count`` and ``min_ns`` have passed."""
    durations: list[int] = []
    deadline = clock() + min_ns
    while True:
        start = clock()
        call()
        end = clock()
        durations.append(end - start)
        if len(durations) >= count and end >= deadline:
            return durations
