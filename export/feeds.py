"""Real inputs for export: the variant's held-out images (translators) or noise and labels, from the registry."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ganrt.signature import TensorSpec
from train.registry import Variant


def image_inputs(specs: list[TensorSpec]) -> list[TensorSpec]:
    """Inputs that are NCHW images."""
    return [s for s in specs if s.kind == "image" and len(s.shape) == 4]


def has_dynamic_size(specs: list[TensorSpec]) -> bool:
    """Whether some image input takes any H and W (a fully convolutional translator)."""
    return any(s.shape[2] is None or s.shape[3] is None for s in image_inputs(specs))


def sample(variant: Variant, cfg: Any, n: int, seed: int) -> dict[str, np.ndarray]:
    """Up to `n` rows of the variant's own feeds: held-out images, or noise/labels drawn with `seed`."""
    feeds = variant.sample_feeds(cfg, n, torch.Generator().manual_seed(seed))
    return {k: v[:n].numpy() for k, v in feeds.items()}


def rows(feeds: dict[str, np.ndarray]) -> int:
    """Batch size of a feeds dict."""
    return min(a.shape[0] for a in feeds.values())


def take(feeds: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    """Rows start:stop of every feed (contiguous copies)."""
    return {k: np.ascontiguousarray(a[start:stop]) for k, a in feeds.items()}


def batch_of(feeds: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """The first `batch` rows, repeating rows when there are fewer (held-out sets can be small)."""
    n = rows(feeds)
    index = np.arange(batch) % n
    return {k: np.ascontiguousarray(a[index]) for k, a in feeds.items()}


def at_size(feeds: dict[str, np.ndarray], specs: list[TensorSpec], size: tuple[int, int] | None) -> dict[str, np.ndarray]:
    """Image inputs resized (bilinear, antialiased) to `size`; other inputs unchanged."""
    if size is None:
        return feeds
    out = dict(feeds)
    for spec in image_inputs(specs):
        a = feeds[spec.name]
        if tuple(a.shape[2:]) != tuple(size):
            t = torch.nn.functional.interpolate(torch.from_numpy(a), size=size, mode="bilinear", align_corners=False,
                                                antialias=True)
            lo, hi = spec.range or (-np.inf, np.inf)
            out[spec.name] = t.clamp(lo, hi).numpy()
    return out


@dataclass(frozen=True)
class Case:
    """One parity case: a batch size and, for dynamic-size models, an image size."""

    batch: int
    size: tuple[int, int] | None

    def label(self) -> str:
        """"b3 64x68" style label."""
        return f"b{self.batch}" + (f" {self.size[0]}x{self.size[1]}" if self.size else "")

    def to_json(self) -> dict[str, Any]:
        """Case fields for the manifest."""
        return {"batch": self.batch, "size": list(self.size) if self.size else None}


def second_size(size: tuple[int, int], size_multiple: int) -> tuple[int, int]:
    """Another valid, non-square size: one more multiple in width (64x64 -> 64x68 for ResNets)."""
    return size[0], size[1] + size_multiple


def parity_cases(specs: list[TensorSpec], size: tuple[int, int] | None, size_multiple: int,
                 batches: tuple[int, ...] = (1, 3)) -> list[Case]:
    """Export at one batch/size, validate at others (torchvision's test_onnx practice)."""
    sizes: list[tuple[int, int] | None] = [None]
    if size and has_dynamic_size(specs):
        sizes = [size, second_size(size, size_multiple)]
    return [Case(b, s) for s in sizes for b in batches]


def case_feeds(base: dict[str, np.ndarray], specs: list[TensorSpec], case: Case) -> dict[str, np.ndarray]:
    """The feeds of one case, from a base set of real rows."""
    return at_size(batch_of(base, case.batch), specs, case.size)
