"""Runners: one interface over torch, ONNX Runtime (CPU, CUDA, TensorRT EP), OpenVINO (CPU) and native TensorRT.

`open_runner(artifact, backend, precision, threads=N)` builds an inactive runner; use it as
`with open_runner(...) as r: outputs = r(feeds)`. Importing this package imports no torch,
onnxruntime, openvino or tensorrt: each backend imports its library when its runner is activated.
`threads` sets every CPU backend's thread count (default: every core this process may use).

`backend="auto"` picks:
- with an NVIDIA GPU, a fixed preference order: trt (when the artifact holds an engine built
  for this GPU and TensorRT version) > ort-trt > ort-cuda > torch on CUDA;
- on a CPU, by measurement (`infer.runners.probe`): the fastest backend x precision at batch 1
  whose parity passes its gate, measured on this machine on first use and cached.
The choice is logged with its reason and kept in the runner's `.backend` / `.precision`.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from ganrt.artifact import Artifact, check_model_file
from ganrt.errors import ArtifactError, UsageError
from ganrt.targets import BACKENDS, OPENVINO, TENSORRT, Target, target
from infer.runners.base import Runner, RunnerNotActive, example_feeds, validate_feeds
from infer.runners.devices import cpu_count, cuda_device_count

log = logging.getLogger("ganrt.infer")

ORT_BACKENDS = ("ort-cpu", "ort-cuda", "ort-trt")
# GPU preference order of `auto` (fastest first); on a CPU, auto measures.
GPU_PREFERENCE = ("trt", "ort-trt", "ort-cuda", "torch")

__all__ = ["Runner", "RunnerNotActive", "available_backends", "example_feeds", "open_runner", "validate_feeds"]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def available_backends() -> list[str]:
    """Backends that can run here, probed cheaply (package present, provider listed, GPU visible)."""
    found = []
    if _installed("torch") and _installed("safetensors"):
        found.append("torch")
    gpu = cuda_device_count() > 0
    if _installed("onnxruntime"):
        import onnxruntime

        providers = onnxruntime.get_available_providers()
        found += [b for b, p in (("ort-cpu", "CPUExecutionProvider"), ("ort-cuda", "CUDAExecutionProvider"),
                                 ("ort-trt", "TensorrtExecutionProvider"))
                  if p in providers and (b == "ort-cpu" or gpu)]
    if _installed("openvino"):
        found.append("ov-cpu")
    # torch is imported only when a GPU and TensorRT are both present (the runner needs CUDA torch).
    if gpu and _installed("tensorrt") and _installed("torch"):
        import torch

        if torch.cuda.is_available():
            found.append("trt")
    return found


def _engine_precision(artifact: Artifact) -> str | None:
    """The precision of the artifact's TensorRT engine (None: it has none)."""
    return next(iter(artifact.manifest.models.get(TENSORRT, {})), None)


def _engine_fits_here(artifact: Artifact) -> bool:
    """Whether the artifact's TensorRT engine was built for this GPU and TensorRT version."""
    from infer.runners.devices import gpu_info

    precision = _engine_precision(artifact)
    entry = artifact.manifest.model(TENSORRT, precision) if precision else None
    if entry is None:
        return False
    import tensorrt

    return entry.get("tensorrt") == tensorrt.__version__ and entry.get("gpu") == gpu_info()["gpu"]


def choose_backend(artifact: Artifact, precision: str | None = None,
                   threads: int | None = None) -> tuple[str, str | None, dict[str, Any]]:
    """(backend, precision, options) that `auto` picks for this artifact on this machine."""
    have = available_backends()
    if cuda_device_count() > 0:
        for backend in GPU_PREFERENCE:
            if backend not in have:
                continue
            if backend == "trt" and not _engine_fits_here(artifact):
                continue
            if backend == "torch":
                return backend, precision, {"device": "cuda"}
            return backend, precision, {}
    from infer.runners.probe import measured_choice

    best, why, measurements = measured_choice(artifact, have, threads or cpu_count(), precision)
    log.info("backend auto -> %s %s for %s: %s (measurements: %s)", best.backend, best.precision, artifact.name,
             why, measurements)
    return best.backend, best.precision, {}


