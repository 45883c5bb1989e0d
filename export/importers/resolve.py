"""The hook into export's source resolution: a foreign generator file, a published name, or --module."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from export.importers import layouts, pretrained
from export.importers.layouts import NotThisLayout
from export.importers.load import is_torch_file, load_state_dict
from export.importers.module import module_source
from export.importers.placement import PlacementError, place
from export.source import Source
from ganrt import config as config_mod
from ganrt.artifact import sha256_of
from ganrt.errors import CheckpointError, UsageError
from train import checkpoint as ckpt
from train import registry

if TYPE_CHECKING:
    from export.options import ExportOptions

log = logging.getLogger("ganrt.export")

DEFAULT_IMPORT_SIZE = 256  # junyanz's and PyTorch-GAN's training crop


def imported_source(options: "ExportOptions") -> Source | None:
    """The Source for a foreign generator (a .pth, a pretrained name, --module); None for ganrt's own sources."""
    source = options.source
    if options.module is not None:
        return module_source(options)
    _refuse_module_flags(options)
    if source is not None and pretrained.is_pretrained_name(source):
        path, download = pretrained.fetch(source)
        return import_file(path, options, default_name=pretrained.artifact_name(source), download=download)
    if source is not None and Path(source).is_file() and is_torch_file(Path(source)):
        return import_file(Path(source), options)
    given = [f"--{f.replace('_', '-')}" for f in ("layout", "norm", "image_range") if getattr(options, f) is not None]
    given += ["--mode"] * (options.mode != "eval")
    if given:
        raise UsageError(f"{', '.join(given)} apply to .pth generators trained elsewhere; "
                         f"{source or 'the default source'} is a ganrt source")
    return None


def _refuse_module_flags(options: "ExportOptions") -> None:
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


def import_file(path: Path, options: "ExportOptions", default_name: str | None = None,
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
        config["size"] = options.size[0] if options.size else DEFAULT_IMPORT_SIZE
    cfg = config_mod.from_dict(variant.config, config)
    generator = ckpt.build_generator(variant.name, config_mod.to_dict(cfg))
    try:
        placement = place(generator, state, plan.layers, f"{path} as a {layout.name} generator")
    except PlacementError as e:
        hint = f" (--norm {options.norm} was given; the keys say {plan.config['norm']})" if options.norm else ""
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
    # checkpoints/horse2zebra/latest_net_G.pth -> horse2zebra-latest_net_G (export makes names valid)
    name = default_name or f"{path.resolve().parent.name}-{path.stem}"
    return Source(variant, cfg, generator, path, False, 0, sha256_of(path), name, provenance)
