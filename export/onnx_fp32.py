"""The fp32 ONNX model: torch.onnx export with dynamic axes, the ONNX checker, then onnxslim.

The stage keeps onnxslim's model only when it matches the reference at batch 1 and 5 and at a
second image size (slimming must not bake a shape in); otherwise the exported model, with a note.
"""
from __future__ import annotations

import collections
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import torch
from torch import nn

from export.feeds import Case, at_size, batch_of, has_dynamic_size, second_size
from ganrt.errors import UsageError
from ganrt.signature import TensorSpec

if TYPE_CHECKING:
    from export.context import ExportContext

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


def stage(ctx: ExportContext) -> None:
    """Write generator.onnx: exported, then slimmed when the slim model keeps parity."""
    raw_path = ctx.out / "generator.unsimplified.onnx"
    example = at_size(batch_of(ctx.validation, 2), ctx.inputs, ctx.size)
    raw = export_fp32(ctx.source.generator, ctx.inputs, ctx.outputs, example, raw_path, ctx.opts.opset)
    slim_path, note = _slim(ctx, raw)
    if note:
        log.warning("      %s", note)
    kept = slim_path or raw_path
    ctx.fp32_model = onnx.load(str(kept), load_external_data=False)
    ctx.keep_onnx(kept, "fp32", opset=ctx.opts.opset, simplified=slim_path is not None,
                  nodes=len(ctx.fp32_model.graph.node), **({"note": note} if note else {}))
    raw_path.unlink(missing_ok=True)


def _slim(ctx: ExportContext, raw: onnx.ModelProto) -> tuple[Path | None, str]:
    """(the slim model's path when it keeps parity, else None; why not)."""
    try:
        slim = simplify(raw)
    except Exception as e:  # onnxslim is an optimisation: its failure must not stop the export
        return None, f"onnxslim failed ({e}); kept the unsimplified model"
    slim_path = ctx.out / "generator.slim.onnx"
    onnx.save(slim, str(slim_path))
    other = second_size(ctx.size, ctx.size_multiple) if ctx.size and has_dynamic_size(ctx.inputs) else ctx.size
    report = ctx.measure_onnx(slim_path, "fp32", ctx.cases([Case(1, ctx.size), Case(5, ctx.size), Case(5, other)]))
    if not report.passed:
        slim_path.unlink()
        missed = [c.label() for c, r in report.results if not report.gate.passes(r)]
        return None, (f"the simplified model missed parity (max-abs {report.worst.max_abs:.3g} at {missed}); "
                      f"kept the unsimplified model")
    log.info("      simplified %d -> %d nodes; batch 1/5 and %s parity max-abs %.2g", len(raw.graph.node),
             len(slim.graph.node), "two sizes" if other != ctx.size else "one size", report.worst.max_abs)
    return slim_path, ""