def _openvino_model(art: Artifact, tgt: Target) -> Path:
    """The IR export wrote for this target's model (.xml beside its .bin), else the ONNX file itself."""
    entry = art.manifest.model(OPENVINO, tgt.model[1])
    if entry is not None and art.path_of(entry["file"]).is_file() and art.path_of(entry["weights"]).is_file():
        # Both files are checked against the manifest, as ONNX Runtime's loader checks its model.
        check_model_file(art.path_of(entry["file"]), entry.get("sha256"), entry.get("bytes"))
        check_model_file(art.path_of(entry["weights"]), entry.get("weights_sha256"), entry.get("weights_bytes"))
        return art.path_of(entry["file"])
    recorded = art.manifest.model(*tgt.model) or {}
    check_model_file(art.model_path(tgt), recorded.get("sha256"), recorded.get("bytes"))
    return art.model_path(tgt)


def open_runner(artifact: Artifact | str | Path, backend: str = "auto", precision: str | None = None,
                threads: int | None = None, **options: Any) -> Runner:
    """An inactive runner for `artifact` on `backend` ("auto" picks; see the module doc).

    `precision` is one the backend runs (`ganrt.targets`): fp32, fp16 or int8 for ONNX Runtime,
    fp32, bf16 or int8 for ov-cpu, fp32 or bf16 for torch; None means fp32, or the engine's own
    precision for trt. `threads`: CPU threads of torch, ONNX Runtime and OpenVINO (default: all cores).
    """
    art = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
    threads = threads or cpu_count()
    if backend == "auto":
        backend, precision, auto_options = choose_backend(art, precision, threads)
        options = {**auto_options, **options}
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose one of: auto, {', '.join(BACKENDS)}")
    if backend == "trt":
        engine = _engine_precision(art)
        if precision and engine and precision != engine:
            raise ArtifactError(f"artifact {art.name}'s engine is {engine}, not {precision}: "
                                f"rebuild it with python -m export {art.root} --trt --{precision}")
        precision = precision or engine or "fp16"
    tgt = target(backend, precision or "fp32")
    image = art.manifest.image
    has_image_input = any(s.kind == "image" for s in art.inputs)
    common: dict[str, Any] = {
        "size_multiple": image.size_multiple if image else 1,
        "example_size": image.default_size if has_image_input and image else None,
    }
    if backend == "torch" and not art.has(tgt):
        # The artifact shipped with ganrt holds ONNX models only (its weights are shipped once, beside it).
        raise ArtifactError(f"artifact {art.name} holds no generator weights ({art.generator_path.name}), which "
                            "the torch backend runs: use an ONNX backend, or export the generator with "
                            "python -m export GENERATOR")
    model = art.model_path(tgt)
    if backend == "torch":
        from infer.runners.torch_runner import TorchRunner, generator_loader

        options.setdefault("bf16", tgt.precision == "bf16")
        load = generator_loader(art.variant, art.manifest.config, model)
        return TorchRunner(load, art.inputs, art.outputs, threads=threads, **common, **options)
    if backend == "ov-cpu":
        from ganrt.locations import cache_root
        from infer.runners.openvino_runner import OpenVinoRunner, compiled_loader

        load = compiled_loader(_openvino_model(art, tgt), tgt.precision, hint=options.pop("hint", "latency"),
                               threads=threads, cache_dir=cache_root() / "openvino")
        return OpenVinoRunner(load, art.inputs, art.outputs, precision=tgt.precision, **common, **options)
    if backend in ORT_BACKENDS:
        from infer.runners.onnxrt import OrtRunner, session_loader

        trt_flags: dict[str, Any] = {}
        if backend == "ort-trt":
            trt_flags = {"trt_fp16": tgt.precision in ("fp16", "int8"), "trt_int8": tgt.precision == "int8",
                         "cache_dir": art.root / "ort-trt-cache"}
        session_options = {k: options.pop(k) for k in ("device_id",) if k in options}
        recorded = art.manifest.model(*tgt.model) or {}
        load = session_loader(model, backend, threads=threads, **session_options, **trt_flags,
                              sha256=recorded.get("sha256"), size=recorded.get("bytes"))
        return OrtRunner(load, art.inputs, art.outputs, backend=backend, precision=tgt.precision,
                         device_id=session_options.get("device_id", 0), **common, **options)
    from infer.runners.tensorrt_runner import TrtRunner, engine_loader

    entry = art.manifest.model(TENSORRT, tgt.precision) or {}
    load = engine_loader(model, entry, str(art.root))
    return TrtRunner(load, art.inputs, art.outputs, precision=tgt.precision, **common, **options)
