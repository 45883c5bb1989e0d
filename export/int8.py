"""The int8 ONNX model: ONNX Runtime static quantization (QDQ, per-channel weights) calibrated on real inputs.

Calibration methods are MinMax, Entropy and Percentile (onnxruntime.quantization.CalibrationMethod);
with `auto`, each is tried and the one with the best PSNR on a separate validation set wins.
"""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger("ganrt.export")

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# ORT's calibrators keep every intermediate tensor of every calibration batch in memory until
# the end (HistogramCalibrater.collect_data), so the calibration set is sized to this budget.
CALIBRATION_MEMORY_BYTES = 3 << 30
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


def calibration_rows(wanted: int, bytes_per_row: int, budget: int = CALIBRATION_MEMORY_BYTES) -> int:
    """How many calibration rows fit the memory budget (at least 2, at most `wanted`)."""
    return max(2, min(wanted, budget // max(1, bytes_per_row)))


def preprocess(fp32_model: Path, out: Path) -> bool:
    """ORT's recommended pre-quantization step (shape inference + graph optimization); False if it fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(fp32_model), str(out))
    except Exception as e:  # symbolic shape inference rejects some graphs; quantizing without it still works
        log.info("      quant_pre_process could not run (%s): quantizing the fp32 model as exported", e)
        return False
    return True


def quantize(model: Path, out: Path, method: str, calibration: dict[str, np.ndarray]) -> None:
    """Static QDQ quantization: int8 activations and per-channel int8 weights, inputs/outputs fp32."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    # QDQ is the format both the CPU EP and TensorRT (explicit quantization) consume; S8S8 is
    # ORT's default for QDQ on x86-64. Ops without int8 kernels (ConvTranspose, InstanceNorm,
    # Pad on the CPU EP) run in fp32 between their DequantizeLinear/QuantizeLinear pairs.
    with _quantizer_chatter_to_debug():
        quantize_static(str(model), str(out), FeedReader(calibration), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=methods[method])


@contextlib.contextmanager
def _quantizer_chatter_to_debug() -> Iterator[None]:
    # The quantizer prints progress and logs per-tensor notes through the root logger (e.g.
    # "Axis 1 is out-of-range for weight" for InstanceNorm's rank-1 scale, which it then quantizes
    # per-tensor): useful when debugging, noise in an export log.
    notes: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        notes.append(record.getMessage())
        return False

    root = logging.getLogger()
    root.addFilter(keep)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        root.removeFilter(keep)
        for line in notes + printed.getvalue().splitlines():
            log.debug("quantizer: %s", line)
