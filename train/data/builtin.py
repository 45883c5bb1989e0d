"""Built-in image-to-image datasets with exact ground truth, generated on the fly (no download).

EdgesToScenes (paired, for pix2pix). B is a coloured scene of size x size pixels: a fixed
background plus 2 to 5 filled shapes. The background is a vertical gradient from warm RGB
(250, 232, 210) in the top row to cool (205, 236, 255) in the bottom row (linear per
channel, rounded), with each row's green value then moved to the nearest value that gives
the row a luminance of exactly 233; being flat in luminance, it yields no edges. Each
shape is a circle, an axis-aligned rectangle, a triangle (random rotation) or an
axis-aligned diamond, inscribed in a circle of radius uniform in [0.08, 0.2] x size that
stays 3 px clear of the border and of every other shape's circle (shapes never touch).
Every KIND has its own fixed colour: circle red (200, 40, 40), rectangle blue
(40, 70, 190), triangle green (30, 130, 50), diamond purple (120, 40, 150); shapes are
drawn without anti-aliasing. A is the edge map of B: OpenCV's Canny (thresholds 100 and
200, 3x3 Sobel, L1 gradient norm) on B's luminance (BT.601 weights), white edges on black,
repeated to 3 channels. So B is a deterministic function of A: a model must recognise the
kind of each outline and fill it with that kind's colour over the fixed background. Item
i depends only on (seed, split, i); the test split draws from another random stream.

PhotoToSketch (unpaired, for CycleGAN). Domain A: square crops of colour photographs that
scikit-image ships (skimage.data). Each photo is first shrunk (INTER_AREA, aspect ratio
kept) so that its shorter side is at most ceil(size / 0.35) px. A crop picks a photo
uniformly, a side of uniform [0.35, 1.0] x the photo's shorter side, a uniform position
and a horizontal flip with probability 1/2, and is resized to size x size (INTER_AREA
when shrinking, INTER_LINEAR when growing). Train photos: astronaut, rocket,
immunohistochemistry, retina, stereo_motorcycle (left view); test photos, never seen in
training: chelsea, coffee. Domain B: crops drawn the same way from an independent random
stream, passed through `sketch`, the classic colour-dodge pencil sketch built from OpenCV
operations: g = the crop's luminance (cv2.COLOR_RGB2GRAY, BT.601), b = a Gaussian blur of
255 - g with sigma = size / 16 px (kernel side 6 sigma + 1, rounded to odd), and the sketch
is cv2.divide(g, 255 - b, scale=256) (saturating at 255), repeated to 3 channels: flat areas
become white paper and edges dark pencil strokes whose weight follows the local contrast.
It is a deterministic function of the size x size crop, far from the identity (copying the
colour photo is a poor answer) and not constant (the mean sketch is a poor answer either).
OpenCV's own cv2.pencilSketch was not used: its shading adds a noise texture that no model
can predict pixel by pixel. Item i pairs A[i] with an unrelated B[i]; `eval_pairs` returns
aligned (A, sketch(A)) batches, so L1/PSNR/SSIM against the ground truth can be measured.
"""
from __future__ import annotations

import functools
import math

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ganrt.errors import DataError
from train.data.images import resize, to_tensor

SPLITS = ("train", "test")

BACKGROUND_TOP = (250, 232, 210)
BACKGROUND_BOTTOM = (205, 236, 255)
BACKGROUND_LUMA = 233
SHAPE_COLOURS = {
    "circle": (200, 40, 40),
    "rectangle": (40, 70, 190),
    "triangle": (30, 130, 50),
    "diamond": (120, 40, 150),
}
CANNY_THRESHOLDS = (100, 200)

TRAIN_PHOTOS = ("astronaut", "rocket", "immunohistochemistry", "retina", "stereo_motorcycle")
TEST_PHOTOS = ("chelsea", "coffee")
SKETCH_BLUR_FRACTION = 1 / 16  # Gaussian sigma of the dodge layer, as a fraction of the image side
MIN_CROP_FRACTION = 0.35


def _split_code(split: str) -> int:
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return SPLITS.index(split)


def _check_n_size(n: int, size: int, min_size: int) -> None:
    if n < 1 or size < min_size:
        raise DataError(f"need n >= 1 and size >= {min_size}, got n={n}, size={size}")


# ---------------------------------------------------------------- edges -> scenes


