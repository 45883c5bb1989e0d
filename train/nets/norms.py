"""Normalisation layers chosen by name, so every network spells the choice the same way."""

from __future__ import annotations

from torch import nn

NORM_KINDS: tuple[str, ...] = ("batch", "instance", "instance-affine", "layer", "none")


def check_norm(kind: str) -> str:
    """Return ``kind`` if it names a known normalisation, else raise ValueError."""
    if kind not in NORM_KINDS:
        raise ValueError(f"unknown norm {kind!r}; valid kinds: {', '.join(NORM_KINDS)}")
    return kind


def norm_layer(kind: str, channels: int, dims: int = 2) -> nn.Module:
    """Build the normalisation ``kind`` for ``channels`` features of a ``dims``-D signal."""
    check_norm(kind)
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims}")
    if kind == "batch":
        return nn.BatchNorm1d(channels) if dims == 1 else nn.BatchNorm2d(channels)
    if kind == "instance":
        # CycleGAN's default: no affine parameters and no running statistics, so train and
        # eval mode compute the same thing (nothing to go stale in an exported graph).
        cls = nn.InstanceNorm1d if dims == 1 else nn.InstanceNorm2d
        return cls(channels, affine=False, track_running_stats=False)
    if kind == "instance-affine":
        # Per-image statistics with a learned scale and shift: what a batch norm computes in train
        # mode on one image, so an imported batch-norm generator can be exported in that mode.
        cls = nn.InstanceNorm1d if dims == 1 else nn.InstanceNorm2d
        return cls(channels, affine=True, track_running_stats=False)
    if kind == "layer":
        # One group = LayerNorm over (C, H, W) without fixing H and W at build time, which
        # is what the WGAN-GP critic needs (batch norm breaks the per-sample gradient penalty).
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def conv_bias(kind: str) -> bool:
    """Whether a conv feeding norm ``kind`` needs its own bias (no affine shift absorbs it)."""
    # Batch, affine instance and layer norm have a learned shift that makes a preceding bias
    # redundant; affine-free instance norm and "none" do not (CycleGAN uses bias with instance norm).
    return check_norm(kind) not in ("batch", "instance-affine", "layer")
