"""The fp16 ONNX model: ONNX Runtime's float16 converter, inputs/outputs kept fp32.

InstanceNorm is where fp16 loses accuracy (design.md "Known hazards"): when the all-fp16
model misses the PSNR gate, normalization ops are kept in fp32 through the converter's
`op_block_list`, and the better-measured candidate is kept.
"""
from __future__ import annotations

import onnx

from export.onnx_fp32 import op_types

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


def candidates(model: onnx.ModelProto) -> dict[str, tuple[str, ...]]:
    """Conversion candidates by name -> ops kept fp32: all-fp16, plus norm-fp32 when the graph has norms."""
    norms = tuple(op for op in NORMALIZATION_OPS if op in op_types(model))
    found = {"all-fp16": ()}
    if norms:
        found["norm-fp32"] = norms
    return found