@functools.lru_cache(maxsize=8)
def background(size: int) -> np.ndarray:
    """The fixed gradient background of EdgesToScenes at size x size (uint8 RGB, read-only)."""
    t = np.linspace(0.0, 1.0, size)[:, None]
    rows = np.round(np.asarray(BACKGROUND_TOP) * (1 - t) + np.asarray(BACKGROUND_BOTTOM) * t).astype(np.uint8)
    # Every candidate green value for every row, scored by OpenCV's own RGB->gray rounding.
    candidates = np.repeat(rows[:, None, :], 256, axis=1)
    candidates[:, :, 1] = np.arange(256, dtype=np.uint8)
    luma = cv2.cvtColor(candidates, cv2.COLOR_RGB2GRAY).astype(int)
    cost = np.abs(luma - BACKGROUND_LUMA) * 1000 + np.abs(np.arange(256) - rows[:, 1:2].astype(int))
    rows[:, 1] = cost.argmin(axis=1)
    img = np.repeat(rows[:, None, :], size, axis=1)
    img.setflags(write=False)
    return img


def scene_edges(scene: np.ndarray) -> np.ndarray:
    """The A side of EdgesToScenes: Canny edges of a uint8 RGB scene, white on black, 3 channels."""
    edges = cv2.Canny(cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY), *CANNY_THRESHOLDS)
    return np.repeat(edges[:, :, None], 3, axis=2)


def _shape_polygon(kind: str, cx: float, cy: float, r: float, rng: np.random.Generator) -> np.ndarray | None:
    if kind == "rectangle":
        # Half-sides up to 0.7 r keep the corners inside the shape's circle of radius r.
        hw, hh = r * rng.uniform(0.45, 0.7, size=2)
        pts = [(cx - hw, cy - hh), (cx + hw, cy - hh), (cx + hw, cy + hh), (cx - hw, cy + hh)]
    elif kind == "triangle":
        a0 = rng.uniform(0, 2 * math.pi)
        pts = [(cx + r * math.cos(a0 + k * 2 * math.pi / 3), cy + r * math.sin(a0 + k * 2 * math.pi / 3))
               for k in range(3)]
    elif kind == "diamond":
        hw = r * rng.uniform(0.55, 0.9)
        pts = [(cx, cy - r), (cx + hw, cy), (cx, cy + r), (cx - hw, cy)]
    else:
        return None
    return np.round(np.asarray(pts)).astype(np.int32)


def draw_scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """One random EdgesToScenes scene (uint8 RGB size x size), as the module docstring describes."""
    scene = background(size).copy()
    kinds = tuple(SHAPE_COLOURS)
    placed: list[tuple[float, float, float]] = []
    wanted = int(rng.integers(2, 6))
    margin = 3.0  # px between shapes and from the border, so outlines never merge
    for _ in range(wanted):
        for _attempt in range(50):
            r = rng.uniform(0.08, 0.2) * size
            cx, cy = rng.uniform(r + margin, size - 1 - r - margin, size=2)
            if all(math.hypot(cx - x, cy - y) > r + q + margin for x, y, q in placed):
                break
        else:
            continue  # no room left for this one
        placed.append((cx, cy, r))
        kind = kinds[int(rng.integers(len(kinds)))]
        colour = SHAPE_COLOURS[kind]
        polygon = _shape_polygon(kind, cx, cy, r, rng)
        if polygon is None:
            cv2.circle(scene, (int(round(cx)), int(round(cy))), int(round(r)), colour, -1, cv2.LINE_8)
        else:
            cv2.fillPoly(scene, [polygon], colour, cv2.LINE_8)
    return scene


class EdgesToScenes(Dataset):
    """Paired edges -> coloured scenes (see module docstring); items {"A": edges, "B": scene}."""

    def __init__(self, n: int = 2000, size: int = 128, split: str = "train", seed: int = 0) -> None:
        _check_n_size(n, size, 32)
        self.n, self.size, self.split, self.seed = n, size, split, seed
        self._split_code = _split_code(split)
        self._scenes: np.ndarray | None = None
        self._edges: np.ndarray | None = None

    def _render(self) -> None:
        scenes = np.empty((self.n, self.size, self.size, 3), dtype=np.uint8)
        edges = np.empty_like(scenes)
        for i in range(self.n):
            scenes[i] = draw_scene(np.random.default_rng([self.seed, self._split_code, i]), self.size)
            edges[i] = scene_edges(scenes[i])
        self._scenes, self._edges = scenes, edges

    @property
    def scenes(self) -> np.ndarray:
        """All B images, uint8 (n, size, size, 3), rendered on first use."""
        if self._scenes is None:
            self._render()
        return self._scenes

    @property
    def edges(self) -> np.ndarray:
        """All A images, uint8 (n, size, size, 3), rendered on first use."""
        if self._edges is None:
            self._render()
        return self._edges

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"A": to_tensor(self.edges[index]), "B": to_tensor(self.scenes[index])}

    def eval_pairs(self, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """The first min(n, len) aligned (A, B) items as two batches (N, 3, size, size)."""
        items = [self[i] for i in range(min(n, self.n))]
        return torch.stack([it["A"] for it in items]), torch.stack([it["B"] for it in items])


# ---------------------------------------------------------------- photo -> sketch


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """One of scikit-image's bundled colour photographs as uint8 RGB (cached, read-only)."""
    try:
        import skimage.data
    except ImportError as exc:
        raise DataError(f"PhotoToSketch needs scikit-image for its photographs: {exc}") from None
    try:
        img = skimage.data.stereo_motorcycle()[0] if name == "stereo_motorcycle" else getattr(skimage.data, name)()
    except Exception as exc:  # skimage raises various errors when a file needs a download
        raise DataError(
            f"cannot load the photograph {name!r} from scikit-image "
            f"{getattr(skimage, '__version__', '?')}: {exc}"
        ) from None
    img = np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)
    img.setflags(write=False)
    return img


