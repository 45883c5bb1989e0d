"""A user's own PyTorch generator, deployed but not trained here: built by the factory its config names.

`python -m export --module pkg.mod:factory --weights FILE --input image:3xHxW` (export/importers/module.py)
saves such a generator as an ordinary generator file of this variant. Its config holds the factory and
the signature the user stated, so export's parity, infer and bench treat it like any other generator.

Building one imports the factory's module and calls it: code named by a file. So the builder runs only
factories this process was told to trust, with `trust()` (export does, for the one its user typed) or
the GANRT_TRUSTED_FACTORIES environment variable (comma-separated): opening an untrusted artifact on the
torch backend never runs code that its manifest names. The ONNX and TensorRT backends import nothing.
"""
from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from ganrt.config import opt
from ganrt.errors import UsageError
from ganrt.signature import TensorSpec
from train.data import PhotoToSketch
from train.registry import Variant, register

TRUST_ENV = "GANRT_TRUSTED_FACTORIES"
SIGNATURE_HELP = ("NAME:CxHxW[:LO,HI] for an image (letters for dynamic sizes, range default -1,1), "
                  "NAME:noise:D[xHxW] for N(0, 1) noise, NAME:label:N for class indices 0..N-1, "
                  "NAME:code:D[:LO,HI] for D continuous codes (range default -1,1)")
_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_DIM = re.compile(r"^([1-9]\d*|[A-Za-z]\w*)$")
_trusted: set[str] = set()


@dataclass
class ModuleConfig:
    """The factory that builds the generator and the signature its user stated."""

    factory: str = opt("", "the generator's factory, package.module:function, called with no arguments")
    inputs: tuple[str, ...] = opt((), f"the inputs, in call order: {SIGNATURE_HELP}")
    output: str = opt("image:3xHxW", "the output, in the same form")
    size: int = opt(256, "image side of the feeds export calibrates and checks parity on (dynamic-size images)")
    size_multiple: int = opt(1, "image height and width must be multiples of this (e.g. 4 after two stride-2 stages)")

    presets: ClassVar[dict[str, dict[str, Any]]] = {}


def trust(factory: str) -> None:
    """Let this process build generators with `factory` (its user named it)."""
    _trusted.add(factory)


