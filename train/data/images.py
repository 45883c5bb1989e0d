"""Image files in, uint8 arrays and [-1, 1] tensors out: the decoding every image dataset shares."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from ganrt.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


def is_image_file(path: Path) -> bool:
    """True for a visible file whose extension is one of IMAGE_EXTENSIONS (any case)."""
    # Dot-files are skipped because macOS leaves "._name.jpg" AppleDouble files next to
    # real images when copying to foreign file systems; they carry an image extension
    # but are not images.
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly inside folder, sorted by name; DataError if none or missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    found = sorted(p for p in folder.iterdir() if is_image_file(p))
    if not found:
        raise DataError(
            f"no images in {folder} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return found


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to a uint8 HxWx3 RGB array; DataError naming the file on failure."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            # Phone photos store rotation as an EXIF tag instead of rotating the pixels.
            im = ImageOps.exif_transpose(im)
            im.load()  # decode now so truncated files fail here, not later
            return _to_rgb_array(im)
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        # PIL's convert("RGB") clips 16-bit and float data at 255, turning most of a
        # 16-bit PNG white; scale to 8 bits instead.
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode != "F" or arr.max() > 1.0 else 1.0
        gray = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Transparent pixels usually hold black; compositing over white keeps line art
        # and cut-outs looking as they do in a viewer.
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize with INTER_AREA when shrinking (no aliasing) and INTER_LINEAR when growing."""
    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img
    shrinking = height * width < h * w
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if img.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing channel axis of size 1
        out = out[:, :, None]
    return out


def to_gray(img: np.ndarray) -> np.ndarray:
    """RGB uint8 HxWx3 to luminance uint8 HxWx1 (ITU-R BT.601 weights, as PIL and OpenCV)."""
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None]


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWxC (or HxW) array to a float32 CHW tensor in [-1, 1], i.e. (x/255-0.5)/0.5."""
    if img.dtype != np.uint8:
        raise TypeError(f"to_tensor expects uint8 pixels, got {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    return pixels_to_float(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))


def pixels_to_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 tensor of any shape to float32 in [-1, 1], computed literally as (x/255-0.5)/0.5."""
    # The same float32 operations as the exported pre-processing, so that training and
    # inference inputs agree bit for bit (x/127.5-1 differs in the last bits).
    return pixels.to(torch.float32).div_(255.0).sub_(0.5).div_(0.5)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """Inverse of to_tensor: CHW [-1, 1] tensor to uint8 HxWxC, rounded and clipped."""
    arr = (tensor.detach().cpu().float() * 127.5 + 127.5).round().clamp_(0, 255)
    return arr.to(torch.uint8).permute(1, 2, 0).numpy()
