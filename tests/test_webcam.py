"""The webcam/video pipeline on a generated video file (no camera, no display), tiny real CycleGAN on ort-cpu."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from infer.api import load
from infer.codecs import to_uint8
from infer.prepost import NATIVE
from infer.webcam import STAGES, LatestFrame, run_pipeline, side_by_side

REPO = Path(__file__).resolve().parents[1]
FRAMES, SIZE, FPS = 20, 64, 20


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """20 frames of 64 x 64 mp4v: a growing red disc on a brightening background."""
    path = tmp_path_factory.mktemp("video") / "in.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (SIZE, SIZE))
    assert writer.isOpened()
    for i in range(FRAMES):
        frame = np.full((SIZE, SIZE, 3), 40 + 8 * i, np.uint8)
        cv2.circle(frame, (SIZE // 2, SIZE // 2), 8 + i, (0, 0, 255), -1)
        cv2.rectangle(frame, (4, SIZE - 20), (28, SIZE - 4), (255, 128, 0), -1)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def model(cyclegan_artifact):
    with load(cyclegan_artifact, backend="ort-cpu") as m:
        yield m


def _read_all(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def _no_pipeline_threads() -> bool:
    return not any(t.name.startswith("ganrt-webcam") for t in threading.enumerate())


def test_video_file_every_frame_side_by_side_with_overlay(model, video, tmp_path, caplog):
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING, logger="ganrt.infer.webcam"):
        # A window is asked for, but there is no display here: it says so and carries on.
        stats = run_pipeline(model, str(video), out=out, window=True)
    assert "cannot be shown" in caplog.text
    assert stats.captured == stats.processed == stats.written == FRAMES
    assert stats.dropped == 0 and not stats.interrupted
    assert len(stats.processing_ms) == FRAMES and stats.fps > 0
    assert _no_pipeline_threads()

    inputs, outputs = _read_all(video), _read_all(out)
    assert len(inputs) == len(outputs) == FRAMES
    assert outputs[0].shape == (SIZE, 2 * SIZE, 3)  # original | translated
    for i in (0, FRAMES - 1):
        plain = side_by_side(inputs[i], model.translate(inputs[i], channel_order="BGR", max_side=32))
        changed = np.abs(outputs[i].astype(np.int16) - plain.astype(np.int16)).max(axis=2) > 60
        # The text (top-left) changes many pixels strongly (~15-25% there; 0 without the overlay);
        # away from it the frame is the plain side-by-side up to mp4 compression.
        assert changed[:12, :SIZE].mean() > 0.05, changed[:12, :SIZE].mean()
        assert changed[24:, SIZE + 8:].mean() < 0.01, changed[24:, SIZE + 8:].mean()


def test_every_stage_is_timed_per_frame_inside_its_processing(model, video, tmp_path):
    stats = run_pipeline(model, str(video), out=tmp_path / "stages.mp4")
    assert stats.processed == stats.written == FRAMES
    for stage in STAGES:
        assert len(stats.stage_ms[stage]) == (stats.written if stage == "write" else stats.processed), stage
        assert all(ms >= 0 for ms in stats.stage_ms[stage]), stage
    # Frame by frame, translate's three parts and compose happen inside the frame's processing time.
    parts = zip(*(stats.stage_ms[s] for s in ("preprocess", "inference", "postprocess", "compose")))
    for i, (frame_parts, processing) in enumerate(zip(parts, stats.processing_ms)):
        assert sum(frame_parts) <= processing + 0.05, (i, frame_parts, processing)
    summary = stats.summary()["stage_ms"]
    assert set(summary) == set(STAGES)
    assert all(set(ms) == {"p50", "p99", "mean"} and 0 <= ms["p50"] <= ms["p99"] for ms in summary.values())
    assert "\nper frame (p50 ms): capture " in stats.report() and ", write " in stats.report()


def test_no_write_stage_without_out_and_the_timings_record_adds_up(model, video):
    from infer.api import StageTimes

    stats = run_pipeline(model, str(video), max_frames=3)
    assert set(stats.summary()["stage_ms"]) == set(STAGES) - {"write"}
    assert "write" not in stats.report()
    times = StageTimes()
    frame = _read_all(video)[0]
    plain = model.translate(frame, channel_order="BGR")
    assert np.array_equal(model.translate(frame, channel_order="BGR", timings=times), plain)  # same result
    once = times.inference_s
    model.translate([frame, frame[:40]], channel_order="BGR", timings=times)  # two sizes: two runner calls, added
    assert once > 0 and times.inference_s > once and times.preprocess_s > 0 and times.postprocess_s > 0


def test_realtime_drops_stale_frames_and_accounts_for_all(model, video, tmp_path):
    seen: list[tuple] = []
    stats = run_pipeline(model, str(video), out=tmp_path / "rt.mp4", realtime=True, size=NATIVE,
                         on_frame=lambda f: seen.append(f.shape))
    assert stats.live and stats.captured == FRAMES
    assert stats.processed + stats.dropped == stats.captured
    assert stats.written == stats.processed == len(seen) >= 1
    assert len(_read_all(tmp_path / "rt.mp4")) == stats.written
    assert _no_pipeline_threads()


def test_stop_event_ends_cleanly(model, video, tmp_path):
    stop = threading.Event()
    count = [0]

    def on_frame(_frame):
        count[0] += 1
        if count[0] == 5:
            stop.set()  # what q / Esc / Ctrl-C do

    out = tmp_path / "stopped.mp4"
    stats = run_pipeline(model, str(video), out=out, stop=stop, on_frame=on_frame)
    assert 5 <= stats.processed < FRAMES
    assert stats.written == stats.processed
    assert stats.processed + stats.dropped == stats.captured
    assert len(_read_all(out)) == stats.written  # the file was closed properly
    assert _no_pipeline_threads()


def test_latest_frame_keeps_only_the_newest():
    slot = LatestFrame()
    for i in range(5):
        slot.put(i)
    assert slot.get(0.1) == 4 and slot.dropped == 4
    assert slot.get(0.01) is None


def test_cli_webcam_no_window_and_bad_source(cyclegan_artifact, video, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DISPLAY", None)
    out = tmp_path / "cli.mp4"
    proc = subprocess.run([sys.executable, "-m", "infer", "webcam", str(cyclegan_artifact), "--source", str(video),
                           "--backend", "ort-cpu", "--no-window", "--out", str(out), "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout.splitlines()[0])
    assert stats["processed"] == stats["written"] == FRAMES and stats["dropped"] == 0
    assert stats["latency_p50_ms"] > 0
    assert set(stats["stage_ms"]) == {"capture", "preprocess", "inference", "postprocess", "compose", "write"}
    assert "cannot be shown" not in proc.stderr  # --no-window: nothing to warn about
    assert len(_read_all(out)) == FRAMES

    bad = subprocess.run([sys.executable, "-m", "infer", "webcam", str(cyclegan_artifact), "--source",
                          str(tmp_path / "missing.mp4"), "--no-window"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "missing.mp4" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_ctrl_c_stops_cleanly(cyclegan_artifact, tmp_path):
    long_video = tmp_path / "long.mp4"
    writer = cv2.VideoWriter(str(long_video), cv2.VideoWriter_fourcc(*"mp4v"), 20, (SIZE, SIZE))
    for i in range(200):  # 10 s when paced like a camera (--realtime)
        writer.write(np.full((SIZE, SIZE, 3), i, np.uint8))
    writer.release()
    out = tmp_path / "interrupted.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "infer", "webcam", str(cyclegan_artifact), "--source",
                             str(long_video), "--realtime", "--no-window", "--out", str(out), "--backend", "ort-cpu"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until the model is loaded and frames flow
        if "loaded" in line:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "(interrupted)" in stdout
    assert "per frame (p50 ms): capture " in stdout  # the stage line is printed at the end
    written = int(stdout.split("written ")[1].split()[0])
    assert 0 < written < 200
    assert len(_read_all(out)) == written  # the writer was released: a playable file


# ---- broken videos and bad sources (issue #11) ----------------------------------------------

def _damaged(path: Path, start: float, stop: float) -> Path:
    """A 20-frame mp4v video with noise frames (every frame about as large), then bytes start..stop of its
    frame data (fractions of the mdat box) overwritten with noise: the container still says 20 frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (SIZE, SIZE))
    for i in range(FRAMES):
        writer.write(np.random.default_rng(i).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    begin, end = data.find(b"mdat") + 4, data.find(b"moov")
    assert 0 < begin < end, "expected mp4v frame data before the index"
    a, b = begin + int((end - begin) * start), begin + int((end - begin) * stop)
    data[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def _webcam_cli(artifact: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, "-m", "infer", "webcam", str(artifact), "--backend", "ort-cpu",
                           "--no-window", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_unreadable_frames_are_skipped_counted_and_warned(model, tmp_path, caplog, cyclegan_artifact):
    video = _damaged(tmp_path / "holes.mp4", 0.3, 0.35)
    with caplog.at_level(logging.WARNING, logger="ganrt.infer.webcam"):
        stats = run_pipeline(model, str(video), out=tmp_path / "out.mp4")
    assert stats.declared == FRAMES and stats.unreadable >= 1
    assert stats.captured + stats.unreadable == FRAMES  # read on past the hole (it once stopped at frame 3)
    assert stats.processed == stats.written == stats.captured and not stats.ended_early
    assert "could not be read" in caplog.text
    proc = _webcam_cli(cyclegan_artifact, "--source", str(video), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["unreadable"] == stats.unreadable
    assert "could not be read" in proc.stderr


def test_a_video_that_ends_early_exits_2_with_what_was_written(cyclegan_artifact, tmp_path):
    video = _damaged(tmp_path / "cut.mp4", 0.6, 1.0)
    out = tmp_path / "out.mp4"
    proc = _webcam_cli(cyclegan_artifact, "--source", str(video), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ended early" in errors[0] and f"of {FRAMES} frames" in errors[0]
    written = int(proc.stdout.split("written ")[1].split()[0])
    assert 0 < written < FRAMES and len(_read_all(out)) == written  # what was read is kept
    assert "per frame (p50 ms): capture " in proc.stdout and ", write " in proc.stdout


@pytest.mark.parametrize("source", ["99999999999999999999", "2147483648"])
def test_an_impossible_camera_index_exits_2_with_one_line(cyclegan_artifact, tmp_path, source):
    proc = _webcam_cli(cyclegan_artifact, "--source", source, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: camera index {source} is out of range (0 to 2147483647)"]


def test_deep_frames_are_scaled_to_8_bits():
    deep = np.array([[0, 257, 32896, 65535]], np.uint16)
    assert to_uint8(deep).tolist() == [[0, 1, 128, 255]]
    assert to_uint8(np.array([[0.0, 0.5, 1.0, 7.0]], np.float32)).tolist() == [[0, 128, 255, 255]]
    same = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert to_uint8(same) is same
