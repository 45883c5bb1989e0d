"""Generators trained elsewhere, as export sources: `python -m export FILE.pth`, `junyanz:...`, `--module`.

A `.pth` state_dict is read with `torch.load(weights_only=True)`, its layout detected from its
keys and shapes (`layouts`: junyanz's ResnetGenerator and UnetGenerator, PyTorch-GAN's
GeneratorResNet and GeneratorUNet), and its tensors placed onto the ganrt generator that the
layout's variant config builds (`placement`: every key consumed, every shape checked). The
result is an ordinary ganrt generator: export saves it as `generator.safetensors` with its
variant and config, so parity, infer and bench treat it like one trained here. Any other
PyTorch generator comes in through `--module` (`module`), with the signature its user states.

Modes (`--mode`): junyanz's test.py runs pix2pix with batch statistics and dropout on unless
`--eval`. An exported graph is deterministic and handles batches, so `train` means: each batch
norm normalises each image by that image's own statistics (what test.py computes at its batch
size of 1, now independent of the batch), and dropout stays off (its per-layer expectation).
`eval` (the default) uses the running statistics. The manifest records the mode.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from export.importers import layouts
from export.importers.layouts import NotThisLayout
from export.importers.load import is_torch_file, load_state_dict
from export.importers.placement import PlacementError, place
from export.provenance import sha256_of
from export.source import Source
from ganrt import config as config_mod
from ganrt.config import opt
from ganrt.errors import CheckpointError, UsageError
from train import registry
from train.translation import GENERATOR_NORMS
from train.variants.module import SIGNATURE_HELP

log = logging.getLogger("ganrt.export")

MODES = ("eval", "train")
DEFAULT_IMPORT_SIZE = 256  # junyanz's and PyTorch-GAN's training crop
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass
class ImportOptions:
    """How to read a generator trained elsewhere (each field is a `python -m export` flag)."""

    layout: str | None = opt(None, "the layout of a .pth SOURCE when detection should not choose it",
                             choices=tuple(layouts.names()))
    norm: str | None = opt(None, "the generator's norm, overriding what the .pth keys say", choices=GENERATOR_NORMS)
    mode: str = opt("eval", "eval: batch norms use their running statistics; train: each image is normalised by "
                            "its own statistics, as junyanz's test.py without --eval computes (dropout stays off: "
                            "a graph is deterministic)", choices=MODES)
    image_range: tuple[float, float] | None = opt(None, "the value range a .pth generator's input images are scaled "
                                                        "to, LO HI; none given: -1 1, as both projects normalise")
    module: str | None = opt(None, "export any PyTorch generator: package.module:factory, called with no arguments")
    weights: Path | None = opt(None, "with --module: its weights, a .safetensors or a .pth state_dict")
    input: tuple[str, ...] = opt((), f"with --module: its inputs in call order, {SIGNATURE_HELP}")
    output: str | None = opt(None, "with --module: its output, same form; none given: an image with the channels "
                                   "and size of the first image input")
    size_multiple: int = opt(1, "with --module: image height and width must be multiples of this")


def imported_source(source: str | None, options: ImportOptions, size: tuple[int, int] | None) -> Source | None:
    """The Source for a foreign generator (a .pth, a pretrained name, --module); None for ganrt's own sources."""
    from export.importers import pretrained
    from export.importers.module import module_source

    if options.image_range is not None:
        lo, hi = _range(options.image_range)
        options.image_range = (lo, hi)
    if options.module is not None:
        return module_source(source, options, size)
    _refuse_module_flags(options)
    if source is not None and pretrained.is_pretrained_name(source):
        path, download = pretrained.fetch(source)
        return import_file(path, options, size, default_name=pretrained.artifact_name(source), download=download)
    if source is not None and Path(source).is_file() and is_torch_file(Path(source)):
        return import_file(Path(source), options, size)
    given = [f"--{f.replace('_', '-')}" for f in ("layout", "norm", "image_range") if getattr(options, f) is not None]
    given += ["--mode"] * (options.mode != "eval")
    if given:
        raise UsageError(f"{', '.join(given)} apply to .pth generators trained elsewhere; {source or 'the default source'} "
                         f"is a ganrt source")
    return None


