"""Any PyTorch generator: `python -m export --module pkg.mod:factory --weights FILE --input image:3xHxW`.

The factory builds the network (no arguments), the weights load strictly into it, and the user
states its signature, which becomes the artifact's inputs and outputs (variant "module",
train/variants/module.py). The legacy exporter traces one forward pass, so a branch on tensor
values would be frozen into the graph: the trace's own report of one refuses the export here.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from export.importers.load import is_torch_file, load_state_dict
from export.source import Source
from ganrt import config as config_mod
from ganrt.artifact import sha256_of
from ganrt.errors import UsageError
from train import checkpoint as ckpt
from train import registry
from train.variants.module import ModuleConfig, parse_spec, trust

if TYPE_CHECKING:
    from export.options import ExportOptions

log = logging.getLogger("ganrt.export")

MODULE_VARIANT = "module"
DEFAULT_SIZE = 256
# What the tracer says when Python code reads a tensor's value; a bool means a branch on data.
CONTROL_FLOW = "Python boolean"


def default_output(inputs: tuple[str, ...]) -> str:
    """An image output shaped like the first image input (a translator's usual signature)."""
    images = [s for s in (parse_spec(t) for t in inputs) if s.kind == "image"]
    if not images:
        raise UsageError("--output is needed when no input is an image (e.g. --output image:3x64x64)")
    c, h, w = images[0].shape[1:]
    return f"image:{c}x{h or 'H'}x{w or 'W'}"


def module_source(options: "ExportOptions") -> Source:
    """Build, load and check the user's generator; UsageError for anything that cannot be honoured."""
    factory, source, size = options.module or "", options.source, options.size
    if source is not None:
        raise UsageError(f"--module {factory} takes its weights from --weights, not from SOURCE {source!r}")
    if options.weights is None:
        raise UsageError(f"--module {factory} needs --weights FILE (.safetensors or a .pth state_dict)")
    if not options.input:
        raise UsageError(f"--module {factory} needs its signature: --input NAME:CxHxW ... (see --help)")
    trust(factory)  # the user named it on the command line or in the API call
    cfg = ModuleConfig(factory=factory, inputs=tuple(options.input),
                       output=options.output or default_output(tuple(options.input)),
                       size=size[0] if size else DEFAULT_SIZE, size_multiple=options.size_multiple)
    variant = registry.get(MODULE_VARIANT)
    inputs = variant.inputs(cfg)
    variant.output(cfg)  # checks the stated output
    generator = ckpt.build_generator(MODULE_VARIANT, config_mod.to_dict(cfg))
    weights = Path(options.weights)
    ckpt.load_into(generator, _read_weights(weights), "", weights)
    refuse_data_dependent_flow(generator, variant.sample_feeds(cfg, 1, torch.Generator().manual_seed(0)),
                               [s.name for s in inputs], factory)
    provenance = {"import": {"layout": MODULE_VARIANT, "project": factory, "class": type(generator).__name__,
                             "licence": "not stated (the user's own generator)", "mode": "eval"}}
    name = f"module-{factory.rpartition(':')[2]}"
    return Source(variant, cfg, generator, weights, False, 0, sha256_of(weights), name, provenance)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UsageError(f"--weights {path}: no such file")
    if is_torch_file(path):
        return load_state_dict(path)
    return ckpt.read_weights(path)[0]


def refuse_data_dependent_flow(generator: nn.Module, feeds: dict[str, torch.Tensor], names: list[str],
                               factory: str) -> None:
    """Trace one forward pass as the exporter will; a branch on tensor values is a UsageError naming its line."""
    args = tuple(feeds[n] for n in names)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        try:
            torch.jit.trace(generator, args, check_trace=False)
        except Exception as e:  # the tracer raises many types for code it cannot follow
            raise UsageError(f"--module {factory}: its forward cannot be traced for export: "
                             f"{str(e).splitlines()[0][:200]}") from None
    notes = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    for w in notes:
        if CONTROL_FLOW in str(w.message):
            raise UsageError(f"--module {factory}: its forward branches on tensor values ({w.filename}:{w.lineno}); "
                             f"an exported graph would keep only the branch taken for the example input. Write the "
                             f"branch as tensor operations (torch.where) or remove it")
    for w in notes:
        log.warning("      tracer: %s:%d: %s (the parity check at other sizes shows whether it matters)",
                    w.filename, w.lineno, str(w.message).splitlines()[0][:160])
