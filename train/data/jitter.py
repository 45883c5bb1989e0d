"""pix2pix/CycleGAN augmentation (resize, random crop, random flip) and per-item random streams."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ganrt.errors import DataError
from train.data.images import resize


def item_rng(seed: int, epoch: int, index: int, stream: int = 0) -> np.random.Generator:
    """A generator that depends only on (seed, epoch, index, stream), whichever worker asks."""
    # SeedSequence mixes the tuple into independent streams, so neighbouring indices or
    # epochs give unrelated draws; DataLoader worker processes reproduce the same values.
    return np.random.default_rng([seed, epoch, index, stream])


def default_load_size(size: int) -> int:
    """pix2pix's load size for a given crop size: 286 for 256, scaled for other sizes."""
    return round(size * 286 / 256)


@dataclass(frozen=True)
class Jitter:
    """One draw of the augmentation: crop offset inside the load_size square and the flip."""

    top: int
    left: int
    flip: bool

    @staticmethod
    def draw(rng: np.random.Generator, load_size: int, size: int) -> "Jitter":
        """Draw a crop position and a coin flip, as pix2pix's --preprocess resize_and_crop."""
        span = load_size - size
        top, left = (int(v) for v in rng.integers(0, span + 1, size=2))
        return Jitter(top, left, bool(rng.integers(0, 2)))

    def apply(self, img: np.ndarray, load_size: int, size: int) -> np.ndarray:
        """Resize img to load_size x load_size, crop size x size at (top, left), then flip."""
        big = resize(img, load_size, load_size)
        out = big[self.top : self.top + size, self.left : self.left + size]
        if self.flip:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)


def check_sizes(size: int, load_size: int | None) -> int:
    """Validate the working size and resolve the default load size."""
    if size < 1:
        raise DataError(f"image size must be positive, got {size}")
    load = default_load_size(size) if load_size is None else int(load_size)
    if load < size:
        raise DataError(f"load_size ({load}) must be at least the crop size ({size})")
    return load
