"""Checkpoints: weights in safetensors, resumable state via torch.save (weights_only-safe).

A checkpoint at step N is the pair `checkpoints/step_N.safetensors` (every network, keys
prefixed "<net>.") and `checkpoints/step_N.state.pt` (optimisers, RNG, step).

Completeness rule: the state file is the checkpoint's marker. The weights are written first,
the state last, each atomically (a temp file, then a rename), so a checkpoint is complete iff
its state file exists. A write that fails (a full disk) removes the weights it left, and a
kill between the two renames leaves weights without a state file: `remove_incomplete` deletes
those (and the temp files of interrupted writes) when a run is resumed. Pruning deletes the
marker first, so a kill while pruning leaves the same kind of debris, never a half checkpoint
that looks whole.

Everything is serialised in memory and written with Python's own file I/O, so a full disk is
an OSError with errno ENOSPC (`is_disk_full`) rather than a library's own error text.
`generator.safetensors` holds only the deployed generator with the variant and config in its
metadata: it is all export and inference need, and `build_generator` is how every stage
rebuilds a generator from such a file (or a checkpoint).
"""
from __future__ import annotations

import errno
import io
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ganrt import config as config_mod
from ganrt.artifact import GENERATOR_FILE
from ganrt.atomic import atomic_write_bytes, remove_temp_files
from ganrt.errors import CheckpointError, UsageError
from train import registry

_STEP_RE = re.compile(r"step_(\d+)\.safetensors$")
GENERATOR_FORMAT = "ganrt-generator/1"
STATE_SUFFIX = ".state.pt"


def _flat_state(nets: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.detach().cpu().contiguous() for name, net in nets.items() for k, v in net.state_dict().items()}


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` is a write that failed for want of space (or of quota)."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def save_weights(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Atomically write a safetensors file."""
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata=metadata))


def _state_path(weights: Path) -> Path:
    return weights.with_suffix(STATE_SUFFIX)


def save_checkpoint(ckpt_dir: Path, step: int, nets: dict[str, nn.Module], state: dict[str, Any], meta: dict[str, str]) -> Path:
    """Write the checkpoint for `step`, weights then the state that marks it complete; returns the weights path."""
    weights = ckpt_dir / f"step_{step:07d}.safetensors"
    marker = _state_path(weights)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        save_weights(weights, _flat_state(nets), {**meta, "step": str(step)})
        atomic_write_bytes(marker, buffer.getvalue())
    except BaseException:
        if not marker.exists():  # weights without their state are no checkpoint: do not leave them
            weights.unlink(missing_ok=True)
        raise
    return weights


def remove_incomplete(ckpt_dir: Path) -> list[Path]:
    """Delete what interrupted writes left in `ckpt_dir`: temp files and weights without a state file."""
    removed = remove_temp_files(ckpt_dir) if ckpt_dir.is_dir() else []
    for weights in ckpt_dir.glob("step_*.safetensors"):
        if _STEP_RE.search(weights.name) and not _state_path(weights).exists():
            weights.unlink(missing_ok=True)
            removed.append(weights)
    return removed


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints as (step, weights path), oldest first."""
    found = []
    for p in ckpt_dir.glob("step_*.safetensors"):
        m = _STEP_RE.search(p.name)
        if m and _state_path(p).exists():
            found.append((int(m.group(1)), p))
    return sorted(found)


def run_weights(run_dir: Path) -> Path:
    """A run's deployable weights: its generator.safetensors, else (an unfinished run) its latest checkpoint."""
    generator_file = run_dir / GENERATOR_FILE
    if generator_file.is_file():
        return generator_file
    found = list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise UsageError(f"{run_dir} has neither {GENERATOR_FILE} nor a complete checkpoint: an empty run")
    return found[-1][1]


def prune_checkpoints(ckpt_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (step 0 stays: evaluation compares with it)."""
    for step, weights in list_checkpoints(ckpt_dir)[:-keep]:
        if step != 0:
            _state_path(weights).unlink(missing_ok=True)  # the marker first (see the module doc)
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
    path = _state_path(weights_path)
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
