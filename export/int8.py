"""The int8 ONNX model: ONNX Runtime static quantization (QDQ, per-channel weights) calibrated on real inputs.

Calibration methods are MinMax, Entropy and Percentile (onnxruntime.quantization.CalibrationMethod);
with `auto`, each is tried and the one with the best PSNR on a separate validation set wins.
Ranges are collected with `create_calibrator` in memory-bounded chunks and handed to
`quantize_static` through its calibration cache (`calibration_cache_path`).
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from export.feeds import at_size, rows, take
from ganrt.artifact import ONNX_FILES

if TYPE_CHECKING:
    from export.context import ExportContext

log = logging.getLogger("ganrt.export")

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# Calibrator settings (onnxruntime.quantization.create_calibrator's extra_options). ORT's entropy
# default histogram has as many bins (128) as it quantizes to, which leaves its KL search a
# single candidate, the min/max range (measured: scales identical to MinMax's). TensorRT's
# entropy calibration (GTC 2017, "8-bit inference with TensorRT") searches 2048 bins down to
# 128; the search costs the square of the bin count in ORT's Python loop (57 s for CycleGAN
# quick at 2048 here), so 512 bins.
CALIBRATOR_OPTIONS: dict[str, dict[str, Any]] = {
    "minmax": {},
    "entropy": {"num_bins": 512, "num_quantized_bins": 128},
    "percentile": {"num_bins": 2048, "percentile": 99.999},
}
# The calibrators keep every intermediate tensor of the data they are given until it is
# reduced, so calibration data goes in chunks of at most this many bytes of activations
# (histograms and ranges merge across chunks).
CHUNK_BYTES = 1 << 30
CALIBRATION_BATCH = 8


class FeedReader:
    """A CalibrationDataReader over real feeds, in equal batches of up to `batch` rows."""

    def __init__(self, feeds: dict[str, np.ndarray], batch: int = CALIBRATION_BATCH) -> None:
        n = min(a.shape[0] for a in feeds.values())
        batch = min(batch, n)
        # Equal batches: the histogram calibrators stack every batch's outputs into one array.
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            [{k: np.ascontiguousarray(a[i:i + batch]) for k, a in feeds.items()} for i in range(0, n - n % batch, batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch, or None when done (the CalibrationDataReader protocol)."""
        return next(self._batches, None)


