"""Labelled image folders: one sub-folder per class, as torchvision's ImageFolder reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ganrt.errors import DataError
from train.data.images import is_image_file, load_rgb, resize, to_gray, to_tensor


class ImageFolder(Dataset):
    """Images from root/<class>/..., labelled by the index of <class> in sorted order."""

    def __init__(self, root: str | Path, size: int, channels: int = 3) -> None:
        self.root = Path(root)
        if channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {channels}")
        if size < 1:
            raise DataError(f"image size must be positive, got {size}")
        self.size = size
        self.channels = channels
        if not self.root.is_dir():
            raise DataError(f"image folder not found: {self.root}")
        # Hidden folders (.ipynb_checkpoints, .git) are tool litter, not classes.
        class_dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise DataError(f"no class sub-folders in {self.root} (expected one sub-folder of images per class)")
        self.classes: tuple[str, ...] = tuple(p.name for p in class_dirs)
        self.num_classes = len(self.classes)
        self.files: list[Path] = []
        labels: list[int] = []
        for label, folder in enumerate(class_dirs):
            images = sorted(p for p in folder.iterdir() if is_image_file(p))
            if not images:
                # An empty class would still take a label index and shift no others, but it
                # is almost always a mistake (wrong root, unfinished copy): say so early.
                raise DataError(f"no images in class folder {folder}")
            self.files += images
            labels += [label] * len(images)
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = resize(load_rgb(self.files[index]), self.size, self.size)
        if self.channels == 1:
            img = to_gray(img)
        return to_tensor(img), torch.tensor(int(self.labels[index]), dtype=torch.int64)
