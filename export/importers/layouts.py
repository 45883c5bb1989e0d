"""The registry of state_dict layouts that export can import (torchvision's registry rules).

A `Layout` recognises its project's key names and reads the hyper-parameters off the keys and
shapes (`plan`), saying which ganrt variant and config rebuild the network and in which order
its weighted layers come. Registering a duplicate name raises; an unknown name lists the valid ones.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from export.importers.placement import Layer, PlacementError
from ganrt.registry import Registry

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Plan:
    """How to rebuild one file: a ganrt variant, its config, and the file's weighted layers in forward order."""

    variant: str
    config: dict[str, Any]
    layers: list[Layer]
    # What detection read off the file (reported in the artifact's provenance and model card).
    detected: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """One published generator class and how its state_dict maps onto ganrt's generators."""

    name: str
    project: str
    summary: str
    licence: str
    # Reads a state_dict; PlacementError when the keys are not this layout's.
    plan: Callable[[State], Plan]


def _load_builtin_layouts() -> None:
    import export.importers.junyanz  # noqa: F401
    import export.importers.pytorch_gan  # noqa: F401


_LAYOUTS: Registry[Layout] = Registry("layout", _load_builtin_layouts)
register, get, names = _LAYOUTS.register, _LAYOUTS.get, _LAYOUTS.names


# ---- helpers the layouts share ---------------------------------------------------------------
class NotThisLayout(PlacementError):
    """The file has none of a layout's signature keys: detection moves on to the next layout."""


def require(state: State, pattern: str, layout: str) -> None:
    """Raise NotThisLayout unless some key matches `pattern` (the layout's signature)."""
    regex = re.compile(pattern)
    if not any(regex.match(k) for k in state):
        raise NotThisLayout(f"not a {layout} file: no key like {pattern}", unplaced=list(state))


def tensor(state: State, key: str, dims: int, layout: str) -> torch.Tensor:
    """state[key], which must exist with `dims` dimensions (else this is not `layout`)."""
    t = state.get(key)
    if t is None or t.dim() != dims:
        got = "absent" if t is None else f"{t.dim()}-D"
        raise PlacementError(f"not a {layout} file: {key} is {got}, expected a {dims}-D tensor",
                             unplaced=[k for k in state if k != key])
    return t


def norm_kind(state: State, prefix: str) -> str:
    """The norm that a file's keys at `prefix` describe: batch (running statistics), instance-affine
    (scale and shift only), or instance (nothing, or only the statistics junyanz's loader strips)."""
    if f"{prefix}.weight" not in state:
        return "instance"
    return "batch" if f"{prefix}.running_mean" in state else "instance-affine"


def indices(state: State, pattern: str) -> list[int]:
    """The sorted distinct integers that `pattern`'s one group matches at the start of the keys."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := regex.match(k))})


def consecutive(found: list[int], start: int, what: str, layout: str) -> int:
    """How many of start, start+1, ... are in `found`, refusing gaps (a block missing from the file)."""
    count = 0
    while start + count in found:
        count += 1
    if set(found) - set(range(start, start + count)):
        raise PlacementError(f"{layout}: {what} are numbered {found}, not consecutively from {start}")
    return count
