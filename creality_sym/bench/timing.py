"""Interleaved wall-clock timing and peak-memory measurement.

The cases of one size are timed round-robin in the same process: every round
calls each case once, so a slow stretch of a shared machine hits every case
alike, and ratios of medians stay meaningful where absolute times do not.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass
class Samples:
    """Wall-clock seconds of the timed calls of one case."""

    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median seconds (NaN without samples)."""
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def best(self) -> float:
        """Fastest call in seconds (NaN without samples)."""
        return min(self.seconds) if self.seconds else float("nan")


def time_interleaved(
    cases: Mapping[str, Callable[[], object]],
    *,
    repeats: int,
    budget: float = 30.0,
    min_samples: int = 3,
) -> dict[str, Samples]:
    """Time each case ``repeats`` times, round-robin, after one untimed warm-up call.

    A case whose timed calls have used up ``budget`` seconds stops early once it
    has ``min_samples`` samples (slow peers at large sizes).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    for fn in cases.values():
        fn()
    samples = {name: Samples() for name in cases}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, fn in cases.items():
                s = samples[name]
                if len(s.seconds) >= min_samples and sum(s.seconds) > budget:
                    continue
                start = time.perf_counter()
                fn()
                s.seconds.append(time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated through Python's tracked allocators during ``fn()``.

    numpy reports its array buffers to tracemalloc, so this is the peak of the
    numpy temporaries (the result included); BLAS-internal work space is not seen.
    """
    gc.collect()
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not already:
            tracemalloc.stop()
    del result
    return max(0, peak - base)