def activation_bytes_per_row(generator: nn.Module, one_row: dict[str, np.ndarray], input_names: list[str]) -> int:
    """fp32 bytes of every layer output for one input row: what calibration stores per row."""
    total = 0

    def count(_m: nn.Module, _i: object, out: object) -> None:
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel() * 4

    hooks = [m.register_forward_hook(count) for m in generator.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            generator(*(torch.from_numpy(one_row[n]) for n in input_names))
    finally:
        for h in hooks:
            h.remove()
    return total


def chunk_rows(bytes_per_row: int, budget: int = CHUNK_BYTES) -> int:
    """Rows per calibration chunk so a chunk's activations fit `budget`."""
    return max(1, budget // max(1, bytes_per_row))


def preprocess(fp32_model: Path, out: Path) -> bool:
    """ORT's recommended pre-quantization step (shape inference + graph optimization); False if it fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        with quantizer_chatter_to_debug():
            # ONNX shape inference covers these conv nets; ORT's symbolic shape inference ("most
            # effective with transformer based models", its docstring) gives up on the U-Net's
            # dynamic skip concatenations and then writes sym_shape_infer_temp.onnx into the
            # working directory. Measured on CycleGAN quick: same PSNR as without this step,
            # int8 latency ~10% lower.
            quant_pre_process(str(fp32_model), str(out), skip_symbolic_shape=True)
    except Exception as e:  # quantizing the exported model as it is still works
        log.info("      quant_pre_process could not run (%s): quantizing the fp32 model as exported", e)
        return False
    return True


def _ort_method(method: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[method]


def calibrate(model: Path, method: str, feeds: dict[str, np.ndarray], chunk: int, cache: Path) -> None:
    """Collect activation ranges of `model` on `feeds` (`chunk` rows at a time); write ORT's calibration cache."""
    from onnxruntime.quantization import create_calibrator, save_tensors_data

    n = min(a.shape[0] for a in feeds.values())
    with tempfile.TemporaryDirectory(prefix="ganrt-calibration-") as tmp, quantizer_chatter_to_debug():
        calibrator = create_calibrator(model, None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=_ort_method(method), extra_options=CALIBRATOR_OPTIONS[method])
        for start in range(0, n, chunk):
            calibrator.collect_data(FeedReader({k: a[start:start + chunk] for k, a in feeds.items()}))
        save_tensors_data(calibrator.compute_data(), cache)


def quantize(model: Path, out: Path, method: str, cache: Path) -> None:
    """Static QDQ quantization with the ranges in `cache`: int8 activations, per-channel int8 weights, fp32 I/O."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    # QDQ is the format both the CPU EP and TensorRT (explicit quantization) consume; S8S8 is
    # ORT's default for QDQ on x86-64. Ops without int8 kernels (ConvTranspose, InstanceNorm,
    # Pad on the CPU EP) run in fp32 between their DequantizeLinear/QuantizeLinear pairs.
    with quantizer_chatter_to_debug():
        quantize_static(str(model), str(out), None, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=_ort_method(method), calibration_cache_path=str(cache))


@contextlib.contextmanager
def quantizer_chatter_to_debug() -> Iterator[None]:
    # The quantizer prints progress and logs per-tensor notes through the root logger (e.g.
    # "Axis 1 is out-of-range for weight" for InstanceNorm's rank-1 scale, which it then quantizes
    # per-tensor): useful when debugging, noise in an export log. Module-level logging.warning()
    # also calls basicConfig() on an unconfigured root logger, which would then echo every
    # ganrt log line a second time: handlers added meanwhile are removed.
    notes: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        notes.append(record.getMessage())
        return False

    root = logging.getLogger()
    handlers = list(root.handlers)
    root.addFilter(keep)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        root.removeFilter(keep)
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        for line in notes + printed.getvalue().splitlines():
            log.debug("quantizer: %s", line)


def stage(ctx: ExportContext) -> None:
    """Write generator.int8.onnx: calibrated on real rows with each method asked, the best PSNR kept."""
    calibration = at_size(ctx.calibration, ctx.inputs, ctx.size)
    per_row = activation_bytes_per_row(ctx.source.generator, take(calibration, 0, 1), [s.name for s in ctx.inputs])
    chunk = chunk_rows(per_row)
    log.info("      calibrating on %d real rows (%.0f MB of activations each, %d per chunk), validating on %d",
             rows(calibration), per_row / 2**20, chunk, rows(ctx.validation))
    pre = ctx.out / "generator.int8.pre.onnx"
    preprocessed = preprocess(ctx.out / ONNX_FILES["fp32"], pre)
    model = pre if preprocessed else ctx.out / ONNX_FILES["fp32"]
    methods = CALIBRATION_METHODS if ctx.opts.calibration == "auto" else (ctx.opts.calibration,)
    paths = {method: ctx.out / f"generator.int8.{method}.onnx" for method in methods}
    search = {method: _try_method(ctx, model, method, calibration, chunk, paths[method]) for method in methods}
    best = max(search, key=lambda m: search[m]["psnr"])
    ctx.keep_onnx(paths[best], "int8", format="QDQ", weights="int8 per-channel", activations="int8", io="float32",
                  calibration=best, calibration_search=search, calibration_rows=rows(calibration),
                  validation_rows=rows(ctx.validation), preprocessed=preprocessed)
    for path in [*paths.values(), pre]:
        path.unlink(missing_ok=True)


def _try_method(ctx: ExportContext, model: Path, method: str, calibration: dict[str, np.ndarray], chunk: int,
                out: Path) -> dict[str, float]:
    """Calibrate and quantize `model` with one method into `out`; its validation figures and time."""
    cache = ctx.out / f"calibration.{method}.json"
    start = time.perf_counter()
    calibrate(model, method, calibration, chunk, cache)
    quantize(model, out, method, cache)
    seconds = time.perf_counter() - start
    cache.unlink()
    worst = ctx.measure_onnx(out, "int8").worst
    log.info("      %s calibration: PSNR %.1f dB (%.1f s)", method, worst.psnr, seconds)
    return {"psnr": round(worst.psnr, 2), "max_abs": float(f"{worst.max_abs:.3g}"), "seconds": round(seconds, 1)}
