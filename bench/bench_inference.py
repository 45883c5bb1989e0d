"""Inference: latency, throughput, parity and % of peak of every model on every backend and precision.

Each benchmark opens a runner on the model's cached artifact in a fresh worker process
(`bench.isolated`: one backend per process, as deployed), checks parity against the PyTorch
eager fp32 model on the same feeds (and asserts the tolerance table's gate), and times
`runner.infer(feeds)` from outside the runner: numpy feeds in, numpy outputs out (feed
validation included; on a GPU the host<->device copies are included and the call is synchronised).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import machine
from bench.artifacts import MODELS, ModelSpec, export_info
from bench.cases import BenchConfig, Case, check_skip_reason, default_cases, full_cases
from bench.conftest import is_measuring
from bench.isolated import Job, run_isolated
from bench.measure import DEFAULT_BUDGET_S, Timing, machine_summary, record_seconds, time_calls
from bench.parity import parity_record
from ganrt.targets import gate_of, target
from train.nets.macs import CONVENTION, count_macs

TIMING_NOTE = ("wall clock (time.perf_counter) around runner.infer(numpy feeds) -> numpy outputs, from outside the "
               "runner, in a fresh worker process per case (bench.isolated: no other runtime ran there before): "
               "feed validation included; on GPUs host<->device copies included and torch.cuda.synchronize() "
               "before the clock stops")
REFERENCE_NOTE = "PyTorch eager fp32 generator (eval mode, CPU) from the same artifact, on the same feeds"
WARMUP_CALLS = 2
FEED_ROWS = 16


def _missing_backend(case: Case, have: list[str]) -> str | None:
    config = case.config
    if config.cuda:
        import torch

        if not torch.cuda.is_available():
            return f"{config.label}: this torch {torch.__version__} sees no CUDA GPU"
        return None
    if config.backend not in have:
        needs = {"ort-cuda": "onnxruntime-gpu and an NVIDIA GPU", "ort-trt": "onnxruntime-gpu with TensorRT and an NVIDIA GPU",
                 "trt": "TensorRT, CUDA torch and an NVIDIA GPU", "ov-cpu": "pip install openvino"
                 }.get(config.backend, config.backend)
        return f"backend {config.backend} is not available here (needs {needs}); available: {', '.join(have)}"
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    from infer.runners import available_backends

    config = metafunc.config
    measuring = is_measuring(config)
    if config.getoption("--bench-full", False):
        cases, too_big = full_cases()
    else:
        cases, too_big = default_cases(), {}
    have = available_backends()
    params = []
    for case in cases:
        marks: list[Any] = [pytest.mark.gpu] if case.config.gpu else []
        reason = too_big.get(case.id) or _missing_backend(case, have) or (None if measuring else check_skip_reason(case))
        if reason:
            marks.append(pytest.mark.skip(reason=reason))
        params.append(pytest.param(case, id=case.id, marks=marks))
    metafunc.parametrize("case", params)


@dataclass
class ModelIO:
    """A model's artifact, real feeds at one batch/size, the reference outputs and the MAC count."""

    spec: ModelSpec
    artifact: Any
    feeds: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    ranges: dict[str, float]
    macs: dict[str, Any]


def _real_feeds(artifact: Any, batch: int, size: int | None) -> dict[str, np.ndarray]:
    """Real inputs not used by export's calibration: training-split images, or noise drawn with seed 1."""
    import torch

    from export.feeds import at_size, batch_of
    from ganrt import config as config_mod
    from train import registry

    variant = registry.get(artifact.variant)
    cfg = config_mod.from_dict(variant.config, artifact.manifest.config)
    if variant.eval_pairs is not None:  # image-to-image: the training split (export calibrates on held-out rows)
        dataset = variant.dataset(cfg)
        name = artifact.inputs[0].name
        base = {name: torch.stack([dataset[i]["A"] for i in range(min(FEED_ROWS, len(dataset)))]).numpy()}
    else:
        base = {k: v.numpy() for k, v in variant.sample_feeds(cfg, max(batch, FEED_ROWS), torch.Generator().manual_seed(1)).items()}
    return at_size(batch_of(base, batch), artifact.inputs, (size, size) if size else None)


