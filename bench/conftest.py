"""Benchmark modes, the full-matrix switch, and the session-wide pieces every benchmark shares.

Modes:
- `pytest --benchmark-only` (or `--benchmark-enable`): measure. Rounds are timed, the default
  subset runs (add `--bench-full` or GANRT_BENCH_FULL=1 for the full matrix).
- plain `pytest`: `--benchmark-disable` is switched on here, so each benchmark runs once as a
  correctness check (parity gates included) and heavy parametrizations skip with a reason.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench import machine

_PEAKS: dict[str, Any] = {}
_SESSION: dict[str, Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ganrt benchmarks")
    group.addoption("--bench-full", action="store_true", default=os.environ.get("GANRT_BENCH_FULL", "") not in ("", "0"),
                    help="benchmark the full matrix (every variant x backend x precision x batch x size), not the "
                         "default subset; also GANRT_BENCH_FULL=1. Hours on a 2-core CPU.")


def pytest_configure(config: pytest.Config) -> None:
    # Runs before pytest-benchmark's own pytest_configure (trylast), which reads the option.
    # Before any benchmark runs: the load others put on the machine (the brief's "quiet" test).
    _SESSION["load_average_start"] = machine.load_average()
    measuring = config.getoption("benchmark_only", False) or config.getoption("benchmark_enable", False)
    if not measuring and hasattr(config.option, "benchmark_disable"):
        config.option.benchmark_disable = True


def is_measuring(config: pytest.Config) -> bool:
    """Whether benchmarks are timed in this session (False under plain `pytest`)."""
    session = getattr(config, "_benchmarksession", None)
    return bool(session is not None and not session.disabled)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info["ganrt"] = {**machine.machine_info(), "versions": machine.versions(), "peaks": _PEAKS or None,
                             "load_average_start": _SESSION.get("load_average_start"),
                             "load_average_end": machine.load_average(),
                             "full_matrix": bool(config.getoption("--bench-full", False))}


@pytest.fixture(scope="session")
def measuring(request: pytest.FixtureRequest) -> bool:
    """True under --benchmark-only / --benchmark-enable, False under plain pytest (check mode)."""
    return is_measuring(request.config)


@pytest.fixture(scope="session")
def full_matrix(request: pytest.FixtureRequest) -> bool:
    """--bench-full / GANRT_BENCH_FULL=1."""
    return bool(request.config.getoption("--bench-full", False))


@pytest.fixture(scope="session")
def peaks(measuring: bool) -> dict[str, Any]:
    """The machine's practical peaks, probed once per session (one quick repetition in check mode)."""
    if not _PEAKS:
        _PEAKS.update(machine.measure_peaks(repeats=5 if measuring else 1))
        _PEAKS["quick_probe"] = not measuring
    return _PEAKS


@pytest.fixture(scope="session")
def artifact_of() -> Callable[..., Path]:
    """model key (and trt=True for an engine) -> its exported artifact directory, built once and cached on disk."""
    from bench.artifacts import MODELS, artifact_dir

    built: dict[tuple[str, bool], Path] = {}

    def get(key: str, trt: bool = False) -> Path:
        if (key, trt) not in built:
            built[(key, trt)] = artifact_dir(MODELS[key], trt=trt)
        return built[(key, trt)]

    return get
