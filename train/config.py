"""The settings every variant shares; each variant's config subclasses `TrainConfig`.

Fields are command-line flags through `ganrt.config` (help text in their metadata); each
subclass sets `presets`, a ClassVar of named overrides ("quick", "paper", ...). A run saves
its resolved settings as `config.json` (`save_run_config`) and `read_run_config` reads them
back for resume, evaluation and export.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ganrt.atomic import atomic_write_text
from ganrt.config import opt
from ganrt.errors import UsageError

RUN_CONFIG = "config.json"

# Bounds shared by the variants' fields (ganrt.config checks them wherever a config is read:
# flags, config.json, a generator's metadata, a manifest). They are generous for real use and
# refuse what could only exhaust memory (`ngf: 1e6` asked for 51 GB).
MAX_STEPS = 10**9
MAX_BATCH = 4096
MAX_WIDTH = 256  # ngf/ndf: 4x the papers' 64
MAX_Z = 4096
MAX_SIZE = 2048
MAX_CHANNELS = 4
MAX_WEIGHT = 1e4  # loss weights (lambda_*)


@dataclass
class TrainConfig:
    """Settings every variant shares: the loop, its I/O and the optimiser defaults."""

    steps: int = opt(5000, "generator updates to train for", min=1, max=MAX_STEPS)
    batch_size: int = opt(64, "images (or points) per step", min=1, max=MAX_BATCH)
    lr_g: float = opt(2e-4, "generator learning rate (Adam)", min=0.0, max=1.0)
    lr_d: float = opt(2e-4, "discriminator/critic learning rate (Adam)", min=0.0, max=1.0)
    beta1: float = opt(0.5, "Adam beta1 (below 1)", min=0.0, max=0.9999)
    beta2: float = opt(0.999, "Adam beta2 (below 1)", min=0.0, max=0.9999)
    seed: int = opt(0, "random seed: the same seed and settings give the same run on CPU", min=0, max=2**32 - 1)
    data: str | None = opt(None, "dataset folder", default_text="the variant's built-in dataset")
    sample_every: int = opt(200, "steps between sample grids (samples/step_*.png)", min=1, max=MAX_STEPS)
    checkpoint_every: int = opt(500, "steps between checkpoints", min=1, max=MAX_STEPS)
    log_every: int = opt(10, "steps between metrics.jsonl lines", min=1, max=MAX_STEPS)
    eval_samples: int = opt(2000, "generated samples used by the final evaluation", min=1, max=10**6)
    eval_classifier_steps: int = opt(600, "training steps of the evaluation classifier (noise-to-image variants)",
                                     min=1, max=10**6)
    num_workers: int = opt(0, "DataLoader worker processes", min=0, max=256)
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda, cuda:N")
    amp: bool = opt(True, "mixed precision on CUDA: bf16 autocast, or fp16 with loss scaling where bf16 is missing")
    cpu_amp: bool = opt(False, "bf16 autocast on CPU too: about 1.7x faster CycleGAN steps on CPUs with AVX512-BF16 "
                               "or AMX (slower on CPUs without); losses move by about 1%% from fp32")
    tensorboard: bool = opt(False, "also write TensorBoard logs (needs tensorboard)")

    presets: ClassVar[dict[str, dict[str, Any]]] = {}


def save_run_config(run_dir: Path, variant: str, settings: dict[str, Any]) -> None:
    """Atomically write run_dir/config.json: the variant's name and every resolved setting."""
    atomic_write_text(Path(run_dir) / RUN_CONFIG, json.dumps({"variant": variant, "config": settings}, indent=2))


def read_run_config(run_dir: Path) -> tuple[str, dict[str, Any]]:
    """(variant name, settings) from run_dir/config.json; a missing or malformed file is a UsageError naming it.

    The settings' values are checked against their fields by `ganrt.config.from_dict`.
    """
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a run directory (no {RUN_CONFIG})")
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path} is not readable JSON: {e}") from None
    if not isinstance(saved, dict):
        raise UsageError(f"{path}: expected an object with 'variant' and 'config', got {type(saved).__name__}")
    missing = [k for k in ("variant", "config") if k not in saved]
    if missing:
        raise UsageError(f"{path} lacks {' and '.join(repr(k) for k in missing)}")
    if not isinstance(saved["variant"], str):
        raise UsageError(f"{path}: 'variant' should be a variant's name, got {saved['variant']!r}")
    if not isinstance(saved["config"], dict):
        raise UsageError(f"{path}: 'config' should be an object of settings, got {type(saved['config']).__name__}")
    return saved["variant"], saved["config"]
