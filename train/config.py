"""Config dataclasses are the single source of command-line flags, presets and config.json.

A field's `metadata["help"]` is its --help text; `metadata["choices"]` its choices. Each
variant config subclasses `TrainConfig` and sets `presets`, a ClassVar of named overrides.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from train.errors import UsageError


def opt(default: Any, help: str, **kw: Any) -> Any:
    """A config field with its help text (and optional `choices`)."""
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Settings every variant shares: the loop, its I/O and the optimiser defaults."""

    steps: int = opt(5000, "generator updates to train for")
    batch_size: int = opt(64, "images (or points) per step")
    lr_g: float = opt(2e-4, "generator learning rate (Adam)")
    lr_d: float = opt(2e-4, "discriminator/critic learning rate (Adam)")
    beta1: float = opt(0.5, "Adam beta1")
    beta2: float = opt(0.999, "Adam beta2")
    seed: int = opt(0, "random seed: the same seed and settings give the same run on CPU")
    data: str | None = opt(None, "dataset folder; default: the variant's built-in dataset")
    sample_every: int = opt(200, "steps between sample grids (samples/step_*.png)")
    checkpoint_every: int = opt(500, "steps between checkpoints")
    log_every: int = opt(10, "steps between metrics.jsonl lines")
    eval_samples: int = opt(2000, "generated samples used by the final evaluation")
    eval_classifier_steps: int = opt(600, "training steps of the evaluation classifier (noise-to-image variants)")
    num_workers: int = opt(0, "DataLoader worker processes")
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda, cuda:N")
    amp: bool = opt(True, "mixed precision on CUDA: bf16 autocast, or fp16 with loss scaling where bf16 is missing")
    cpu_amp: bool = opt(False, "bf16 autocast on CPU too: about 1.7x faster CycleGAN steps on CPUs with AVX512-BF16 "
                               "or AMX (slower on CPUs without); losses move by about 1%% from fp32")
    tensorboard: bool = opt(False, "also write TensorBoard logs (needs tensorboard)")

    presets: ClassVar[dict[str, dict[str, Any]]] = {}


def _field_type(cls: type, f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(cls)
    return hints[f.name]


def _parse_optional(kind: Any) -> tuple[Any, bool]:
    """(inner type, is_optional) of `X | None`."""
    args = typing.get_args(kind)
    if args and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return inner[0], True
    return kind, False


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One --flag per config field, with its default and help (defaults left unset)."""
    for f in dataclasses.fields(cls):
        kind, _ = _parse_optional(_field_type(cls, f))
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        in_presets = "".join(f"; {name}: {vals[f.name]}" for name, vals in cls.presets.items() if f.name in vals)
        help_text = f"{f.metadata.get('help', '')} (default: {default}{in_presets})"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(kind) is tuple:
            elem = typing.get_args(kind)[0]
            parser.add_argument(flag, type=elem, nargs="+", metavar="X", **kw)
        else:
            parser.add_argument(flag, type=kind, metavar=f.name.upper(), **kw)


def resolve(cls: type, preset: str | None = None, overrides: dict[str, Any] | None = None) -> Any:
    """Defaults, then the preset, then explicit overrides."""
    values: dict[str, Any] = {}
    if preset:
        if preset not in cls.presets:
            valid = ", ".join(cls.presets) or "none"
            raise UsageError(f"unknown preset {preset!r}; choose one of: {valid}")
        values.update(cls.presets[preset])
    values.update(overrides or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise UsageError(f"unknown setting(s) for {cls.__name__}: {', '.join(sorted(unknown))}")
    for f in dataclasses.fields(cls):
        if f.name in values and typing.get_origin(_field_type(cls, f)) is tuple:
            values[f.name] = tuple(values[f.name])
    return cls(**values)


def to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready dict of every setting."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Rebuild a config saved by `to_dict`; settings unknown to this version are an error."""
    return resolve(cls, None, d)


def diff_from_defaults(cfg: Any) -> dict[str, Any]:
    """Settings that differ from the class defaults (printed at start-up)."""
    default = to_dict(type(cfg)())
    return {k: v for k, v in to_dict(cfg).items() if default.get(k) != v}
