"""A TensorRT engine from the ONNX model, with TensorRT's Python API (TensorRT developer guide, "The Build Phase").

One optimization profile from --batch and --size, fp16/int8 builder flags (int8 from the QDQ
model: explicit quantization), a persistent timing cache, and normalization layers pinned to
fp32 when asked (layer precision constraints). The stage measures the engine and, when an
fp16 engine of a model with normalization layers misses its gate, rebuilds it with them in fp32.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.feeds import image_inputs, parity_cases
from export.fp16 import normalization_ops
from export.parity import CaseSet, ParityReport, measure
from export.provenance import model_entry
from ganrt.artifact import ONNX_FILES, engine_file
from ganrt.atomic import atomic_write
from ganrt.errors import BackendUnavailable
from ganrt.targets import TENSORRT, target
from infer.runners.devices import cuda_device_count, gpu_info, gpu_slug

if TYPE_CHECKING:
    from export.context import ExportContext

log = logging.getLogger("ganrt.export")

TIMING_CACHE = "timing.cache"
Shapes = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]

WORKSPACE_BYTES = 4 << 30


def missing_requirements() -> list[str]:
    """What this machine lacks to build an engine (empty when it can)."""
    missing = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("the tensorrt Python package (pip install tensorrt)")
    if cuda_device_count() == 0:
        missing.append("an NVIDIA CUDA GPU with its driver")
    return missing


def build_engine(onnx_model: Path, plan: Path, timing_cache: Path, *, precision: str, shapes: Shapes,
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


def stage(ctx: ExportContext) -> None:
    """Build and measure this GPU's engine; an fp16 miss with normalization layers is rebuilt with them in fp32."""
    ctx.trt_missing = missing_requirements()
    if ctx.trt_missing:
        log.error("      cannot build a TensorRT engine here: missing %s", " and ".join(ctx.trt_missing))
        return
    precision = ctx.opts.trt_precision()
    # The table says which ONNX model TensorRT builds from (fp16 engines: the fp32 model; int8: the QDQ one).
    onnx_model = ctx.out / ONNX_FILES[target("ort-trt", precision).model[1]]
    plan = ctx.out / engine_file(gpu_slug(gpu_info()["gpu"]))  # engines are not portable: one per GPU model
    lo, _, hi = ctx.opts.batch
    cases = ctx.cases([c for c in parity_cases(ctx.inputs, ctx.size, ctx.size_multiple)
                       if lo <= c.batch <= hi and c.size == ctx.size])
    engine_target = target("trt", precision)
    has_norms = bool(normalization_ops(ctx.fp32_model))
    for fp32_norm in (False, True):
        entry = build_engine(onnx_model, plan, ctx.out / TIMING_CACHE, precision=precision, shapes=_profile(ctx),
                             fp32_norm=fp32_norm)
        report = _measure_engine(ctx, plan, entry, cases)
        # A gate miss in fp16 is InstanceNorm's classic failure (design.md "Known hazards").
        if report is None or report.passed or fp32_norm or not has_norms:
            break
        log.warning("      engine PSNR %.1f dB < %s: rebuilding with normalization layers in fp32",
                    report.worst.psnr, engine_target.tolerance.to_json())
    ctx.manifest.set_model(TENSORRT, precision, {**model_entry(plan), **entry})
    if report is not None:
        ctx.reports[engine_target.key] = report


def _measure_engine(ctx: ExportContext, plan: Path, entry: dict[str, Any], cases: CaseSet) -> ParityReport | None:
    """The engine against its gate; None (noted in `entry`) when it cannot run here."""
    from infer.runners.tensorrt_runner import TrtRunner, engine_loader

    runner = TrtRunner(engine_loader(plan, entry, str(ctx.out)), ctx.inputs, ctx.outputs,
                       precision=entry["precision"], size_multiple=ctx.size_multiple)
    try:
        with runner:
            return measure(runner, cases, target("trt", entry["precision"]).tolerance)
    except BackendUnavailable as e:
        log.warning("      engine built but not measured: %s", e)
        entry["parity_note"] = f"not measured: {e}"
        return None


def _profile(ctx: ExportContext) -> Shapes:
    """The optimization profile: --batch MIN:OPT:MAX, and the export size for image inputs."""
    images = image_inputs(ctx.inputs)
    shapes = {}
    for spec in ctx.inputs:
        dims = [list(spec.shape) for _ in range(3)]
        for k, b in enumerate(ctx.opts.batch):
            dims[k][0] = b
            if spec in images and ctx.size:
                dims[k][2], dims[k][3] = ctx.size
        shapes[spec.name] = tuple(tuple(int(d) for d in ds) for ds in dims)
    return shapes
