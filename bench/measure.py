"""Timing from outside the code under test, and what every benchmark records in `extra_info`.

Every timed call is wrapped by pytest-benchmark's own timer (time.perf_counter) around the
public call (`runner.infer(numpy feeds) -> numpy outputs`, a training step, a pipeline run),
never a runner's self-reported time (design.md section 10). On CUDA the timed function ends
with torch.cuda.synchronize(). Latency percentiles are computed from the per-round times and
stored in extra_info, so the JSON carries them without --benchmark-save-data.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench import machine

# Seconds of timed rounds per benchmark when measuring (GANRT_BENCH_SECONDS overrides).
DEFAULT_BUDGET_S = float(os.environ.get("GANRT_BENCH_SECONDS", "4"))
MIN_ROUNDS = 5
MAX_ROUNDS = 1000


@dataclass
class Timing:
    """Per-call seconds of the timed rounds (one entry in check mode), and the CPU others took meanwhile."""

    seconds: list[float]
    measured: bool
    contention: dict[str, Any] | None = None

    @property
    def median(self) -> float:
        """Median seconds per call."""
        return float(np.median(self.seconds))

    def latency_ms(self) -> dict[str, float]:
        """p50/p90/p99/mean/min/max in milliseconds, and the number of rounds."""
        ms = np.asarray(self.seconds) * 1000
        return {"p50": round(float(np.percentile(ms, 50)), 3), "p90": round(float(np.percentile(ms, 90)), 3),
                "p99": round(float(np.percentile(ms, 99)), 3), "mean": round(float(ms.mean()), 3),
                "min": round(float(ms.min()), 3), "max": round(float(ms.max()), 3), "rounds": int(ms.size)}


def rounds_for(one_call_s: float, budget_s: float = DEFAULT_BUDGET_S, min_rounds: int = MIN_ROUNDS,
               max_rounds: int = MAX_ROUNDS) -> int:
    """How many rounds fit the time budget, given one call's duration."""
    if one_call_s <= 0 or not math.isfinite(one_call_s):
        return min_rounds
    return int(max(min_rounds, min(max_rounds, budget_s // one_call_s)))


def time_calls(benchmark: Any, fn: Callable[[], Any], *, budget_s: float = DEFAULT_BUDGET_S,
               min_rounds: int = MIN_ROUNDS, max_rounds: int = MAX_ROUNDS, rounds: int | None = None,
               sync: Callable[[], None] | None = None) -> Timing:
    """Time `fn` through the benchmark fixture (or once, when benchmarks are disabled); warm `fn` up first yourself."""
    def call() -> Any:
        out = fn()
        if sync is not None:
            sync()
        return out

    if not benchmark.enabled:  # plain `pytest` (--benchmark-disable): the fixture calls it once, untimed
        t0 = time.perf_counter()
        benchmark.pedantic(call, rounds=1, iterations=1)
        return Timing([time.perf_counter() - t0], measured=False)
    if rounds is None:
        t0 = time.perf_counter()
        call()
        rounds = rounds_for(time.perf_counter() - t0, budget_s, min_rounds, max_rounds)
    with machine.Contention() as contention:
        benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=0)
    return Timing(list(benchmark.stats.stats.data), measured=True, contention=contention.to_json())


def record_seconds(benchmark: Any, seconds: list[float], contention: dict[str, Any] | None = None) -> Timing:
    """Per-call seconds timed elsewhere (a worker process, `bench.isolated`), as this benchmark's statistics.

    pytest-benchmark has no public call for times it did not take itself: this builds its
    statistics the way its `pedantic` does (one Metadata, one update per round).
    """
    if not benchmark.enabled:
        return Timing(seconds, measured=False, contention=contention)
    benchmark._mode = "bench.measure.record_seconds(...)"
    stats = benchmark._make_stats(1)
    for s in seconds:
        stats.update(s)
    return Timing(list(seconds), measured=True, contention=contention)


class MemoryWatch:
    """Peak host RSS (VmHWM, reset at start) and CUDA max allocated (torch's allocator) over a block."""

    def __init__(self, cuda: bool = False) -> None:
        self.cuda = cuda
        self.peak_rss_mb: float | None = None
        self.cuda_max_allocated_mb: float | None = None
        self.rss_reset = False
        self.rss_start_mb: float | None = None

    def __enter__(self) -> MemoryWatch:
        self.rss_start_mb = machine.rss_mb()
        self.rss_reset = machine.reset_peak_rss()
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_rss_mb = machine.peak_rss_mb()
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.cuda_max_allocated_mb = round(torch.cuda.max_memory_allocated() / 2**20, 1)

    def to_json(self) -> dict[str, Any]:
        """Memory fields for extra_info."""
        info: dict[str, Any] = {"peak_rss_mb": self.peak_rss_mb, "rss_start_mb": self.rss_start_mb,
                                "peak_rss_scope": "this benchmark" if self.rss_reset else "process lifetime"}
        if self.cuda:
            info["cuda_max_allocated_mb"] = self.cuda_max_allocated_mb
        return info


def machine_summary() -> dict[str, Any]:
    """The machine in a few fields (the JSON's machine_info has the rest)."""
    info = machine.machine_info()
    return {"cpu": info["cpu"], "cores": info["cores"], "gpu": (info.get("gpu") or {}).get("gpu")}