def sketch(img: np.ndarray) -> np.ndarray:
    """The B side of PhotoToSketch: the colour-dodge pencil sketch of a uint8 RGB image."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    sigma = SKETCH_BLUR_FRACTION * min(gray.shape)
    side = 2 * int(round(3 * sigma)) + 1
    blurred_inverse = cv2.GaussianBlur(255 - gray, (side, side), sigma)
    drawn = cv2.divide(gray, 255 - blurred_inverse, scale=256)
    return np.repeat(drawn[:, :, None], 3, axis=2)


def random_crop(photos: tuple[np.ndarray, ...], rng: np.random.Generator, size: int) -> np.ndarray:
    """A random square crop of a random photo, flipped with p=1/2, resized to size x size."""
    photo = photos[int(rng.integers(len(photos)))]
    height, width = photo.shape[:2]
    side = max(1, int(round(rng.uniform(MIN_CROP_FRACTION, 1.0) * min(height, width))))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    crop = photo[top : top + side, left : left + side]
    if rng.integers(0, 2):
        crop = crop[:, ::-1]
    return resize(np.ascontiguousarray(crop), size, size)


_STREAM_A, _STREAM_B = 0, 1


class PhotoToSketch(Dataset):
    """Unpaired photo crops (A) and pencil sketches of other crops (B) (see module docstring); items {"A", "B"}."""

    def __init__(self, n: int = 1000, size: int = 128, split: str = "train", seed: int = 0) -> None:
        _check_n_size(n, size, 16)
        self.n, self.size, self.split, self.seed = n, size, split, seed
        self._split_code = _split_code(split)
        self.photo_names = TRAIN_PHOTOS if split == "train" else TEST_PHOTOS
        # Filled item by item, so the first epoch pays for cropping and sketching spread over
        # its steps instead of as one pause at start-up.
        self._cache = {
            _STREAM_A: np.zeros((n, size, size, 3), dtype=np.uint8),
            _STREAM_B: np.zeros((n, size, size, 3), dtype=np.uint8),
        }
        self._done = {_STREAM_A: np.zeros(n, dtype=bool), _STREAM_B: np.zeros(n, dtype=bool)}

    @functools.cached_property
    def photos(self) -> tuple[np.ndarray, ...]:
        """This split's photographs, shrunk so the smallest crop (0.35 x shorter side) is ~size px."""
        # Crops are resized to size anyway; shrinking the 1411 px retina once makes each
        # crop ~10x cheaper than area-averaging it from full resolution every time.
        shrunk = []
        for name in self.photo_names:
            photo = load_photo(name)
            height, width = photo.shape[:2]
            factor = min(1.0, math.ceil(self.size / MIN_CROP_FRACTION) / min(height, width))
            shrunk.append(resize(photo, round(height * factor), round(width * factor)))
        return tuple(shrunk)

    def _image(self, stream: int, index: int) -> np.ndarray:
        if not self._done[stream][index]:
            rng = np.random.default_rng([self.seed, self._split_code, stream, index])
            crop = random_crop(self.photos, rng, self.size)
            self._cache[stream][index] = crop if stream == _STREAM_A else sketch(crop)
            self._done[stream][index] = True
        return self._cache[stream][index]

    def photo(self, index: int) -> np.ndarray:
        """Domain A image index as uint8 RGB."""
        return self._image(_STREAM_A, index)

    def sketch_image(self, index: int) -> np.ndarray:
        """Domain B image index as uint8 RGB (the pencil sketch of an unrelated crop)."""
        return self._image(_STREAM_B, index)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} items")
        return {"A": to_tensor(self.photo(index)), "B": to_tensor(self.sketch_image(index))}

    def eval_pairs(self, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Aligned (A, sketch(A)) batches of this split's first min(n, len) A crops."""
        count = min(n, self.n)
        photos = [self.photo(i) for i in range(count)]
        a = torch.stack([to_tensor(p) for p in photos])
        b = torch.stack([to_tensor(sketch(p)) for p in photos])
        return a, b
