"""DCGAN generators and discriminators: 28x28 (TensorFlow tutorial), 64x64 (Radford et al.), and conditional 28x28."""

from __future__ import annotations

import torch
from torch import nn

from .norms import check_norm, conv_bias, norm_layer

# Keras' LeakyReLU default slope, kept so the 28x28 nets match the TensorFlow DCGAN tutorial.
_KERAS_LEAKY_SLOPE = 0.3


class DCGAN28Generator(nn.Module):
    """The TensorFlow DCGAN tutorial's 28x28 generator (after Radford et al. 2016, arXiv:1511.06434).

    Input z (N, z_dim), output (N, channels, 28, 28) in [-1, 1].
    """

    size_multiple: int = 1  # fixed 28x28 output

    def __init__(self, z_dim: int = 100, channels: int = 1) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.channels = channels
        # Every conv feeds a BatchNorm (or the tanh output, as in the tutorial): no biases.
        self.project = nn.Sequential(
            nn.Linear(z_dim, 256 * 7 * 7, bias=False),
            nn.BatchNorm1d(256 * 7 * 7),
            nn.LeakyReLU(_KERAS_LEAKY_SLOPE),
            # 256 * 7 * 7
        )
        self.body = nn.Sequential(
            # 5x5 with padding 2 is Keras 'same' at stride 1.
            nn.ConvTranspose2d(256, 128, 5, stride=1, padding=2, bias=False),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(_KERAS_LEAKY_SLOPE),
            # 128 x 7 x 7
            # padding 2 + output_padding 1 doubles the size exactly, like Keras 'same' at stride 2.
            nn.ConvTranspose2d(128, 64, 5, stride=2, padding=2, output_padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(_KERAS_LEAKY_SLOPE),
            # 64 x 14 x 14
            nn.ConvTranspose2d(64, channels, 5, stride=2, padding=2, output_padding=1, bias=False),
            nn.Tanh(),
            # channels x 28 x 28
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map noise (N, z_dim) to images (N, channels, 28, 28)."""
        # view(-1, ...) exports as one Reshape with a constant shape (unflatten adds Shape/Slice ops).
        return self.body(self.project(z).view(-1, 256, 7, 7))  # 256 x 7 x 7


class DCGAN28Discriminator(nn.Module):
    """The TensorFlow DCGAN tutorial's 28x28 discriminator (after Radford et al. 2016, arXiv:1511.06434).

    Output (N, 1) logits. ``norm`` (default "none", as in the tutorial) goes after the second conv.
    """

    def __init__(self, channels: int = 1, dropout: float = 0.3, norm: str = "none") -> None:
        super().__init__()
        check_norm(norm)
        self.channels = channels
        self.features = nn.Sequential(
            nn.Conv2d(channels, 64, 5, stride=2, padding=2),
            nn.LeakyReLU(_KERAS_LEAKY_SLOPE),
            nn.Dropout(dropout),
            # 64 x 14 x 14
            nn.Conv2d(64, 128, 5, stride=2, padding=2, bias=conv_bias(norm)),
            norm_layer(norm, 128),
            nn.LeakyReLU(_KERAS_LEAKY_SLOPE),
            nn.Dropout(dropout),
            # 128 x 7 x 7
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * 7 * 7, 1),
            # 1
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Score images (N, channels, 28, 28) as (N, 1) logits."""
        return self.classifier(self.features(image))


class DCGAN64Generator(nn.Module):
    """DCGAN 64x64 generator (Radford et al. 2016, arXiv:1511.06434; PyTorch DCGAN example).

    Input z (N, z_dim), output (N, channels, 64, 64) in [-1, 1].
    """

    size_multiple: int = 1  # fixed 64x64 output

    def __init__(self, z_dim: int = 100, ngf: int = 64, channels: int = 3) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.channels = channels
        # Bias-free throughout, like the PyTorch example (BatchNorm's shift absorbs the biases).
        self.body = nn.Sequential(
            # z_dim x 1 x 1
            nn.ConvTranspose2d(z_dim, ngf * 8, 4, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(),
            # (ngf*8) x 4 x 4
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(),
            # (ngf*4) x 8 x 8
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(),
            # (ngf*2) x 16 x 16
            nn.ConvTranspose2d(ngf * 2, ngf, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(),
            # ngf x 32 x 32
            nn.ConvTranspose2d(ngf, channels, 4, stride=2, padding=1, bias=False),
            nn.Tanh(),
            # channels x 64 x 64
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map noise (N, z_dim) to images (N, channels, 64, 64)."""
        # Indexing (not view(-1, z_dim, 1, 1)) so a wrongly shaped z fails instead of being
        # re-batched; it exports as one Unsqueeze.
        return self.body(z[:, :, None, None])


class DCGAN64Discriminator(nn.Module):
    """DCGAN 64x64 discriminator (Radford et al. 2016, arXiv:1511.06434), also the WGAN-GP critic.

    Output (N, 1) logits, no sigmoid. The WGAN-GP critic (Gulrajani et al. 2017,
    arXiv:1704.00028) must use norm="layer" or "none": batch norm mixes samples and breaks the
    per-sample gradient penalty.
    """

    def __init__(self, ndf: int = 64, channels: int = 3, norm: str = "batch") -> None:
        super().__init__()
        # One bias rule for the whole stack (as pix2pix does): with batch norm this is the
        # PyTorch example exactly (no biases anywhere).
        bias = conv_bias(norm)
        self.channels = channels
        self.body = nn.Sequential(
            # channels x 64 x 64
            nn.Conv2d(channels, ndf, 4, stride=2, padding=1, bias=bias),
            nn.LeakyReLU(0.2),
            # ndf x 32 x 32  (no norm on the first layer: Radford et al. found it unstable)
            nn.Conv2d(ndf, ndf * 2, 4, stride=2, padding=1, bias=bias),
            norm_layer(norm, ndf * 2),
            nn.LeakyReLU(0.2),
            # (ndf*2) x 16 x 16
            nn.Conv2d(ndf * 2, ndf * 4, 4, stride=2, padding=1, bias=bias),
            norm_layer(norm, ndf * 4),
            nn.LeakyReLU(0.2),
            # (ndf*4) x 8 x 8
            nn.Conv2d(ndf * 4, ndf * 8, 4, stride=2, padding=1, bias=bias),
            norm_layer(norm, ndf * 8),
            nn.LeakyReLU(0.2),
            # (ndf*8) x 4 x 4
            nn.Conv2d(ndf * 8, 1, 4, stride=1, padding=0, bias=bias),
            nn.Flatten(),
            # 1
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Score images (N, channels, 64, 64) as (N, 1) logits."""
        return self.body(image)


class ConditionalGenerator28(nn.Module):
    """Class-conditional 28x28 generator (Mirza & Osindero 2014, arXiv:1411.1784).

    A learned label embedding is concatenated to z and fed to the DCGAN28 generator.
    """

    size_multiple: int = 1  # fixed 28x28 output

    def __init__(self, z_dim: int = 100, num_classes: int = 10, embed_dim: int = 50, channels: int = 1) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.channels = channels
        self.label_embedding = nn.Embedding(num_classes, embed_dim)
        self.generator = DCGAN28Generator(z_dim + embed_dim, channels)

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Map noise (N, z_dim) and int64 labels (N,) to images (N, channels, 28, 28)."""
        # (z_dim + embed_dim)
        return self.generator(torch.cat([z, self.label_embedding(label)], dim=1))


class ConditionalDiscriminator28(nn.Module):
    """Class-conditional 28x28 discriminator (Mirza & Osindero 2014, arXiv:1411.1784).

    The label is embedded, projected to a 28x28 map and stacked on the image as an extra
    channel, then scored by the DCGAN28 discriminator; output (N, 1) logits.
    """

    def __init__(self, num_classes: int = 10, channels: int = 1, dropout: float = 0.3, embed_dim: int = 50) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.channels = channels
        self.label_map = nn.Sequential(
            nn.Embedding(num_classes, embed_dim),
            nn.Linear(embed_dim, 28 * 28),
            # 28 * 28
        )
        self.discriminator = DCGAN28Discriminator(channels + 1, dropout)

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Score images (N, channels, 28, 28) given int64 labels (N,) as (N, 1) logits."""
        # (channels + 1) x 28 x 28
        label_plane = self.label_map(label).view(-1, 1, 28, 28)  # 1 x 28 x 28
        return self.discriminator(torch.cat([image, label_plane], dim=1))


class ProjectionDiscriminator28(nn.Module):
    """Class-conditional 28x28 projection discriminator (Miyato & Koyama 2018, arXiv:1802.05637).

    D(x, y) = psi(phi(x)) + embed(y) . phi(x): phi is the DCGAN28 discriminator's feature
    stack, psi its linear head, and the label enters as an inner product with the features
    instead of as an input plane, so D must judge "is this a y" and not only "is this real".
    Output (N, 1) logits; with ``class_head`` (AC-GAN's auxiliary classifier, Odena et al.
    2017, arXiv:1610.09585) (N, 1 + num_classes): the score, then class logits from the same
    features.
    """

    def __init__(self, num_classes: int = 10, channels: int = 1, dropout: float = 0.3, class_head: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.channels = channels
        self.discriminator = DCGAN28Discriminator(channels, dropout)
        self.class_projection = nn.Embedding(num_classes, 128 * 7 * 7)
        # Zero at the start: D begins as the unconditional one and learns each class's direction.
        nn.init.zeros_(self.class_projection.weight)
        self.class_head = nn.Linear(128 * 7 * 7, num_classes) if class_head else None

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Score images (N, channels, 28, 28) given int64 labels (N,): (N, 1) logits [+ (N, num_classes)]."""
        features = self.discriminator.features(image).flatten(1)  # 128 * 7 * 7
        projection = (self.class_projection(label) * features).sum(1, keepdim=True)  # 1
        score = self.discriminator.classifier(features) + projection  # 1
        if self.class_head is None:
            return score
        return torch.cat([score, self.class_head(features)], dim=1)  # 1 + num_classes
