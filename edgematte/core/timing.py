"""Latency of one backend in-process: the figure the INT8 fallback search weighs against accuracy.

The benchmark runner (:mod:`edgematte.runtime.bench_runner`) measures artefacts end to end in fresh processes;
this is the quick in-process median used while a conversion decides between quantization choices.
"""

import time
from typing import Optional, Sequence

import numpy as np


def median_latency_ms(backend, x: Optional[np.ndarray] = None, runs: int = 10, warmup: int = 2) -> float:
    """Median wall time (ms) of ``backend.run(x)``.

    ``backend``: any :class:`edgematte.runtime.backends.base.Backend` (already loaded, threads set).
    ``x``: the input tensor; by default zeros of the first input's declared shape and dtype (content does
    not change these models' timing). Backends that declare no shape (Paddle Lite) need ``x``.
    """
    if x is None:
        spec = backend.inputs[0]
        if not spec.shape or any(int(d) <= 0 for d in spec.shape):
            raise ValueError(f"{type(backend).__name__} declares no input shape ({spec.shape}): pass x")
        x = np.zeros([int(d) for d in spec.shape], dtype=spec.dtype)
    for _ in range(warmup):
        backend.run(x)
    times = []
    for _ in range(max(runs, 1)):
        started = time.perf_counter()
        backend.run(x)
        times.append((time.perf_counter() - started) * 1000.0)
    return float(np.median(times))


def feeds_latency_ms(backend, feeds: Optional[Sequence[np.ndarray]] = None, runs: int = 10, warmup: int = 2) -> float:
    """:func:`median_latency_ms` of ``backend.run_feeds(feeds)``, one tensor per input (a model with several
    inputs); ``feeds`` by default zeros of every input's declared shape and dtype."""
    if feeds is None:
        feeds = [np.zeros([max(int(d), 1) for d in spec.shape], dtype=spec.dtype) for spec in backend.inputs]
    return median_latency_ms(_FixedFeeds(backend, list(feeds)), np.zeros(1, np.float32), runs=runs, warmup=warmup)


class _FixedFeeds:
    """A backend whose ``run(x)`` ignores ``x`` and runs fixed ``feeds``."""

    def __init__(self, backend, feeds):
        self.backend, self.feeds = backend, feeds

    def run(self, _x):
        return self.backend.run_feeds(self.feeds)