@pytest.fixture(scope="session")
def model_io(artifact_of: Callable[..., Path]) -> Callable[[str, int, int | None], ModelIO]:
    """(model, batch, size) -> ModelIO, computed once per session."""
    from ganrt.artifact import Artifact
    from ganrt.compare import value_range_of
    from infer.runners import open_runner
    from train.checkpoint import build_generator

    cache: dict[tuple[str, int, int | None], ModelIO] = {}
    macs: dict[tuple[str, int | None], dict[str, Any]] = {}

    def get(model: str, batch: int, size: int | None) -> ModelIO:
        key = (model, batch, size)
        if key not in cache:
            import torch

            art = Artifact.load(artifact_of(model))
            feeds = _real_feeds(art, batch, size)
            with open_runner(art, "torch", "fp32") as reference_runner:
                reference = reference_runner.infer(feeds)
            peaks = (art.manifest.parity.get(target("ort-cpu", "fp32").key) or {}).get("psnr_peak") or {}
            ranges = {s.name: float(peaks.get(s.name) or value_range_of(s.range, reference[s.name])) for s in art.outputs}
            if (model, size) not in macs:
                generator = build_generator(art.variant, art.manifest.config, art.generator_path)
                one = {k: torch.from_numpy(v[:1]) for k, v in feeds.items()}
                macs[(model, size)] = count_macs(generator, *(one[s.name] for s in art.inputs)).to_json()
            cache[key] = ModelIO(MODELS[model], art, feeds, reference, ranges, macs[(model, size)])
        return cache[key]

    return get


# Baseline medians of this session by group, for the speed-up column written into extra_info.
_BASELINE_S: dict[str, float] = {}
# Every measured row's (median seconds, parity passed) by group and label: what auto's pick is checked against.
_MEDIANS: dict[str, dict[str, tuple[float, bool]]] = {}


def _backend_versions(backend: str) -> dict[str, Any]:
    v = machine.versions()
    keys = {"torch": ("torch", "torch_threads", "torch_cuda", "cudnn"), "trt": ("tensorrt", "torch", "torch_cuda"),
            "ov-cpu": ("openvino", "onnx")}
    wanted = keys.get(backend, ("onnxruntime", "onnxruntime-gpu", "onnx", "tensorrt"))
    return {k: v[k] for k in wanted if v.get(k) is not None}


def _measure(benchmark: Any, art: Any, io: ModelIO, config: BenchConfig, measuring: bool) -> tuple[
        float, list[Any], Timing, dict[str, Any], str]:
    """(first call ms, parity per output, timing, memory, precision) of one runner, run in a fresh worker process."""
    from ganrt.compare import compare

    job = Job(str(art.root), config.backend, config.precision, config.runner_options(),
              WARMUP_CALLS if measuring else 0, measuring, DEFAULT_BUDGET_S, cuda=config.gpu)
    result = run_isolated(job, io.feeds)
    if result.unavailable:
        pytest.skip(f"{config.label}: {result.unavailable}")
    comparisons = [compare(io.reference[name], result.outputs[name], value_range=span)
                   for name, span in io.ranges.items()]
    timing = record_seconds(benchmark, result.seconds, result.contention)
    return result.first_call_ms, comparisons, timing, result.memory, result.precision


def _throughput_fields(case: Case, io: ModelIO, median: float, precision: str, peaks: dict[str, Any]) -> dict[str, Any]:
    """images/s, GFLOP/s and the % of the session's measured peaks (fp32, and the row's own precision)."""
    gflops = 2 * io.macs["macs_per_image"] * case.batch / median / 1e9
    device_peaks = (peaks.get("gpu") if case.config.gpu else peaks.get("cpu")) or {}
    fp32_peak = device_peaks.get("fp32")
    own_peak = device_peaks.get(precision) or fp32_peak
    return {"images_per_s": round(case.batch / median, 3), **io.macs, "gflops": float(f"{gflops:.4g}"),
            "peak_gflops": {"fp32": fp32_peak, precision: own_peak},
            "pct_fp32_peak": float(f"{100 * gflops / fp32_peak:.3g}") if fp32_peak else None,
            "pct_precision_peak": float(f"{100 * gflops / own_peak:.3g}") if own_peak else None,
            "flops_convention": CONVENTION}


