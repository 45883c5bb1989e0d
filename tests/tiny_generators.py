"""Tiny generators for export and runner tests: built through the registry, initialised as the trainer does, saved."""
from __future__ import annotations

from pathlib import Path

import torch

from ganrt import config
from train import checkpoint, registry
from train.nets import init_weights

# Small enough for a 2-core CPU; variants not listed use their defaults.
TINY = {
    "cyclegan": {"size": 32, "ngf": 8, "ndf": 8, "n_blocks": 2, "batch_size": 1},
    "distill": {"widths": [4, 8, 8], "n_blocks": 2},
    "pix2pix": {"size": 32, "ngf": 8, "ndf": 8},
    "stargan": {"size": 32, "conv_dim": 8, "n_blocks": 1, "d_layers": 2},
}


def save_tiny_generator(variant: str, path: Path, seed: int = 0, **overrides: object) -> Path:
    """Write `path` (generator.safetensors format) for a tiny `variant` generator with random weights."""
    spec = registry.get(variant)
    cfg = config.resolve(spec.config, None, {**TINY.get(variant, {}), **overrides})
    torch.manual_seed(seed)
    generator = spec.generator(cfg)
    init_weights(generator)
    checkpoint.save_generator(path, generator, variant, config.to_dict(cfg), step=0)
    return path
