"""Paired (pix2pix) image datasets: side-by-side A|B files, or A/ and B/ folders with matching names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ganrt.errors import DataError
from train.data.images import list_images, load_rgb, resize, to_tensor
from train.data.jitter import Jitter, check_sizes, item_rng

DIRECTIONS = ("AtoB", "BtoA")


def check_direction(direction: str) -> str:
    """Return direction if it is "AtoB" or "BtoA", else raise DataError."""
    if direction not in DIRECTIONS:
        raise DataError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    return direction


def split_side_by_side(img: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Cut an A|B image into its left (A) and right (B) halves at width // 2."""
    height, width = img.shape[:2]
    if width < 2 or width % 2:
        raise DataError(
            f"cannot split {path} into A|B halves: width {width} px is "
            f"{'odd' if width % 2 else 'too small'} (expected two images side by side)"
        )
    half = width // 2
    return img[:, :half], img[:, half:]


def match_by_stem(folder_a: Path, folder_b: Path) -> list[tuple[Path, Path]]:
    """Pair the images of two folders by file name without extension; DataError on mismatch."""
    by_stem = []
    for folder in (folder_a, folder_b):
        stems: dict[str, Path] = {}
        for path in list_images(folder):
            if path.stem in stems:
                raise DataError(
                    f"two images named {path.stem!r} in {folder} ({stems[path.stem].name}, {path.name}):"
                    " pairs are matched by name, keep one"
                )
            stems[path.stem] = path
        by_stem.append(stems)
    stems_a, stems_b = by_stem
    only_a = sorted(set(stems_a) - set(stems_b))
    only_b = sorted(set(stems_b) - set(stems_a))
    if only_a or only_b:
        parts = []
        for missing, have, lack in ((only_a, folder_a, folder_b), (only_b, folder_b, folder_a)):
            if missing:
                shown = ", ".join(stems_a.get(s, stems_b.get(s)).name for s in missing[:5])
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                parts.append(f"{len(missing)} in {have} have no match in {lack} ({shown}{more})")
        raise DataError("paired folders do not match by file name: " + "; ".join(parts))
    return [(stems_a[s], stems_b[s]) for s in sorted(stems_a)]


class PairedImages(Dataset):
    """pix2pix training pairs; item["A"] is always the model input and item["B"] its target."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        direction: str = "AtoB",
        size: int = 256,
        load_size: int | None = None,
        jitter: bool = True,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.direction = check_direction(direction)
        self.size = size
        self.load_size = check_sizes(size, load_size)
        self.jitter = jitter
        self.seed = seed
        self.epoch = 0
        self.layout, self.pairs = self._find_pairs()
        # For side-by-side files both members of a pair are the same path.
        self.files: list[Path] = [a for a, _ in self.pairs]

    def _find_pairs(self) -> tuple[str, list[tuple[Path, Path]]]:
        if not self.root.is_dir():
            raise DataError(f"dataset folder not found: {self.root}")
        split_dir = self.root / self.split
        if (split_dir / "A").is_dir() and (split_dir / "B").is_dir():
            return "folders", match_by_stem(split_dir / "A", split_dir / "B")
        if split_dir.is_dir():
            return "side_by_side", [(p, p) for p in list_images(split_dir)]
        if (self.root / "A").is_dir() and (self.root / "B").is_dir():
            return "folders", match_by_stem(self.root / "A", self.root / "B")
        raise DataError(
            f"no paired data for split {self.split!r} in {self.root}: expected side-by-side A|B "
            f"images in {split_dir}, or folders {split_dir}/A and {split_dir}/B "
            f"(or {self.root}/A and {self.root}/B)"
        )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops and flips the following items use."""
        # With DataLoader workers, call this before creating the epoch's iterator: workers
        # receive a copy of the dataset when the iterator starts (unless persistent_workers).
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw (A, B) uint8 RGB images of a pair, before direction and resizing."""
        path_a, path_b = self.pairs[index]
        if self.layout == "side_by_side":
            return split_side_by_side(load_rgb(path_a), path_a)
        return load_rgb(path_a), load_rgb(path_b)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        img_a, img_b = self.load_pair(index)
        if self.direction == "BtoA":
            img_a, img_b = img_b, img_a
        if self.jitter:
            # One draw for both sides: the target must stay aligned with its input.
            params = Jitter.draw(item_rng(self.seed, self.epoch, index), self.load_size, self.size)
            img_a = params.apply(img_a, self.load_size, self.size)
            img_b = params.apply(img_b, self.load_size, self.size)
        else:
            img_a = resize(img_a, self.size, self.size)
            img_b = resize(img_b, self.size, self.size)
        return {"A": to_tensor(img_a), "B": to_tensor(img_b)}
