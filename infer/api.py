"""The Python API: `load(artifact).sample(n)` and `.translate(images)`.

    from infer.api import load
    with load("artifacts/cyclegan-photo2sketch", backend="ort-cpu") as g:
        sketches = g.translate([photo_rgb])          # list of uint8 HxWx3, same sizes as given
    with load("artifacts/cgan-shapes") as g:
        grid = g.sample(16, labels=3, seed=0)        # uint8 (16, H, W, C)
    with load("artifacts/infogan-mnist") as g:       # labels: the categorical code; codes: continuous ones
        digits = g.sample(8, labels=7, codes=[0.8, -0.5], seed=0)
        sweep = g.sweep(0, steps=10, seed=0)         # a row per category, code 0 from low to high
    with load("artifacts/stargan-styles") as g:
        sepia = g.translate(photo_rgb, domain="sepia")

Work is batched internally up to the artifact's max batch; pre/post-processing comes from
the manifest (`infer.prepost`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from ganrt.artifact import Artifact
from infer.prepost import TRAINED, Plan, Processor, check_image

log = logging.getLogger("ganrt.infer")


@dataclass
class StageTimes:
    """Seconds one or more `translate` calls spent in each stage (added to, so one record can span calls)."""

    preprocess_s: float = 0.0  # resize/normalise into the model's input and build the feeds
    inference_s: float = 0.0  # the runner call alone
    postprocess_s: float = 0.0  # back to uint8 and to each image's own size


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

    def sample(self, n: int, labels: Any = None, seed: int | None = None, codes: Any = None) -> np.ndarray:
        """n samples: uint8 (n, H, W, C) RGB images, or float32 (n, D) points for toy models.

        `labels`: one class (index or name; InfoGAN: the categorical code) for all, or n of them;
        default cycles through the classes. `codes` (models with continuous codes): D values for
        all samples or n rows of D, inside the codes' range; default drawn uniformly from `seed`.
        `seed` makes the result reproducible (same seed, same images, any batching).
        """
        feeds, _ = self.processor.noise_feeds(n, labels, seed, codes)
        return self.processor.outputs_to_user(self.run(feeds))

    def sweep(self, code: int, steps: int = 10, seed: int | None = None) -> np.ndarray:
        """The InfoGAN picture: a row per class (categorical code), columns sweeping continuous code `code`
        evenly over its range with the other codes at the range's middle and one z per row -> uint8 (rows*steps, H, W, C)."""
        feeds = self.processor.sweep_feeds(code, steps, seed)
        return self.processor.outputs_to_user(self.run(feeds))

    # ---- images -> images ----------------------------------------------------------------

    def translate(self, images: np.ndarray | Sequence[np.ndarray], channel_order: str = "RGB",
                  size: int | tuple[int, int] | None = None, max_side: int | None = None,
                  side: int | str = TRAINED, domain: Any = None,
                  timings: StageTimes | None = None) -> np.ndarray | list[np.ndarray]:
        """uint8 HWC image(s) -> translated uint8 image(s) of the same size(s) and channel order.

        `domain` (a multi-domain model, e.g. StarGAN: required): the target domain, by index or name,
        for all images or one per image.

        Accepts one HWC array (returns one), an NHWC array (returns NHWC) or a list (returns a
        list). Images are fitted to the model (see `Processor.plan`): by default their longer side
        is scaled to the size the model was trained at (`side`: TRAINED, NATIVE for their own size,
        or pixels), `max_side` caps it, `size` forces a model size; outputs are put back to each
        image's own size. `timings`: where to add the seconds spent per stage (the webcam's breakdown).
        """
        if isinstance(images, np.ndarray) and images.ndim in (2, 3):
            return self.translate([images], channel_order, size, max_side, side, domain, timings)[0]
        batch_array = isinstance(images, np.ndarray)
        items = list(images)
        if not items:
            return np.empty((0,), np.uint8) if batch_array else []
        targets = self.processor.domains(len(items), domain)  # checked before any image is resized
        plans = [self.processor.plan(check_image(im).shape[:2], size, max_side, side) for im in items]
        results: list[np.ndarray | None] = [None] * len(items)
        # Images that fit to the same model size run together, up to max_batch at a time.
        groups: dict[tuple[int, int], list[int]] = {}
        for i, p in enumerate(plans):
            groups.setdefault(p.model_hw, []).append(i)
        for idx in groups.values():
            for s in range(0, len(idx), self.max_batch):
                chunk = idx[s:s + self.max_batch]
                chunk_targets = None if targets is None else targets[chunk]
                for i, img in zip(chunk, self._translate_same_size([items[i] for i in chunk],
                                                                   [plans[i] for i in chunk], channel_order,
                                                                   chunk_targets, timings)):
                    results[i] = img
        out = [r for r in results if r is not None]
        if batch_array:
            return np.stack(out)
        return out

    def _translate_same_size(self, images: list[np.ndarray], plans: list[Plan], channel_order: str,
                             targets: np.ndarray | None, timings: StageTimes | None = None) -> list[np.ndarray]:
        t0 = time.perf_counter()  # perf_counter costs well under a microsecond: timed always, kept when asked
        x = np.stack([self.processor.image_to_model(im, p, channel_order) for im, p in zip(images, plans)])
        feeds = self.processor.translate_feeds(x, None if targets is None else list(targets))
        t1 = time.perf_counter()
        y = self.run(feeds)[self.processor.output.name]
        t2 = time.perf_counter()
        out = [self.processor.restore(img, p) for img, p in zip(self.processor.to_uint8(y, channel_order), plans)]
        if timings is not None:
            timings.preprocess_s += t1 - t0
            timings.inference_s += t2 - t1
            timings.postprocess_s += time.perf_counter() - t2
        return out

    # ---- lifecycle -----------------------------------------------------------------------

    def warmup(self) -> None:
        """One small call so that the first real request does not pay for lazy initialisation."""
        if self.kind == "noise":
            self.sample(1, seed=0)
        else:
            fmt = self.processor.in_format
            assert fmt is not None
            h, w = fmt.default_size or (fmt.size_multiple * 16, fmt.size_multiple * 16)
            domain = 0 if self.processor.label_input is not None else None
            self.translate(np.zeros((h, w, fmt.channels), np.uint8), domain=domain)

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

