"""A Triton Inference Server model repository (`triton/`) for the exported models.

Each model is `triton/<name>_<precision>/config.pbtxt` + `1/model.onnx` (or `1/model.plan`).
Field names and types follow Triton's model_config.proto (ModelConfig, ModelInput,
ModelOutput, ModelDynamicBatching, ModelTensorReshape).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ganrt.atomic import atomic_write_text
from ganrt.signature import TensorSpec
from ganrt.targets import ONNX, TENSORRT

if TYPE_CHECKING:
    from export.context import ExportContext

TRITON_DTYPE = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32",
                "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL"}
PLATFORM = {".onnx": "onnxruntime_onnx", ".plan": "tensorrt_plan"}
# How long Triton may hold a request to grow a batch: small next to a GAN's forward pass
# (milliseconds on a GPU), large enough to group concurrent requests.
MAX_QUEUE_DELAY_US = 2000


def _tensor_block(spec: TensorSpec) -> list[str]:
    # With max_batch_size > 0 Triton owns the leading batch dim, so dims omit it; a batch-only
    # tensor (labels: shape [batch]) is dims [1] reshaped to [] (Triton "Reshape" docs).
    dims = [-1 if d is None else d for d in spec.shape[1:]]
    lines = ["  {", f'    name: "{spec.name}"', f"    data_type: {TRITON_DTYPE[spec.dtype]}"]
    if dims:
        lines.append(f"    dims: [ {', '.join(str(d) for d in dims)} ]")
    else:
        lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
    lines.append("  }")
    return lines


def config_pbtxt(model_name: str, platform: str, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 max_batch_size: int) -> str:
    """The config.pbtxt text of one model."""
    def section(key: str, specs: list[TensorSpec]) -> list[str]:
        blocks = [_tensor_block(s) for s in specs]
        body = []
        for i, block in enumerate(blocks):
            body += block[:-1] + [block[-1] + ("," if i < len(blocks) - 1 else "")]
        return [f"{key} ["] + body + ["]"]

    lines = [f'name: "{model_name}"', f'platform: "{platform}"', f"max_batch_size: {max_batch_size}"]
    lines += section("input", inputs) + section("output", outputs)
    lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}", "}"]
    return "\n".join(lines) + "\n"


def _link_or_copy(src: Path, dst: Path) -> None:
    # A hard link costs no space; copy where links are not possible (another filesystem).
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_repository(root: Path, name: str, models: dict[str, Path], inputs: list[TensorSpec],
                     outputs: list[TensorSpec], max_batch_size: int) -> list[Path]:
    """Write `root` (a fresh triton/ directory) with one model per entry of `models` (key -> file)."""
    if root.exists():
        shutil.rmtree(root)
    written = []
    for key, model in models.items():
        model_name = f"{name}_{key}"
        model_dir = root / model_name
        _link_or_copy(model, model_dir / "1" / f"model{model.suffix}")
        config = model_dir / "config.pbtxt"
        atomic_write_text(config, config_pbtxt(model_name, PLATFORM[model.suffix], inputs, outputs, max_batch_size))
        written.append(config)
    return written


def stage(ctx: ExportContext) -> None:
    """Write triton/ for every model in the manifest: <name>_<precision> for ONNX models, <name>_trt for the engine."""
    models = {("trt" if fmt == TENSORRT else precision): ctx.out / entry["file"]
              for fmt, entries in ctx.manifest.models.items() if fmt in (ONNX, TENSORRT)
              for precision, entry in entries.items()}
    name = ctx.manifest.name
    write_repository(ctx.out / "triton", name, models, ctx.inputs, ctx.outputs, ctx.opts.batch[2])
    ctx.manifest.triton = {"repository": "triton", "models": [f"{name}_{p}" for p in models]}
