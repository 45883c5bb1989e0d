"""The one registry of GAN variants, shared by train, export, infer and bench.

Each variant module in `train/variants/` registers one `Variant`. The other stages never
special-case a variant by name: they read its input signature and output spec from here
(or from an artifact's manifest, which is written from here).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ganrt.errors import UsageError
from ganrt.signature import TensorSpec

if TYPE_CHECKING:
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
    generator_key: str = "G"
    papers: tuple[str, ...] = field(default_factory=tuple)

    @property
    def trainable(self) -> bool:
        """Whether `python -m train` can train it (it has networks, a dataset and a step)."""
        return self.step is not None


_REGISTRY: dict[str, Variant] = {}


def register(variant: Variant) -> Variant:
    """Add a variant; a duplicate name is a programming error."""
    if variant.name in _REGISTRY:
        raise ValueError(f"variant {variant.name!r} is already registered")
    _REGISTRY[variant.name] = variant
    return variant


def get(name: str) -> Variant:
    """Look a variant up by name; an unknown name lists the valid ones."""
    _load_builtin_variants()
    try:
        return _REGISTRY[name]
    except KeyError:
        valid = ", ".join(sorted(_REGISTRY))
        raise UsageError(f"unknown variant {name!r}; choose one of: {valid}") from None


def names() -> list[str]:
    """Registered variant names, in registration order."""
    _load_builtin_variants()
    return list(_REGISTRY)


def _load_builtin_variants() -> None:
    # Variants are imported explicitly (torchvision's models/_api.py pattern), once.
    import train.variants  # noqa: F401
