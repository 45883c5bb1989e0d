"""Samples from a noise model as a user receives them: the values, the seed and labels that made them,
and the two ways they leave the program (a picture, an npz bundle), written once for the CLI and the service."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infer.codecs import arrays_to_npz
from infer.pictures import make_grid, points_to_image
from infer.prepost import Processor


@dataclass(frozen=True)
class Samples:
    """n samples: uint8 NHWC images, or float32 (N, D) points for toy models."""

    values: np.ndarray
    seed: int
    labels: np.ndarray | None
    points: bool
    codes: np.ndarray | None = None

    @classmethod
    def from_outputs(cls, processor: Processor, feeds: dict[str, np.ndarray], seed: int,
                     outputs: dict[str, np.ndarray]) -> "Samples":
        """The samples of one model call on `feeds` (made by `processor.noise_feeds` with `seed`)."""
        labels = feeds[processor.label_input.name] if processor.label_input is not None else None
        codes = feeds[processor.code_input.name] if processor.code_input is not None else None
        return cls(processor.outputs_to_user(outputs), seed, labels, processor.output.kind == "points", codes)

    def picture(self, ncol: int | None = None) -> np.ndarray:
        """One uint8 RGB image: a grid of the images (`ncol` columns), or a scatter plot of the points."""
        return points_to_image(self.values) if self.points else make_grid(self.values, ncol=ncol)

    def to_npz(self) -> bytes:
        """An .npz with `images` (uint8 NHWC) or `points`, `seed`, `labels` for a conditional model and `codes`
        for one with continuous codes."""
        arrays = {"points" if self.points else "images": self.values, "seed": np.int64(self.seed)}
        if self.labels is not None:
            arrays["labels"] = self.labels
        if self.codes is not None:
            arrays["codes"] = self.codes
        return arrays_to_npz(**arrays)
