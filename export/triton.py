"""A Triton Inference Server model repository (`triton/`) for the exported models.

Each model is `triton/<name>_<precision>/config.pbtxt` + `1/model.onnx` (or `1/model.plan`),
for NVIDIA's containers (onnxruntime_onnx, tensorrt_plan backends), and `<name>_python`,
served by Triton's Python backend: `1/model.py` (export/triton_python_model.py) runs the fp32
ONNX model of `<name>_fp32` with ONNX Runtime (the file is referenced, not copied again), so a
Triton build with only the Python backend (the `nvidia-pytriton` wheel's) serves the artifact
too. Every config is written from the manifest's TensorSpecs: the one source of names, dtypes
and dims. Field names and types follow Triton's model_config.proto (ModelConfig, ModelInput,
ModelOutput, ModelDynamicBatching, ModelTensorReshape, ModelInstanceGroup, ModelParameter).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ganrt.atomic import atomic_write_bytes, atomic_write_text
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
# The Python-backend model: its name suffix, the model it runs, and its code.
PYTHON_KEY = "python"
PYTHON_RUNS = "fp32"
PYTHON_MODEL_SOURCE = Path(__file__).with_name("triton_python_model.py")


def python_model_name(name: str) -> str:
    """The name of an artifact's Python-backend model in its repository ("<name>_python")."""
    return f"{name}_{PYTHON_KEY}"


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
                 max_batch_size: int, parameters: dict[str, str] | None = None) -> str:
    """The config.pbtxt text of one model; platform "python" means the Python backend (one CPU instance)."""
    def section(key: str, specs: list[TensorSpec]) -> list[str]:
        blocks = [_tensor_block(s) for s in specs]
        body = []
        for i, block in enumerate(blocks):
            body += block[:-1] + [block[-1] + ("," if i < len(blocks) - 1 else "")]
        return [f"{key} ["] + body + ["]"]

    runs_on = f'backend: "{platform}"' if platform == PYTHON_KEY else f'platform: "{platform}"'
    lines = [f'name: "{model_name}"', runs_on, f"max_batch_size: {max_batch_size}"]
    lines += section("input", inputs) + section("output", outputs)
    lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}", "}"]
    if platform == PYTHON_KEY:
        # One stub process: ONNX Runtime uses the cores itself, and batching feeds it.
        lines.append("instance_group [ { kind: KIND_CPU, count: 1 } ]")
    for key, value in (parameters or {}).items():
        lines.append(f'parameters {{ key: "{key}", value: {{ string_value: "{value}" }} }}')
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
    """Write `root` (a fresh triton/ directory) with one model per entry of `models` (key -> file).

    When `models` has the fp32 ONNX model, `<name>_python` runs it on Triton's Python backend.
    """
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
    if PYTHON_RUNS in models:
        model_dir = root / python_model_name(name)
        atomic_write_bytes(model_dir / "1" / "model.py", PYTHON_MODEL_SOURCE.read_bytes())
        # The ONNX file is the fp32 model's, named relative to this model's folder.
        onnx_file = f"../{name}_{PYTHON_RUNS}/1/model.onnx"
        config = model_dir / "config.pbtxt"
        atomic_write_text(config, config_pbtxt(python_model_name(name), PYTHON_KEY, inputs, outputs, max_batch_size,
                                               {"onnx_model": onnx_file}))
        written.append(config)
    return written


def repository_models(manifest_models: dict[str, dict[str, dict]], root: Path) -> dict[str, Path]:
    """The repository's models from a manifest's `models`: precision -> ONNX file, "trt" -> the engine."""
    return {("trt" if fmt == TENSORRT else precision): root / entry["file"]
            for fmt, entries in manifest_models.items() if fmt in (ONNX, TENSORRT)  # Triton runs no OpenVINO IR here
            for precision, entry in entries.items()}


def stage(ctx: ExportContext) -> None:
    """Write triton/ for every model in the manifest (<name>_<precision>, <name>_trt) and <name>_python."""
    models = repository_models(ctx.manifest.models, ctx.out)
    name = ctx.manifest.name
    configs = write_repository(ctx.out / "triton", name, models, ctx.inputs, ctx.outputs, ctx.opts.batch[2])
    ctx.manifest.triton = {"repository": "triton", "models": [p.parent.name for p in configs]}
