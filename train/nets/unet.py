"""U-Net image-to-image generator of pix2pix."""

from __future__ import annotations

import torch
from torch import nn

from .norms import conv_bias, norm_layer
from .resnet import UPSAMPLE_KINDS

# The order of the layers inside each stage:
# - "pre-activation" (Isola et al.'s reference code, junyanz/pytorch-CycleGAN-and-pix2pix
#   models/networks.py UnetSkipConnectionBlock): activation, conv, norm; the skip is concatenated
#   first, so the decoder's ReLU also acts on it;
# - "post-activation" (eriklindernoren/PyTorch-GAN implementations/pix2pix/models.py
#   GeneratorUNet): conv, norm, activation, with no conv biases; the decoder's output is
#   concatenated first, the (already activated) skip second.
BLOCK_ORDERS: tuple[str, ...] = ("pre-activation", "post-activation")


def unet_depth(size: int) -> int:
    """Number of stride-2 stages that take a ``size`` x ``size`` image down to 1x1 (256 -> 8)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 32 or size & (size - 1):
        raise ValueError(
            f"U-Net image size must be a power of two >= 32 (each stage halves it down to 1x1), got {size!r}"
        )
    return size.bit_length() - 1


def _final_upsample(kind: str, c_in: int, c_out: int) -> list[nn.Module]:
    """The last stage's 2x upsampling to the output channels (with bias: no norm follows)."""
    if kind == "transpose":
        return [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)]
    if kind == "resize":
        # PyTorch-GAN's output layer: nearest upsample, then a 4x4 conv whose even kernel is
        # centred by one extra zero row and column on the top and left.
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.ZeroPad2d((1, 0, 1, 0)),
                nn.Conv2d(c_in, c_out, 4, padding=1)]
    raise ValueError(f"unknown final_layer {kind!r}; valid kinds: {', '.join(UPSAMPLE_KINDS)}")


class UnetGenerator(nn.Module):
    """pix2pix U-Net generator (Isola et al. 2017, arXiv:1611.07004; Ronneberger et al. 2015).

    Encoder C64-C128-C256-C512-C512-C512-C512-C512 for num_downs=8 (ngf*min(2**i, 8) channels),
    decoder mirrored with skip connections, tanh output. `block_order` (BLOCK_ORDERS) places the
    activations and the skip; `final_layer` (UPSAMPLE_KINDS) is the output stage's upsampling.
    H and W must be multiples of 2**num_downs (256 for the paper's U-Net-256).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = True,
        block_order: str = "pre-activation",
        final_layer: str = "transpose",
    ) -> None:
        super().__init__()
        if num_downs < 1:
            raise ValueError(f"num_downs must be >= 1, got {num_downs}")
        if block_order not in BLOCK_ORDERS:
            raise ValueError(f"unknown block_order {block_order!r}; valid orders: {', '.join(BLOCK_ORDERS)}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_downs = num_downs
        self.size_multiple: int = 2**num_downs
        pre = block_order == "pre-activation"
        self.skip_first = pre
        # One bias rule for every inner conv: the reference's (none when an affine norm follows);
        # PyTorch-GAN's U-Net has none at all.
        bias = conv_bias(norm) if pre else False
        innermost = num_downs - 1
        widths = [ngf * min(2**i, 8) for i in range(num_downs)]

        # Encoder stage i: widths[i] x H/2**(i+1) x W/2**(i+1); for U-Net-256:
        # 64 x 128 x 128, 128 x 64 x 64, 256 x 32 x 32, 512 x 16 x 16, 512 x 8 x 8,
        # 512 x 4 x 4, 512 x 2 x 2, 512 x 1 x 1.
        self.encoder = nn.ModuleList()
        for i in range(num_downs):
            conv = nn.Conv2d(in_channels if i == 0 else widths[i - 1], widths[i], 4, stride=2, padding=1, bias=bias)
            # No norm on the first layer (paper) nor on the 1x1 innermost one: batch statistics
            # of a single 1x1 value per channel are undefined at batch size 1.
            norms = [norm_layer(norm, widths[i])] if 0 < i < innermost else []
            if pre:
                block = ([nn.LeakyReLU(0.2)] if i > 0 else []) + [conv] + norms
            else:
                # PyTorch-GAN also drops out on every 512-wide encoder stage (down4..down8).
                drop = [nn.Dropout(0.5)] if dropout and widths[i] == ngf * 8 else []
                block = [conv] + norms + [nn.LeakyReLU(0.2)] + drop
            self.encoder.append(nn.Sequential(*block))

        # Decoder stage for encoder stage i (innermost first) outputs widths[i-1] x H/2**i x W/2**i;
        # for U-Net-256: 512 x 2 x 2, 512 x 4 x 4, 512 x 8 x 8, 512 x 16 x 16, 256 x 32 x 32,
        # 128 x 64 x 64, 64 x 128 x 128, out_channels x 256 x 256.
        self.decoder = nn.ModuleList()
        for i in reversed(range(num_downs)):
            # Every stage but the innermost also receives the encoder's skip (concatenated).
            c_in = widths[i] if i == innermost else 2 * widths[i]
            if i == 0:
                block = ([nn.ReLU()] if pre else []) + _final_upsample(final_layer, c_in, out_channels) + [nn.Tanh()]
            else:
                up = [nn.ConvTranspose2d(c_in, widths[i - 1], 4, stride=2, padding=1, bias=bias),
                      norm_layer(norm, widths[i - 1])]
                # Dropout is pix2pix's only noise source: on the 512-to-512 decoder stages after
                # the innermost one (three of them in U-Net-256), as in the reference code;
                # PyTorch-GAN's on every 512-wide decoder stage, the innermost included (up1..up4).
                wide = widths[i - 1] == ngf * 8
                drop = [nn.Dropout(0.5)] if dropout and wide and (i < innermost or not pre) else []
                block = [nn.ReLU()] + up + drop if pre else up + [nn.ReLU()] + drop
            self.decoder.append(nn.Sequential(*block))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Translate images (N, in_channels, H, W) in [-1, 1] to (N, out_channels, H, W)."""
        skips: list[torch.Tensor] = []
        h = image
        for down in self.encoder:
            h = down(h)
            skips.append(h)
        h = self.decoder[0](skips.pop())
        for up in self.decoder[1:]:
            skip = skips.pop()
            # The reference puts the skip first; PyTorch-GAN the upsampled path.
            h = up(torch.cat([skip, h] if self.skip_first else [h, skip], dim=1))
        return h