def _range(values: tuple[float, ...]) -> tuple[float, float]:
    if len(values) != 2 or not values[0] < values[1]:
        raise UsageError(f"--image-range {' '.join(f'{v:g}' for v in values)}: expected LO HI with LO < HI, e.g. -1 1")
    return float(values[0]), float(values[1])


def _refuse_module_flags(options: ImportOptions) -> None:
    given = [f"--{f.replace('_', '-')}" for f in ("weights", "output") if getattr(options, f) is not None]
    given += ["--input"] * bool(options.input) + ["--size-multiple"] * (options.size_multiple != 1)
    if given:
        raise UsageError(f"{', '.join(given)} go with --module package.module:factory")


def detect(state: layouts.State, forced: str | None, path: Path) -> tuple[layouts.Layout, layouts.Plan]:
    """The layout whose signature the keys carry (or the forced one) and its plan; CheckpointError otherwise."""
    candidates = [layouts.get(forced)] if forced else [layouts.get(n) for n in layouts.names()]
    for layout in candidates:
        try:
            return layout, layout.plan(state)
        except NotThisLayout as e:
            if forced:
                raise CheckpointError(f"{path}: --layout {forced}: {e}; cannot place {', '.join(e.unplaced[:3])}") \
                    from None
        except PlacementError as e:
            raise CheckpointError(f"{path} looks like a {layout.name} generator but does not fit: {e}") from None
    first = ", ".join(list(state)[:3])
    raise CheckpointError(f"{path} is not a generator layout ganrt knows ({', '.join(layouts.names())}): none of "
                          f"them places its first keys {first}; --layout NAME forces one, and --module exports "
                          f"any other PyTorch generator")


def import_file(path: Path, options: ImportOptions, size: tuple[int, int] | None, default_name: str | None = None,
                download: dict[str, str] | None = None) -> Source:
    """Load a .pth generator of a known layout as a ganrt generator; CheckpointError names what does not fit."""
    state = load_state_dict(path)
    layout, plan = detect(state, options.layout, path)
    variant = registry.get(plan.variant)
    config = dict(plan.config)
    if options.norm is not None:
        config["norm"] = options.norm
    if options.mode == "train" and config["norm"] == "batch":
        config["norm"] = "instance-affine"  # per-image statistics, learned scale and shift (see the module doc)
    if options.image_range is not None:
        config["input_range"] = tuple(options.image_range)
    if "size" not in config:  # a ResNet runs at any size: calibrate where it will be exported
        config["size"] = size[0] if size else DEFAULT_IMPORT_SIZE
    cfg = config_mod.resolve(variant.config, None, config)
    try:
        generator = variant.generator(cfg)
    except ValueError as e:
        raise CheckpointError(f"{path}: a {variant.name} generator cannot be built from it: {e}") from None
    try:
        placement = place(generator, state, plan.layers, f"{path} as a {layout.name} generator")
    except PlacementError as e:
        hint = " (--norm overrides the norm read off the keys)" if options.norm else ""
        raise CheckpointError(f"{e}{hint}") from None
    log.info("      %s: a %s generator (%s); %d tensors placed%s", path, layout.name,
             ", ".join(f"{k} {v}" for k, v in plan.detected.items()), placement.copied,
             f", {len(placement.dropped)} unused statistics dropped" if placement.dropped else "")
    if options.mode == "train" and plan.config["norm"] != "batch":
        log.info("      --mode train: this generator has no batch norm, so it computes what eval mode does")
    provenance = {"import": {
        "layout": layout.name, "project": layout.project, "class": layout.summary, "licence": layout.licence,
        "mode": options.mode, "detected": plan.detected, "dropped_statistics": len(placement.dropped),
        **({"download": download} if download else {}),
    }}
    name = default_name or _NAME_CHARS.sub("-", f"{path.resolve().parent.name}-{path.stem}").strip("-._+")
    return Source(variant, cfg, generator.eval(), path, False, 0, sha256_of(path), name or variant.name, provenance)
