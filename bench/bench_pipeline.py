"""End to end: the webcam/video pipeline (`infer.webcam.run_pipeline`) on a generated MP4 video.

Every frame of the file is decoded, translated (pre/post-processing included), composed side
by side with the original and overlaid with FPS text, as `python -m infer webcam VIDEO` does
(no window, no output file). FPS is frames / the benchmark's own wall clock for the run;
per-frame latency (translate + compose) and capture-to-result age are the pipeline's
percentiles, measured outside the model; `stage_ms` splits each frame into capture (decode),
preprocess, inference (the runner call alone), postprocess and compose (`infer.webcam.STAGES`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import machine
from bench.cases import BenchConfig, by_label
from bench.measure import MemoryWatch, machine_summary, time_calls
from bench.parity import parity_record, picture_gate

FRAME_W, FRAME_H, FRAME_RATE = 320, 240, 30
# (model, model input size: longer side, or None for the artifact's own size, configs); default subset.
OV_CPU = ("ov-cpu-fp32", "ov-cpu-bf16", "ov-cpu-int8")
DEFAULT = (("cyclegan-shipped", None, ("torch-fp32-eager", "ort-cpu-fp32", "ort-cpu-int8", "ov-cpu-bf16",
                                       "ov-cpu-int8")),)
FULL = (
    ("cyclegan-shipped", None, ("torch-fp32-eager", "ort-cpu-fp32", "ort-cpu-int8", *OV_CPU)),
    ("cyclegan-shipped", 256, ("torch-fp32-eager", "ort-cpu-fp32", "ort-cpu-int8", "torch-bf16-compile", *OV_CPU)),
    ("cyclegan-256", 256, ("torch-fp32-eager", "torch-bf16-compile", "ort-cpu-fp32", "ort-cpu-int8", *OV_CPU)),
    ("cyclegan-256", 128, ("torch-fp32-eager", "ort-cpu-fp32", "ort-cpu-int8", *OV_CPU)),
)
CHECK_FRAMES = 4
# Frames per measured run, by model input size (the same for every backend, so run times compare).
FRAMES_BY_SIZE = {64: 120, 128: 60, 256: 24}


def write_video(path: Path, frames: int) -> Path:
    """A `frames`-long 320x240 mp4v video of moving shapes over a gradient (OpenCV writes and reads it here)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FRAME_RATE, (FRAME_W, FRAME_H))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video to {path}")
    yy, xx = np.mgrid[0:FRAME_H, 0:FRAME_W]
    for i in range(frames):
        frame = np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, (xx + yy) // 3 % 256], -1).astype(np.uint8)
        cx, cy = int(FRAME_W / 2 + 90 * math.cos(i / 10)), int(FRAME_H / 2 + 60 * math.sin(i / 10))
        cv2.circle(frame, (cx, cy), 40, (40, 200, 240), -1)
        cv2.rectangle(frame, (20 + i % 200, 30), (80 + i % 200, 90), (200, 60, 30), -1)
        writer.write(frame)
    writer.release()
    return path


def _params(config: pytest.Config) -> list[Any]:
    from bench.conftest import is_measuring
    from infer.runners import available_backends

    full = config.getoption("--bench-full", False)
    measuring = is_measuring(config)
    have = available_backends()
    params = []
    for model, size, labels in FULL if full else DEFAULT:
        for label in labels:
            cfg = by_label(label)
            pid = f"{model}-{size or 'own'}px-{label}"
            reason = None
            if cfg.backend not in have:
                reason = f"backend {cfg.backend} is not available here"
            elif not measuring and cfg.compile:
                reason = "torch.compile costs 10-15 s cold: measured under --benchmark-only"
            params.append(pytest.param(model, size, cfg, id=pid, marks=[pytest.mark.skip(reason=reason)] if reason else []))
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "pipeline_config" in metafunc.fixturenames:
        metafunc.parametrize("pipeline_model,pipeline_size,pipeline_config", _params(metafunc.config))


def test_video_pipeline(benchmark: Any, pipeline_model: str, pipeline_size: int | None, pipeline_config: BenchConfig,
                        artifact_of: Callable[..., Path], measuring: bool, tmp_path_factory: pytest.TempPathFactory) -> None:
    import cv2

    from ganrt.compare import compare
    from infer.api import load
    from infer.webcam import run_pipeline

    load_start = machine.load_average()
    art = artifact_of(pipeline_model)
    cfg = pipeline_config
    with load(art, backend="torch", precision="fp32") as reference, \
            load(art, backend=cfg.backend, precision=cfg.precision, **cfg.runner_options()) as model:
        fmt = model.processor.in_format
        size = pipeline_size or max(fmt.default_size)
        probe_frame = write_video(tmp_path_factory.mktemp("probe") / "one.mp4", 1)
        ok, frame = cv2.VideoCapture(str(probe_frame)).read()
        assert ok, "OpenCV could not read back the generated video"
        # Parity of the pipeline's own output (uint8 images) against the torch eager fp32 model.
        ours = model.translate(frame, channel_order="BGR", max_side=size)
        for _ in range(2 if measuring else 0):
            model.translate(frame, channel_order="BGR", max_side=size)
        expected = reference.translate(frame, channel_order="BGR", max_side=size)
        frames = FRAMES_BY_SIZE.get(size, 24) if measuring else CHECK_FRAMES
        video = write_video(tmp_path_factory.mktemp("video") / "input.mp4", frames)
        runs: list[Any] = []

        def run() -> None:
            runs.append(run_pipeline(model, str(video), out=None, window=False, size=size))

        benchmark.group = f"video pipeline {pipeline_model}"
        with MemoryWatch() as memory:
            timing = time_calls(benchmark, run, rounds=1, min_rounds=1)
    stats = runs[-1]
    summary = stats.summary()
    comparison = compare(expected.astype(np.float64), ours.astype(np.float64), value_range=255.0)
    parity = parity_record(comparison, picture_gate(cfg.tolerance),
                           "the same pipeline step with the torch eager fp32 model", on="uint8 BGR frame, peak 255")
    passed = parity["pass"]
    wall = timing.seconds[-1]
    benchmark.extra_info.update({
        "kind": "pipeline", "model": pipeline_model, "backend": cfg.backend, "precision": model.runner.precision,
        "compile": cfg.compile, "config": cfg.label, "baseline": cfg.is_baseline, "device": "cpu",
        "video": f"{FRAME_W}x{FRAME_H} mp4v, {frames} frames", "model_input_max_side": size,
        "frames": stats.processed, "fps": round(stats.processed / wall, 2), "images_per_s": round(stats.processed / wall, 2),
        "frame_latency_ms": {"p50": summary["latency_p50_ms"], "p99": summary["latency_p99_ms"],
                             "mean": summary["latency_mean_ms"]},
        "age_ms": {"p50": summary["age_p50_ms"], "p99": summary["age_p99_ms"]},
        "stage_ms": summary["stage_ms"],
        "dropped": stats.dropped,
        "parity": parity,
        "memory": memory.to_json(),
        "timing": "wall clock of run_pipeline over the whole file (decode, translate, compose, overlay)",
        "measured": timing.measured, "machine": machine_summary(),
        "load_average": [load_start, machine.load_average()], "contention": timing.contention,
    })
    assert stats.processed == frames, f"processed {stats.processed} of {frames} frames"
    assert passed, f"pipeline output vs torch fp32: max-abs {comparison.max_abs:.3g}, PSNR {comparison.psnr:.2f} dB"
