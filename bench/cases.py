"""Which inference configurations are benchmarked: the default subset, the full matrix, the check subset.

A configuration is a target of the backend x precision table (`ganrt.targets`) and the
options only the bench varies (torch.compile, torch on the CUDA device). A case is (model,
image size, batch, configuration). The baseline, torch eager fp32 with default settings, is
part of every (model, size, batch) group that runs on a device, so every speed-up in a
report is a ratio measured in the same run.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.artifacts import MODELS
from ganrt.compare import Tolerance
from ganrt.targets import REFERENCE, Target, precisions_of, target

BATCHES = (1, 8, 32)
# Skip in the full matrix: more pixels per call than CycleGAN-256 at batch 32 (time and memory).
MAX_PIXELS_PER_CALL = 32 * 256 * 256


@dataclass(frozen=True)
class BenchConfig:
    """A target, and the options that change its speed: torch.compile, and torch's device."""

    target: Target
    compile: bool = False
    # torch only: run on the CUDA device (ONNX and TensorRT targets name their device themselves).
    cuda: bool = False

    @property
    def backend(self) -> str:
        """The target's backend (torch, ort-cpu, ...)."""
        return self.target.backend

    @property
    def precision(self) -> str:
        """The target's precision (fp32, bf16, fp16, int8)."""
        return self.target.precision

    @property
    def gpu(self) -> bool:
        """Needs an NVIDIA GPU."""
        return self.cuda or self.target.gpu

    @property
    def label(self) -> str:
        """The target's label; torch adds its device and compile mode: torch-cuda-bf16-compile."""
        if self.backend != "torch":
            return self.target.label
        device = "-cuda" if self.cuda else ""
        return f"torch{device}-{self.precision}-{'compile' if self.compile else 'eager'}"

    @property
    def is_baseline(self) -> bool:
        """PyTorch eager fp32 with default settings: the reference column of its device."""
        return self.target == REFERENCE and not self.compile

    @property
    def tolerance(self) -> Tolerance:
        """The parity gate: the target's; torch fp32 on CUDA has ORT CUDA's, as cuDNN runs its convolutions in TF32."""
        if self.cuda and self.precision == "fp32":
            return target("ort-cuda", "fp32").tolerance
        return self.target.tolerance

    def runner_options(self) -> dict[str, object]:
        """The keyword options `infer.runners.open_runner` takes for this configuration."""
        return {"compile": self.compile, "device": "cuda" if self.cuda else "cpu"} if self.backend == "torch" else {}


def _torch(precision: str, compile: bool = False, cuda: bool = False) -> BenchConfig:
    return BenchConfig(target("torch", precision), compile, cuda)


def _all_precisions(backend: str) -> tuple[BenchConfig, ...]:
    return tuple(BenchConfig(target(backend, p)) for p in precisions_of(backend))


CPU_CONFIGS = (_torch("fp32"), _torch("fp32", compile=True), _torch("bf16"), _torch("bf16", compile=True),
               *_all_precisions("ort-cpu"), *_all_precisions("ov-cpu"))
GPU_CONFIGS = (_torch("fp32", cuda=True), _torch("bf16", cuda=True), _torch("bf16", compile=True, cuda=True),
               *_all_precisions("ort-cuda"), *_all_precisions("ort-trt"), BenchConfig(target("trt", "fp16")))
CONFIGS = {c.label: c for c in CPU_CONFIGS + GPU_CONFIGS}


def by_label(label: str) -> BenchConfig:
    """The benchmarked configuration named `label`; an unknown label lists the known ones."""
    if label not in CONFIGS:
        raise ValueError(f"unknown bench configuration {label!r}; known: {', '.join(CONFIGS)}")
    return CONFIGS[label]


@dataclass(frozen=True)
class Case:
    """One inference benchmark."""

    model: str
    size: int | None
    batch: int
    config: BenchConfig

    @property
    def id(self) -> str:
        """The pytest id: cyclegan-256-256px-b1-ort-cpu-int8."""
        size = f"-{self.size}px" if self.size else ""
        return f"{self.model}{size}-b{self.batch}-{self.config.label}"

    @property
    def group(self) -> str:
        """Benchmarks compared with each other: same model, size, batch and device class."""
        size = f" {self.size}px" if self.size else ""
        return f"{self.model}{size} b{self.batch} {'gpu' if self.config.gpu else 'cpu'}"


