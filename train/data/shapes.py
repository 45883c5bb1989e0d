"""A built-in labelled image dataset: ten kinds of simple white shapes on black, drawn with OpenCV."""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ganrt.errors import DataError
from train.data.images import pixels_to_float

# Drawing happens on a canvas this many times larger, then INTER_AREA shrinks it: cheap
# anti-aliasing and half-pixel control of stroke width at 28 px.
_SUPERSAMPLE = 2
# cv2 takes fixed-point coordinates with this many fractional bits.
_SHIFT = 4


class ShapesDataset(Dataset):
    """Labelled size x size grayscale shapes with random position, size, rotation, stroke and brightness.

    Geometry, in units of a 28 px image (scaled by size / 28): centre offset uniform in
    [-3, 3] px on each axis, radius uniform in [6, 10] px, rotation uniform in [-15, 15]
    degrees (so square vs diamond and plus vs x stay distinct), stroke width uniform in
    [1.5, 3] px, brightness uniform in [170, 255]. Classes are balanced in expectation.
    """

    classes: tuple[str, ...] = (
        "circle", "ring", "square", "square_outline", "triangle",
        "diamond", "plus", "x", "hbar", "vbar",
    )
    num_classes = len(classes)

    def __init__(self, n: int = 20_000, size: int = 28, seed: int = 0) -> None:
        if n < 1 or size < 8:
            raise DataError(f"ShapesDataset needs n >= 1 and size >= 8, got n={n}, size={size}")
        self.n, self.size, self.seed = n, size, seed
        self.labels: np.ndarray = np.random.default_rng([seed, 0]).integers(0, self.num_classes, size=n)
        self._images: np.ndarray | None = None

    @property
    def images(self) -> np.ndarray:
        """All images as one uint8 array (n, size, size), rendered on first use."""
        if self._images is None:
            self._images = self._render()
        return self._images

    def _render(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 1])
        n = self.n
        scale = self.size / 28 * _SUPERSAMPLE
        centre = (self.size * _SUPERSAMPLE) / 2 + rng.uniform(-3, 3, size=(n, 2)) * scale
        radius = rng.uniform(6, 10, size=n) * scale
        angle = np.deg2rad(rng.uniform(-15, 15, size=n))
        stroke = rng.uniform(1.5, 3.0, size=n) * scale
        brightness = rng.uniform(170, 255, size=n)
        canvas_side = self.size * _SUPERSAMPLE
        out = np.empty((n, self.size, self.size), dtype=np.uint8)
        canvas = np.empty((canvas_side, canvas_side), dtype=np.uint8)
        for i in range(n):
            canvas.fill(0)
            _draw(canvas, self.classes[self.labels[i]], centre[i], radius[i], angle[i],
                  max(1, round(stroke[i])), float(brightness[i]))
            out[i] = cv2.resize(canvas, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return out

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = pixels_to_float(torch.from_numpy(self.images[index]))
        return image.unsqueeze(0), torch.tensor(int(self.labels[index]), dtype=torch.int64)


def _points(unit_xy: list[tuple[float, float]], centre: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """Unit-circle polygon vertices placed at centre, scaled and rotated, in cv2 fixed point."""
    c, s = math.cos(angle), math.sin(angle)
    xy = np.asarray(unit_xy, dtype=np.float64) * radius
    rotated = np.stack([xy[:, 0] * c - xy[:, 1] * s, xy[:, 0] * s + xy[:, 1] * c], axis=1) + centre
    return np.round(rotated * (1 << _SHIFT)).astype(np.int32)


_SQUARE = [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
_TRIANGLE = [(math.cos(a), math.sin(a)) for a in np.deg2rad([-90, 30, 150])]
_DIAMOND = [(0, -1), (0.65, 0), (0, 1), (-0.65, 0)]
_HBAR = [(-1, -0.3), (1, -0.3), (1, 0.3), (-1, 0.3)]
_VBAR = [(-0.3, -1), (0.3, -1), (0.3, 1), (-0.3, 1)]
_PLUS = [[(-1, 0), (1, 0)], [(0, -1), (0, 1)]]
_X = [[(-0.75, -0.75), (0.75, 0.75)], [(-0.75, 0.75), (0.75, -0.75)]]


def _draw(canvas: np.ndarray, kind: str, centre: np.ndarray, radius: float, angle: float,
          stroke: int, value: float) -> None:
    aa = cv2.LINE_AA
    if kind in ("circle", "ring"):
        cx, cy = np.round(centre * (1 << _SHIFT)).astype(int)
        r = int(round(radius * (1 << _SHIFT)))
        cv2.circle(canvas, (int(cx), int(cy)), r, value, -1 if kind == "circle" else stroke, aa, _SHIFT)
    elif kind in ("square", "triangle", "diamond", "hbar", "vbar"):
        unit = {"square": _SQUARE, "triangle": _TRIANGLE, "diamond": _DIAMOND, "hbar": _HBAR, "vbar": _VBAR}[kind]
        cv2.fillPoly(canvas, [_points(unit, centre, radius, angle)], value, aa, _SHIFT)
    elif kind == "square_outline":
        cv2.polylines(canvas, [_points(_SQUARE, centre, radius, angle)], True, value, stroke, aa, _SHIFT)
    else:  # plus, x: two strokes through the centre
        for segment in _PLUS if kind == "plus" else _X:
            p, q = _points(segment, centre, radius, angle)
            cv2.line(canvas, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), value, stroke, aa, _SHIFT)
