"""The settings every variant shares; each variant's config subclasses `TrainConfig`.

Fields are command-line flags through `ganrt.config` (help text in their metadata); each
subclass sets `presets`, a ClassVar of named overrides ("quick", "paper", ...).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ganrt.config import opt


@dataclass
class TrainConfig:
    """Settings every variant shares: the loop, its I/O and the optimiser defaults."""

    steps: int = opt(5000, "generator updates to train for")
    batch_size: int = opt(64, "images (or points) per step")
    lr_g: float = opt(2e-4, "generator learning rate (Adam)")
    lr_d: float = opt(2e-4, "discriminator/critic learning rate (Adam)")
    beta1: float = opt(0.5, "Adam beta1")
    beta2: float = opt(0.999, "Adam beta2")
    seed: int = opt(0, "random seed: the same seed and settings give the same run on CPU")
    data: str | None = opt(None, "dataset folder", default_text="the variant's built-in dataset")
    sample_every: int = opt(200, "steps between sample grids (samples/step_*.png)")
    checkpoint_every: int = opt(500, "steps between checkpoints")
    log_every: int = opt(10, "steps between metrics.jsonl lines")
    eval_samples: int = opt(2000, "generated samples used by the final evaluation")
    eval_classifier_steps: int = opt(600, "training steps of the evaluation classifier (noise-to-image variants)")
    num_workers: int = opt(0, "DataLoader worker processes")
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda, cuda:N")
    amp: bool = opt(True, "mixed precision on CUDA: bf16 autocast, or fp16 with loss scaling where bf16 is missing")
    cpu_amp: bool = opt(False, "bf16 autocast on CPU too: about 1.7x faster CycleGAN steps on CPUs with AVX512-BF16 "
                               "or AMX (slower on CPUs without); losses move by about 1%% from fp32")
    tensorboard: bool = opt(False, "also write TensorBoard logs (needs tensorboard)")

    presets: ClassVar[dict[str, dict[str, Any]]] = {}
