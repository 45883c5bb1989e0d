"""CelebA read through its attribute list, as StarGAN's single-label domains.

The layout is the one the official distribution unpacks to: ROOT/list_attr_celeba.txt (line 1
the image count, line 2 the 40 attribute names, then one line per image: its file name and a
+1 or -1 per attribute), the images in ROOT/img_align_celeba/, and optionally
ROOT/list_eval_partition.txt (file name, then 0 train, 1 val, 2 test).

A simplification of the paper's multi-label CelebA setting: the selected attributes act as
mutually exclusive domains. An image belongs to domain k when attribute k of the selection is
+1 and every other selected attribute is -1; images with none or several are skipped (with
Black_Hair, Blond_Hair, Brown_Hair most images with one hair colour qualify). Splits: with
the partition file, train is partition 0 and test partition 2; without it, the last 2000
qualifying images in file order (at most a tenth of them) are the test split, as
yunjey/stargan holds out 2000. Each image is centre-cropped to a square of its shorter side
(178 x 178 for the aligned 178 x 218 images, the authors' CenterCrop(178)) and resized.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ganrt.errors import DataError
from train.data.images import load_rgb, resize, to_tensor

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIR = "img_align_celeba"
HELD_OUT = 2000  # test images without a partition file (yunjey/stargan's count)
_PARTITIONS = {"train": "0", "test": "2"}


def is_celeba(root: Path) -> bool:
    """Whether `root` holds CelebA's attribute list."""
    return (Path(root) / ATTR_FILE).is_file()


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(attribute names, file names, int8 values (files x attributes) of +1/-1) from a list_attr_celeba.txt."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(lines) < 2:
        raise DataError(f"{path}: expected a count line and an attribute-names line, got {len(lines)} line(s)")
    names = lines[1].split()
    files, rows = [], []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1 or any(v not in ("1", "-1") for v in parts[1:]):
            raise DataError(f"{path}:{number}: expected a file name and {len(names)} values of 1 or -1")
        files.append(parts[0])
        rows.append([int(v) for v in parts[1:]])
    return names, files, np.asarray(rows, dtype=np.int8).reshape(len(files), len(names))


def select_domains(names: list[str], values: np.ndarray, attrs: tuple[str, ...], where: Path) -> np.ndarray:
    """Per image, the index in `attrs` of its one +1 attribute among them, or -1 (none or several)."""
    unknown = [a for a in attrs if a not in names]
    if unknown:
        raise DataError(f"unknown CelebA attribute(s) {', '.join(unknown)} in --attrs; {where} has: {', '.join(names)}")
    if len(attrs) < 2 or len(set(attrs)) != len(attrs):
        raise DataError(f"--attrs needs at least two different attributes, got {' '.join(attrs)}")
    chosen = values[:, [names.index(a) for a in attrs]] == 1  # images x selection
    return np.where(chosen.sum(1) == 1, chosen.argmax(1), -1)


class CelebAAttributes(Dataset):
    """CelebA images whose selected attributes name exactly one domain (see module docstring); items (image, domain)."""

    def __init__(self, root: str | Path, attrs: tuple[str, ...], split: str = "train", size: int = 128) -> None:
        self.root = Path(root)
        if split not in _PARTITIONS:
            raise DataError(f"split must be one of {', '.join(_PARTITIONS)}, got {split!r}")
        names, files, values = read_attributes(self.root / ATTR_FILE)
        domain = select_domains(names, values, tuple(attrs), self.root / ATTR_FILE)
        keep = np.flatnonzero(domain >= 0)
        if len(keep) < 2:
            raise DataError(f"{self.root / ATTR_FILE}: only {len(keep)} image(s) have exactly one of {' '.join(attrs)}")
        keep = self._split(keep, files, split)
        self.size, self.split = size, split
        self.domains = tuple(attrs)
        self.num_classes = len(attrs)
        self.files = [self.root / IMAGE_DIR / files[i] for i in keep]
        self.labels = domain[keep].astype(np.int64)
        if not (self.root / IMAGE_DIR).is_dir():
            raise DataError(f"image folder not found: {self.root / IMAGE_DIR} (unpack img_align_celeba.zip there)")

    def _split(self, keep: np.ndarray, files: list[str], split: str) -> np.ndarray:
        partition_file = self.root / PARTITION_FILE
        if partition_file.is_file():
            try:
                part = dict(line.split()[:2] for line in partition_file.read_text().splitlines() if line.strip())
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise DataError(f"cannot read {partition_file}: {exc}") from None
            chosen = keep[[part.get(files[i]) == _PARTITIONS[split] for i in keep]]
        else:
            held_out = min(HELD_OUT, max(1, len(keep) // 10))
            chosen = keep[-held_out:] if split == "test" else keep[:-held_out]
        if len(chosen) == 0:
            raise DataError(f"no {split} images among those with one of the selected attributes in {self.root}")
        return chosen

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = load_rgb(self.files[index])
        h, w = img.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        img = resize(np.ascontiguousarray(img[top:top + side, left:left + side]), self.size, self.size)
        return to_tensor(img), torch.tensor(int(self.labels[index]), dtype=torch.int64)
