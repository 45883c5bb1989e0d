"""DCGAN (Radford et al. 2016): the TF tutorial's 28x28x1 networks, or the 64x64x3 original."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ganrt.config import opt
from train.config import MAX_BATCH, MAX_STEPS, MAX_WIDTH, MAX_Z, TrainConfig
from train.losses import ADVERSARIAL
from train.nets import DCGAN28Discriminator, DCGAN28Generator, DCGAN64Discriminator, DCGAN64Generator
from train.noise_gan import AdversarialStep, image_output, labelled_images, noise_feeds, noise_inputs
from train.registry import Variant, register


@dataclass
class DCGANConfig(TrainConfig):
    """Convolutional GAN with batch norm; Adam 2e-4, beta1 0.5 as in the paper."""

    size: int = opt(28, "image size: 28 (TF tutorial nets) or 64 (the paper's nets)", choices=(28, 64))
    channels: int = opt(1, "image channels (1 grey, 3 colour)", choices=(1, 3))
    z_dim: int = opt(100, "noise dimension", min=1, max=MAX_Z)
    ngf: int = opt(64, "generator width (64x64 nets)", min=1, max=MAX_WIDTH)
    ndf: int = opt(64, "discriminator width (64x64 nets)", min=1, max=MAX_WIDTH)
    loss: str = opt("nonsaturating", "adversarial objective", choices=tuple(ADVERSARIAL))
    steps: int = opt(5000, "generator updates", min=1, max=MAX_STEPS)
    batch_size: int = opt(128, "images per step (the paper's mini-batch)", min=1, max=MAX_BATCH)

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"steps": 600, "batch_size": 64, "sample_every": 100, "checkpoint_every": 300},
        "paper": {"size": 64, "channels": 3, "steps": 20000},
    }


def networks(cfg: DCGANConfig) -> dict[str, torch.nn.Module]:
    """The generator/discriminator pair for the configured size."""
    if cfg.size == 28:
        return {"G": DCGAN28Generator(cfg.z_dim, cfg.channels), "D": DCGAN28Discriminator(cfg.channels)}
    return {"G": DCGAN64Generator(cfg.z_dim, cfg.ngf, cfg.channels), "D": DCGAN64Discriminator(cfg.ndf, cfg.channels, norm="batch")}


register(Variant(
    name="dcgan",
    summary="Deep convolutional GAN, 28x28 grey or 64x64 colour (Radford et al. 2016)",
    config=DCGANConfig,
    generator=lambda c: networks(c)["G"],
    networks=networks,
    inputs=lambda c: noise_inputs(c, conditional=False),
    output=image_output,
    dataset=labelled_images,
    step=AdversarialStep,
    sample_feeds=lambda c, n, g: noise_feeds(c, n, g, conditional=False),
    papers=("Radford, Metz, Chintala, Unsupervised Representation Learning with DCGANs, ICLR 2016",),
))