def test_inference(benchmark: Any, case: Case, model_io: Callable[..., ModelIO], artifact_of: Callable[..., Path],
                   peaks: dict[str, Any], measuring: bool, request: pytest.FixtureRequest) -> None:
    from ganrt.artifact import Artifact
    from ganrt.compare import worst_of

    load_start = machine.load_average()
    io = model_io(case.model, case.batch, case.size)
    config = case.config
    art = Artifact.load(artifact_of(case.model, trt=True)) if config.backend == "trt" else io.artifact
    benchmark.group = case.group
    first_call_ms, comparisons, timing, memory, precision = _measure(benchmark, art, io, config, measuring)
    # The export-time gate of the model file this row runs (on ort-cpu for ONNX files, trt for engines).
    export_gate = gate_of(config.target.model)
    export_parity = art.manifest.parity.get(export_gate.key) or {}
    worst = worst_of(comparisons)  # largest max-abs, lowest PSNR over the outputs: within the gate iff all are
    parity = parity_record(worst, config.tolerance, REFERENCE_NOTE, psnr_peak=io.ranges)
    median = timing.median
    if config.is_baseline and timing.measured:
        _BASELINE_S[case.group] = median
    if timing.measured:
        _MEDIANS.setdefault(case.group, {})[config.label] = (median, bool(parity["pass"]))
    baseline = _BASELINE_S.get(case.group)
    benchmark.extra_info.update({
        "kind": "inference",
        "model": case.model, "variant": io.spec.variant, "summary": io.spec.summary, "weights": io.spec.weights_note(),
        "size": f"{case.size}x{case.size}" if case.size else None, "batch": case.batch,
        "backend": config.backend, "precision": precision, "compile": config.compile,
        "device": "gpu" if config.gpu else "cpu", "config": config.label, "baseline": config.is_baseline,
        "group": case.group,
        "latency_ms": timing.latency_ms(),
        "first_call_ms": round(first_call_ms, 1),
        "speedup_vs_baseline": round(baseline / median, 3) if baseline and timing.measured else None,
        "parity": parity,
        **_throughput_fields(case, io, median, precision, peaks),
        "memory": memory,
        "timing": TIMING_NOTE,
        "measured": timing.measured,
        "versions": _backend_versions(config.backend),
        "machine": machine_summary(),
        "load_average": [load_start, machine.load_average()], "contention": timing.contention,
        "artifact": {"name": art.name, "dir": art.root.name, "status": art.manifest.status,
                     "export_parity": export_parity.get("worst"), "export_pass": export_parity.get("pass"),
                     "export_seconds": export_info(art.root).get("export_seconds")},
    })
    if not parity["pass"] and export_parity.get("pass") is False and export_gate.tolerance == config.tolerance:
        # The artifact's own export gate already failed for this model file under this very gate (its manifest
        # says so, status "failed"; e.g. the int8 QDQ file, on ort-cpu or ov-cpu): the benchmark confirms it
        # and records the figures; a failure export did not see stays red.
        request.node.add_marker(pytest.mark.xfail(
            reason=f"export marked {art.name} {precision} as failing its gate {export_parity.get('gate')} "
                   f"(worst {export_parity.get('worst')})", strict=False))
    assert parity["pass"], (f"{case.id}: parity vs torch eager fp32 outside the gate {parity['gate']}: "
                            f"max-abs {worst.max_abs:.3g}, PSNR {worst.psnr:.2f} dB")


# ---- ganrt over the bare runtime, and auto's pick ------------------------------------------------------------
OVERHEAD_CASES = (("cyclegan-shipped", 64, "ov-cpu-fp32"), ("cyclegan-shipped", 64, "ov-cpu-bf16"),
                  ("cyclegan-shipped", 64, "ov-cpu-int8"), ("cyclegan-shipped", 64, "ort-cpu-fp32"),
                  ("cyclegan-shipped", 256, "ov-cpu-int8"))
OVERHEAD_TARGET_PCT = 5.0


