"""Checkpoints: weights in safetensors, resumable state via torch.save (weights_only-safe).

A checkpoint at step N is the pair `checkpoints/step_N.safetensors` (every network, keys
prefixed "<net>.") and `checkpoints/step_N.state.pt` (optimisers, RNG, step). Both are
written atomically (temp file + rename), state first, so a checkpoint whose weights file
exists is complete. `generator.safetensors` holds only the deployed generator with the
variant and config in its metadata: it is all export and inference need, and
`build_generator` is how every stage rebuilds a generator from such a file (or a checkpoint).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from ganrt import config as config_mod
from ganrt.atomic import atomic_write
from ganrt.errors import CheckpointError
from train import registry

_STEP_RE = re.compile(r"step_(\d+)\.safetensors$")
GENERATOR_FORMAT = "ganrt-generator/1"


def _flat_state(nets: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.detach().cpu().contiguous() for name, net in nets.items() for k, v in net.state_dict().items()}


def save_weights(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Atomically write a safetensors file."""
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=metadata))


def save_checkpoint(ckpt_dir: Path, step: int, nets: dict[str, nn.Module], state: dict[str, Any], meta: dict[str, str]) -> Path:
    """Write the checkpoint for `step`; returns the weights path."""
    stem = ckpt_dir / f"step_{step:07d}"
    atomic_write(stem.with_suffix(".state.pt"), lambda p: torch.save(state, p))
    weights = stem.with_suffix(".safetensors")
    save_weights(weights, _flat_state(nets), {**meta, "step": str(step)})
    return weights


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints as (step, weights path), oldest first."""
    found = []
    for p in ckpt_dir.glob("step_*.safetensors"):
        m = _STEP_RE.search(p.name)
        if m and p.with_suffix(".state.pt").exists():
            found.append((int(m.group(1)), p))
    return sorted(found)


def prune_checkpoints(ckpt_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (step 0 stays: evaluation compares with it)."""
    for step, weights in list_checkpoints(ckpt_dir)[:-keep]:
        if step != 0:
            weights.with_suffix(".state.pt").unlink(missing_ok=True)
            weights.unlink(missing_ok=True)


def _metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file, with errors that name the file."""
    meta = _metadata(path)
    try:
        return load_file(str(path)), meta
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None


def load_into(net: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, source: Path) -> None:
    """Load `prefix`-ed tensors into `net`, explaining any mismatch in one line."""
    sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    own = net.state_dict()
    missing = sorted(set(own) - set(sub))
    unexpected = sorted(set(sub) - set(own))
    wrong = [k for k in own if k in sub and own[k].shape != sub[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with other shapes (e.g. {k}: file {tuple(sub[k].shape)} vs model {tuple(own[k].shape)})")
        raise CheckpointError(f"checkpoint {source} does not match the model: " + "; ".join(parts))
    net.load_state_dict(sub)


def load_state(weights_path: Path) -> dict[str, Any]:
    """The resumable state beside a weights file, loaded without unpickling arbitrary objects."""
    path = weights_path.with_suffix(".state.pt")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint state not found: {path}") from None
    except Exception as e:  # torch raises several types for corrupt files
        raise CheckpointError(f"cannot read checkpoint state {path}: {e}") from None


def save_generator(path: Path, generator: nn.Module, variant: str, config: dict[str, Any], step: int) -> None:
    """Write the deployable generator with what is needed to rebuild it."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    save_weights(path, tensors, {"variant": variant, "config": json.dumps(config), "step": str(step),
                                 "format": GENERATOR_FORMAT})


def read_generator(path: Path) -> tuple[str, dict[str, Any], int]:
    """(variant name, config dict, step) from a `generator.safetensors` file's metadata."""
    meta = _metadata(path)
    if meta.get("format") != GENERATOR_FORMAT or "variant" not in meta:
        raise CheckpointError(f"{path} is not a ganrt generator file (no variant/config metadata)")
    try:
        return meta["variant"], json.loads(meta["config"]), int(meta.get("step", 0))
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path} has malformed ganrt metadata: {e}") from None


def build_generator(variant: str, config: dict[str, Any], weights: Path | None = None) -> nn.Module:
    """`variant`'s generator built from a saved config, eval mode on the CPU, with `weights` loaded when given.

    `weights` is a generator file (`save_generator`) or a run checkpoint, whose generator
    tensors carry the variant's `generator_key` prefix. Bad configs and weights that do not
    fit are CheckpointErrors (one line, exit 2).
    """
    spec = registry.get(variant)
    cfg = config_mod.from_dict(spec.config, config)
    try:
        generator = spec.generator(cfg)
    except ValueError as e:  # the builders validate their settings
        raise CheckpointError(f"{weights or 'config'}: its config cannot build a {variant} generator: {e}") from None
    if weights is not None:
        tensors, meta = read_weights(weights)
        prefix = "" if meta.get("format") == GENERATOR_FORMAT else f"{spec.generator_key}."
        load_into(generator, tensors, prefix, weights)
    return generator.eval()
