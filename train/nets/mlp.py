"""Fully connected generator and discriminator for the vanilla GAN on 1-D/2-D toy data."""

from __future__ import annotations

import torch
from torch import nn


def _mlp(in_dim: int, out_dim: int, hidden: int, n_layers: int, act: type[nn.Module], **act_kw: float) -> nn.Sequential:
    """Stack ``n_layers`` Linear layers with ``act`` between them and a linear output."""
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1 (the number of Linear layers), got {n_layers}")
    dims = [in_dim] + [hidden] * (n_layers - 1) + [out_dim]
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < n_layers - 1:
            layers.append(act(**act_kw))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """Noise-to-sample MLP generator of the original GAN (Goodfellow et al. 2014).

    ``n_layers`` counts Linear layers: ReLU between them, a linear output so samples are
    not squashed into a fixed range (toy data are unbounded).
    """

    size_multiple: int = 1

    def __init__(self, z_dim: int, out_dim: int, hidden: int = 128, n_layers: int = 3) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.out_dim = out_dim
        self.net = _mlp(z_dim, out_dim, hidden, n_layers, nn.ReLU)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map noise (N, z_dim) to samples (N, out_dim)."""
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """MLP discriminator of the original GAN (Goodfellow et al. 2014), returning (N, 1) logits.

    LeakyReLU(0.2) keeps gradients alive for samples the discriminator rejects; no sigmoid,
    the loss applies it (BCE-with-logits is numerically stable).
    """

    def __init__(self, in_dim: int, hidden: int = 128, n_layers: int = 3) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.net = _mlp(in_dim, 1, hidden, n_layers, nn.LeakyReLU, negative_slope=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score samples (N, in_dim) as (N, 1) logits."""
        return self.net(x)
