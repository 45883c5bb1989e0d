"""The settings of each `python -m infer` command, as dataclasses: `ganrt.config` makes their flags.

Backends and precisions come from the one table of targets (`ganrt.targets`). The service's
limits (`ServiceOptions`) are what `infer.server.app.create_app` takes, so the HTTP service
has the same settings from the command line and from Python.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganrt.config import opt
from ganrt.targets import BACKENDS, TARGETS, precisions_of
from infer.codecs import DEFAULT_MAX_PIXELS
from infer.prepost import NATIVE, TRAINED

BACKEND_CHOICES = ("auto", *BACKENDS)
PRECISION_CHOICES = tuple(dict.fromkeys(t.precision for t in TARGETS))

def _precisions_by_backend() -> str:
    """"torch: fp32, bf16; ort-cpu, ...: fp32, fp16, int8": backends that run the same precisions share a line."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for backend in BACKENDS:
        groups.setdefault(precisions_of(backend), []).append(backend)
    return "; ".join(f"{', '.join(backends)}: {', '.join(precisions)}" for precisions, backends in groups.items())



def parse_side(text: str) -> int | str:
    """--size: `trained`, `native` or a positive number of pixels."""
    if text in (TRAINED, NATIVE):
        return text
    if text.isascii() and text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected {TRAINED}, {NATIVE} or a positive number of pixels, got {text!r}")


def side_option(what: str) -> Any:
    """The --size field of a command that translates `what`: the model's training size unless told otherwise."""
    return opt(TRAINED, f"longer side of {what} as the model sees them, aspect kept, the result resized back: "
                        f"{TRAINED} (the size the model was trained at, from its manifest), {NATIVE} (their own "
                        "size; a fully convolutional model trained at another size gives poor results), or N pixels",
               parse=parse_side, metavar="N|trained|native")


@dataclass
class ThreadOptions:
    """How many CPU threads every backend (torch, ONNX Runtime, OpenVINO) runs with."""

    threads: int | None = opt(None, "CPU threads of the model's runtime (torch, ONNX Runtime, OpenVINO)", min=1,
                              default_text="every core this process may use")


@dataclass
class ModelOptions(ThreadOptions):
    """Which runtime runs the artifact, at which precision, on how many threads."""

    backend: str = opt("auto", "runtime to run the model on; auto picks the fastest backend x precision within its "
                               "parity gate, measured on this machine on first use (see `python -m infer probe`)",
                       choices=BACKEND_CHOICES)
    precision: str | None = opt(None, f"model precision ({_precisions_by_backend()}); an ONNX precision needs that "
                                      "model in the artifact", choices=PRECISION_CHOICES,
                                default_text="fp32, or a TensorRT engine's own precision; auto: the one it measured "
                                             "fastest")


@dataclass
class ProbeOptions(ThreadOptions):
    """`probe`: measure what `auto` picks from, on this machine, and cache it."""

    precision: str | None = opt(None, "measure only this precision", choices=PRECISION_CHOICES,
                                default_text="every precision")
    json: bool = opt(False, "print the measurements as JSON")


@dataclass
class SampleOptions(ModelOptions):
    """`sample`: n images from a noise-to-image model, as one grid."""

    n: int = opt(64, "number of samples", min=1)
    grid: Path = opt(Path("samples.png"), "grid image to write, ceil(sqrt(n)) columns; toy models that output "
                                          "points get a scatter plot")
    npz: Path | None = opt(None, "also write the raw uint8 images (or points) and labels as .npz", metavar="FILE",
                           default_text="not written")
    labels: tuple[str, ...] | None = opt(None, "class(es) for a conditional model (InfoGAN: the categorical code): one "
                                               "for all samples, or n of them (indices or class names)",
                                         metavar="LABEL", default_text="cycle through the classes")
    codes: tuple[float, ...] | None = opt(None, "continuous codes (InfoGAN): one value per code, the same for all "
                                                "samples, inside the codes' range (see the manifest)", metavar="C",
                                          default_text="drawn from the seed")
    sweep: int | None = opt(None, "draw the InfoGAN picture instead: a row per class, columns sweeping this "
                                  "continuous code over its range (the other codes mid-range, one z); --n is ignored",
                            min=0, metavar="CODE", default_text="no sweep")
    steps: int = opt(10, "columns of a --sweep", min=2, max=64)
    seed: int | None = opt(None, "noise seed: the same seed gives the same images", default_text="random")
    ncol: int | None = opt(None, "grid columns", min=1, default_text="ceil(sqrt(n))")


@dataclass
class TranslateOptions(ModelOptions):
    """`translate`: every image of a folder."""

    batch_size: int = opt(1, "images per model call (same-size images are batched; batching brings nothing per "
                             "image on a small CPU)", min=1)
    size: int | str = side_option("the images")
    pairs: str | None = opt(None, "the inputs are side-by-side A|B pair files (as pix2pix datasets ship them): AtoB "
                                  "translates each left half, BtoA each right half", choices=("AtoB", "BtoA"),
                            default_text="whole images")
    domain: str | None = opt(None, "target domain of a multi-domain model (StarGAN), by name or index; required "
                                   "for one", default_text="none (single-domain models)")


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
    size: int | str = side_option("the images /v1/translate receives")
    max_side: int = opt(1024, "translate: images with a longer side above this (at --size native) run scaled down "
                              "to it and are resized back; 0: no limit", min=0)
    max_pixels: int = opt(DEFAULT_MAX_PIXELS, "largest decoded image in pixels; larger ones get 413 before they are "
                                       "decoded", min=1)
    limit_concurrency: int = opt(256, "most requests in progress at once, beyond it 503 + Retry-After (idle and "
                                      "still-arriving connections do not count)", min=1)

    @property
    def max_body_bytes(self) -> int:
        """`max_body_mb` in bytes."""
        return int(self.max_body_mb * 1024 * 1024)


@dataclass
class ServeOptions(ServiceOptions, ModelOptions):
    """`serve`: the service on a socket."""

    host: str = opt("127.0.0.1", "address to listen on (127.0.0.1: this machine only; there is no authentication)")
    port: int = opt(8000, "TCP port", min=0)
    header_timeout: float = opt(10.0, "seconds a connection has to send a complete request head; silence is "
                                      "closed, a partial head gets 408", min=0.1, metavar="SECONDS")
    body_timeout: float = opt(30.0, "seconds a request body has to arrive in full after its head (408 after)",
                              min=0.1, metavar="SECONDS")
    keep_alive: float = opt(5.0, "seconds an idle connection stays open after a response", min=0.1,
                            metavar="SECONDS")
    warmup: bool = opt(True, "run one inference before listening")


@dataclass
class WebcamOptions(ModelOptions):
    """`webcam`: a camera or video, translated live."""

    source: str = opt("0", "camera index (0, 1, ...), stream URL, or video file")
    out: Path | None = opt(None, "write the side-by-side video here (.mp4, mp4v codec)", metavar="FILE",
                           default_text="not written")
    window: bool = opt(True, "show a window; --no-window on headless machines (needed with opencv-python-headless)")
    size: int | str = side_option("the frames")
    realtime: bool = opt(False, "treat a video file like a camera: paced at its frame rate, stale frames dropped")
    domain: str | None = opt(None, "first target domain of a multi-domain model (StarGAN), by name or index; keys 1-9 "
                                   "switch domains in the window", default_text="the first domain")
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
