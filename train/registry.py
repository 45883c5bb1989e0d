"""The one registry of GAN variants, shared by train, export, infer and bench.

Each variant module in `train/variants/` registers one `Variant`. The other stages never
special-case a variant by name: they read its input signature and output spec from here
(or from an artifact's manifest, which is written from here).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ganrt.registry import Registry
from ganrt.signature import TensorSpec

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch import nn
    from torch.utils.data import Dataset

    from train.step import TrainStep


@dataclass(frozen=True)
class Variant:
    """Everything the stages need to know about one GAN variant."""

    name: str
    summary: str
    # Config dataclass: fields carry the paper's defaults; `presets` ClassVar holds named
    # overrides ("quick" for a 2-core CPU, "paper" for the original hyper-parameters).
    config: type
    # Builds the generator that export/infer deploy (the checkpoint prefix is `generator_key`).
    generator: Callable[[Any], "nn.Module"]
    inputs: Callable[[Any], list[TensorSpec]]
    output: Callable[[Any], TensorSpec]
    # Fixed generator feeds for sample grids, evaluation and export calibration.
    sample_feeds: Callable[[Any, int, "torch.Generator"], dict[str, "torch.Tensor"]]
    # Builds every network trained, keyed by name ("G", "D" or "G", "F", "D_A", "D_B").
    # These three are None for a variant that is only deployed (a user's own generator).
    networks: Callable[[Any], dict[str, "nn.Module"]] | None = None
    # Training dataset from the config (built-in by default, `cfg.data` for a real one).
    dataset: Callable[[Any], "Dataset"] | None = None
    step: type["TrainStep"] | None = None
    # Image-to-image variants: (held-out inputs, ground-truth targets or None) for evaluation.
    eval_pairs: Callable[[Any, int], tuple["torch.Tensor", "torch.Tensor | None"]] | None = None
    # A variant's own evaluation, replacing the default for its output kind (e.g. InfoGAN's code
    # accuracy, StarGAN's per-domain scores): (generator, cfg, dataset, eval classifier or None,
    # the classifier's features of real images or None, the run directory, where it may cache what
    # it trains for its scores) -> the scores of one checkpoint.
    evaluate: Callable[[Any, Any, Any, Any, Any, Path], dict[str, Any]] | None = None
    # A variant's own sample grid, replacing the default layout: (cfg, run) -> uint8 HxWx3, where
    # run(feeds) is the generator (eval mode, no grad) on a dict of CPU tensors named as its inputs.
    sample_grid: Callable[[Any, Callable[[dict[str, "torch.Tensor"]], "torch.Tensor"]], Any] | None = None
    generator_key: str = "G"
    papers: tuple[str, ...] = field(default_factory=tuple)

    @property
    def trainable(self) -> bool:
        """Whether `python -m train` can train it (it has networks, a dataset and a step)."""
        return self.step is not None


def _load_builtin_variants() -> None:
    # Variants are imported explicitly (torchvision's models/_api.py pattern), once.
    import train.variants  # noqa: F401


_REGISTRY: Registry[Variant] = Registry("variant", _load_builtin_variants)
register, get, names = _REGISTRY.register, _REGISTRY.get, _REGISTRY.names
