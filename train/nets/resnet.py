"""ResNet image-to-image generator of CycleGAN."""

from __future__ import annotations

import torch
from torch import nn

from .norms import conv_bias, norm_layer

# How the decoder doubles the resolution: a stride-2 transposed conv (the paper's), or a
# nearest-neighbour upsample followed by a 3x3 conv ("resize-convolution", Odena et al. 2016,
# "Deconvolution and Checkerboard Artifacts"): every output pixel then sees the same number of
# kernel taps, which removes the transposed conv's checkerboard pattern.
UPSAMPLE_KINDS: tuple[str, ...] = ("transpose", "resize")


def upsample_layer(kind: str, c_in: int, c_out: int, bias: bool) -> list[nn.Module]:
    """Layers that double H and W and map c_in to c_out channels (see UPSAMPLE_KINDS)."""
    if kind == "transpose":
        # output_padding 1 makes each stage exactly double the size (undoing the stride-2 convs).
        return [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=bias)]
    if kind == "resize":
        # Zero padding 1 around the 3x3 conv, as PyTorch-GAN's GeneratorResNet decoder
        # (eriklindernoren/PyTorch-GAN implementations/cyclegan/models.py).
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)]
    raise ValueError(f"unknown upsample {kind!r}; valid kinds: {', '.join(UPSAMPLE_KINDS)}")


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
    `upsample` picks the u layers (UPSAMPLE_KINDS); `edge_padding` is the reflection padding
    around the two 7x7 convs: 3 keeps the image size; PyTorch-GAN pads by the channel count,
    which shrinks the output of a 1-channel model by 8 pixels.
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
        upsample: str = "transpose",
        edge_padding: int = 3,
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        if not 0 <= edge_padding <= 3:
            raise ValueError(f"edge_padding must be 0 to 3 (a 7x7 conv), got {edge_padding}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(edge_padding),
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
            *upsample_layer(upsample, ngf * 4, ngf * 2, bias),
            norm_layer(norm, ngf * 2),
            nn.ReLU(),
            # (ngf*2) x H/2 x W/2
            *upsample_layer(upsample, ngf * 2, ngf, bias),
            norm_layer(norm, ngf),
            nn.ReLU(),
            # ngf x H x W
            nn.ReflectionPad2d(edge_padding),
            nn.Conv2d(ngf, out_channels, 7),
            nn.Tanh(),
            # out_channels x H x W
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Translate images (N, in_channels, H, W) in [-1, 1] to (N, out_channels, H, W)."""
        return self.model(image)
