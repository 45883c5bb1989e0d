"""The smallest image size the model runs at, found with the real generator and its fp32 ONNX model.

Reflection padding wider than a downsampled feature map (or a norm over a single pixel) fails
below some input size, and nothing in the config says where: this stage asks the network. For
each axis it tries every size multiple from the smallest up, with the other axis at the export
size, until both the torch generator and the fp32 ONNX model on ONNX Runtime run; the pair is
then checked together. The result goes to the manifest's `image.min_size`, which infer enforces.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from export.feeds import at_size, batch_of, has_dynamic_size
from export.parity import ort_cpu_runner
from ganrt.artifact import ONNX_FILES

if TYPE_CHECKING:
    from export.context import ExportContext

log = logging.getLogger("ganrt.export")

RunsAt = Callable[[int, int], bool]


def smallest_size(runs_at: RunsAt, size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """The smallest (height, width), in steps of `multiple` up to `size` (known to run), at which `runs_at` holds."""
    height, width = size
    low_h = next(h for h in range(multiple, height + multiple, multiple) if h >= height or runs_at(h, width))
    low_w = next(w for w in range(multiple, width + multiple, multiple) if w >= width or runs_at(height, w))
    # Axes are independent in a convolutional network; should they not be, grow both until the pair runs.
    while not runs_at(low_h, low_w) and (low_h, low_w) != (height, width):
        low_h, low_w = min(low_h + multiple, height), min(low_w + multiple, width)
    return low_h, low_w


def _runs_at(ctx: ExportContext, onnx_runner: object) -> RunsAt:
    """Whether one real row, resized to (h, w), goes through the torch generator and the ONNX model."""
    row = batch_of(ctx.validation, 1)

    def runs_at(h: int, w: int) -> bool:
        feeds = at_size(row, ctx.inputs, (h, w))
        try:
            with torch.no_grad():
                ctx.source.generator(*(torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in ctx.inputs))
            onnx_runner.infer(feeds)  # type: ignore[attr-defined]
        except Exception as e:  # noqa: BLE001 - ONNX Runtime's errors derive from Exception only
            log.debug("      %dx%d does not run: %s", h, w, str(e).splitlines()[0][:160])
            return False
        return True

    return runs_at


def stage(ctx: ExportContext) -> None:
    """Record the model's smallest input size in the manifest (dynamic-size image models only)."""
    image = ctx.manifest.image
    if image is None or ctx.size is None or not has_dynamic_size(ctx.inputs):
        return
    runner = ort_cpu_runner(ctx.out / ONNX_FILES["fp32"], ctx.inputs, ctx.outputs, "fp32", ctx.size_multiple)
    with _quiet_onnxruntime(), runner:
        low = smallest_size(_runs_at(ctx, runner), ctx.size, ctx.size_multiple)
    ctx.manifest.image = dataclasses.replace(image, min_size=low)
    log.info("      smallest input %dx%d (multiples of %d)", low[0], low[1], ctx.size_multiple)


@contextlib.contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    """ONNX Runtime logs every failed run at ERROR level: the failures here are the search, not faults."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(4)
    try:
        yield
    finally:
        onnxruntime.set_default_logger_severity(2)  # its default, warnings and above
