"""OpenVINO IR (`.xml` graph + `.bin` weights) of the fp32 and int8 models, gated on ov-cpu like the rest.

ov-cpu runs the ONNX files as they are; the IR is what OpenVINO's own tools (model server,
benchmark_app) consume, and a start without a compiled-model cache skips the ONNX frontend.
Weights are saved as they are: `save_model` compresses them to fp16 by default, which would
move the fp32 model off its fp32 gate. Each IR is measured on ov-cpu on the parity stage's
cases (two batch sizes, two image sizes) against its target's tolerance.

The int8 IR has two candidates: the ONNX Runtime QDQ model converted, and, where NNCF is
installed, NNCF's post-training quantization of the fp32 model on the same real calibration rows
(one calibration data path). NNCF also quantizes ConvTranspose, which the QDQ model leaves in
float: measured on pix2pix-256 (random init) 24 ms vs 60 ms at batch 1 with equal parity (73 dB),
on the trained shipped CycleGAN 41.7 vs 39.8 dB and 4% faster. NNCF's candidate is kept when it
passes its gate and its validation PSNR is at most NNCF_PSNR_SLACK below the QDQ model's.
"""
from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.feeds import at_size, parity_cases, rows, take
from export.int8 import quantizer_chatter_to_debug
from export.parity import measure
from export.provenance import model_entry
from ganrt.artifact import ONNX_FILES, OPENVINO_FILES, sha256_of
from ganrt.errors import UsageError
from ganrt.targets import ONNX, OPENVINO, target

if TYPE_CHECKING:
    from export.context import ExportContext

log = logging.getLogger("ganrt.export")

NNCF_PSNR_SLACK = 1.0


def check_installed() -> None:
    """UsageError (exit 2, before anything is written) when OpenVINO is not installed."""
    if importlib.util.find_spec("openvino") is None:
        raise UsageError("--openvino writes OpenVINO IR with OpenVINO's converter: pip install openvino "
                         "(or pip install ganrt[openvino])")


def stage(ctx: ExportContext) -> None:
    """Write generator[.int8].xml/.bin beside each fp32/int8 ONNX model and measure each on ov-cpu."""
    import openvino as ov

    cases = ctx.cases(parity_cases(ctx.inputs, ctx.size, ctx.size_multiple))
    for precision, (xml_name, bin_name) in OPENVINO_FILES.items():
        if ctx.manifest.model(ONNX, precision) is None:
            continue
        onnx_model = ctx.out / ONNX_FILES[precision]
        xml, weights = ctx.out / xml_name, ctx.out / bin_name
        # save_model writes the .bin beside the .xml under the same stem, which is how OpenVINO finds it again.
        ov.save_model(ov.convert_model(str(onnx_model)), str(xml), compress_to_fp16=False)
        extra: dict[str, Any] = {"from": onnx_model.name, "quantizer": "onnxruntime QDQ" if precision == "int8" else None}
        if precision == "int8" and importlib.util.find_spec("nncf") is not None:
            extra = _nncf_if_better(ctx, xml, extra)
        tgt = target("ov-cpu", precision)
        with _runner(ctx, xml, precision) as runner:
            report = measure(runner, cases, tgt.tolerance)
        ctx.reports[tgt.key] = report
        ctx.manifest.set_model(OPENVINO, precision, model_entry(
            xml, weights=weights.name, weights_bytes=weights.stat().st_size, weights_sha256=sha256_of(weights),
            openvino=ov.__version__, **{k: v for k, v in extra.items() if v is not None}))
        log.info("      %s IR: worst max-abs %.3g, PSNR %.1f dB on ov-cpu: %s", precision, report.worst.max_abs,
                 report.worst.psnr, "pass" if report.passed else f"FAIL (gate {tgt.tolerance.to_json()})")


def _runner(ctx: ExportContext, xml: Path, precision: str) -> Any:
    from infer.runners.openvino_runner import OpenVinoRunner, compiled_loader

    return OpenVinoRunner(compiled_loader(xml, precision), ctx.inputs, ctx.outputs, precision=precision,
                          size_multiple=ctx.size_multiple)


def _nncf_if_better(ctx: ExportContext, qdq_xml: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Quantize the fp32 IR with NNCF on the calibration rows; it replaces the QDQ IR when it is as good."""
    import nncf
    import openvino as ov

    calibration = at_size(ctx.calibration, ctx.inputs, ctx.size)
    dataset = nncf.Dataset([take(calibration, i, i + 1) for i in range(rows(calibration))])
    start = time.perf_counter()
    with quantizer_chatter_to_debug():  # NNCF's progress bars and notes: debug lines, not the export's log
        quantized = nncf.quantize(ov.Core().read_model(str(ctx.out / OPENVINO_FILES["fp32"][0])), dataset,
                                  preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=rows(calibration))
    seconds = time.perf_counter() - start
    candidate = ctx.out / "generator.int8.nncf.xml"
    ov.save_model(quantized, str(candidate), compress_to_fp16=False)
    gate = target("ov-cpu", "int8").tolerance
    psnr = {}
    for name, xml in (("onnxruntime QDQ", qdq_xml), ("nncf", candidate)):
        with _runner(ctx, xml, "int8") as runner:
            report = measure(runner, ctx.validation_set, gate)
        psnr[name] = (round(report.worst.psnr, 2), report.passed)
    keep = psnr["nncf"][1] and psnr["nncf"][0] >= psnr["onnxruntime QDQ"][0] - NNCF_PSNR_SLACK
    log.info("      int8 IR: NNCF %.1f dB (%.0f s) vs the QDQ model %.1f dB on the validation rows: %s kept",
             psnr["nncf"][0], seconds, psnr["onnxruntime QDQ"][0], "NNCF" if keep else "QDQ")
    if keep:
        candidate.replace(qdq_xml)
        candidate.with_suffix(".bin").replace(qdq_xml.with_suffix(".bin"))
    else:
        candidate.unlink()
        candidate.with_suffix(".bin").unlink()
    return {"from": ONNX_FILES["fp32"] if keep else extra["from"], "quantizer": "nncf" if keep else extra["quantizer"],
            "quantizer_search": {k: {"psnr": v[0], "pass": v[1]} for k, v in psnr.items()},
            "calibration_rows": rows(calibration), "nncf_seconds": round(seconds, 1)}
