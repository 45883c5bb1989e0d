"""Placing a published state_dict onto a ganrt generator: every key consumed, every shape checked.

A layout lists the file's weighted layers in forward order (`Layer`: key prefix and kind), as
its project's code builds them; ganrt's generator, built with the matching options, has the same
weighted layers in the same order. `place` pairs them one by one and copies each tensor, so a
file that differs anywhere (a missing or extra key, another shape) is refused, naming the key.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ganrt.errors import CheckpointError

KINDS = ("conv", "convT", "norm")
# Running statistics a file may hold for a norm that ganrt's layer does not keep: the buffers that
# junyanz's loader strips from InstanceNorm layers (checkpoints saved before PyTorch 0.4 kept them),
# and a batch norm's statistics when it is exported in train mode (per-image statistics instead).
STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
SHOWN = 3


@dataclass(frozen=True)
class Layer:
    """One weighted layer of a published network: its state_dict key prefix and what it is."""

    prefix: str
    kind: str


class PlacementError(CheckpointError):
    """A state_dict that does not fit a layout; `placed` of its keys did (to rank candidate layouts)."""

    def __init__(self, message: str, placed: int = 0, unplaced: list[str] | None = None) -> None:
        super().__init__(message)
        self.placed = placed
        self.unplaced = unplaced or []


@dataclass
class Placement:
    """What `place` did with a file's keys."""

    copied: int
    dropped: list[str] = field(default_factory=list)
    zero_filled: list[str] = field(default_factory=list)


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.ConvTranspose2d):
        return "convT"
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)):
        return "norm"
    return None


def weighted_layers(net: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """(name, module, kind) of the net's convs, transposed convs and norms, in registration (= forward) order."""
    return [(name, m, kind) for name, m in net.named_modules() if (kind := _kind(m)) is not None]


def _keys(keys: list[str]) -> str:
    more = f" (and {len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def place(net: nn.Module, state: dict[str, torch.Tensor], layers: list[Layer], what: str) -> Placement:
    """Load `state` into `net` through the layer pairing; PlacementError names the first key that does not fit."""
    ours = weighted_layers(net)
    if len(ours) != len(layers):
        raise PlacementError(f"{what}: the layout lists {len(layers)} weighted layers, ganrt's generator has "
                             f"{len(ours)}")
    loaded: dict[str, torch.Tensor] = {}
    consumed: set[str] = set()
    missing: list[str] = []
    wrong: list[str] = []
    zero_filled: list[str] = []
    stat_free: set[str] = set()
    for layer, (name, module, kind) in zip(layers, ours):
        if layer.kind != kind:
            raise PlacementError(f"{what}: {layer.prefix} is a {layer.kind} in the layout but {name} is a {kind} "
                                 f"in ganrt's generator")
        if kind == "norm" and not getattr(module, "track_running_stats", False):
            stat_free.add(layer.prefix)
        for tensor_name, ours_tensor in module.state_dict().items():
            key = f"{layer.prefix}.{tensor_name}"
            theirs = state.get(key)
            if theirs is None and tensor_name == "num_batches_tracked":
                # Files saved before PyTorch 0.4.1 lack this counter; it only steers training updates.
                loaded[f"{name}.{tensor_name}"] = torch.zeros_like(ours_tensor)
                zero_filled.append(key)
            elif theirs is None:
                missing.append(key)
            elif tuple(theirs.shape) != tuple(ours_tensor.shape):
                wrong.append(f"{key} is {tuple(theirs.shape)}, not {tuple(ours_tensor.shape)}")
                consumed.add(key)
            else:
                loaded[f"{name}.{tensor_name}"] = theirs.to(ours_tensor.dtype)
                consumed.add(key)
    dropped = [k for k in state if k not in consumed and k.rpartition(".")[0] in stat_free
               and k.rpartition(".")[2] in STATISTICS]
    unplaced = [k for k in state if k not in consumed and k not in dropped]
    placed = len(consumed) - len(wrong)
    if wrong:
        raise PlacementError(f"{what}: wrong shapes: {_keys(wrong)}", placed, unplaced)
    if missing:
        raise PlacementError(f"{what}: the file lacks {_keys(missing)}", placed, unplaced)
    if unplaced:
        raise PlacementError(f"{what}: cannot place {len(unplaced)} of the file's keys: {_keys(unplaced)}",
                             placed, unplaced)
    net.load_state_dict(loaded, strict=True)
    return Placement(len(consumed), dropped, zero_filled)
