"""`python -m infer webcam`: live translation of a camera or a video file, original | translated.

Three threads: capture (reads frames), inference (translates, overlays FPS and latency, writes
--out), and the main thread (shows the window, handles `q`/Esc, the domain keys of a multi-domain
model, and Ctrl-C).

Frame policy:
- live source (a camera index such as 0, or an rtsp/http stream, or `realtime=True`): the
  inference thread always takes the newest frame; older unprocessed frames are dropped and
  counted, so latency never builds up behind a slow model;
- video file: every frame is processed, none is dropped (capture waits for inference), so
  the output has exactly as many frames as the input, at the input's frame rate.

Frames that cannot be decoded are skipped and counted (`unreadable`), as long as a file has
frames left by its container's count (a camera: up to MAX_FAILURES_IN_A_ROW failed reads). A
source whose last frames could not be read `ended_early`: the command line exits 2.

Latency is measured per frame from outside the model: "processing" is translate + compose
(pre/post-processing included), "age" is from the frame being read to its result being
ready (it includes waiting for the inference thread). Each processed frame also records where
its time went, per stage (STAGES; the translate split comes from `infer.api.StageTimes`): the
records of one frame share its index in every list, so they can be compared frame by frame.
"""
from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from ganrt.errors import UsageError
from infer.api import StageTimes
from infer.codecs import to_uint8
from infer.prepost import TRAINED

log = logging.getLogger("ganrt.infer.webcam")

WINDOW = "ganrt: original | translated  (q / Esc to quit)"
_END = object()
# Failed reads in a row after which a source is taken to have ended (a camera unplugged, a file cut short).
MAX_FAILURES_IN_A_ROW = 30
# OpenCV takes a camera index as a C int.
MAX_CAMERA_INDEX = 2**31 - 1
# Where a frame's time goes: the read (capture thread); translate's three parts; side by side + text;
# the video writer (--out only).
STAGES = ("capture", "preprocess", "inference", "postprocess", "compose", "write")


@dataclass
class PipelineStats:
    """What happened in one run of the pipeline."""

    source: str = ""
    live: bool = False
    backend: str = ""
    captured: int = 0
    unreadable: int = 0
    # Frames the source said it has (a file's container count; None for cameras and streams).
    declared: int | None = None
    ended_early: bool = False
    processed: int = 0
    dropped: int = 0
    written: int = 0
    processing_ms: list[float] = field(default_factory=list)
    age_ms: list[float] = field(default_factory=list)
    # Per stage, one value per processed frame (write: per written frame), in processing order.
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {stage: [] for stage in STAGES})
    wall_s: float = 0.0
    interrupted: bool = False

    @property
    def fps(self) -> float:
        """Processed frames per second of wall time."""
        return self.processed / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """Counts, FPS and latency percentiles (ms) as a flat dict."""
        def pct(xs: list[float], q: float) -> float:
            return float(np.percentile(xs, q)) if xs else float("nan")
        return {
            "source": self.source, "live": self.live, "backend": self.backend,
            "captured": self.captured, "unreadable": self.unreadable, "declared": self.declared,
            "ended_early": self.ended_early, "processed": self.processed, "dropped": self.dropped,
            "written": self.written, "fps": round(self.fps, 2), "wall_s": round(self.wall_s, 3),
            "latency_mean_ms": round(float(np.mean(self.processing_ms)), 2) if self.processing_ms else float("nan"),
            "latency_p50_ms": round(pct(self.processing_ms, 50), 2),
            "latency_p99_ms": round(pct(self.processing_ms, 99), 2),
            "age_p50_ms": round(pct(self.age_ms, 50), 2), "age_p99_ms": round(pct(self.age_ms, 99), 2),
            "interrupted": self.interrupted,
            "stage_ms": {stage: {"p50": round(pct(xs, 50), 3), "p99": round(pct(xs, 99), 3),
                                 "mean": round(float(np.mean(xs)), 3)}
                         for stage, xs in self.stage_ms.items() if xs},
        }

    def report(self) -> str:
        """A few lines for the terminal."""
        s = self.summary()
        unreadable = f", unreadable {s['unreadable']}" if s["unreadable"] else ""
        stages = ", ".join(f"{stage} {ms['p50']:.2f}" for stage, ms in s["stage_ms"].items())
        return (f"frames: captured {s['captured']}{unreadable}, processed {s['processed']}, dropped {s['dropped']}, "
                f"written {s['written']}{' (interrupted)' if s['interrupted'] else ''}\n"
                f"latency per frame (translate + overlay, {s['backend']}): mean {s['latency_mean_ms']} ms, "
                f"p50 {s['latency_p50_ms']} ms, p99 {s['latency_p99_ms']} ms\n"
                f"capture-to-result: p50 {s['age_p50_ms']} ms, p99 {s['age_p99_ms']} ms\n"
                f"throughput: {s['fps']} FPS over {s['wall_s']} s"
                + (f"\nper frame (p50 ms): {stages}" if stages else ""))


