"""WGAN-GP (Gulrajani et al. 2017): a critic without batch norm, gradient penalty, n_critic = 5."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ganrt.config import opt
from train.config import MAX_BATCH, MAX_STEPS, MAX_WEIGHT, MAX_WIDTH, MAX_Z, TrainConfig
from train.nets import (
    DCGAN28Discriminator,
    DCGAN28Generator,
    DCGAN64Discriminator,
    DCGAN64Generator,
    MLPDiscriminator,
    MLPGenerator,
)
from train.noise_gan import (
    TOY_SETS,
    WassersteinGPStep,
    image_output,
    is_toy,
    labelled_images,
    noise_feeds,
    noise_inputs,
    points_output,
    toy_dataset,
    toy_dim,
)
from train.registry import Variant, register


@dataclass
class WGANGPConfig(TrainConfig):
    """Wasserstein GAN with gradient penalty; Adam (1e-4, 0.0, 0.9) as in the paper."""

    builtin: str = opt("shapes", "built-in set when --data is not given", choices=("shapes",) + TOY_SETS)
    size: int = opt(28, "image size: 28 or 64", choices=(28, 64))
    channels: int = opt(1, "image channels", choices=(1, 3))
    z_dim: int = opt(100, "noise dimension", min=1, max=MAX_Z)
    ngf: int = opt(64, "generator width (64x64 nets)", min=1, max=MAX_WIDTH)
    ndf: int = opt(64, "critic width (64x64 nets)", min=1, max=MAX_WIDTH)
    hidden: int = opt(512, "MLP width on toy sets (the paper's toy nets use 512)", min=1, max=8192)
    n_critic: int = opt(5, "critic updates per generator update", min=1, max=100)
    gp_lambda: float = opt(10.0, "gradient penalty weight", min=0.0, max=MAX_WEIGHT)
    steps: int = opt(5000, "generator updates", min=1, max=MAX_STEPS)
    batch_size: int = opt(64, "images per critic step", min=1, max=MAX_BATCH)
    lr_g: float = opt(1e-4, "generator learning rate (Adam)", min=0.0, max=1.0)
    lr_d: float = opt(1e-4, "critic learning rate (Adam)", min=0.0, max=1.0)
    beta1: float = opt(0.0, "Adam beta1 (below 1)", min=0.0, max=0.9999)
    beta2: float = opt(0.9, "Adam beta2 (below 1)", min=0.0, max=0.9999)

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"steps": 300, "sample_every": 50, "checkpoint_every": 150},
        # The paper's toy setting (gan_toy.py of Gulrajani et al.): lambda 0.1, Adam (1e-4, 0.5, 0.9).
        "ring": {"builtin": "ring", "z_dim": 2, "batch_size": 256, "steps": 2000, "sample_every": 250,
                 "eval_samples": 20000, "gp_lambda": 0.1, "beta1": 0.5},
        "paper": {"size": 64, "channels": 3, "steps": 100000},
    }


def networks(cfg: WGANGPConfig) -> dict[str, torch.nn.Module]:
    """MLPs on toy sets; DCGAN nets with a norm-free (28) or layer-norm (64) critic on images."""
    if is_toy(cfg):
        dim = toy_dim(cfg)
        return {"G": MLPGenerator(cfg.z_dim, dim, cfg.hidden, 3), "D": MLPDiscriminator(dim, cfg.hidden, 3)}
    if cfg.size == 28:
        return {"G": DCGAN28Generator(cfg.z_dim, cfg.channels), "D": DCGAN28Discriminator(cfg.channels, dropout=0.0)}
    return {"G": DCGAN64Generator(cfg.z_dim, cfg.ngf, cfg.channels), "D": DCGAN64Discriminator(cfg.ndf, cfg.channels, norm="layer")}


register(Variant(
    name="wgan-gp",
    summary="Wasserstein GAN with gradient penalty, images or toy sets (Gulrajani et al. 2017)",
    config=WGANGPConfig,
    generator=lambda c: networks(c)["G"],
    networks=networks,
    inputs=lambda c: noise_inputs(c, conditional=False),
    output=lambda c: points_output(c) if is_toy(c) else image_output(c),
    dataset=lambda c: toy_dataset(c) if is_toy(c) else labelled_images(c),
    step=WassersteinGPStep,
    sample_feeds=lambda c, n, g: noise_feeds(c, n * 32 if is_toy(c) else n, g, conditional=False),
    papers=("Gulrajani et al., Improved Training of Wasserstein GANs, NeurIPS 2017",),
))
