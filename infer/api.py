"""The Python API: `load(artifact).sample(n)` and `.translate(images)`.

    from infer.api import load
    with load("artifacts/cyclegan-photo2sketch", backend="ort-cpu") as g:
        sketches = g.translate([photo_rgb])          # list of uint8 HxWx3, same sizes as given
    with load("artifacts/cgan-shapes") as g:
        grid = g.sample(16, labels=3, seed=0)        # uint8 (16, H, W, C)

Work is batched internally up to the artifact's max batch; pre/post-processing comes from
the manifest (`infer.prepost`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from ganrt.artifact import Artifact
from infer.prepost import Plan, Processor, check_image

log = logging.getLogger("ganrt.infer")


class RunnerLike(Protocol):
    """What the API needs from a runner (infer.runners.Runner satisfies it)."""

    backend: str

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


class Generator:
    """A loaded generator: a runner plus the manifest's pre/post-processing."""

    def __init__(self, runner: RunnerLike, artifact: Artifact, max_batch: int | None = None):
        """Wrap an open runner of `artifact`; `max_batch` caps the batch (default: the manifest's batch.max)."""
        self.runner = runner
        self.artifact = artifact
        self.processor = Processor(artifact.manifest)
        self.max_batch = max(1, min(max_batch or self.processor.max_batch, self.processor.max_batch))
        self._closed = False

    # ---- what it is ----------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """The backend actually running (after `auto` resolved)."""
        return str(getattr(self.runner, "backend", "unknown"))

    @property
    def kind(self) -> str:
        """"translate" (image in) or "noise" (z / label in)."""
        return self.processor.kind

    @property
    def name(self) -> str:
        """The name of the artifact it runs (for messages, metrics and /health)."""
        return self.artifact.name

    @property
    def variant(self) -> str:
        """The GAN variant of the artifact it runs."""
        return self.artifact.variant

    # ---- raw batches ---------------------------------------------------------------------

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Raw model feeds -> raw outputs, in chunks of at most `max_batch` items."""
        if self._closed:
            raise RuntimeError("this generator is closed")
        n = len(next(iter(feeds.values())))
        if n <= self.max_batch:
            return self.runner.infer(feeds)
        parts: dict[str, list[np.ndarray]] = {}
        for s in range(0, n, self.max_batch):
            out = self.runner.infer({k: v[s:s + self.max_batch] for k, v in feeds.items()})
            for k, v in out.items():
                parts.setdefault(k, []).append(v)
        return {k: np.concatenate(v) for k, v in parts.items()}

    # ---- noise -> images -----------------------------------------------------------------

    def sample(self, n: int, labels: Any = None, seed: int | None = None) -> np.ndarray:
        """n samples: uint8 (n, H, W, C) RGB images, or float32 (n, D) points for toy models.

        `labels`: one class (index or name) for all, or n of them; default cycles through the
        classes. `seed` makes the result reproducible (same seed, same images, any batching).
        """
        feeds, _ = self.processor.noise_feeds(n, labels, seed)
        return self.processor.outputs_to_user(self.run(feeds))

    # ---- images -> images ----------------------------------------------------------------

    def translate(self, images: np.ndarray | Sequence[np.ndarray], channel_order: str = "RGB",
                  size: int | tuple[int, int] | None = None, max_side: int | None = None
                  ) -> np.ndarray | list[np.ndarray]:
        """uint8 HWC image(s) -> translated uint8 image(s) of the same size(s) and channel order.

        Accepts one HWC array (returns one), an NHWC array (returns NHWC) or a list (returns a
        list). Images are fitted to the model (see `Processor.plan`: `size` forces a model size,
        `max_side` caps the longer side) and put back to their own size afterwards.
        """
        if isinstance(images, np.ndarray) and images.ndim in (2, 3):
            return self.translate([images], channel_order, size, max_side)[0]
        batch_array = isinstance(images, np.ndarray)
        items = list(images)
        if not items:
            return np.empty((0,), np.uint8) if batch_array else []
        plans = [self.processor.plan(check_image(im).shape[:2], size, max_side) for im in items]
        results: list[np.ndarray | None] = [None] * len(items)
        # Images that fit to the same model size run together, up to max_batch at a time.
        groups: dict[tuple[int, int], list[int]] = {}
        for i, p in enumerate(plans):
            groups.setdefault(p.model_hw, []).append(i)
        for idx in groups.values():
            for s in range(0, len(idx), self.max_batch):
                chunk = idx[s:s + self.max_batch]
                for i, img in zip(chunk, self._translate_same_size([items[i] for i in chunk],
                                                                   [plans[i] for i in chunk], channel_order)):
                    results[i] = img
        out = [r for r in results if r is not None]
        if batch_array:
            return np.stack(out)
        return out

    def _translate_same_size(self, images: list[np.ndarray], plans: list[Plan], channel_order: str) -> list[np.ndarray]:
        x = np.stack([self.processor.image_to_model(im, p, channel_order) for im, p in zip(images, plans)])
        assert self.processor.image_input is not None
        y = self.processor.to_uint8(self.run({self.processor.image_input.name: x})[self.processor.output.name],
                                    channel_order)
        return [self.processor.restore(img, p) for img, p in zip(y, plans)]

    # ---- lifecycle -----------------------------------------------------------------------

    def warmup(self) -> None:
        """One small call so that the first real request does not pay for lazy initialisation."""
        if self.kind == "noise":
            self.sample(1, seed=0)
        else:
            fmt = self.processor.in_format
            assert fmt is not None
            h, w = fmt.default_size or (fmt.size_multiple * 16, fmt.size_multiple * 16)
            self.translate(np.zeros((h, w, fmt.channels), np.uint8))

    def close(self) -> None:
        """Release the runner (sessions, engines, memory)."""
        if not self._closed:
            self._closed = True
            self.runner.close()

    def __enter__(self) -> "Generator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Generator({self.name!r}, variant={self.variant!r}, backend={self.backend!r}, kind={self.kind!r})"


def load(artifact: Any, backend: str = "auto", precision: str | None = None, max_batch: int | None = None,
         **options: Any) -> Generator:
    """Open an artifact (a directory, its name under artifacts/, or an `Artifact`) on a backend -> Generator.

    `precision`: fp32/fp16/int8 for ONNX backends, fp32/bf16 for torch; None = the backend's
    default (fp32, or a TensorRT engine's own). `options` go to the runner (e.g. torch `compile`).
    """
    from infer.runners import open_runner

    art = artifact if isinstance(artifact, Artifact) else Artifact.load(Path(artifact))
    runner = open_runner(art, backend=backend, precision=precision, **options)
    try:
        runner.activate()
        gen = Generator(runner, art, max_batch=max_batch)
    except BaseException:
        runner.close()
        raise
    log.info("loaded %s (%s) on %s", gen.name, gen.variant, gen.backend)
    return gen

