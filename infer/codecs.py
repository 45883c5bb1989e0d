"""Image codecs: encoded bytes <-> uint8 arrays (PNG, JPEG, WebP, ...), and zip / npz bundles of them."""
from __future__ import annotations

import io
from typing import Iterable

import cv2
import numpy as np

from ganrt.artifact import CHANNEL_ORDERS
from ganrt.errors import BadImage, ImageTooLarge, InputError

# Larger decoded images are refused before their pixels are allocated (decompression bombs).
DEFAULT_MAX_PIXELS = 4096 * 4096


def check_order(channel_order: str) -> str:
    """`channel_order` upper-cased, or an InputError when it is neither RGB nor BGR."""
    order = channel_order.upper()
    if order not in CHANNEL_ORDERS:
        raise InputError(f"channel_order must be one of {CHANNEL_ORDERS}, not {channel_order!r}")
    return order


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, channel_order: str = "RGB") -> np.ndarray:
    """Encoded image bytes (PNG, JPEG, WebP, BMP, ...) -> uint8 HxWx3 (or HxW for grey), EXIF-rotated.

    The size is checked from the header, before the pixels are decoded.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise BadImage("empty image data")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageTooLarge(f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels}")
            im = ImageOps.exif_transpose(im)
            mode = "L" if im.mode in ("1", "L", "I", "I;16", "F") else "RGB"
            arr = np.asarray(im.convert(mode))
    except InputError:
        raise
    except UnidentifiedImageError:
        raise BadImage(f"not an image in a known format ({len(data)} bytes starting {data[:8]!r})") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise BadImage(f"cannot decode image: {e}") from None
    if arr.ndim == 3 and check_order(channel_order) == "BGR":
        arr = arr[:, :, ::-1]
    return np.ascontiguousarray(arr)


def encode_png(image: np.ndarray, channel_order: str = "RGB") -> bytes:
    """uint8 HxW[xC] image -> PNG bytes."""
    img = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    if img.ndim == 3 and check_order(channel_order) == "RGB":
        img = img[:, :, ::-1]  # cv2 encodes BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def images_to_zip(images: Iterable[np.ndarray]) -> bytes:
    """uint8 images -> a zip of 000000.png, 000001.png, ..."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:  # PNG is already compressed
        for i, im in enumerate(images):
            zf.writestr(f"{i:06d}.png", encode_png(im))
    return buf.getvalue()


def arrays_to_npz(**arrays: np.ndarray) -> bytes:
    """Named arrays -> compressed .npz bytes."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()
