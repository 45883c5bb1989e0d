"""The fp32 ONNX model: torch.onnx export with dynamic axes, the ONNX checker, then onnxslim."""
from __future__ import annotations

import collections
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from ganrt.errors import UsageError
from ganrt.signature import TensorSpec

log = logging.getLogger("ganrt.export")

DEFAULT_OPSET = 17
# Per-channel QuantizeLinear/DequantizeLinear (the int8 model) need opset 13.
MIN_OPSET = 13


def onnx_output_specs(inputs: list[TensorSpec], outputs: list[TensorSpec]) -> list[TensorSpec]:
    """Output specs with ONNX-safe names: an output may not reuse an input's name (the exporter would
    silently rename the input, e.g. "image" -> "image.1"), so such outputs get an "_out" suffix."""
    taken = {s.name for s in inputs}
    renamed = []
    for spec in outputs:
        name = spec.name
        while name in taken:
            name += "_out"
        taken.add(name)
        renamed.append(TensorSpec(name, spec.shape, spec.dtype, spec.range, spec.kind, spec.num_classes, spec.class_names))
    return renamed


def dynamic_axes(specs: list[TensorSpec]) -> dict[str, dict[int, str]]:
    """Every None dim of a spec becomes a named dynamic axis: batch, and height/width for images."""
    axes: dict[str, dict[int, str]] = {}
    for spec in specs:
        names = {0: "batch"}
        if spec.kind == "image" and len(spec.shape) == 4:
            names.update({2: "height", 3: "width"})
        dims = {i: names.get(i, f"{spec.name}_dim{i}") for i, d in enumerate(spec.shape) if d is None}
        if dims:
            axes[spec.name] = dims
    return axes


def export_fp32(generator: nn.Module, inputs: list[TensorSpec], outputs: list[TensorSpec],
                example: dict[str, np.ndarray], path: Path, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Export `generator` (eval mode) with the legacy TorchScript exporter and check the result."""
    generator.eval()  # dropout off, batch-norm running statistics: the parity reference's mode
    args = tuple(torch.from_numpy(example[s.name]) for s in inputs)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        # dynamo=False: the legacy exporter needs nothing beyond torch and honours opset 17; the
        # dynamo exporter needs onnxscript and leaves CycleGAN at opset 18 (design.md section 8).
        try:
            torch.onnx.export(generator, args, str(path), input_names=[s.name for s in inputs],
                              output_names=[s.name for s in outputs], dynamic_axes=dynamic_axes(inputs + outputs),
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        except RuntimeError as e:
            if "Unsupported onnx_opset_version" in str(e):
                raise UsageError(f"--opset {opset}: {e} (the TorchScript exporter of torch {torch.__version__})") from None
            raise
    _log_export_warnings(caught)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    return model


def _log_export_warnings(caught: list[warnings.WarningMessage]) -> None:
    # The legacy exporter is deprecated (a DeprecationWarning per call) and repeats tracer notes
    # per layer; parity at several batch sizes and image sizes is what proves the graph right,
    # so the notes go to the debug log, once each.
    counts = collections.Counter(f"{w.category.__name__}: {str(w.message).splitlines()[0][:160]}" for w in caught)
    for text, n in counts.items():
        log.debug("exporter %s (x%d)", text, n)


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim's constant folding and fusions; the caller verifies parity at other batch sizes and sizes."""
    import onnxslim

    slim = onnxslim.slim(model)
    onnx.checker.check_model(slim, full_check=True)
    return slim


def op_types(model: onnx.ModelProto) -> set[str]:
    """Operator types used by a model's main graph."""
    return {node.op_type for node in model.graph.node}
