"""OpenVINO IR (`.xml` graph + `.bin` weights) of the fp32 and int8 ONNX models, gated on ov-cpu like the rest.

ov-cpu runs the ONNX files as they are; the IR is what OpenVINO's own tools (model server,
benchmark_app) consume, and a start without a compiled-model cache skips the ONNX frontend.
Weights are saved as they are: `save_model` compresses them to fp16 by default, which would
move the fp32 model off its fp32 gate. Each IR is measured on ov-cpu on the parity stage's
cases (two batch sizes, two image sizes) against its target's tolerance.
"""
from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING

from export.feeds import parity_cases
from export.parity import measure
from export.provenance import model_entry, sha256_of
from ganrt.artifact import ONNX_FILES, OPENVINO_FILES
from ganrt.errors import UsageError
from ganrt.targets import ONNX, OPENVINO, target

if TYPE_CHECKING:
    from export.context import ExportContext

log = logging.getLogger("ganrt.export")


def check_installed() -> None:
    """UsageError (exit 2, before anything is written) when OpenVINO is not installed."""
    if importlib.util.find_spec("openvino") is None:
        raise UsageError("--openvino writes OpenVINO IR with OpenVINO's converter: pip install openvino "
                         "(or pip install ganrt[openvino])")


def stage(ctx: ExportContext) -> None:
    """Write generator[.int8].xml/.bin beside each fp32/int8 ONNX model and measure each on ov-cpu."""
    import openvino as ov

    from infer.runners.openvino_runner import OpenVinoRunner, compiled_loader

    cases = ctx.cases(parity_cases(ctx.inputs, ctx.size, ctx.size_multiple))
    for precision, (xml_name, bin_name) in OPENVINO_FILES.items():
        if ctx.manifest.model(ONNX, precision) is None:
            continue
        onnx_model = ctx.out / ONNX_FILES[precision]
        xml, weights = ctx.out / xml_name, ctx.out / bin_name
        # save_model writes the .bin beside the .xml under the same stem, which is how OpenVINO finds it again.
        ov.save_model(ov.convert_model(str(onnx_model)), str(xml), compress_to_fp16=False)
        tgt = target("ov-cpu", precision)
        runner = OpenVinoRunner(compiled_loader(xml, precision), ctx.inputs, ctx.outputs, precision=precision,
                                size_multiple=ctx.size_multiple)
        with runner:
            report = measure(runner, cases, tgt.tolerance)
        ctx.reports[tgt.key] = report
        ctx.manifest.set_model(OPENVINO, precision, model_entry(
            xml, weights=weights.name, weights_bytes=weights.stat().st_size, weights_sha256=sha256_of(weights),
            **{"from": onnx_model.name, "openvino": ov.__version__}))
        log.info("      %s IR: worst max-abs %.3g, PSNR %.1f dB on ov-cpu: %s", precision, report.worst.max_abs,
                 report.worst.psnr, "pass" if report.passed else f"FAIL (gate {tgt.tolerance.to_json()})")
