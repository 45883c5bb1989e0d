"""InfoGAN's MNIST networks (Chen et al. 2016, arXiv:1606.03657, appendix C.1 and table 1).

The layer stacks follow the paper's table and the authors' code (openai/InfoGAN,
infogan/models/regularized_gan.py, network_type "mnist"). One change: the generator ends in
tanh, for images in [-1, 1] like every generator here (the authors' ends in a Bernoulli mean).
"""

from __future__ import annotations

import torch
from torch import nn

# The paper's leaky ReLU slope for the MNIST discriminator (appendix C.1).
_LEAKY_SLOPE = 0.1


class InfoGANGenerator28(nn.Module):
    """G(z, category, codes): noise, a categorical code and continuous codes to a 28x28 image in [-1, 1].

    The category enters one-hot, by indexing a fixed identity matrix (one Gather in ONNX).
    """

    size_multiple: int = 1  # fixed 28x28 output

    def __init__(self, z_dim: int = 62, cat_dim: int = 10, n_continuous: int = 2, channels: int = 1) -> None:
        super().__init__()
        self.z_dim, self.cat_dim, self.n_continuous, self.channels = z_dim, cat_dim, n_continuous, channels
        # Not persistent: it is a constant, not a weight, so checkpoints do not carry it.
        self.register_buffer("one_hot", torch.eye(cat_dim), persistent=False)
        # Every layer before the output feeds a BatchNorm: no biases.
        self.project = nn.Sequential(
            nn.Linear(z_dim + cat_dim + n_continuous, 1024, bias=False),
            nn.BatchNorm1d(1024),
            nn.ReLU(),
            # 1024
            nn.Linear(1024, 128 * 7 * 7, bias=False),
            nn.BatchNorm1d(128 * 7 * 7),
            nn.ReLU(),
            # 128 * 7 * 7
        )
        self.body = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            # 64 x 14 x 14
            nn.ConvTranspose2d(64, channels, 4, stride=2, padding=1),
            nn.Tanh(),
            # channels x 28 x 28
        )

    def forward(self, z: torch.Tensor, category: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Map noise (N, z_dim), int64 categories (N,) and codes (N, n_continuous) to images (N, channels, 28, 28)."""
        latent = torch.cat([z, self.one_hot[category], codes], dim=1)  # z_dim + cat_dim + n_continuous
        return self.body(self.project(latent).view(-1, 128, 7, 7))  # 128 x 7 x 7


class InfoGANDiscriminator28(nn.Module):
    """D and Q on one trunk: (N, 1 + cat_dim + n_continuous) = D's logit, Q's category logits, Q's code means.

    Q models each continuous code as a Gaussian of fixed unit std around its predicted mean, as
    the authors' MNIST run does (`Uniform(1, fix_std=True)`): its negative log-likelihood is then
    half the squared error, with no learned variance that could shrink and blow up G's gradient.
    """

    def __init__(self, channels: int = 1, cat_dim: int = 10, n_continuous: int = 2) -> None:
        super().__init__()
        self.channels, self.cat_dim, self.n_continuous = channels, cat_dim, n_continuous
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, 64, 4, stride=2, padding=1),
            nn.LeakyReLU(_LEAKY_SLOPE),
            # 64 x 14 x 14  (no norm on the first layer, as in DCGAN)
            nn.Conv2d(64, 128, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(_LEAKY_SLOPE),
            # 128 x 7 x 7
            nn.Flatten(),
            nn.Linear(128 * 7 * 7, 1024, bias=False),
            nn.BatchNorm1d(1024),
            nn.LeakyReLU(_LEAKY_SLOPE),
            # 1024
        )
        self.score = nn.Linear(1024, 1)  # 1
        self.q_head = nn.Sequential(
            nn.Linear(1024, 128, bias=False),
            nn.BatchNorm1d(128),
            nn.LeakyReLU(_LEAKY_SLOPE),
            # 128
            nn.Linear(128, cat_dim + n_continuous),
            # cat_dim + n_continuous
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Score images (N, channels, 28, 28) and predict their codes: (N, 1 + cat_dim + n_continuous)."""
        features = self.trunk(image)  # 1024
        return torch.cat([self.score(features), self.q_head(features)], dim=1)
