"""A compact ResNet image-to-image generator with depthwise-separable residual blocks, for distilled students.

The layout follows GAN Compression's student (Li et al. 2020, arXiv:2003.08936, sec. 3.3): CycleGAN's ResNet
generator with every residual conv replaced by a depthwise-separable one (a 3x3 depthwise conv, then a 1x1
pointwise conv; Howard et al. 2017, MobileNets), which cuts the residual stage's MACs roughly by the width.
Each stage's width is set on its own, so a student can be narrower where its teacher is widest.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .norms import conv_bias, norm_layer
from .resnet import upsample_layer


def separable_conv(channels: int, norm: str) -> list[nn.Module]:
    """A reflection-padded 3x3 depthwise conv and a 1x1 pointwise conv, each normalised (same shape in and out)."""
    bias = conv_bias(norm)
    return [
        nn.ReflectionPad2d(1),
        nn.Conv2d(channels, channels, 3, groups=channels, bias=bias),  # one 3x3 filter per channel
        norm_layer(norm, channels),
        nn.Conv2d(channels, channels, 1, bias=bias),  # mixes the channels
        norm_layer(norm, channels),
    ]


class SeparableResidualBlock(nn.Module):
    """x + F(x) with F two depthwise-separable convs and a ReLU between (GAN Compression's mobile residual block)."""

    def __init__(self, channels: int, norm: str = "instance") -> None:
        super().__init__()
        self.block = nn.Sequential(*separable_conv(channels, norm), nn.ReLU(), *separable_conv(channels, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x + F(x), same shape as x."""
        return x + self.block(x)


class CompactGenerator(nn.Module):
    """c7s1-w1, d(w2), d(w3), n_blocks x separable R(w3), u(w2), u(w1), c7s1-out, tanh; `widths` = (w1, w2, w3).

    w1 is the full-resolution width, w2 the half-resolution one, w3 the quarter-resolution one where
    the residual blocks work. Fully convolutional: any H, W that are multiples of 4. `upsample`
    picks the decoder's u layers (UPSAMPLE_KINDS); "resize" by default (no checkerboard pattern).
    `forward` is the plain image -> image function that export traces; `tap_modules` names the
    layers whose outputs a distillation reads (with forward hooks, so DDP wrapping keeps working).
    """

    size_multiple: int = 4

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        widths: Sequence[int] = (16, 32, 64),
        n_blocks: int = 9,
        norm: str = "instance",
        upsample: str = "resize",
    ) -> None:
        super().__init__()
        if len(widths) != 3 or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths must be three positive widths (full, half, quarter resolution), got {widths!r}")
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        w1, w2, w3 = (int(w) for w in widths)
        self.in_channels, self.out_channels, self.widths = in_channels, out_channels, (w1, w2, w3)
        bias = conv_bias(norm)
        self.encoder = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, w1, 7, bias=bias),
            norm_layer(norm, w1),
            nn.ReLU(),
            # w1 x H x W
            nn.Conv2d(w1, w2, 3, stride=2, padding=1, bias=bias),
            norm_layer(norm, w2),
            nn.ReLU(),
            # w2 x H/2 x W/2
            nn.Conv2d(w2, w3, 3, stride=2, padding=1, bias=bias),
            norm_layer(norm, w3),
            nn.ReLU(),
            # w3 x H/4 x W/4
        )
        self.blocks = nn.Sequential(*(SeparableResidualBlock(w3, norm) for _ in range(n_blocks)))
        # w3 x H/4 x W/4
        self.decoder = nn.Sequential(
            *upsample_layer(upsample, w3, w2, bias),
            norm_layer(norm, w2),
            nn.ReLU(),
            # w2 x H/2 x W/2
            *upsample_layer(upsample, w2, w1, bias),
            norm_layer(norm, w1),
            nn.ReLU(),
            # w1 x H x W
            nn.ReflectionPad2d(3),
            nn.Conv2d(w1, out_channels, 7),
            nn.Tanh(),
            # out_channels x H x W
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Translate images (N, in_channels, H, W) in [-1, 1] to (N, out_channels, H, W)."""
        return self.decoder(self.blocks(self.encoder(image)))

    def tap_modules(self, taps: Sequence[int]) -> list[nn.Module]:
        """The modules whose outputs are the w3 x H/4 x W/4 activations after `taps[i]` residual blocks (0: the encoder's)."""
        if any(not 0 <= t <= len(self.blocks) for t in taps):
            raise ValueError(f"taps must be 0 to {len(self.blocks)} (residual blocks done), got {list(taps)}")
        return [self.encoder if t == 0 else self.blocks[t - 1] for t in taps]
