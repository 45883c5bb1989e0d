"""The runner lifecycle, written once (after Polygraphy's `BaseRunner`).

A runner is built from a loader, a callable that creates the backend object (an ONNX Runtime
session, a TensorRT engine, a torch module). Nothing heavy happens until `activate()` (or
`with runner:`), which calls the loader. `infer()` checks the feeds against the input spec
here, once, for every backend, then hands them to the subclass's `_infer`.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ganrt.errors import FeedError
from ganrt.signature import TensorSpec

log = logging.getLogger("ganrt.infer")


class RunnerNotActive(RuntimeError):
    """`infer` was called before `activate()` (or outside `with runner:`), or after `close()`."""


def shape_text(shape: Sequence[int | None]) -> str:
    """(None, 3, None, None) -> "(N, 3, ?, ?)": dynamic dims shown as N for batch and ? otherwise."""
    dims = ["N" if i == 0 and d is None else "?" if d is None else str(d) for i, d in enumerate(shape)]
    return "(" + ", ".join(dims) + ")"


def validate_feeds(feeds: Mapping[str, Any], specs: Sequence[TensorSpec], size_multiple: int = 1,
                   max_batch: int | None = None) -> int:
    """Check feeds against the input specs; returns the batch size or raises FeedError."""
    if not isinstance(feeds, Mapping):
        raise FeedError(f"feeds must be a dict of input name -> numpy array, got {type(feeds).__name__}")
    names = [s.name for s in specs]
    missing = [n for n in names if n not in feeds]
    extra = [k for k in feeds if k not in names]
    if missing or extra:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unexpected {', '.join(map(str, extra))}"] if extra else []
        raise FeedError(f"{'; '.join(parts)} (the model's inputs are: {', '.join(names)})")
    batch: int | None = None
    for spec in specs:
        a = feeds[spec.name]
        where = f"input {spec.name!r}"
        if not isinstance(a, np.ndarray):
            raise FeedError(f"{where}: expected a numpy array, got {type(a).__name__}")
        if a.dtype != np.dtype(spec.dtype):
            raise FeedError(f"{where}: dtype {a.dtype}, expected {spec.dtype} (convert with .astype(np.{spec.dtype}))")
        if a.ndim != len(spec.shape):
            raise FeedError(f"{where}: shape {a.shape} has {a.ndim} dims, expected {len(spec.shape)}: "
                            f"{shape_text(spec.shape)}")
        for i, (got, want) in enumerate(zip(a.shape, spec.shape)):
            if want is not None and got != want:
                raise FeedError(f"{where}: dim {i} is {got}, expected {want}: {shape_text(spec.shape)}")
        if spec.shape[0] is None:
            if a.shape[0] < 1:
                raise FeedError(f"{where}: empty batch")
            if batch is not None and a.shape[0] != batch:
                raise FeedError(f"inputs disagree on the batch size: {spec.name!r} has {a.shape[0]}, another has {batch}")
            batch = a.shape[0]
        if spec.kind == "image" and a.ndim == 4:
            h, w = a.shape[2], a.shape[3]
            if h < size_multiple or w < size_multiple or h % size_multiple or w % size_multiple:
                raise FeedError(f"{where}: {h}x{w} is not a size this model accepts: height and width must be "
                                f"positive multiples of {size_multiple} (resize or pad first)")
        if spec.kind == "label" and spec.num_classes and a.size and (a.min() < 0 or a.max() >= spec.num_classes):
            raise FeedError(f"{where}: labels must be in [0, {spec.num_classes - 1}], got {a.min()}..{a.max()}")
    if batch is not None and max_batch is not None and batch > max_batch:
        raise FeedError(f"batch {batch} exceeds this runner's maximum of {max_batch}")
    return batch or 1


def example_feeds(specs: Sequence[TensorSpec], batch: int = 1, size: tuple[int, int] | None = None,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Random feeds that satisfy the specs (warm-up, smoke tests); image H, W come from `size` when dynamic."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = list(spec.shape)
        shape[0] = batch if shape[0] is None else shape[0]
        if spec.kind == "image" and len(shape) == 4 and (shape[2] is None or shape[3] is None):
            if size is None:
                raise ValueError(f"input {spec.name!r} has a dynamic size: pass size=(H, W)")
            shape[2], shape[3] = size
        if any(d is None for d in shape):
            raise ValueError(f"input {spec.name!r} {shape_text(spec.shape)} has dynamic dims other than the batch")
        if spec.kind == "label":
            feeds[spec.name] = rng.integers(0, spec.num_classes or 1, size=shape).astype(spec.dtype)
        elif spec.range is not None:
            lo, hi = spec.range
            feeds[spec.name] = rng.uniform(lo, hi, size=shape).astype(spec.dtype)
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return feeds


class Runner(ABC):
    """One backend behind one interface: activate, infer(feeds) -> outputs, warmup, close."""

    def __init__(self, load: Callable[[], Any], inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *,
                 backend: str, precision: str = "fp32", size_multiple: int = 1, max_batch: int | None = None,
                 example_size: tuple[int, int] | None = None) -> None:
        self._load = load
        self._inputs = list(inputs)
        self._outputs = list(outputs)
        self.backend = backend
        self.precision = precision
        self.size_multiple = size_multiple
        self.max_batch = max_batch
        # Image size used by warmup() when the inputs have dynamic H and W.
        self.example_size = example_size
        self.is_active = False

    def __repr__(self) -> str:
        state = "active" if self.is_active else "inactive"
        return f"<{type(self).__name__} {self.backend} {self.precision} ({state})>"

    def input_spec(self) -> list[TensorSpec]:
        """The model's inputs: names, shapes (None = dynamic), dtypes, kinds."""
        return list(self._inputs)

    def output_spec(self) -> list[TensorSpec]:
        """The model's outputs."""
        return list(self._outputs)

    def activate(self) -> "Runner":
        """Build the backend object through the loader (once); returns self."""
        if not self.is_active:
            self._activate(self._load())
            self.is_active = True
        return self

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate `feeds` against the input spec and run them; returns fp32/int outputs by name."""
        if not self.is_active:
            raise RunnerNotActive(f"{self!r}: call activate() or use `with runner:` before infer()")
        validate_feeds(feeds, self._inputs, self.size_multiple, self.max_batch)
        outputs = self._infer(feeds)
        missing = [s.name for s in self._outputs if s.name not in outputs]
        if missing:
            raise RuntimeError(f"{self.backend} runner returned no {', '.join(missing)}: "
                               f"the model does not match its manifest")
        return outputs

    __call__ = infer

    def warmup(self, n: int = 3, batch: int = 1) -> None:
        """Run `n` inferences on random feeds (first-run allocation, autotuning, compilation)."""
        feeds = example_feeds(self._inputs, batch, self.example_size)
        for _ in range(n):
            self.infer(feeds)

    def close(self) -> None:
        """Release the backend object; safe to call twice."""
        if self.is_active:
            self._deactivate()
            self.is_active = False

    @abstractmethod
    def _activate(self, loaded: Any) -> None:
        """Keep what the loader built (and prepare buffers)."""

    @abstractmethod
    def _infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run validated feeds; return numpy outputs by name."""

    @abstractmethod
    def _deactivate(self) -> None:
        """Drop the backend object and its buffers."""