class LatestFrame:
    """A one-slot mailbox: `put` replaces an unread frame (counted as dropped), `get` waits for one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._has = False
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if self._has and self._item is not _END:
                self.dropped += 1
            if not (self._has and self._item is _END):
                self._item, self._has = item, True
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Any:
        """The newest item, or None after `timeout`."""
        with self._cond:
            if not self._has and not self._cond.wait_for(lambda: self._has, timeout):
                return None
            item, self._item, self._has = self._item, None, False
            return item

    def discard(self) -> int:
        """Drop an unread frame (at shutdown); returns how many were dropped (0 or 1)."""
        with self._cond:
            n = int(self._has and self._item is not _END)
            self.dropped += n
            self._item, self._has = None, False
            return n


def parse_source(source: str | int) -> tuple[str | int, bool]:
    """'0' -> camera 0 (live); rtsp/http URLs are live; anything else must be an existing file."""
    if isinstance(source, int) or (isinstance(source, str) and source.isascii() and source.isdigit()):
        if int(source) > MAX_CAMERA_INDEX:
            raise UsageError(f"camera index {source} is out of range (0 to {MAX_CAMERA_INDEX})")
        return int(source), True
    if "://" in str(source):
        return str(source), True
    path = Path(source)
    if not path.is_file():
        raise UsageError(f"video source {source!r} is neither a camera index nor an existing file")
    return str(path), False


def display_available() -> tuple[bool, str]:
    """Whether cv2.imshow can open a window here, and why not."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY is not set)"
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        return False, "this OpenCV build has no GUI support (opencv-python-headless; install opencv-python for windows)"
    return True, ""


def _font_scale(h: int) -> float:
    return max(0.35, min(1.0, h / 400))


