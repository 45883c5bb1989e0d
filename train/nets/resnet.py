"""ResNet image-to-image generator of CycleGAN."""

from __future__ import annotations

import torch
from torch import nn

from .norms import conv_bias, norm_layer


class ResidualBlock(nn.Module):
    """Two reflection-padded 3x3 convs with a skip connection (He et al. 2016, as in Johnson et al. 2016)."""

    def __init__(self, channels: int, norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            # Reflection rather than zero padding avoids dark borders in the translated image.
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x + F(x), same shape as x."""
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator (Zhu et al. 2017, arXiv:1703.10593; after Johnson et al. 2016, arXiv:1603.08155).

    c7s1-ngf, d(2ngf), d(4ngf), n_blocks x R(4ngf), u(2ngf), u(ngf), c7s1-out, tanh.
    Fully convolutional: any H, W that are multiples of 4 (two stride-2 stages).
    """

    size_multiple: int = 4

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: bool = False,
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(),
            # ngf x H x W
            nn.Conv2d(ngf, ngf * 2, 3, stride=2, padding=1, bias=bias),
            norm_layer(norm, ngf * 2),
            nn.ReLU(),
            # (ngf*2) x H/2 x W/2
            nn.Conv2d(ngf * 2, ngf * 4, 3, stride=2, padding=1, bias=bias),
            norm_layer(norm, ngf * 4),
            nn.ReLU(),
            # (ngf*4) x H/4 x W/4
        ]
        layers += [ResidualBlock(ngf * 4, norm, dropout) for _ in range(n_blocks)]
        # (ngf*4) x H/4 x W/4
        layers += [
            # output_padding 1 makes each stage exactly double the size (undoing the stride-2 convs).
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
            norm_layer(norm, ngf * 2),
            nn.ReLU(),
            # (ngf*2) x H/2 x W/2
            nn.ConvTranspose2d(ngf * 2, ngf, 3, stride=2, padding=1, output_padding=1, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(),
            # ngf x H x W
            nn.ReflectionPad2d(3),
            nn.Conv2d(ngf, out_channels, 7),
            nn.Tanh(),
            # out_channels x H x W
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Translate images (N, in_channels, H, W) in [-1, 1] to (N, out_channels, H, W)."""
        return self.model(image)