def load_factory(path: str) -> Callable[[], Any]:
    """The callable `package.module:function` names, if trusted; UsageError otherwise."""
    if not _FACTORY.match(path or ""):
        raise UsageError(f"--module {path!r}: expected package.module:function")
    trusted = _trusted | {p.strip() for p in os.environ.get(TRUST_ENV, "").split(",") if p.strip()}
    if path not in trusted:
        raise UsageError(f"this generator is built by {path}, which is code named by a file: building it needs "
                         f"{TRUST_ENV}={path} (the ONNX backends run the exported models without it)")
    module_name, attr = path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(f"--module {path}: cannot import {module_name}: {e}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UsageError(f"--module {path}: {module_name} has no callable {attr!r}")
    return factory


def build(cfg: ModuleConfig) -> nn.Module:
    """Call the trusted factory; its module gets the stated size multiple (export reads it)."""
    try:
        generator = load_factory(cfg.factory)()
    except TypeError as e:
        raise UsageError(f"--module {cfg.factory}: the factory must build the generator with no arguments: "
                         f"{e}") from None
    if not isinstance(generator, nn.Module):
        raise UsageError(f"--module {cfg.factory} returned a {type(generator).__name__}, not a torch.nn.Module")
    generator.size_multiple = cfg.size_multiple
    return generator


def parse_spec(text: str, where: str = "--input") -> TensorSpec:
    """One stated tensor (see SIGNATURE_HELP) as a TensorSpec with a dynamic batch."""
    parts = text.split(":")
    name = parts[0]
    if not re.match(r"^[A-Za-z_]\w*$", name) or len(parts) < 2:
        raise UsageError(f"{where} {text!r}: expected {SIGNATURE_HELP}")
    if parts[1] == "code":
        if len(parts) not in (3, 4) or len(dims := _static_dims(parts[2], text, where)) != 1:
            raise UsageError(f"{where} {text!r}: expected NAME:code:D[:LO,HI]")
        value_range = _range(parts[3], text, where) if len(parts) == 4 else (-1.0, 1.0)
        return TensorSpec(name, (None, dims[0]), "float32", value_range, "code")
    if parts[1] in ("noise", "label"):
        if len(parts) != 3:
            raise UsageError(f"{where} {text!r}: expected NAME:{parts[1]}:{'D' if parts[1] == 'noise' else 'N'}")
        dims = _static_dims(parts[2], text, where)
        if parts[1] == "label":
            if len(dims) != 1:
                raise UsageError(f"{where} {text!r}: a label input takes one number, the class count")
            return TensorSpec(name, (None,), "int64", None, "label", num_classes=dims[0])
        return TensorSpec(name, (None, *dims), "float32", None, "noise")
    if len(parts) > 3:
        raise UsageError(f"{where} {text!r}: expected NAME:CxHxW[:LO,HI]")
    dims = parts[1].split("x")
    if len(dims) != 3 or not all(_DIM.match(d) for d in dims) or not dims[0].isdigit() or not 1 <= int(dims[0]) <= 4:
        raise UsageError(f"{where} {text!r}: an image is CxHxW with 1 to 4 channels, H and W numbers or letters")
    shape = (None, int(dims[0]), *(int(d) if d.isdigit() else None for d in dims[1:]))
    return TensorSpec(name, shape, "float32", _range(parts[2], text, where) if len(parts) == 3 else (-1.0, 1.0))


def _static_dims(text: str, spec: str, where: str) -> tuple[int, ...]:
    dims = text.split("x")
    if not all(d.isdigit() and int(d) > 0 for d in dims):
        raise UsageError(f"{where} {spec!r}: {text!r} must be positive numbers joined by x")
    return tuple(int(d) for d in dims)


def _range(text: str, spec: str, where: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{where} {spec!r}: the range is LO,HI, e.g. -1,1 or 0,1") from None
    if not lo < hi:
        raise UsageError(f"{where} {spec!r}: the range needs LO < HI")
    return lo, hi


def inputs(cfg: ModuleConfig) -> list[TensorSpec]:
    """The stated inputs, in call order."""
    if not cfg.inputs:
        raise UsageError(f"state the generator's inputs, e.g. --input image:3xHxW ({SIGNATURE_HELP})")
    return [parse_spec(t) for t in cfg.inputs]


def sample_feeds(cfg: ModuleConfig, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Feeds for calibration and parity: held-out photo crops for square RGB images, else random draws."""
    feeds = {}
    for spec in inputs(cfg):
        if spec.kind == "label":
            feeds[spec.name] = torch.randint(0, spec.num_classes or 1, (n,), generator=generator)
        elif spec.kind == "noise":
            feeds[spec.name] = torch.randn((n, *spec.shape[1:]), generator=generator)
        elif spec.kind == "code":
            lo, hi = spec.range or (-1.0, 1.0)
            feeds[spec.name] = torch.rand((n, *spec.shape[1:]), generator=generator) * (hi - lo) + lo
        else:
            feeds[spec.name] = _images(spec, cfg.size, n, generator)
    return feeds


def _images(spec: TensorSpec, size: int, n: int, generator: torch.Generator) -> torch.Tensor:
    channels, h, w = spec.shape[1], spec.shape[2] or size, spec.shape[3] or size
    lo, hi = spec.range or (-1.0, 1.0)
    if channels == 3 and h == w:
        # Real photographs calibrate int8 far better than noise does (the built-in held-out crops).
        unit = (PhotoToSketch(n=n, size=h, split="test").eval_pairs(n)[0] + 1) / 2
    else:
        unit = torch.rand((n, channels, h, w), generator=generator)
    return unit * (hi - lo) + lo


register(Variant(
    name="module",
    summary="A user's own PyTorch generator, built by the factory its config names (export and inference only)",
    config=ModuleConfig,
    generator=build,
    inputs=inputs,
    output=lambda c: parse_spec(c.output, "--output"),
    sample_feeds=sample_feeds,
))
