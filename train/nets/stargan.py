"""StarGAN's generator and discriminator (Choi et al. 2018, arXiv:1711.09020, appendix table 4 and 5).

The layer stacks follow the paper's tables and the authors' code (yunjey/stargan, model.py):
conv_dim 64, a 7x7 first and last conv, 4x4 stride-2 convs down and transposed convs up, six
residual blocks, no conv biases in G; D has six 4x4 stride-2 convs with LeakyReLU 0.01 and no
normalisation (WGAN-GP's penalty is per sample). One change: G's instance norms keep a learned
scale and shift but no running statistics (the authors' track_running_stats=True makes eval
mode use averages collected during training), so train and eval mode, and the exported graph,
compute the same thing.
"""

from __future__ import annotations

import torch
from torch import nn

from .norms import norm_layer
from .resnet import UPSAMPLE_KINDS, upsample_layer

# The authors' LeakyReLU slope in D (model.py), smaller than DCGAN's 0.2.
_LEAKY_SLOPE = 0.01
# Affine instance norm without running statistics (see the module docstring).
_NORM = "instance-affine"


class StarResidualBlock(nn.Module):
    """Two zero-padded 3x3 convs with instance norm and a skip connection (the authors' ResidualBlock)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            norm_layer(_NORM, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            norm_layer(_NORM, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x + F(x), same shape as x."""
        return x + self.block(x)


def _doubling(upsample: str, c_in: int, c_out: int) -> list[nn.Module]:
    """The paper's 4x4 stride-2 transposed conv, or resize-convolution (see train/nets/resnet.py)."""
    if upsample == "transpose":
        # Kernel 4, stride 2, padding 1 doubles the size exactly: no output_padding needed.
        return [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False)]
    return upsample_layer(upsample, c_in, c_out, bias=False)


class StarGenerator(nn.Module):
    """G(image, domain): an image and an int64 target domain to an image of that domain, any H, W multiple of 4.

    The domain enters one-hot, by indexing a fixed identity matrix (one Gather in ONNX), tiled
    over the image and concatenated with it as extra input channels (the paper's figure 3).
    """

    size_multiple: int = 4  # two stride-2 stages

    def __init__(self, num_domains: int, conv_dim: int = 64, n_blocks: int = 6, channels: int = 3,
                 upsample: str = "transpose") -> None:
        super().__init__()
        if upsample not in UPSAMPLE_KINDS:
            raise ValueError(f"unknown upsample {upsample!r}; valid kinds: {', '.join(UPSAMPLE_KINDS)}")
        if num_domains < 2:
            raise ValueError(f"StarGAN needs at least 2 domains, got {num_domains}")
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        self.num_domains, self.channels = num_domains, channels
        # Not persistent: a constant, not a weight, so checkpoints do not carry it.
        self.register_buffer("one_hot", torch.eye(num_domains), persistent=False)
        layers: list[nn.Module] = [
            nn.Conv2d(channels + num_domains, conv_dim, 7, padding=3, bias=False),
            norm_layer(_NORM, conv_dim),
            nn.ReLU(),
            # conv_dim x H x W
            nn.Conv2d(conv_dim, conv_dim * 2, 4, stride=2, padding=1, bias=False),
            norm_layer(_NORM, conv_dim * 2),
            nn.ReLU(),
            # (conv_dim*2) x H/2 x W/2
            nn.Conv2d(conv_dim * 2, conv_dim * 4, 4, stride=2, padding=1, bias=False),
            norm_layer(_NORM, conv_dim * 4),
            nn.ReLU(),
            # (conv_dim*4) x H/4 x W/4
        ]
        layers += [StarResidualBlock(conv_dim * 4) for _ in range(n_blocks)]
        # (conv_dim*4) x H/4 x W/4
        layers += [
            *_doubling(upsample, conv_dim * 4, conv_dim * 2),
            norm_layer(_NORM, conv_dim * 2),
            nn.ReLU(),
            # (conv_dim*2) x H/2 x W/2
            *_doubling(upsample, conv_dim * 2, conv_dim),
            norm_layer(_NORM, conv_dim),
            nn.ReLU(),
            # conv_dim x H x W
            nn.Conv2d(conv_dim, channels, 7, padding=3, bias=False),
            nn.Tanh(),
            # channels x H x W
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        """Translate images (N, channels, H, W) in [-1, 1] into the int64 domains (N,); same shape out."""
        planes = self.one_hot[domain][:, :, None, None].expand(-1, -1, image.shape[2], image.shape[3])
        return self.model(torch.cat([image, planes], dim=1))  # (channels + num_domains) x H x W in


class StarDiscriminator(nn.Module):
    """PatchGAN critic with two heads: (source logits (N, 1, H/2^n, W/2^n), domain logits (N, num_domains)).

    n_layers 4x4 stride-2 convs doubling the width from conv_dim; the source head is a 3x3
    conv (one score per patch), the domain head a conv whose kernel spans the whole last map,
    so D is built for one image size, a multiple of 2^n_layers (D is trained, never exported).
    """

    def __init__(self, num_domains: int, size: int, conv_dim: int = 64, n_layers: int = 6, channels: int = 3) -> None:
        super().__init__()
        if n_layers < 1 or size % (2**n_layers):
            raise ValueError(f"the discriminator's {n_layers} stride-2 convs need a size that is a multiple of "
                             f"{2**n_layers}, got {size}")
        layers: list[nn.Module] = [nn.Conv2d(channels, conv_dim, 4, stride=2, padding=1), nn.LeakyReLU(_LEAKY_SLOPE)]
        # conv_dim x size/2 x size/2
        width = conv_dim
        for _ in range(1, n_layers):
            layers += [nn.Conv2d(width, width * 2, 4, stride=2, padding=1), nn.LeakyReLU(_LEAKY_SLOPE)]
            width *= 2
            # (conv_dim*2^k) x size/2^(k+1) x size/2^(k+1)
        self.trunk = nn.Sequential(*layers)
        # (conv_dim*2^(n_layers-1)) x size/2^n_layers x size/2^n_layers
        self.source_head = nn.Conv2d(width, 1, 3, padding=1, bias=False)
        self.domain_head = nn.Conv2d(width, num_domains, size // 2**n_layers, bias=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score images (N, channels, size, size): patch critic scores and domain logits."""
        h = self.trunk(image)
        return self.source_head(h), self.domain_head(h).flatten(1)
