"""A built-in multi-domain dataset with exact ground truth, generated on the fly (no download).

PhotoStyles (for StarGAN). Each item is one square crop of a colour photograph that
scikit-image ships, rendered in one of K = 6 deterministic styles, with the style's index as
its domain label. The crops are PhotoToSketch's (train/data/builtin.py): the same photographs
(train: astronaut, rocket, immunohistochemistry, retina, stereo_motorcycle's left view; test,
never seen in training: chelsea, coffee), shrunk the same way, and `random_crop` draws each
crop (a photo uniformly, a side of uniform [0.35, 1.0] x its shorter side, a uniform position,
a horizontal flip with probability 1/2, resized to size x size). Item i draws its crop from
the random stream (seed, split, i) and is rendered in style i mod 6, so the domains are
balanced and every crop has a known rendering in every style. The styles, in domain order,
each a function of the uint8 RGB size x size crop alone:
  0 photo:   the crop itself.
  1 gray:    its luminance (cv2.COLOR_RGB2GRAY, BT.601 weights), repeated to 3 channels.
  2 sepia:   cv2.transform with the classic sepia matrix SEPIA (R' = .393 R + .769 G + .189 B,
             G' = .349 R + .686 G + .168 B, B' = .272 R + .534 G + .131 B), rounded and
             saturated at 255.
  3 hue:     the hue turned by 120 degrees: cv2.COLOR_RGB2HSV (H in 0..179), H -> (H + 60) mod
             180, back with cv2.COLOR_HSV2RGB (saturation and value kept).
  4 sketch:  PhotoToSketch's colour-dodge pencil sketch (`sketch`, builtin.py: blur sigma
             size / 16 px), 3 channels.
  5 cartoon: a 3x3 median blur (cv2.medianBlur), then each channel posterised to 4 levels,
             v -> (v // 64) * 85, so every channel value is one of 0, 85, 170, 255.
So every (input, target domain) pair has one true output: style t of the input's crop. The
photo domain is included on purpose: colour must be invented back from gray, sepia and
sketch inputs, while the other translations are functions of the input.
"""
from __future__ import annotations

import functools
from typing import Callable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ganrt.errors import DataError
from train.data.builtin import PhotoToSketch, random_crop, sketch
from train.data.images import to_tensor

SPLITS = ("train", "test")
SEPIA = np.array([[0.393, 0.769, 0.189],
                  [0.349, 0.686, 0.168],
                  [0.272, 0.534, 0.131]], dtype=np.float32)
HUE_TURN = 60  # OpenCV's uint8 hue runs 0..179 (2 degrees a step): 60 steps = 120 degrees
POSTER_STEP, POSTER_SCALE = 64, 85  # 4 levels, stretched to span 0..255


def photo(img: np.ndarray) -> np.ndarray:
    """Style 0: the crop unchanged."""
    return img


def gray(img: np.ndarray) -> np.ndarray:
    """Style 1: BT.601 luminance on 3 channels."""
    return np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)


def sepia(img: np.ndarray) -> np.ndarray:
    """Style 2: the classic sepia colour matrix, saturating at 255."""
    return cv2.transform(img, SEPIA)


def hue(img: np.ndarray) -> np.ndarray:
    """Style 3: every hue turned by 120 degrees in OpenCV's HSV."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = (hsv[:, :, 0].astype(np.int32) + HUE_TURN) % 180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def cartoon(img: np.ndarray) -> np.ndarray:
    """Style 5: a 3x3 median blur posterised to 4 levels per channel."""
    return (cv2.medianBlur(np.ascontiguousarray(img), 3) // POSTER_STEP) * POSTER_SCALE


# Domain name -> style, in label order (the module docstring's list).
STYLES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "photo": photo, "gray": gray, "sepia": sepia, "hue": hue, "sketch": sketch, "cartoon": cartoon,
}
DOMAINS: tuple[str, ...] = tuple(STYLES)


class PhotoStyles(Dataset):
    """Photo crops in K styles (see module docstring); items (image (3, size, size) in [-1, 1], int64 domain)."""

    def __init__(self, n: int = 2400, size: int = 128, split: str = "train", seed: int = 0) -> None:
        if split not in SPLITS:
            raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if n < 1 or size < 16:
            raise DataError(f"need n >= 1 and size >= 16, got n={n}, size={size}")
        self.n, self.size, self.split, self.seed = n, size, split, seed
        self._split_code = SPLITS.index(split)
        self.domains = DOMAINS
        self.num_classes = len(DOMAINS)
        self.labels = np.arange(n, dtype=np.int64) % self.num_classes
        # Filled item by item, as PhotoToSketch does, so start-up does not pay for every crop.
        self._crops = np.zeros((n, size, size, 3), dtype=np.uint8)
        self._done = np.zeros(n, dtype=bool)

    @functools.cached_property
    def photos(self) -> tuple[np.ndarray, ...]:
        """This split's photographs, shrunk exactly as PhotoToSketch shrinks them (its own code)."""
        return PhotoToSketch(n=1, size=self.size, split=self.split).photos

    def crop(self, index: int) -> np.ndarray:
        """The unstyled crop of item `index` (uint8 RGB), the same whatever its style."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} items")
        if not self._done[index]:
            rng = np.random.default_rng([self.seed, self._split_code, index])
            self._crops[index] = random_crop(self.photos, rng, self.size)
            self._done[index] = True
        return self._crops[index]

    def styled(self, index: int, domain: int) -> np.ndarray:
        """Item `index`'s crop in style `domain` (uint8 RGB): the ground truth of any translation of it."""
        return STYLES[DOMAINS[domain]](self.crop(index))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        domain = int(self.labels[index])
        return to_tensor(self.styled(index, domain)), torch.tensor(domain, dtype=torch.int64)
