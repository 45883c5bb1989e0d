"""Which inference configurations are benchmarked: the default subset, the full matrix, the check subset.

A case is (model, image size, batch, backend config). The baseline, torch eager fp32 with
default settings, is part of every (model, size, batch) group that runs on a device, so every
speed-up in a report is a ratio measured in the same run.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.artifacts import MODELS

BATCHES = (1, 8, 32)
# Skip in the full matrix: more pixels per call than CycleGAN-256 at batch 32 (time and memory).
MAX_PIXELS_PER_CALL = 32 * 256 * 256


@dataclass(frozen=True)
class BackendConfig:
    """A backend, a precision, and the options that change speed (torch.compile, the device)."""

    backend: str
    precision: str
    compile: bool = False
    device: str = "cpu"

    @property
    def gpu(self) -> bool:
        """Needs an NVIDIA GPU."""
        return self.device == "cuda" or self.backend in ("ort-cuda", "ort-trt", "trt")

    @property
    def label(self) -> str:
        """torch-fp32-eager, torch-cuda-bf16-compile, ort-cpu-int8, trt-fp16, ..."""
        if self.backend == "torch":
            return f"torch{'-cuda' if self.device == 'cuda' else ''}-{self.precision}-{'compile' if self.compile else 'eager'}"
        return f"{self.backend}-{self.precision}"

    @property
    def is_baseline(self) -> bool:
        """PyTorch eager fp32 with default settings: the reference column of its device."""
        return self.backend == "torch" and self.precision == "fp32" and not self.compile


def _cfg(label: str) -> BackendConfig:
    parts = label.split("-")
    if parts[0] == "torch":
        device = "cuda" if parts[1] == "cuda" else "cpu"
        rest = parts[2:] if device == "cuda" else parts[1:]
        return BackendConfig("torch", rest[0], rest[1] == "compile", device)
    return BackendConfig("-".join(parts[:-1]), parts[-1])


CPU_CONFIGS = tuple(_cfg(c) for c in ("torch-fp32-eager", "torch-fp32-compile", "torch-bf16-eager", "torch-bf16-compile",
                                      "ort-cpu-fp32", "ort-cpu-fp16", "ort-cpu-int8"))
GPU_CONFIGS = tuple(_cfg(c) for c in ("torch-cuda-fp32-eager", "torch-cuda-bf16-eager", "torch-cuda-bf16-compile",
                                      "ort-cuda-fp32", "ort-cuda-fp16", "ort-cuda-int8",
                                      "ort-trt-fp32", "ort-trt-fp16", "ort-trt-int8", "trt-fp16"))


@dataclass(frozen=True)
class Case:
    """One inference benchmark."""

    model: str
    size: int | None
    batch: int
    config: BackendConfig

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


# The default subset (< 15 min on the 2-core CPU with a warm artifact cache): (model, size, batches, configs).
_DEFAULT_CPU = (
    ("cyclegan-256", 256, (1,), ("torch-fp32-eager", "torch-bf16-eager", "torch-bf16-compile", "ort-cpu-fp32",
                                 "ort-cpu-fp16", "ort-cpu-int8")),
    ("cyclegan-shipped", 64, (1,), ("torch-fp32-eager", "torch-bf16-eager", "ort-cpu-fp32", "ort-cpu-fp16", "ort-cpu-int8")),
    ("cyclegan-shipped", 64, (8, 32), ("torch-fp32-eager", "ort-cpu-fp32", "ort-cpu-int8")),
    ("cyclegan-shipped", 256, (1,), ("torch-fp32-eager", "ort-cpu-fp32", "ort-cpu-int8")),
    ("pix2pix-256", 256, (1,), ("torch-fp32-eager", "ort-cpu-fp32", "ort-cpu-int8")),
    ("dcgan-28", None, (1, 32), ("torch-fp32-eager", "ort-cpu-fp32")),
    ("dcgan-64", None, (1, 32), ("torch-fp32-eager", "ort-cpu-fp32")),
    ("cgan", None, (1, 32), ("torch-fp32-eager", "ort-cpu-fp32")),
    ("gan", None, (1, 32), ("torch-fp32-eager", "ort-cpu-fp32")),
)
_DEFAULT_GPU = (
    ("cyclegan-256", 256, (1, 8), tuple(c.label for c in GPU_CONFIGS)),
    ("pix2pix-256", 256, (1, 8), ("torch-cuda-fp32-eager", "torch-cuda-bf16-eager", "ort-cuda-fp32", "ort-trt-fp16", "trt-fp16")),
    ("dcgan-64", None, (1, 32), ("torch-cuda-fp32-eager", "ort-cuda-fp32", "trt-fp16")),
)
# Plain `pytest` runs these once each (the smallest case of each family); the rest skip with a reason.
CHECK_MODELS = ("cyclegan-shipped", "dcgan-28", "dcgan-64", "cgan", "gan")


def default_cases() -> list[Case]:
    """The default subset, CPU and GPU rows (GPU rows skip where there is no GPU)."""
    return [Case(model, size, batch, _cfg(label)) for model, size, batches, labels in _DEFAULT_CPU + _DEFAULT_GPU
            for batch in batches for label in labels]


def full_cases() -> tuple[list[Case], dict[str, str]]:
    """Every model x size x batch x config, and the skip reason of cases too big to run."""
    cases: list[Case] = []
    skipped: dict[str, str] = {}
    for spec in MODELS.values():
        for size in spec.sizes or (None,):
            for batch in BATCHES:
                for config in CPU_CONFIGS + GPU_CONFIGS:
                    case = Case(spec.key, size, batch, config)
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
