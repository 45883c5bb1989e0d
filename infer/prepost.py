"""Pre- and post-processing driven by an artifact's manifest (docs/artifact.md).

Users hand over uint8 HWC images (RGB unless they say BGR: OpenCV frames are BGR) and get
uint8 HWC images back; the model sees NCHW float32 in the manifest's `image.value_range`, at
a size it accepts (`image.size_multiple`, `default_size`, `dynamic_size`, `min_size`): by
default the size it was trained at, resized back afterwards. Noise models get
`z` from a seed, labels (a class, or a categorical code) checked against `num_classes` and
continuous codes checked against their range; a translator with a label input (StarGAN's
target domain) gets the domain its caller names. Nothing here knows a variant by name:
everything comes from the manifest's `inputs`, `outputs` and `image` sections.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from ganrt.artifact import ImageFormat, Manifest
from ganrt.errors import BadImage, ImageTooSmall, InputError, UnknownLabel, UnsupportedOperation, UsageError
from ganrt.signature import TensorSpec
from infer.codecs import check_order

# How large images run (`side` of `Processor.plan`), besides a number of pixels for the longer side:
TRAINED = "trained"  # the longer side scaled to the size the model was trained at (resized back after)
NATIVE = "native"    # each image at its own size

@dataclass(frozen=True)
class Plan:
    """How one image was fitted to the model, so that the output can be put back."""

    orig_hw: tuple[int, int]     # the caller's image size
    scaled_hw: tuple[int, int]   # after resizing (== orig_hw when not resized)
    model_hw: tuple[int, int]    # after padding to the size multiple: what the model sees


def _fixed_format(spec: TensorSpec) -> ImageFormat:
    """The format of an image tensor in a manifest without an `image` section: from its spec alone."""
    channels, h, w = spec.shape[1:]
    return ImageFormat(channels=int(channels or 3), value_range=spec.range or (-1.0, 1.0),
                       default_size=(h, w) if h and w else None, dynamic_size=not (h and w))


# A class index written as text: ASCII digits only (str.isdigit and int() also take "٣" or "³").
_INDEX = re.compile(r"-?[0-9]{1,18}")


def _round_up(x: int, m: int) -> int:
    return int(math.ceil(x / m) * m)


class Processor:
    """Turns user inputs into model feeds and model outputs into user outputs, per the manifest."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self.inputs = manifest.inputs
        self.outputs = manifest.outputs
        by_kind = {s.kind: s for s in self.inputs}
        self.image_input = by_kind.get("image")
        self.noise_input = by_kind.get("noise")
        self.label_input = by_kind.get("label")
        self.code_input = by_kind.get("code")
        self.output = self.outputs[0]
        # "translate": image in, image out; "noise": z (and label) in, image or points out.
        self.kind = "translate" if self.image_input is not None else "noise"
        if self.kind == "noise" and self.noise_input is None:
            raise UsageError("manifest has neither an image nor a noise input: cannot drive this model")
        self.in_format = self._format(self.image_input) if self.image_input else None
        self.out_format = self._format(self.output) if self.output.kind == "image" else None
        self.max_batch = manifest.batch.max

    def _format(self, spec: TensorSpec) -> ImageFormat:
        image = self.manifest.image
        return image.for_tensor(spec) if image is not None else _fixed_format(spec)

    # ---- labels and noise ---------------------------------------------------------------

    @property
    def num_classes(self) -> int | None:
        """Classes of a conditional model, None otherwise."""
        return self.label_input.num_classes if self.label_input else None

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """Class names of a conditional model, when the manifest has them."""
        return self.label_input.class_names if self.label_input else None

    def labels(self, n: int, labels: int | str | Sequence[int | str] | None, what: str = "label") -> np.ndarray | None:
        """Validate labels (ints or class names; one value is repeated n times) -> int64 (n,); `what` names them
        in messages ("label", or "domain" for a translator's target)."""
        kinds = "classes" if what == "label" else f"{what}s"
        if self.label_input is None:
            if labels is not None and not (isinstance(labels, Sequence) and not isinstance(labels, str)
                                           and len(labels) == 0):
                raise InputError("this model is not conditional: it takes no labels")
            return None
        k = self.num_classes
        if labels is None:
            # Cycle through the classes, like the training sample grids.
            return np.arange(n, dtype=np.int64) % (k or 1)
        if isinstance(labels, (int, np.integer, str)):
            labels = [labels] * n
        labels = list(labels)
        if len(labels) != n:
            raise InputError(f"got {len(labels)} {what}s for n={n}: give one {what} or exactly n")
        names = self.class_names or ()
        out = np.empty(n, dtype=np.int64)
        for i, lab in enumerate(labels):
            if isinstance(lab, str) and not _INDEX.fullmatch(lab):
                if lab not in names:
                    valid = f"one of {list(names)}" if names else f"an integer in [0, {k})"
                    raise UnknownLabel(f"unknown {what} {lab!r}: use {valid}")
                out[i] = names.index(lab)
                continue
            if isinstance(lab, bool) or not isinstance(lab, (int, np.integer, str)):
                raise UnknownLabel(f"{what} {lab!r} is neither an index nor a name of one of the {kinds}")
            value = int(lab)
            if k is not None and not 0 <= value < k:
                raise UnknownLabel(f"unknown {what} {value}: this model has {k} {kinds} (0..{k - 1})")
            out[i] = value
        return out

    def codes(self, n: int, codes: Any, rng: np.random.Generator) -> np.ndarray | None:
        """Continuous codes (N, D) for n samples: `codes` checked (D values for all, or n rows of D, inside
        the code's range), or drawn uniformly in the range from `rng` when None; None for a model without."""
        spec = self.code_input
        if spec is None:
            if codes is not None and np.size(codes):
                raise InputError("this model takes no continuous codes")
            return None
        d, (lo, hi) = int(spec.shape[1] or 0), spec.range or (-1.0, 1.0)
        if codes is None:
            return rng.uniform(lo, hi, (n, d)).astype(np.float32)
        arr = np.asarray(codes) if not isinstance(codes, str) else np.asarray(None)
        if arr.dtype.kind not in "iuf":
            raise InputError(f"codes must be numbers: {d} values for all samples, or n rows of {d}")
        if arr.ndim == 1 and arr.shape[0] == d:
            arr = np.broadcast_to(arr, (n, d))
        if arr.shape != (n, d):
            raise InputError(f"codes: this model takes {d} continuous codes (one set of {d} values for all "
                             f"samples, or n={n} rows of {d}), got shape {list(arr.shape)}")
        if not np.isfinite(arr).all() or arr.min() < lo or arr.max() > hi:
            raise InputError(f"codes out of range: each must be a number in [{lo:g}, {hi:g}], "
                             f"got values from {arr.min():g} to {arr.max():g}")
        return np.ascontiguousarray(arr, dtype=np.float32)

    def domains(self, n: int, domain: Any) -> np.ndarray | None:
        """The target domain of n images (a translator with a label input): checked like labels, and required."""
        if self.label_input is None:
            if domain is not None:
                raise InputError("this model translates into one domain: it takes no domain")
            return None
        if domain is None:
            names = f": one of {list(self.class_names)}" if self.class_names else f" 0..{(self.num_classes or 1) - 1}"
            raise InputError(f"this model translates into {self.num_classes} domains: name the target domain{names}")
        return self.labels(n, domain, "domain")

    def noise_feeds(self, n: int, labels: Any = None, seed: int | None = None,
                    codes: Any = None) -> tuple[dict[str, np.ndarray], int]:
        """Feeds for n samples: z ~ N(0, 1) from `seed` (a fresh one if None), plus labels and codes.

        Returns (feeds, seed used). The same seed gives the same z (and drawn codes) whatever the batching.
        """
        if self.kind != "noise":
            raise UnsupportedOperation("this artifact translates images; it does not sample from noise")
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise InputError(f"n must be a positive integer, not {n!r}")
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
        assert self.noise_input is not None
        dims = tuple(int(d) for d in self.noise_input.shape[1:])
        rng = np.random.default_rng(seed)
        feeds = {self.noise_input.name: rng.standard_normal((n, *dims), dtype=np.float32)}
        lab = self.labels(n, labels)
        if lab is not None:
            assert self.label_input is not None
            feeds[self.label_input.name] = lab.astype(self.label_input.dtype)
        code = self.codes(n, codes, rng)  # drawn after z, so that z is the same with or without codes
        if code is not None:
            assert self.code_input is not None
            feeds[self.code_input.name] = code
        return feeds, int(seed)

    def sweep_feeds(self, code: int, steps: int = 10, seed: int | None = None) -> dict[str, np.ndarray]:
        """Feeds for the InfoGAN picture, row-major: a row per class, `steps` columns sweeping continuous code
        `code` evenly over its range; the other codes sit mid-range and one z (from `seed`, default 0) is
        shared by every cell, so rows differ only by class and columns only by the swept code."""
        spec = self.code_input
        if spec is None or self.noise_input is None:
            raise UnsupportedOperation("this model has no continuous codes to sweep")
        d, (lo, hi) = int(spec.shape[1] or 0), spec.range or (-1.0, 1.0)
        if isinstance(code, bool) or not isinstance(code, (int, np.integer)) or not 0 <= code < d:
            raise InputError(f"this model has {d} continuous codes: sweep one of 0..{d - 1}, not {code!r}")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 2 <= steps <= 64:
            raise InputError(f"steps must be an integer in [2, 64], not {steps!r}")
        rows = self.num_classes or 1
        dims = tuple(int(x) for x in self.noise_input.shape[1:])
        z = np.random.default_rng(0 if seed is None else seed).standard_normal((1, *dims), dtype=np.float32)
        codes = np.full((rows * steps, d), (lo + hi) / 2, np.float32)
        codes[:, code] = np.tile(np.linspace(lo, hi, steps, dtype=np.float32), rows)
        feeds = {self.noise_input.name: np.repeat(z, rows * steps, axis=0), spec.name: codes}
        if self.label_input is not None:
            feeds[self.label_input.name] = np.repeat(np.arange(rows), steps).astype(self.label_input.dtype)
        return feeds

    # ---- images -------------------------------------------------------------------------

    def long_side(self, side: int | str = TRAINED) -> int | None:
        """The longer side images run at: TRAINED the training size's, NATIVE None (their own size), or N pixels."""
        if side == NATIVE:
            return None
        if side == TRAINED:
            default = self._in_fmt().default_size
            return max(default) if default else None
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 1:
            raise InputError(f"side must be {TRAINED!r}, {NATIVE!r} or a positive number of pixels, not {side!r}")
        return int(side)

    @property
    def min_image_size(self) -> tuple[int, int]:
        """The smallest image (height, width) this model translates: padded to the size multiple, it reaches
        the manifest's `image.min_size` (1 x 1 when the manifest does not say)."""
        fmt = self._in_fmt()
        if fmt.min_size is None or not fmt.dynamic_size:
            return 1, 1
        m = fmt.size_multiple
        return ((math.ceil(fmt.min_size[0] / m) - 1) * m + 1, (math.ceil(fmt.min_size[1] / m) - 1) * m + 1)

    def plan(self, hw: tuple[int, int], size: int | tuple[int, int] | None = None, max_side: int | None = None,
             side: int | str = TRAINED) -> Plan:
        """Pick the model size for an image of size `hw`.

        `size` forces the model input to size x size (or (h, w)). Otherwise a model with dynamic H/W
        runs with the image's longer side scaled to `side` (TRAINED: the size the model was trained
        at; NATIVE: the image's own size), then scaled down so that it is at most `max_side`, and
        padded up to the size multiple; a fixed-size model runs at its default size. Images smaller
        than `min_image_size` are an ImageTooSmall, and no scaling goes below it.
        """
        fmt = self._in_fmt()
        h, w = int(hw[0]), int(hw[1])
        m = fmt.size_multiple
        low_h, low_w = self.min_image_size
        if h < low_h or w < low_w:
            raise ImageTooSmall(f"image is {h}x{w} pixels (height x width); this model needs at least {low_h}x{low_w}")
        if size is not None:
            sh, sw = (size, size) if isinstance(size, (int, np.integer)) else size
            if sh < 1 or sw < 1:
                raise InputError(f"size must be positive, not {size!r}")
            scaled = (_round_up(int(sh), m), _round_up(int(sw), m))
            if fmt.min_size and (scaled[0] < fmt.min_size[0] or scaled[1] < fmt.min_size[1]):
                raise InputError(f"size {scaled[0]}x{scaled[1]} is below this model's smallest input "
                                 f"{fmt.min_size[0]}x{fmt.min_size[1]}")
            return Plan((h, w), scaled, scaled)
        if not fmt.dynamic_size:
            if fmt.default_size is None:
                raise UsageError("manifest has a fixed-size image input but no image.default_size")
            return Plan((h, w), fmt.default_size, fmt.default_size)
        longer = self.long_side(side) or max(h, w)
        if max_side is not None:
            longer = min(longer, max_side)
        scaled = (h, w)
        if longer != max(h, w):
            r = longer / max(h, w)
            scaled = (max(low_h, round(h * r)), max(low_w, round(w * r)))
        return Plan((h, w), scaled, (_round_up(scaled[0], m), _round_up(scaled[1], m)))

    def image_to_model(self, image: np.ndarray, plan: Plan, channel_order: str = "RGB") -> np.ndarray:
        """One uint8 HWC image -> float32 CHW for the model (resized/padded per `plan`)."""
        fmt = self._in_fmt()
        img = as_channels(image, fmt.channels, check_order(channel_order), fmt.channel_order)
        if img.shape[:2] != plan.scaled_hw:
            interp = cv2.INTER_AREA if img.shape[0] > plan.scaled_hw[0] else cv2.INTER_LINEAR
            img = cv2.resize(img, (plan.scaled_hw[1], plan.scaled_hw[0]), interpolation=interp)
            if img.ndim == 2:
                img = img[:, :, None]
        ph, pw = plan.model_hw[0] - plan.scaled_hw[0], plan.model_hw[1] - plan.scaled_hw[1]
        if ph or pw:
            # Reflect padding keeps the border statistics the model saw in training (zeros do not).
            mode = "reflect" if ph < img.shape[0] and pw < img.shape[1] else "edge"
            img = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode=mode)
        lo, hi = fmt.value_range
        x = img.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def images_to_feeds(self, images: Sequence[np.ndarray], channel_order: str = "RGB",
                        size: int | tuple[int, int] | None = None, max_side: int | None = None,
                        side: int | str = TRAINED, domain: Any = None) -> tuple[dict[str, np.ndarray], list[Plan]]:
        """Images that fit to one model size -> ({input: NCHW float32, [domain]}, plans); sizes must agree."""
        if self.kind != "translate":
            raise UnsupportedOperation("this artifact samples from noise; it does not translate images")
        if len(images) == 0:
            raise InputError("no images given")
        plans = [self.plan(check_image(im).shape[:2], size, max_side, side) for im in images]
        if len({p.model_hw for p in plans}) != 1:
            raise InputError("images fit to different model sizes: feed them separately (or pass size=)")
        x = np.stack([self.image_to_model(im, p, channel_order) for im, p in zip(images, plans)])
        return self.translate_feeds(x, domain), plans

    def translate_feeds(self, x: np.ndarray, domain: Any = None) -> dict[str, np.ndarray]:
        """Model-ready images (NCHW) -> the feeds of one call, with the target domain when the model takes one."""
        assert self.image_input is not None
        feeds = {self.image_input.name: x}
        target = self.domains(len(x), domain)
        if target is not None:
            assert self.label_input is not None
            feeds[self.label_input.name] = target.astype(self.label_input.dtype)
        return feeds

    def to_uint8(self, y: np.ndarray, channel_order: str = "RGB") -> np.ndarray:
        """Model output NCHW float -> uint8 NHWC (clipped), in `channel_order`."""
        fmt = self.out_format
        if fmt is None:
            raise UnsupportedOperation(f"output {self.output.name!r} is {self.output.kind}, not an image")
        lo, hi = fmt.value_range
        img = (np.asarray(y, dtype=np.float32) - lo) * np.float32(255.0 / (hi - lo))
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        if img.shape[-1] == 3 and check_order(channel_order) != fmt.channel_order:
            img = img[..., ::-1]
        return np.ascontiguousarray(img)

    def restore(self, image: np.ndarray, plan: Plan) -> np.ndarray:
        """Undo `plan` on one uint8 HWC output: crop the padding, resize to the original size."""
        img = image[: plan.scaled_hw[0], : plan.scaled_hw[1]]
        if img.shape[:2] != plan.orig_hw:
            c = img.shape[2]
            img = cv2.resize(img, (plan.orig_hw[1], plan.orig_hw[0]), interpolation=cv2.INTER_LINEAR)
            img = img.reshape(plan.orig_hw[0], plan.orig_hw[1], c)
        return np.ascontiguousarray(img)

    def outputs_to_user(self, outputs: dict[str, np.ndarray], channel_order: str = "RGB") -> np.ndarray:
        """Raw outputs -> uint8 NHWC images, or float32 (N, D) points for toy models."""
        y = outputs[self.output.name]
        if self.output.kind == "points":
            return np.asarray(y, dtype=np.float32)
        return self.to_uint8(y, channel_order)

    def _in_fmt(self) -> ImageFormat:
        if self.in_format is None:
            raise UnsupportedOperation("this artifact samples from noise; it does not translate images")
        return self.in_format


def check_image(image: Any) -> np.ndarray:
    """Accept a uint8 HW, HW1, HW3 or HW4 array; anything else is a BadImage."""
    if not isinstance(image, np.ndarray):
        raise BadImage(f"expected a numpy uint8 image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise BadImage(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise BadImage(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise BadImage(f"empty image of shape {image.shape}")
    return image


def as_channels(image: np.ndarray, channels: int, src_order: str = "RGB", dst_order: str = "RGB") -> np.ndarray:
    """uint8 image -> HxWxC with C = `channels` in `dst_order` (drops alpha, converts gray/colour)."""
    img = check_image(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if channels == 1:
        if img.shape[2] == 3:
            code = cv2.COLOR_RGB2GRAY if src_order == "RGB" else cv2.COLOR_BGR2GRAY
            img = cv2.cvtColor(np.ascontiguousarray(img), code)[:, :, None]
        return img
    if channels != 3:
        raise UsageError(f"models with {channels} image channels are not supported")
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    return img[:, :, ::-1] if src_order != dst_order else img
