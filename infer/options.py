"""The settings of each `python -m infer` command, as dataclasses: `ganrt.config` makes their flags.

Backends and precisions come from the one table of targets (`ganrt.targets`). The service's
limits (`ServiceOptions`) are what `infer.server.app.create_app` takes, so the HTTP service
has the same settings from the command line and from Python.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ganrt.config import opt
from ganrt.targets import BACKENDS, TARGETS, precisions_of
from infer.codecs import DEFAULT_MAX_PIXELS

BACKEND_CHOICES = ("auto", *BACKENDS)
PRECISION_CHOICES = tuple(dict.fromkeys(t.precision for t in TARGETS))

def _precisions_by_backend() -> str:
    """"torch: fp32, bf16; ort-cpu, ...: fp32, fp16, int8": backends that run the same precisions share a line."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for backend in BACKENDS:
        groups.setdefault(precisions_of(backend), []).append(backend)
    return "; ".join(f"{', '.join(backends)}: {', '.join(precisions)}" for precisions, backends in groups.items())



@dataclass
class ModelOptions:
    """Which runtime runs the artifact, at which precision."""

    backend: str = opt("auto", "runtime to run the model on; auto picks the fastest available here",
                       choices=BACKEND_CHOICES)
    precision: str | None = opt(None, f"model precision ({_precisions_by_backend()}); an ONNX precision needs that "
                                      "model in the artifact", choices=PRECISION_CHOICES,
                                default_text="fp32, or a TensorRT engine's own precision")


@dataclass
class SampleOptions(ModelOptions):
    """`sample`: n images from a noise-to-image model, as one grid."""

    n: int = opt(64, "number of samples", min=1)
    grid: Path = opt(Path("samples.png"), "grid image to write, ceil(sqrt(n)) columns; toy models that output "
                                          "points get a scatter plot")
    npz: Path | None = opt(None, "also write the raw uint8 images (or points) and labels as .npz", metavar="FILE",
                           default_text="not written")
    labels: tuple[str, ...] | None = opt(None, "class(es) for a conditional model: one for all samples, or n of them "
                                               "(indices or class names)", metavar="LABEL",
                                         default_text="cycle through the classes")
    seed: int | None = opt(None, "noise seed: the same seed gives the same images", default_text="random")
    ncol: int | None = opt(None, "grid columns", min=1, default_text="ceil(sqrt(n))")


@dataclass
class TranslateOptions(ModelOptions):
    """`translate`: every image of a folder."""

    batch_size: int = opt(1, "images per model call (same-size images are batched; batching brings nothing per "
                             "image on a small CPU)", min=1)
    size: int = opt(0, "run the model with the longer side scaled to this many pixels (aspect kept, result resized "
                       "back); 0: each image at its own size", min=0)


@dataclass
class ServiceOptions:
    """The HTTP service's batching and limits (what `create_app` takes)."""

    max_batch: int | None = opt(None, "most items per model call; at most the artifact's batch.max", min=1,
                                default_text="the artifact's batch.max")
    max_delay_ms: float = opt(5.0, "longest a request waits for others to share its batch", min=0)
    queue_size: int = opt(64, "most items waiting for the model; beyond it requests get 503 + Retry-After "
                              "(raised to max-n if lower)", min=1)
    max_n: int = opt(64, "largest n for /v1/generate", min=1)
    max_body_mb: float = opt(10.0, "largest request body in MB, enforced while reading", min=0)
    max_side: int = opt(1024, "translate: images with a longer side above this run scaled down to it and are "
                              "resized back; 0: no limit", min=0)
    max_pixels: int = opt(DEFAULT_MAX_PIXELS, "largest decoded image in pixels; larger ones get 413 before they are "
                                       "decoded", min=1)

    @property
    def max_body_bytes(self) -> int:
        """`max_body_mb` in bytes."""
        return int(self.max_body_mb * 1024 * 1024)


@dataclass
class ServeOptions(ServiceOptions, ModelOptions):
    """`serve`: the service on a socket."""

    host: str = opt("127.0.0.1", "address to listen on (127.0.0.1: this machine only; there is no authentication)")
    port: int = opt(8000, "TCP port", min=0)
    limit_concurrency: int = opt(256, "most open connections/requests before uvicorn answers 503", min=1)
    warmup: bool = opt(True, "run one inference before listening")


@dataclass
class WebcamOptions(ModelOptions):
    """`webcam`: a camera or video, translated live."""

    source: str = opt("0", "camera index (0, 1, ...), stream URL, or video file")
    out: Path | None = opt(None, "write the side-by-side video here (.mp4, mp4v codec)", metavar="FILE",
                           default_text="not written")
    window: bool = opt(True, "show a window; --no-window on headless machines (needed with opencv-python-headless)")
    size: int | None = opt(None, "longer side of the model input in pixels, aspect kept; 0: the frame's own size",
                           min=0, default_text="the size the model was trained at")
    realtime: bool = opt(False, "treat a video file like a camera: paced at its frame rate, stale frames dropped")
    max_frames: int | None = opt(None, "stop after this many frames", min=1, default_text="no limit")
    json: bool = opt(False, "print the final stats as JSON")


@dataclass
class TritonOptions:
    """`triton`: a Triton Inference Server on the artifact's repository (its Python-backend model)."""

    host: str = opt("127.0.0.1", "address Triton listens on (127.0.0.1: this machine only; there is no "
                                 "authentication)")
    http_port: int = opt(8000, "HTTP port (KServe v2: POST /v2/models/<name>/infer)", min=1)
    grpc_port: int = opt(8001, "gRPC port", min=1)
    metrics_port: int = opt(8002, "Prometheus metrics port (/metrics)", min=1)
    triton_env: Path | None = opt(None, "Python environment with nvidia-pytriton, numpy<2 and onnxruntime (Triton's "
                                        "server and its Python backend's interpreter)", metavar="DIR",
                                  default_text="$GANRT_TRITON_ENV, else ./.venv-triton, else this environment")
