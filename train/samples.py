"""Pictures of what a generator makes: image grids, point clouds, and the progress GIF."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from ganrt.atomic import atomic_write


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """NCHW in [-1, 1] -> NCHW uint8 on the CPU (the deployed post-processing: rounded, clamped)."""
    return ((images.detach().float().cpu().clamp(-1, 1) * 0.5 + 0.5) * 255).round().to(torch.uint8)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """NCHW in [-1, 1] -> NHWC uint8 RGB (grey images get three channels)."""
    x = to_pixels(images).permute(0, 2, 3, 1).numpy()
    return np.repeat(x, 3, axis=3) if x.shape[3] == 1 else x


def grid(images: np.ndarray, cols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile NHWC uint8 images into one image, `cols` per row (square-ish by default)."""
    n, h, w, c = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = img
    return out


def points_image(points: np.ndarray, reference: np.ndarray | None = None, size: int = 384, lim: float = 3.5) -> np.ndarray:
    """A scatter (2-D) or histogram (1-D) of samples, reference data in grey, as an RGB image."""
    img = np.full((size, size, 3), 255, np.uint8)
    if points.shape[1] == 1:
        lo, hi = -1.0, 9.0  # covers the default 1-D target N(4, 1.25) with margin
        bins = np.linspace(lo, hi, 81)
        for data, colour in ((reference, (170, 170, 170)), (points, (30, 90, 200))):
            if data is None:
                continue
            hist, _ = np.histogram(data[:, 0], bins=bins, density=True)
            xs = ((bins[:-1] - lo) / (hi - lo) * (size - 1)).astype(int)
            ys = (size - 1 - np.clip(hist / 0.5, 0, 1) * (size - 20)).astype(int)
            cv2.polylines(img, [np.stack([xs, ys], 1).reshape(-1, 1, 2)], False, colour, 2)
        return img
    for data, colour in ((reference, (170, 170, 170)), (points, (30, 90, 200))):
        if data is None:
            continue
        data = data[np.isfinite(data).all(1)]
        px = ((data[:, :2] + lim) / (2 * lim) * (size - 1)).astype(int)
        px = px[(px >= 0).all(1) & (px < size).all(1)]
        img[px[:, 1], px[:, 0]] = colour
    return img


def save_png(path: Path, image: np.ndarray) -> None:
    """Atomically write an RGB uint8 image as PNG."""
    atomic_write(path, lambda p: Image.fromarray(image).save(p, format="PNG"))


def save_gif(path: Path, frames: list[Path], ms_per_frame: int = 300) -> None:
    """Assemble sample PNGs into an animated GIF (last frame held longer)."""
    if not frames:
        return
    images = [Image.open(f).convert("RGB") for f in frames]
    durations = [ms_per_frame] * (len(images) - 1) + [ms_per_frame * 5]
    atomic_write(path, lambda p: images[0].save(p, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0))
