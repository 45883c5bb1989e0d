"""Unpaired (CycleGAN) image datasets in the trainA/ trainB/ testA/ testB/ layout."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from ganrt.errors import DataError
from train.data.images import list_images, load_rgb, resize, to_tensor
from train.data.jitter import Jitter, check_sizes, item_rng

# Separate random streams per use keep the B choice independent of the crops.
_STREAM_B_INDEX, _STREAM_JITTER_A, _STREAM_JITTER_B = 0, 1, 2


class UnpairedImages(Dataset):
    """Images of two domains; item i holds A[i % len(A)] and a random, unaligned B."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: int = 256,
        load_size: int | None = None,
        jitter: bool = True,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"dataset folder not found: {self.root}")
        self.split = split
        self.size = size
        self.load_size = check_sizes(size, load_size)
        self.jitter = jitter
        self.seed = seed
        self.epoch = 0
        self.dir_a = self.root / f"{split}A"
        self.dir_b = self.root / f"{split}B"
        for folder in (self.dir_a, self.dir_b):
            if not folder.is_dir():
                raise DataError(
                    f"domain folder not found: {folder} (expected {split}A/ and {split}B/ in {self.root})"
                )
        self.files_a: list[Path] = list_images(self.dir_a)
        self.files_b: list[Path] = list_images(self.dir_b)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose B choices, crops and flips the following items use."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def _prepare(self, path: Path, stream: int, index: int) -> torch.Tensor:
        img = load_rgb(path)
        if self.jitter:
            rng = item_rng(self.seed, self.epoch, index, stream)
            img = Jitter.draw(rng, self.load_size, self.size).apply(img, self.load_size, self.size)
        else:
            img = resize(img, self.size, self.size)
        return to_tensor(img)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        # As in CycleGAN's unaligned dataset: A is walked in order, B drawn at random so
        # that no fixed A-B pairing is learned.
        path_a = self.files_a[index % len(self.files_a)]
        b_rng = item_rng(self.seed, self.epoch, index, _STREAM_B_INDEX)
        path_b = self.files_b[int(b_rng.integers(len(self.files_b)))]
        return {
            "A": self._prepare(path_a, _STREAM_JITTER_A, index),
            "B": self._prepare(path_b, _STREAM_JITTER_B, index),
        }

    def aligned_pairs(self) -> list[tuple[Path, Path]]:
        """(A, B) files of this split that share a file name (ignoring extension): ground truth."""
        by_stem_b = {p.stem: p for p in self.files_b}
        return [(a, by_stem_b[a.stem]) for a in self.files_a if a.stem in by_stem_b]

    def eval_pairs(self, n: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first n A images and, when A and B files share names, their B images as ground truth.

        Without aligned files: the first n A images (in order) and None.
        """
        pairs = self.aligned_pairs()[:n]
        if not pairs:
            a = [resize(load_rgb(p), self.size, self.size) for p in self.files_a[:n]]
            return torch.stack([to_tensor(x) for x in a]), None
        a = torch.stack([to_tensor(resize(load_rgb(pa), self.size, self.size)) for pa, _ in pairs])
        b = torch.stack([to_tensor(resize(load_rgb(pb), self.size, self.size)) for _, pb in pairs])
        return a, b