@pytest.mark.parametrize("model, size, label", OVERHEAD_CASES, ids=[f"{m}-{s}px-{c}" for m, s, c in OVERHEAD_CASES])
def test_runtime_overhead(benchmark: Any, model: str, size: int, label: str, model_io: Callable[..., ModelIO],
                          measuring: bool) -> None:
    """runner.infer against the runtime's own call on the same file, interleaved in one fresh process."""
    from bench.cases import by_label
    from infer.runners import available_backends

    config = by_label(label)
    if config.backend not in available_backends():
        pytest.skip(f"backend {config.backend} is not available here")
    io = model_io(model, 1, size)
    job = Job(str(io.artifact.root), config.backend, config.precision, {}, WARMUP_CALLS if measuring else 0,
              measuring, DEFAULT_BUDGET_S, bare=True)
    result = run_isolated(job, io.feeds)
    timing = record_seconds(benchmark, result.seconds, result.contention)
    bare = float(np.median(result.bare_seconds))
    overhead_pct = 100 * (timing.median / bare - 1)
    benchmark.group = f"overhead {model} {size}px"
    benchmark.extra_info.update({
        "kind": "overhead", "model": model, "size": f"{size}x{size}", "batch": 1, "config": label,
        "backend": config.backend, "precision": config.precision, "device": "cpu",
        "ganrt_ms": round(timing.median * 1000, 4), "bare_ms": round(bare * 1000, 4),
        "overhead_pct": round(overhead_pct, 2), "target_pct": OVERHEAD_TARGET_PCT,
        "within_target": overhead_pct <= OVERHEAD_TARGET_PCT, "rounds": len(result.seconds),
        "timing": ("median of runner.infer(feeds) vs the runtime's own call on the same model file and settings "
                   "(OpenVINO: request.infer(feeds, share_inputs=True), ONNX Runtime: session.run), alternating "
                   "blocks of 10 in one fresh worker process; pre/post-processing excluded from both"),
        "measured": timing.measured, "machine": machine_summary(), "contention": timing.contention,
    })


AUTO_GROUPS = (("cyclegan-shipped", 64), ("cyclegan-shipped", 256), ("cyclegan-256", 256), ("pix2pix-256", 256))


@pytest.mark.parametrize("model, size", AUTO_GROUPS, ids=[f"{m}-{s}px" for m, s in AUTO_GROUPS])
def test_auto_pick(benchmark: Any, model: str, size: int, artifact_of: Callable[..., Path], measuring: bool,
                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """auto's probe, run afresh, against the fastest batch-1 row within its gate measured in this session."""
    from ganrt.artifact import Artifact
    from infer.runners import available_backends
    from infer.runners.devices import cpu_count
    from infer.runners.probe import measured_choice

    if not measuring:
        pytest.skip("auto's pick is checked against this session's measured rows: under --benchmark-only")
    if size not in MODELS[model].sizes:
        pytest.skip(f"{model} is not benchmarked at {size}px")
    monkeypatch.setenv("GANRT_CACHE", str(tmp_path))  # no cached measurement: auto probes now
    art = Artifact.load(artifact_of(model))
    picks: list[Any] = []
    timing = time_calls(benchmark, lambda: picks.append(measured_choice(art, available_backends(), cpu_count())),
                        rounds=1, min_rounds=1)
    best, why, _ = picks[-1]
    group = f"{model} {size}px b1 cpu"
    rows = _MEDIANS.get(group, {})
    passing = {label: median for label, (median, ok) in rows.items() if ok}
    picked = f"torch-{best.precision}-eager" if best.backend == "torch" else f"{best.backend}-{best.precision}"
    fastest = min(passing, key=passing.get) if passing else None
    ratio = passing[picked] / passing[fastest] if fastest and picked in passing else None
    benchmark.group = "auto"
    benchmark.extra_info.update({
        "kind": "auto", "model": model, "size": f"{size}x{size}", "batch": 1, "device": "cpu",
        "probe_size": list(art.manifest.image.default_size) if art.manifest.image else None,
        "pick": picked, "why": why, "probe_seconds": round(timing.median, 2),
        "fastest": fastest, "fastest_ms": round(passing[fastest] * 1000, 4) if fastest else None,
        "pick_ms": round(passing[picked] * 1000, 4) if picked in passing else None,
        "pick_vs_fastest": round(ratio, 3) if ratio else None, "within_10pct": ratio is not None and ratio <= 1.1,
        "timing": "one probe (python -m infer probe: every backend x precision at batch 1, each backend in a fresh "
                  "process) with an empty cache; the pick's and the fastest row's medians are this session's rows",
        "measured": timing.measured, "machine": machine_summary(), "contention": timing.contention,
    })
