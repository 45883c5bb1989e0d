"""MNIST / Fashion-MNIST: the IDX file format and a dataset over its four files."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ganrt.errors import DataError
from train.data.images import pixels_to_float, resize

# IDX type codes (third byte of the magic number); data are big-endian.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        # Detect gzip by content, not name: people gunzip files and keep the ".gz".
        return gzip.decompress(raw) if raw[:2] == _GZIP_MAGIC else raw
    except FileNotFoundError:
        raise DataError(f"IDX file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc} (corrupt or truncated download?)") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or gzip) into an array of its declared type and shape."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX data type code 0x{type_code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: {len(data)} bytes, header alone needs {header}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(f"{path} is {state}: {len(data)} bytes, shape {shape} needs {expected}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))  # a writable, native-endian copy


def find_idx_file(root: Path, stem: str) -> Path:
    """root/stem(.gz); also the "stem-with-dot" names that some unzip tools produce."""
    dotted = stem.replace("-idx", ".idx")
    candidates = [root / f"{stem}.gz", root / stem, root / dotted, root / f"{dotted}.gz"]
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(
        f"missing {stem}.gz (or {stem}) in {root}; download it with "
        f"`python -m train.data.download mnist {root}` (or fashion-mnist), or copy the files there by hand"
    )


class IdxImages(Dataset):
    """MNIST-format images and labels; items (image CHW in [-1, 1], label int64)."""

    num_classes = 10

    def __init__(self, root: str | Path, split: str = "train", size: int = 28, channels: int = 1) -> None:
        self.root = Path(root)
        if split not in ("train", "test"):
            raise DataError(f"split must be 'train' or 'test', got {split!r}")
        if channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {channels}")
        if size < 1:
            raise DataError(f"image size must be positive, got {size}")
        if not self.root.is_dir():
            raise DataError(
                f"dataset folder not found: {self.root}; download it with "
                f"`python -m train.data.download mnist {self.root}` (or fashion-mnist)"
            )
        prefix = "train" if split == "train" else "t10k"
        images_path = find_idx_file(self.root, f"{prefix}-images-idx3-ubyte")
        labels_path = find_idx_file(self.root, f"{prefix}-labels-idx1-ubyte")
        images = read_idx(images_path)
        labels = read_idx(labels_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{images_path}: expected uint8 images N x H x W, got {images.dtype} {images.shape}")
        if labels.ndim != 1:
            raise DataError(f"{labels_path}: expected a 1-D label array, got shape {labels.shape}")
        if len(images) != len(labels):
            raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DataError(f"{labels_path}: labels must lie in 0..{self.num_classes - 1}")
        self.split, self.size, self.channels = split, size, channels
        if images.shape[1:] != (size, size):
            images = np.stack([resize(img, size, size) for img in images]) if len(images) else images
        self.images: np.ndarray = np.ascontiguousarray(images)  # uint8 N x size x size
        self.labels: np.ndarray = labels.astype(np.int64)
        self._images_t = torch.from_numpy(self.images)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = pixels_to_float(self._images_t[index]).unsqueeze(0)
        if self.channels == 3:
            image = image.expand(3, -1, -1).contiguous()
        return image, torch.tensor(int(self.labels[index]), dtype=torch.int64)
