"""Pieces shared by the image-to-image variants (pix2pix, CycleGAN): I/O specs and datasets."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ganrt.errors import DataError, UsageError
from ganrt.signature import TensorSpec
from train.data import EdgesToScenes, PairedImages, PhotoToSketch, UnpairedImages

log = logging.getLogger("ganrt.train")

# The norms a translator's generator may use (train.nets.NORM_KINDS less the critic's layer norm).
GENERATOR_NORMS = ("instance", "batch", "instance-affine")
# What every dataset here yields, and the tanh output of every generator.
DATA_RANGE = (-1.0, 1.0)


def image_io(cfg: Any, name: str = "image") -> TensorSpec:
    """A fully convolutional image tensor: dynamic batch, height and width, values in `cfg.input_range`."""
    return TensorSpec(name, (None, cfg.channels, None, None), "float32", range=tuple(cfg.input_range))


def output_io(cfg: Any) -> TensorSpec:
    """The generator's output: a tanh image in [-1, 1] whatever its input range."""
    return TensorSpec("image", (None, cfg.channels, None, None), "float32", range=DATA_RANGE)


def require_training_range(cfg: Any) -> None:
    """Training feeds the datasets' [-1, 1] images; another input range is for imported generators only."""
    if tuple(cfg.input_range) != DATA_RANGE:
        raise UsageError(f"--input-range {cfg.input_range[0]:g} {cfg.input_range[1]:g}: training data is [-1, 1]; "
                         f"other input ranges describe imported generators, for export")


def _to_input_range(images: Tensor, cfg: Any) -> Tensor:
    lo, hi = cfg.input_range
    return images if (lo, hi) == DATA_RANGE else (images + 1) * ((hi - lo) / 2) + lo


def _root(cfg: Any) -> Path:
    root = Path(cfg.data)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    return root


def paired_dataset(cfg: Any, split: str = "train") -> Dataset:
    """Built-in edges->scenes pairs, or `cfg.data` in the pix2pix layouts, in `cfg.direction`."""
    if cfg.data is None:
        return EdgesToScenes(size=cfg.size, split=split, seed=cfg.seed)
    return PairedImages(_root(cfg), split=split, direction=cfg.direction, size=cfg.size,
                        jitter=split == "train" and cfg.jitter, seed=cfg.seed)


def unpaired_dataset(cfg: Any, split: str = "train") -> Dataset:
    """Built-in photo->sketch crops, or `cfg.data` in CycleGAN's trainA/trainB layout."""
    if cfg.data is None:
        return PhotoToSketch(size=cfg.size, split=split, seed=cfg.seed)
    return UnpairedImages(_root(cfg), split=split, size=cfg.size, jitter=split == "train" and cfg.jitter, seed=cfg.seed)


def held_out_split(cfg: Any, paired: bool) -> str:
    """The evaluation split that exists for this data: test, else val, else train (with a warning)."""
    if cfg.data is None:
        return "test"
    root = Path(cfg.data)
    candidates = (("test", "val") if paired else ("test",))
    for split in candidates:
        if (root / split).is_dir() or (root / f"{split}A").is_dir():
            return split
    log.warning("no held-out split in %s: evaluating on training images", root)
    return "train"


def fixed_inputs(cfg: Any, n: int, paired: bool) -> tuple[Tensor, Tensor | None]:
    """The first n held-out inputs and, where known, their ground-truth targets."""
    split = held_out_split(cfg, paired)
    dataset = paired_dataset(cfg, split) if paired else unpaired_dataset(cfg, split)
    if hasattr(dataset, "eval_pairs"):  # built-in sets, and unpaired folders with same-named test files
        return dataset.eval_pairs(n)
    items = [dataset[i] for i in range(min(n, len(dataset)))]  # a paired folder: aligned by construction
    return torch.stack([it["A"] for it in items]), torch.stack([it["B"] for it in items])


def translation_feeds(cfg: Any, n: int, paired: bool) -> dict[str, Tensor]:
    """Feeds for sample grids and export's calibration: up to n held-out input images, in the input range."""
    a, _ = fixed_inputs(cfg, n, paired)
    return {"image": _to_input_range(a, cfg)}
