"""One inference benchmark's runner in a fresh Python process, as a deployment runs one backend.

Issue 12 measured whatever ran after torch eager in a shared process 25-40% slower (glibc's
heap after torch's large allocations; on this repo's Zen 4 machine the effect stayed within
noise), and the bench process runs the torch reference of every case. So each case's runner
lives in a worker started for it (`python -m bench.isolated DIR`):
the worker opens the runner, makes the first call (its outputs go back for parity), warms up,
and times `runner.infer(numpy feeds)` from outside the runner with time.perf_counter, as many
rounds as fit the time budget; the per-call seconds go back into pytest-benchmark's statistics
(`bench.measure.record_seconds`). Memory and contention are measured around the worker's own work.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

WORKER_TIMEOUT_S = 1800
# With a bare call to compare with, the two alternate in blocks of this many calls (drift hits both alike).
BARE_BLOCK = 10


@dataclass
class Job:
    """What the worker runs: one runner of one artifact, and how long to time it."""

    artifact: str
    backend: str
    precision: str | None
    options: dict[str, Any]
    warmup_calls: int
    measuring: bool
    budget_s: float
    cuda: bool = False
    # Also time the runtime's own call on the same model file, interleaved with the runner's (ort-cpu, ov-cpu).
    bare: bool = False


@dataclass
class Result:
    """What the worker measured (seconds per timed call) and saw (first call, precision, memory, contention)."""

    seconds: list[float] = field(default_factory=list)
    first_call_ms: float = 0.0
    precision: str = ""
    memory: dict[str, Any] = field(default_factory=dict)
    contention: dict[str, Any] | None = None
    unavailable: str | None = None
    bare_seconds: list[float] = field(default_factory=list)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


def run_isolated(job: Job, feeds: dict[str, np.ndarray]) -> Result:
    """Run `job` on `feeds` in a fresh worker process; its failure is raised here with the worker's stderr tail."""
    with tempfile.TemporaryDirectory(prefix="ganrt-bench-") as tmp:
        folder = Path(tmp)
        np.savez(folder / "feeds.npz", **feeds)
        (folder / "job.json").write_text(json.dumps(dataclasses.asdict(job)))
        repo = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)}
        proc = subprocess.run([sys.executable, "-m", "bench.isolated", str(folder)], capture_output=True, text=True,
                              env=env, timeout=WORKER_TIMEOUT_S)
        if proc.returncode != 0:
            raise RuntimeError(f"the benchmark worker for {job.backend} {job.precision} exited {proc.returncode}: "
                               + "\n".join(proc.stderr.strip().splitlines()[-15:]))
        result = Result(**json.loads((folder / "result.json").read_text()))
        outputs = folder / "outputs.npz"
        if outputs.is_file():
            result.outputs = dict(np.load(outputs))
        return result


def _work(job: Job, feeds: dict[str, np.ndarray], folder: Path) -> Result:
    """In the worker: open the runner, first call, warm-up, timed rounds, close."""
    from bench import machine
    from bench.measure import MemoryWatch, rounds_for
    from ganrt.errors import BackendUnavailable
    from infer.runners import open_runner

    sync = None
    if job.cuda:
        import torch

        sync = torch.cuda.synchronize
    result = Result()
    runner = open_runner(job.artifact, job.backend, job.precision, **job.options)
    with MemoryWatch(cuda=job.cuda) as memory:
        try:
            runner.activate()
        except BackendUnavailable as e:
            return Result(unavailable=str(e))
        with runner:
            t0 = time.perf_counter()
            runner.infer(feeds)  # first call: allocation, autotuning, compilation
            result.first_call_ms = round((time.perf_counter() - t0) * 1000, 1)
            for _ in range(job.warmup_calls):
                runner.infer(feeds)
            np.savez(folder / "outputs.npz", **runner.infer(feeds))
            result.precision = runner.precision
            rounds = 1
            if job.measuring:
                t0 = time.perf_counter()
                runner.infer(feeds)
                if sync is not None:
                    sync()
                rounds = rounds_for(time.perf_counter() - t0, job.budget_s)
            bare = _bare_call(job, runner, feeds) if job.bare else None
            with machine.Contention() as contention:
                for i in range(rounds):
                    if bare is not None and i % BARE_BLOCK == 0:  # a block of the bare call before each block of ours
                        result.bare_seconds += _timed(bare, min(BARE_BLOCK, rounds - i))
                    result.seconds += _timed(lambda: runner.infer(feeds), 1, sync)
    result.memory = memory.to_json()
    result.contention = contention.to_json()
    return result


def _timed(call: Any, n: int, sync: Any = None) -> list[float]:
    """Seconds of each of `n` calls."""
    seconds = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        if sync is not None:
            sync()
        seconds.append(time.perf_counter() - t0)
    return seconds


def _bare_call(job: Job, runner: Any, feeds: dict[str, np.ndarray]) -> Any:
    """The runtime's own call on the model file `runner` runs, with its settings, written as by hand (no ganrt)."""
    from ganrt.artifact import Artifact
    from ganrt.locations import cache_root
    from ganrt.targets import target
    from infer.runners import _openvino_model
    from infer.runners.devices import cpu_count

    art = Artifact.load(job.artifact)
    tgt = target(job.backend, runner.precision)
    if job.backend == "ov-cpu":
        import openvino as ov

        from infer.runners.openvino_runner import compile_config

        config = compile_config(tgt.precision, threads=cpu_count(), cache_dir=cache_root() / "openvino")
        request = ov.Core().compile_model(str(_openvino_model(art, tgt)), "CPU", config).create_infer_request()
        return lambda: request.infer(feeds, share_inputs=True)
    if job.backend == "ort-cpu":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = cpu_count()
        session = ort.InferenceSession(str(art.model_path(tgt)), options, providers=["CPUExecutionProvider"])
        return lambda: session.run(None, feeds)
    raise ValueError(f"no bare call for {job.backend}")


def main(folder: str) -> int:
    """The worker: DIR/job.json and DIR/feeds.npz in; DIR/result.json and DIR/outputs.npz out."""
    path = Path(folder)
    job = Job(**json.loads((path / "job.json").read_text()))
    result = _work(job, dict(np.load(path / "feeds.npz")), path)
    (path / "result.json").write_text(json.dumps({k: v for k, v in dataclasses.asdict(result).items()
                                                   if k != "outputs"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
