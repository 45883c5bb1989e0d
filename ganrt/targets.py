"""The one table of backends x precisions: which artifact model each runs, its parity gate, its label.

A target is a (backend, precision) pair. Export gates each model it writes against its
target's tolerance, the manifest's parity report is keyed by `Target.key`, infer opens the
model file `Target.model` names, and bench labels its rows with `Target.label` and draws its
report floors from `Target.tolerance`. The reference of every gate is the torch generator in
fp32, eval mode (`REFERENCE`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ganrt.compare import Tolerance
from ganrt.errors import UsageError

# Formats of the model files an artifact holds (docs/artifact.md): the generator's weights
# (safetensors, read by the torch backend), ONNX models, TensorRT engines, OpenVINO IR (.xml + .bin).
WEIGHTS, ONNX, TENSORRT, OPENVINO = "weights", "onnx", "tensorrt", "openvino"

# Tolerances, measured on the 2-core CPU (ORT 1.32), real held-out feeds, worst case over
# batch 1/3 and two image sizes:
# - fp32 on the CPU: max-abs 1e-8 (tiny nets) to 1.4e-5 (paper-size CycleGAN-256); design.md
#   section 7 asks ~1e-4. A wrong op or a train/eval mode mismatch is off by 1e-2 or more.
# - fp16 ONNX (fp32 I/O): 78-94 dB for the six variants after short training runs, 73 dB
#   (CycleGAN quick) and 68 dB (CycleGAN-256) with random weights. Floor 40 dB: the artifact
#   contract's figure, 28 dB under the worst measurement. (The CPU EP runs InstanceNorm in fp32
#   even in the fp16 model; GPUs are where fp16 InstanceNorm bites, design.md "Known hazards".)
# - int8 static QDQ: 38-56 dB after short training runs (CycleGAN lowest), 32.5 dB for a
#   random-weight CycleGAN quick, 25.8 dB for a random-weight CycleGAN-256 (9 residual blocks
#   of ngf 64 accumulate the error; it fails this gate). Floor 30 dB: Polygraphy's image
#   default, a floor, not a goal (design.md "Known hazards").
# - GPUs: CUDA and TensorRT use TF32 for fp32 convolutions by default (10-bit mantissa, ~1e-3
#   relative), so their fp32 gate is a PSNR floor, not 1e-4 abs; fp16/int8 share the CPU floors.
# - torch bf16 autocast: 48-49 dB for CycleGAN-256 (design.md section 8); floor 35 dB (bf16
#   has an 8-bit mantissa, coarser than fp16's 11 bits).
# - ov-cpu (OpenVINO 2026.4, Zen 4, export's held-out validation rows, batch 1): fp32 max-abs
#   4.8e-6 (shipped CycleGAN, trained), 5.1e-5 (random CycleGAN-256: ORT has 1.6e-5; half the
#   fp32 gate), 3.7e-8 (random pix2pix-256), so the fp32 gate holds; bf16 (the hint on the fp32
#   model) 58.4 dB trained, 44.2 dB CycleGAN-256, 85 dB pix2pix-256: the torch bf16 floor; int8
#   (the QDQ model, other ops in f32) 39.8 dB trained (ORT 38.4), 25.3 dB random CycleGAN-256
#   (ORT 24.3: the same file fails the same floor), 72.6 dB pix2pix-256: the int8 floor.
FP32_MAX_ABS = 1e-4
BF16_PSNR_FLOOR = 35.0
FP16_PSNR_FLOOR = 40.0
INT8_PSNR_FLOOR = 30.0
GPU_FP32_PSNR_FLOOR = 50.0


@dataclass(frozen=True)
class Target:
    """One backend at one precision."""

    backend: str
    precision: str
    # The artifact model it runs: (format, precision) in the manifest's `models`.
    model: tuple[str, str]
    tolerance: Tolerance
    gpu: bool = False

    @property
    def key(self) -> str:
        """"ort-cpu/int8": the key of this target's entry in a manifest's parity report."""
        return f"{self.backend}/{self.precision}"

    @property
    def label(self) -> str:
        """"ort-cpu-int8": how benchmarks and reports name it."""
        return f"{self.backend}-{self.precision}"


def _onnx_targets(backend: str, gpu: bool, fp32: Tolerance) -> tuple[Target, ...]:
    return (Target(backend, "fp32", (ONNX, "fp32"), fp32, gpu),
            Target(backend, "fp16", (ONNX, "fp16"), Tolerance(psnr_min=FP16_PSNR_FLOOR), gpu),
            Target(backend, "int8", (ONNX, "int8"), Tolerance(psnr_min=INT8_PSNR_FLOOR), gpu))


_GPU_FP32 = Tolerance(psnr_min=GPU_FP32_PSNR_FLOOR)
TARGETS: tuple[Target, ...] = (
    Target("torch", "fp32", (WEIGHTS, "fp32"), Tolerance(max_abs=FP32_MAX_ABS)),
    Target("torch", "bf16", (WEIGHTS, "fp32"), Tolerance(psnr_min=BF16_PSNR_FLOOR)),
    *_onnx_targets("ort-cpu", False, Tolerance(max_abs=FP32_MAX_ABS)),
    # OpenVINO's CPU runtime reads the same ONNX files (or an IR export wrote beside them): bf16 is
    # its inference precision hint on the fp32 model, int8 the QDQ model.
    Target("ov-cpu", "fp32", (ONNX, "fp32"), Tolerance(max_abs=FP32_MAX_ABS)),
    Target("ov-cpu", "bf16", (ONNX, "fp32"), Tolerance(psnr_min=BF16_PSNR_FLOOR)),
    Target("ov-cpu", "int8", (ONNX, "int8"), Tolerance(psnr_min=INT8_PSNR_FLOOR)),
    *_onnx_targets("ort-cuda", True, _GPU_FP32),
    # TensorRT's EP builds its own fp16 engine from the fp32 model; int8 comes from the QDQ model.
    Target("ort-trt", "fp32", (ONNX, "fp32"), _GPU_FP32, True),
    Target("ort-trt", "fp16", (ONNX, "fp32"), Tolerance(psnr_min=FP16_PSNR_FLOOR), True),
    Target("ort-trt", "int8", (ONNX, "int8"), Tolerance(psnr_min=INT8_PSNR_FLOOR), True),
    Target("trt", "fp32", (TENSORRT, "fp32"), _GPU_FP32, True),
    Target("trt", "fp16", (TENSORRT, "fp16"), Tolerance(psnr_min=FP16_PSNR_FLOOR), True),
    Target("trt", "int8", (TENSORRT, "int8"), Tolerance(psnr_min=INT8_PSNR_FLOOR), True),
)
BACKENDS: tuple[str, ...] = tuple(dict.fromkeys(t.backend for t in TARGETS))
# The precisions export writes as ONNX models, and the reference every gate compares with.
ONNX_PRECISIONS = ("fp32", "fp16", "int8")
REFERENCE = TARGETS[0]
_BY_KEY = {t.key: t for t in TARGETS}


def target(backend: str, precision: str) -> Target:
    """The target for a (backend, precision) pair; an unknown pair lists the valid ones."""
    found = _BY_KEY.get(f"{backend}/{precision}")
    if found is None:
        if backend not in BACKENDS:
            raise UsageError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        valid = ", ".join(t.precision for t in TARGETS if t.backend == backend)
        raise UsageError(f"the {backend} backend runs {valid}, not {precision!r}")
    return found


def precisions_of(backend: str) -> tuple[str, ...]:
    """The precisions a backend runs, in table order."""
    return tuple(t.precision for t in TARGETS if t.backend == backend)


def by_label(label: str) -> Target:
    """The target whose `label` is `label` ("ort-cpu-int8")."""
    for t in TARGETS:
        if t.label == label:
            return t
    raise UsageError(f"unknown target label {label!r}; known: {', '.join(t.label for t in TARGETS)}")


def gate_of(model: tuple[str, str]) -> Target:
    """The target on which export gates a model file (format, precision): its manifest parity entry.

    ONNX files are gated on ort-cpu, engines on trt, OpenVINO IR on ov-cpu, the weights on torch fp32.
    """
    fmt, precision = model
    backend = {WEIGHTS: "torch", ONNX: "ort-cpu", TENSORRT: "trt", OPENVINO: "ov-cpu"}[fmt]
    return target(backend, precision)
