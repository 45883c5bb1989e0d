"""Pictures for people: sample batches laid out as one grid image, toy-model points as a scatter plot."""
from __future__ import annotations

import math

import cv2
import numpy as np

from ganrt.errors import InputError


def make_grid(images: np.ndarray, ncol: int | None = None, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """uint8 NHWC -> one uint8 HWC grid image, `ncol` columns (default ceil(sqrt(N))).

    Size: (rows * (h + padding) + padding) x (ncol * (w + padding) + padding).
    """
    if images.ndim != 4 or len(images) == 0:
        raise InputError(f"make_grid needs a non-empty NHWC batch, got shape {images.shape}")
    n, h, w, c = images.shape
    ncol = ncol or int(math.ceil(math.sqrt(n)))
    nrow = int(math.ceil(n / ncol))
    grid = np.full((nrow * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, np.uint8)
    for i, im in enumerate(images):
        r, col = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = im
    return grid


def points_to_image(points: np.ndarray, size: int = 512) -> np.ndarray:
    """Toy-model points (N, 2+) -> a uint8 RGB scatter plot of the first two coordinates."""
    pts = np.asarray(points, dtype=np.float32)[:, :2]
    canvas = np.full((size, size, 3), 255, np.uint8)
    finite = pts[np.isfinite(pts).all(axis=1)]
    if len(finite) == 0:
        return canvas
    lo, hi = finite.min(axis=0), finite.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    margin = 0.05 * size
    xy = (finite - lo) / span * (size - 2 * margin) + margin
    for x, y in xy:
        cv2.circle(canvas, (int(x), int(size - y)), 2, (31, 119, 180), -1, lineType=cv2.LINE_AA)
    return canvas

