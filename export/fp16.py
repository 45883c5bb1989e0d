"""The fp16 ONNX model: ONNX Runtime's float16 converter, inputs/outputs kept fp32.

InstanceNorm is where fp16 loses accuracy (design.md "Known hazards"): when the all-fp16
model misses the PSNR gate, normalization ops are kept in fp32 through the converter's
`op_block_list`, and the better-measured candidate is kept.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import onnx

from export.onnx_fp32 import op_types
from ganrt.targets import target

if TYPE_CHECKING:
    from export.context import ExportContext

log = logging.getLogger("ganrt.export")

# Ops whose statistics (mean/variance over H x W) overflow or lose precision in fp16.
NORMALIZATION_OPS = ("InstanceNormalization", "LayerNormalization", "GroupNormalization")


def to_fp16(model: onnx.ModelProto, keep_fp32: tuple[str, ...] = ()) -> onnx.ModelProto:
    """An fp16 copy of `model` with fp32 I/O; ops in `keep_fp32` stay fp32 (with casts around them)."""
    # Shipped with onnxruntime (onnxruntime/python/tools/transformers/float16.py); passing
    # op_block_list replaces the converter's default list, so extend it rather than replace it.
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    converted = convert_float_to_float16(copy, keep_io_types=True,
                                         op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(keep_fp32))
    return drop_repeated_nodes(converted)


def drop_repeated_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop nodes that repeat an earlier node exactly (same op, inputs, outputs, attributes)."""
    # The converter in onnxruntime <= 1.30 inserts one "<initializer>_cast_to_fp32" Cast per
    # consumer of a shared fp16 initializer (InstanceNorms sharing a deduplicated bias), all
    # writing the same tensor: ONNX Runtime then refuses the model ("Duplicate definition").
    produced: dict[str, bytes] = {}
    keep = []
    for node in model.graph.node:
        key = node.SerializeToString(deterministic=True)
        repeats = [name for name in node.output if name in produced]
        if repeats and all(produced[name] == key for name in node.output):
            continue
        if repeats:
            raise ValueError(f"fp16 conversion wrote tensor {repeats[0]!r} twice with different nodes")
        produced.update((name, key) for name in node.output)
        keep.append(node)
    if len(keep) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return model


def normalization_ops(model: onnx.ModelProto) -> tuple[str, ...]:
    """The normalization op types a model uses (the ones fp16 hurts)."""
    return tuple(op for op in NORMALIZATION_OPS if op in op_types(model))


def candidates(model: onnx.ModelProto) -> dict[str, tuple[str, ...]]:
    """Conversion candidates by name -> ops kept fp32: all-fp16, plus norm-fp32 when the graph has norms."""
    norms = normalization_ops(model)
    found = {"all-fp16": ()}
    if norms:
        found["norm-fp32"] = norms
    return found


def stage(ctx: ExportContext) -> None:
    """Write generator.fp16.onnx: all-fp16 when it passes the gate (no casts: fastest on a GPU), else the best PSNR."""
    options = candidates(ctx.fp32_model)
    paths = {name: ctx.out / f"generator.fp16.{name}.onnx" for name in options}
    measured: dict[str, float] = {}
    for name, keep_fp32 in options.items():
        onnx.save(to_fp16(ctx.fp32_model, keep_fp32), str(paths[name]))
        measured[name] = ctx.measure_onnx(paths[name], "fp16").worst.psnr
        log.info("      candidate %s (fp32 kept: %s): PSNR %.1f dB", name, ", ".join(keep_fp32) or "none",
                 measured[name])
    floor = target("ort-cpu", "fp16").tolerance.psnr_min or 0
    chosen = "all-fp16" if measured["all-fp16"] >= floor else max(measured, key=measured.get)
    ctx.keep_onnx(paths[chosen], "fp16", variant=chosen, fp32_ops=list(options[chosen]),
                  io="float32", candidates_psnr={k: round(v, 2) for k, v in measured.items()})
    for path in paths.values():
        path.unlink(missing_ok=True)
