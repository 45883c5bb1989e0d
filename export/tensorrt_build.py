"""A TensorRT engine from the ONNX model, with TensorRT's Python API (TensorRT developer guide, "The Build Phase").

One optimization profile from --batch and --size, fp16/int8 builder flags (int8 from the QDQ
model: explicit quantization), a persistent timing cache, and normalization layers pinned to
fp32 when asked (layer precision constraints).
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from ganrt.atomic import atomic_write
from infer.runners.devices import cuda_device_count, gpu_info, gpu_slug

log = logging.getLogger("ganrt.export")

WORKSPACE_BYTES = 4 << 30


def missing_requirements() -> list[str]:
    """What this machine lacks to build an engine (empty when it can)."""
    missing = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("the tensorrt Python package (pip install tensorrt)")
    if cuda_device_count() == 0:
        missing.append("an NVIDIA CUDA GPU with its driver")
    return missing


def plan_name() -> str:
    """generator.<gpu-slug>.plan for this machine's first GPU (engines are not portable)."""
    return f"generator.{gpu_slug(gpu_info()['gpu'])}.plan"


def build_engine(onnx_model: Path, plan: Path, timing_cache: Path, *, precision: str,
                 shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]],
                 fp32_norm: bool = False, workspace_bytes: int = WORKSPACE_BYTES) -> dict[str, Any]:
    """Build and write `plan`; returns its manifest entry (GPU, compute capability, TensorRT version, profile)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 10: explicit batch is the only mode (flags 0); TensorRT 8 needs the flag.
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_model.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_model.name}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        low, opt, high = shapes[name]
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # int8 engines fall back to fp16, not fp32, where int8 has no kernel
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # scales come from the model's Q/DQ nodes, no calibrator
    pinned = 0
    if fp32_norm:
        # InstanceNorm loses accuracy in fp16 (design.md hazard): pin normalization layers to fp32.
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.type == trt.LayerType.NORMALIZATION:
                layer.precision = trt.float32
                for k in range(layer.num_outputs):
                    layer.set_output_type(k, trt.float32)
                pinned += 1

    # Persistent timing cache: tactic timings survive across builds (TensorRT "Optimizing Builder Performance").
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_model.name} (see its log above)")
    atomic_write(plan, lambda p: p.write_bytes(bytes(serialized)))
    timing = config.get_timing_cache().serialize()
    atomic_write(timing_cache, lambda p: p.write_bytes(bytes(timing)))
    info = gpu_info()
    return {"file": plan.name, "precision": precision, "from": onnx_model.name, "gpu": info["gpu"],
            "compute_capability": info["compute_capability"], "tensorrt": trt.__version__,
            "fp32_norm_layers": pinned, "timing_cache": timing_cache.name,
            "profiles": {name: {"min": list(lo), "opt": list(op), "max": list(hi)} for name, (lo, op, hi) in shapes.items()}}
