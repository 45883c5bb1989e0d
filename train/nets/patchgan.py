"""PatchGAN discriminator of pix2pix and CycleGAN."""

from __future__ import annotations

import torch
from torch import nn

from .norms import conv_bias, norm_layer


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al. 2017, arXiv:1611.07004): one logit per overlapping patch.

    With n_layers=3 this is the 70x70 PatchGAN C64-C128-C256-C512 (4x4 convs, stride 2 but
    stride 1 for the last two) and a 256x256 input gives a 30x30 logit map. For pix2pix,
    in_channels=6 (input and output images stacked); CycleGAN uses 3 and norm="instance".
    """

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            # No norm on the first layer, so it keeps its bias whatever the norm.
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            # ndf x H/2 x W/2
        ]
        width = ndf
        for n in range(1, n_layers + 1):
            # The last of these convs has stride 1: it widens the receptive field to 70x70
            # without shrinking the logit map further.
            stride = 2 if n < n_layers else 1
            new_width = ndf * min(2**n, 8)
            layers += [
                nn.Conv2d(width, new_width, 4, stride=stride, padding=1, bias=bias),
                norm_layer(norm, new_width),
                nn.LeakyReLU(0.2),
            ]
            width = new_width
            # (ndf*2) x H/4, (ndf*4) x H/8, then (ndf*8) x (H/8 - 1) for n_layers=3
        layers += [
            nn.Conv2d(width, 1, 4, stride=1, padding=1),
            # 1 x (H/8 - 2) x (W/8 - 2) for n_layers=3: 30 x 30 at 256
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Score images (N, in_channels, H, W) as a (N, 1, H', W') map of patch logits."""
        return self.model(image)
