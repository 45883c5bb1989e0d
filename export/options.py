"""What `python -m export` is asked for: `ExportOptions`, the single source of its flags (ganrt.config)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from export.importers import layouts
from export.int8 import CALIBRATION_METHODS
from export.onnx_fp32 import DEFAULT_OPSET, MIN_OPSET
from ganrt.artifact import check_name
from ganrt.config import opt
from ganrt.errors import UsageError
from ganrt.locations import ARTIFACTS_ROOT, RUNS_ROOT, shipped_generator
from ganrt.targets import ONNX_PRECISIONS
from train.translation import GENERATOR_NORMS
from train.variants.module import SIGNATURE_HELP

# --mode (export/importers/resolve.py): which statistics an imported generator's batch norms use.
MODES = ("eval", "train")


def parse_batch(text: str) -> tuple[int, int, int]:
    """--batch MIN:OPT:MAX."""
    try:
        lo, best, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:OPT:MAX integers, got {text!r}") from None
    return lo, best, hi


def parse_size(text: str) -> tuple[int, int]:
    """--size H,W (or one number for a square)."""
    try:
        parts = [int(v) for v in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected H,W (or one number for a square), got {text!r}")
    return parts[0], parts[-1]


@dataclass
class ExportOptions:
    """Export settings: each field is a `python -m export` flag, its help text in the field's metadata."""

    source: str | None = opt(None, "run directory, generator .safetensors (or a run checkpoint), artifact name "
                                   "under --artifacts, a .pth state_dict of junyanz/pytorch-CycleGAN-and-pix2pix or "
                                   "eriklindernoren/PyTorch-GAN (layout read off its keys), or a published generator "
                                   "(junyanz:cyclegan/horse2zebra; python -m export.importers.pretrained --list)",
                             positional=True,
                             default_text=f"the latest run under --runs, else the generator shipped with ganrt, "
                                          f"{shipped_generator()}")
    onnx: bool = opt(False, "ask for the fp32 ONNX model: alone, it is the only model written (fp32 is written in "
                            "every case)", default_text="off: with no model flag, fp32, fp16 and int8 are written")
    fp16: bool = opt(False, "also write the fp16 ONNX model (fp32 inputs/outputs)")
    int8: bool = opt(False, "also write the int8 ONNX model (static QDQ, calibrated)")
    trt: bool = opt(False, "also build a TensorRT engine for this machine's GPU")
    openvino: bool = opt(False, "also write OpenVINO IR (.xml + .bin) of the fp32 and int8 models, gated on ov-cpu")
    opset: int = opt(DEFAULT_OPSET, f"ONNX opset, {MIN_OPSET} or later", metavar="N")
    batch: tuple[int, int, int] = opt((1, 1, 16), "batch sizes: the TensorRT profile and Triton's max_batch_size",
                                      parse=parse_batch, metavar="MIN:OPT:MAX", default_text="1:1:16")
    size: tuple[int, int] | None = opt(None, "image size for image-input models: the TensorRT profile and the "
                                             "manifest's default size (ONNX models keep dynamic H and W)",
                                   parse=parse_size, metavar="H,W", default_text="the training size")
    out: Path | None = opt(None, "artifact directory", metavar="DIR", default_text="ARTIFACTS/NAME")
    name: str | None = opt(None, "artifact name", default_text="from --out, else from the source, made valid")
    calibration: str = opt("auto", "int8 calibration method; auto tries each and keeps the best PSNR on held-out "
                                   "feeds", choices=("auto",) + CALIBRATION_METHODS)
    runs_root: Path = opt(RUNS_ROOT, "runs root", flag="--runs", metavar="DIR")
    artifacts_root: Path = opt(ARTIFACTS_ROOT, "artifacts root", flag="--artifacts", metavar="DIR")
    # Generators trained elsewhere (export/importers): .pth files, published names, --module.
    layout: str | None = opt(None, "the layout of a .pth SOURCE, when detection should not choose it",
                             choices=tuple(layouts.names()), default_text="read off the keys")
    norm: str | None = opt(None, "a .pth generator's norm, overriding what its keys say", choices=GENERATOR_NORMS,
                           default_text="read off the keys")
    mode: str = opt("eval", "a .pth generator's batch norms: eval uses their running statistics; train normalises "
                            "each image by its own statistics, as junyanz's test.py without --eval computes (dropout "
                            "stays off: a graph is deterministic)", choices=MODES)
    image_range: tuple[float, float] | None = opt(None, "the value range a .pth generator's input images are scaled "
                                                        "to", metavar=("LO", "HI"),
                                                  default_text="-1 1, as both projects normalise")
    module: str | None = opt(None, "export any PyTorch generator: package.module:factory, called with no arguments",
                             metavar="PKG.MOD:FACTORY")
    weights: Path | None = opt(None, "with --module: its weights, a .safetensors or a .pth state_dict", metavar="FILE")
    input: tuple[str, ...] = opt((), f"with --module: its inputs in call order, {SIGNATURE_HELP}", metavar="SPEC")
    output: str | None = opt(None, "with --module: its output, same form", metavar="SPEC",
                             default_text="an image with the channels and size of the first image input")
    size_multiple: int = opt(1, "with --module: image height and width must be multiples of this", min=1)

    def __post_init__(self) -> None:
        lo, best, hi = self.batch
        if not 1 <= lo <= best <= hi:
            raise UsageError(f"--batch {lo}:{best}:{hi}: need 1 <= MIN <= OPT <= MAX")
        if self.opset < MIN_OPSET:
            raise UsageError(f"--opset {self.opset}: the int8 model's per-channel quantization needs opset "
                             f"{MIN_OPSET} or later")
        if self.name is not None:
            check_name(self.name, "--name")
        if self.image_range is not None and not (len(self.image_range) == 2
                                                 and self.image_range[0] < self.image_range[1]):
            raise UsageError(f"--image-range {' '.join(f'{v:g}' for v in self.image_range)}: expected LO HI with "
                             f"LO < HI, e.g. -1 1")

    def onnx_precisions(self) -> list[str]:
        """fp32 always; fp16/int8 when asked; all three when no output flag is given at all."""
        if not (self.onnx or self.fp16 or self.int8 or self.trt):
            return list(ONNX_PRECISIONS)
        return ["fp32"] + ["fp16"] * self.fp16 + ["int8"] * self.int8

    def trt_precision(self) -> str:
        """Engine precision: int8 with --int8 (from the QDQ model), else fp16."""
        return "int8" if self.int8 else "fp16"