OV_CPU = ("ov-cpu-fp32", "ov-cpu-bf16", "ov-cpu-int8")
# The default subset (< 15 min on the 2-core CPU with a warm artifact cache): (model, size, batches, configs).
# Batch 1 of the four models `auto` is checked on has every CPU backend x precision that can win.
_DEFAULT_CPU = (
    ("cyclegan-256", 256, (1,), ("torch-fp32-eager", "torch-bf16-eager", "torch-bf16-compile", "ort-cpu-fp32",
                                 "ort-cpu-fp16", "ort-cpu-int8", *OV_CPU)),
    ("cyclegan-shipped", 64, (1,), ("torch-fp32-eager", "torch-bf16-eager", "torch-bf16-compile", "ort-cpu-fp32",
                                    "ort-cpu-fp16", "ort-cpu-int8", *OV_CPU)),
    ("cyclegan-shipped", 64, (8, 32), ("torch-fp32-eager", "ort-cpu-fp32", "ort-cpu-int8", "ov-cpu-int8")),
    ("cyclegan-shipped", 256, (1,), ("torch-fp32-eager", "torch-bf16-eager", "torch-bf16-compile", "ort-cpu-fp32",
                                     "ort-cpu-int8", *OV_CPU)),
    ("pix2pix-256", 256, (1,), ("torch-fp32-eager", "torch-bf16-eager", "torch-bf16-compile", "ort-cpu-fp32",
                                "ort-cpu-int8", *OV_CPU)),
    ("dcgan-28", None, (1, 32), ("torch-fp32-eager", "ort-cpu-fp32")),
    ("dcgan-64", None, (1, 32), ("torch-fp32-eager", "ort-cpu-fp32", "ov-cpu-fp32")),
    ("cgan", None, (1, 32), ("torch-fp32-eager", "ort-cpu-fp32")),
    ("infogan", None, (1, 32), ("torch-fp32-eager", "ort-cpu-fp32", "ort-cpu-int8")),
    ("gan", None, (1, 32), ("torch-fp32-eager", "ort-cpu-fp32")),
)
_DEFAULT_GPU = (
    ("cyclegan-256", 256, (1, 8), tuple(c.label for c in GPU_CONFIGS)),
    ("pix2pix-256", 256, (1, 8), ("torch-cuda-fp32-eager", "torch-cuda-bf16-eager", "ort-cuda-fp32", "ort-trt-fp16", "trt-fp16")),
    ("dcgan-64", None, (1, 32), ("torch-cuda-fp32-eager", "ort-cuda-fp32", "trt-fp16")),
)
# Plain `pytest` runs these once each (the smallest case of each family); the rest skip with a reason.
CHECK_MODELS = ("cyclegan-shipped", "dcgan-28", "dcgan-64", "cgan", "infogan", "gan")


def default_cases() -> list[Case]:
    """The default subset, CPU and GPU rows (GPU rows skip where there is no GPU)."""
    return [Case(model, size, batch, by_label(label)) for model, size, batches, labels in _DEFAULT_CPU + _DEFAULT_GPU
            for batch in batches for label in labels]


def full_cases() -> tuple[list[Case], dict[str, str]]:
    """Every model x size x batch x config, and the skip reason of cases too big to run."""
    cases: list[Case] = []
    skipped: dict[str, str] = {}
    for spec in MODELS.values():
        for size in spec.sizes or (None,):
            for batch in BATCHES:
                for cfg in CPU_CONFIGS + GPU_CONFIGS:
                    case = Case(spec.key, size, batch, cfg)
                    cases.append(case)
                    if size and batch * size * size > MAX_PIXELS_PER_CALL:
                        skipped[case.id] = (f"batch {batch} at {size}x{size} is over {MAX_PIXELS_PER_CALL} pixels per call "
                                            f"(minutes per call on a CPU; memory on small GPUs)")
    return cases, skipped


def check_skip_reason(case: Case) -> str | None:
    """Why plain `pytest` skips a case (None: it runs once as a correctness check)."""
    spec = MODELS[case.model]
    if case.model not in CHECK_MODELS:
        return f"{case.model} is heavy (export and a forward take minutes on a CPU): measured under --benchmark-only"
    if case.batch != 1 or (spec.sizes and case.size != spec.sizes[0]):
        return "the check pass runs batch 1 at the model's own size; other shapes run under --benchmark-only"
    if case.config.compile:
        return "torch.compile costs 10-15 s cold per shape: measured under --benchmark-only"
    return None
