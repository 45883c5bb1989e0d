"""A model's tensor signature: `TensorSpec`, one input or output, as the registry declares it
and as an artifact's manifest stores it (`to_json` / `from_json`, checked field by field)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ganrt.errors import ArtifactError

# How pre/post-processing treats a tensor: an image (NCHW in `range`), noise z ~ N(0, 1),
# class labels (int, `num_classes`; also a categorical latent code or a target domain),
# continuous latent codes (N, D), uniform in `range` unless the user sets them (InfoGAN),
# toy-model points (N, D).
KINDS = ("image", "noise", "label", "code", "points")
DTYPES = ("float32", "float16", "int64", "int32", "uint8")
# A manifest that declares more elements than this per batch row is refused before anything
# is allocated (64 Mi elements: a 4096x4096x4 image).
MAX_ROW_ELEMENTS = 1 << 26
MAX_CLASSES = 1 << 16


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, shape (None = dynamic), dtype and meaning."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    # Value range of float tensors, e.g. (-1, 1) for tanh images; None for noise/labels.
    range: tuple[float, float] | None = None
    kind: str = "image"
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form used in manifests."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "range": list(self.range) if self.range else None,
            "kind": self.kind,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names) if self.class_names else None,
        }

    @classmethod
    def from_json(cls, d: Any, where: str = "tensor") -> "TensorSpec":
        """Inverse of `to_json`; every field is checked, and a bad one raises ArtifactError naming it."""
        if not isinstance(d, dict):
            raise ArtifactError(f"{where}: expected an object, got {type(d).__name__}")
        name = d.get("name")
        if not isinstance(name, str) or not name or len(name) > 128:
            raise ArtifactError(f"{where}.name: expected a non-empty string, got {name!r}")
        where = f"{where} {name!r}"
        shape = _shape(d.get("shape"), f"{where}.shape")
        dtype = d.get("dtype", "float32")
        if dtype not in DTYPES:
            raise ArtifactError(f"{where}.dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
        kind = d.get("kind", "image")
        if kind not in KINDS:
            raise ArtifactError(f"{where}.kind: {kind!r} is not one of {', '.join(KINDS)}")
        value_range = d.get("range")
        if value_range is not None:
            value_range = checked_range(value_range, f"{where}.range")
        num_classes = d.get("num_classes")
        if num_classes is not None and not (_is_int(num_classes) and 1 <= num_classes <= MAX_CLASSES):
            raise ArtifactError(f"{where}.num_classes: expected an integer in [1, {MAX_CLASSES}], got {num_classes!r}")
        class_names = d.get("class_names")
        if class_names is not None:
            if not (isinstance(class_names, list) and all(isinstance(c, str) and c for c in class_names)):
                raise ArtifactError(f"{where}.class_names: expected a list of non-empty strings")
            if num_classes is not None and len(class_names) != num_classes:
                raise ArtifactError(f"{where}.class_names: {len(class_names)} names for {num_classes} classes")
            class_names = tuple(class_names) or None
        if kind == "image" and len(shape) != 4:
            raise ArtifactError(f"{where}: an image tensor is NCHW, not {len(shape)}-D")
        if kind == "code" and (len(shape) != 2 or shape[1] is None or value_range is None):
            raise ArtifactError(f"{where}: a code tensor is (N, D) with a static D and a range")
        return cls(name, shape, dtype, value_range, kind, num_classes, class_names)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _shape(shape: Any, where: str) -> tuple[int | None, ...]:
    if not isinstance(shape, list) or not 1 <= len(shape) <= 8:
        raise ArtifactError(f"{where}: expected a list of 1 to 8 dimensions, got {shape!r}")
    if not all(d is None or (_is_int(d) and d >= 1) for d in shape):
        raise ArtifactError(f"{where}: dimensions must be positive integers or null (dynamic), got {shape}")
    static = math.prod(d for d in shape[1:] if d is not None)
    if static > MAX_ROW_ELEMENTS:
        raise ArtifactError(f"{where}: {static} elements per row is more than {MAX_ROW_ELEMENTS}")
    return tuple(shape)


def checked_range(value: Any, where: str) -> tuple[float, float]:
    """A checked [low, high] pair of finite numbers with low < high."""
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
            and value[0] < value[1]):
        raise ArtifactError(f"{where}: expected [low, high] with finite low < high, got {value!r}")
    return float(value[0]), float(value[1])