def overlay(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    """Write `lines` top-left in white on a black outline (readable on any image); in place."""
    scale = _font_scale(frame.shape[0])
    thick = 1 if scale < 0.6 else 2
    (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    y = th + 4
    for line in lines:
        cv2.putText(frame, line, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(frame, line, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
        y += th + base + 4
    return frame


def side_by_side(original: np.ndarray, translated: np.ndarray) -> np.ndarray:
    """Original | translated, both at the original's size, 3-channel BGR."""
    if translated.ndim == 3 and translated.shape[2] == 1:
        translated = translated[:, :, 0]
    if translated.ndim == 2:
        translated = cv2.cvtColor(translated, cv2.COLOR_GRAY2BGR)
    if translated.shape[:2] != original.shape[:2]:
        translated = cv2.resize(translated, (original.shape[1], original.shape[0]))
    return np.concatenate([original, translated], axis=1)


class _Fps:
    """Frames per second over the last `window` frames."""

    def __init__(self, window: int = 30):
        self.times: deque[float] = deque(maxlen=window)

    def tick(self) -> float:
        self.times.append(time.perf_counter())
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


class DomainSwitch:
    """The target domain of a multi-domain model (StarGAN), switched live: keys 1-9 pick one, Tab the next."""

    def __init__(self, processor: Any, first: Any = None) -> None:
        """`first`: a domain name or index (checked now), default the first; nothing to switch without domains."""
        k = processor.num_classes if processor.label_input is not None else None
        self.names: tuple[str, ...] = (processor.class_names or tuple(str(i) for i in range(k))) if k else ()
        self.index: int | None = int(processor.domains(1, 0 if first is None else first)[0]) if k else None

    @property
    def name(self) -> str | None:
        """The active domain's name (None for a single-domain model)."""
        return None if self.index is None else self.names[self.index]

    def key(self, key: int) -> None:
        """Follow a key press: 1..9 the domain of that number (if there is one), Tab the next one."""
        if self.index is None:
            return
        if ord("1") <= key <= ord("9") and key - ord("1") < len(self.names):
            self.index = key - ord("1")
        elif key == 9:  # Tab
            self.index = (self.index + 1) % len(self.names)


def run_pipeline(model: Any, source: str | int, out: str | Path | None = None, window: bool = False,
                 size: int | str = TRAINED, realtime: bool | None = None, stop: threading.Event | None = None,
                 max_frames: int | None = None, on_frame: Callable[[np.ndarray], None] | None = None,
                 domain: Any = None) -> PipelineStats:
    """Translate `source` frame by frame with `model` (an `infer.api.Generator`); returns the stats.

    `size`: longer side of the model input, aspect kept (TRAINED: the artifact's trained size;
    NATIVE: the frame's own size; or pixels). `realtime`: treat a video file like a camera (paced
    at its FPS, stale frames dropped); default: only cameras and streams are live. `stop`: set it
    to end the run (as `q` does). `max_frames`: stop after capturing that many. `domain`: the first target
    domain of a multi-domain model (keys 1-9 and Tab switch it in the window).
    """
    src, live = parse_source(source)
    if realtime is not None:
        live = realtime
    is_file = isinstance(src, str) and "://" not in src
    if model.kind != "translate":
        raise UsageError(f"{model.name} samples from noise ({model.variant}); the webcam needs an image-to-image model")
    model.processor.long_side(size)  # a bad size or domain fails before the source opens
    switch = DomainSwitch(model.processor, domain)

    if window:
        ok, why = display_available()
        if not ok:
            log.warning("a window was asked for but cannot be shown: %s; running without one "
                        "(pass --no-window to silence this)%s", why, "" if out else "; nothing is written either "
                        "(pass --out FILE.mp4)")
            window = False

    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        what = f"camera {src}" if isinstance(src, int) else f"video {src}"
        raise UsageError(f"cannot open {what}" + (" (no camera on this machine?)" if isinstance(src, int) else ""))
    src_fps = cap.get(cv2.CAP_PROP_FPS)
    src_fps = src_fps if src_fps and np.isfinite(src_fps) and 0 < src_fps <= 1000 else 30.0
    declared = cap.get(cv2.CAP_PROP_FRAME_COUNT) if is_file else 0
    declared = int(declared) if declared and np.isfinite(declared) and declared > 0 else None

    stats = PipelineStats(source=str(source), live=live, backend=model.backend, declared=declared)
    stop = stop or threading.Event()
    frames_live = LatestFrame()
    frames_file: queue.Queue = queue.Queue(maxsize=4)
    shown = LatestFrame()
    errors: list[BaseException] = []
    writer: cv2.VideoWriter | None = None

    def put_blocking(item: Any) -> bool:
        while not stop.is_set():
            try:
                frames_file.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def more_to_read(failures: int) -> bool:
        """After a failed read: whether the source has frames left (a file by its count, a camera by luck)."""
        if failures >= MAX_FAILURES_IN_A_ROW:
            return False
        if declared is not None:
            return stats.captured + stats.unreadable < declared
        return not is_file

    def capture() -> None:
        period = 1.0 / src_fps
        next_t = time.perf_counter()
        failures = 0  # in a row
        try:
            while not stop.is_set():
                if max_frames is not None and stats.captured >= max_frames:
                    break
                if live and is_file:  # pace a file like a camera
                    next_t += period
                    delay = next_t - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                t_start_read = time.perf_counter()
                ok, frame = cap.read()
                if not ok:
                    if not more_to_read(failures):
                        break
                    failures += 1
                    stats.unreadable += 1
                    continue
                failures = 0
                frame = to_uint8(frame)  # 16-bit sources (OpenCV without RGB conversion) scale down
                if frame.ndim == 2:
                    frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
                stats.captured += 1
                t_read = time.perf_counter()
                item = (frame, t_read, t_read - t_start_read)
                if live:
                    frames_live.put(item)
                elif not put_blocking(item):
                    break
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
        finally:
            # The last reads failed and nothing was read after them: the source stopped before its end.
            stats.ended_early = failures > 0 and not stop.is_set()
            if live:
                frames_live.put(_END)
            else:
                put_blocking(_END)

    def infer() -> None:
        nonlocal writer
        fps = _Fps()
        try:
            while True:
                item = frames_live.get(0.1) if live else _get(frames_file, 0.1)
                if item is None:
                    if stop.is_set():
                        break
                    continue
                if item is _END:
                    break
                frame, t_read, read_s = item
                t0 = time.perf_counter()
                target = switch.index  # read once: the key handler may switch it meanwhile
                times = StageTimes()
                translated = model.translate(frame, channel_order="BGR", side=size, domain=target, timings=times)
                t_translated = time.perf_counter()
                composed = side_by_side(frame, translated)
                rate = fps.tick()
                # The text shows the time up to here; the recorded latency includes drawing it.
                shown_ms = (time.perf_counter() - t0) * 1000
                overlay(composed, [f"{rate:5.1f} FPS  {shown_ms:6.1f} ms", f"{model.backend}",
                                   *([f"domain: {switch.names[target]} (1-9, Tab)"] if target is not None else [])])
                t1 = time.perf_counter()
                stats.processing_ms.append((t1 - t0) * 1000)
                stats.age_ms.append((t1 - t_read) * 1000)
                _record(stats.stage_ms, capture=read_s, preprocess=times.preprocess_s, inference=times.inference_s,
                        postprocess=times.postprocess_s, compose=t1 - t_translated)
                stats.processed += 1
                if out is not None:
                    if writer is None:
                        writer = _open_writer(out, src_fps, composed.shape[1], composed.shape[0])
                    t_write = time.perf_counter()
                    writer.write(composed)
                    _record(stats.stage_ms, write=time.perf_counter() - t_write)
                    stats.written += 1
                if on_frame is not None:
                    on_frame(composed)
                if window:
                    shown.put(composed)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
            stop.set()

    threads = [threading.Thread(target=capture, name="ganrt-webcam-capture", daemon=True),
               threading.Thread(target=infer, name="ganrt-webcam-infer", daemon=True)]
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    try:
        while threads[1].is_alive():
            if window:
                frame = shown.get(0.03)
                if frame is not None:
                    cv2.imshow(WINDOW, frame)
                key = cv2.waitKey(1) & 0xFF
                if key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                    stop.set()
                switch.key(key)
            else:
                threads[1].join(0.1)
            if stop.is_set() and not live and threads[1].is_alive():
                _drain(frames_file)  # unblock the capture thread
    except KeyboardInterrupt:
        stats.interrupted = True
        log.info("interrupted: stopping")
    finally:
        stop.set()
        for t in threads:
            while t.is_alive():
                _drain(frames_file)
                t.join(0.1)
        stats.wall_s = time.perf_counter() - t_start
        cap.release()
        if writer is not None:
            writer.release()
        if window:
            cv2.destroyWindow(WINDOW)
            cv2.waitKey(1)
    frames_live.discard()
    stats.dropped = frames_live.dropped if live else stats.captured - stats.processed
    if errors:
        raise errors[0]
    if out is not None and writer is None:
        log.warning("no frame was processed: %s was not written", out)
    if stats.unreadable:
        log.warning("%s: %d frame(s) could not be read and were skipped%s", source, stats.unreadable,
                    "; the source ended before its end" if stats.ended_early else "")
    return stats


def _record(stage_ms: dict[str, list[float]], **seconds: float) -> None:
    for stage, s in seconds.items():
        stage_ms[stage].append(s * 1000)


def _get(q: queue.Queue, timeout: float) -> Any:
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        return None


def _drain(q: queue.Queue) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass


def _open_writer(path: str | Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise UsageError(f"cannot write video {path} (mp4v codec; use a .mp4 name in a writable folder)")
    return writer
