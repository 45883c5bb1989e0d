"""The export, stage by stage: source -> fp32 ONNX -> minimum size -> fp16/int8 ONNX -> TensorRT -> parity -> Triton
-> manifest.

This module only orders the stages and times them; each stage's policy lives in its own module
and every stage reads and extends one `ExportContext`. Everything is driven by the registry's
input/output specs; no stage knows a variant by name.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from export import fp16, int8, min_size, onnx_fp32, openvino_ir, parity, tensorrt_build, triton
from export.context import ExportContext, load_context
from export.options import ExportOptions
from export.parity import ParityReport
from ganrt.artifact import Manifest

log = logging.getLogger("ganrt.export")

Stage = Callable[[ExportContext], None]


@dataclass
class ExportResult:
    """What an export wrote and measured."""

    out_dir: Path
    manifest: Manifest
    reports: dict[str, ParityReport]
    stages: list[tuple[str, float]]
    trt_missing: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when a parity gate failed, 2 when --trt could not run here, else 0."""
        if self.manifest.status != "ok":
            return 1
        return 2 if self.trt_missing else 0


class StageLog:
    """Numbered, timed stages in the log."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.times: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        log.info("[%d/%d] %s", self.names.index(name) + 1, len(self.names), name)
        start = time.perf_counter()
        yield
        self.times.append((name, time.perf_counter() - start))
        log.info("      %s: %.1f s", name, self.times[-1][1])


def plan(opts: ExportOptions) -> list[tuple[str, Stage]]:
    """The stages after loading, in order, for these options."""
    by_precision = {"fp32": onnx_fp32.stage, "fp16": fp16.stage, "int8": int8.stage}
    stages: list[tuple[str, Stage]] = [(f"{p} ONNX", by_precision[p]) for p in opts.onnx_precisions()]
    # Right after the fp32 model, which it runs.
    stages.insert(1, ("minimum size", min_size.stage))
    if opts.openvino:
        stages.append(("OpenVINO IR", openvino_ir.stage))
    if opts.trt:
        stages.append(("TensorRT engine", tensorrt_build.stage))
    return stages + [("parity", parity.stage), ("Triton repository", triton.stage),
                     ("manifest", ExportContext.write_manifest)]


def run_export(opts: ExportOptions) -> ExportResult:
    """Export per `opts`; UsageError for bad input (exit 2), a failed gate shows in the result (exit 1)."""
    if opts.openvino:
        openvino_ir.check_installed()
    stages = plan(opts)
    timed = StageLog(["load source"] + [name for name, _ in stages])
    with timed("load source"):
        ctx = load_context(opts)
    try:
        for name, run in stages:
            with timed(name):
                run(ctx)
    finally:
        ctx.reference.close()
    return ExportResult(ctx.out, ctx.manifest, ctx.reports, timed.times, ctx.trt_missing)
