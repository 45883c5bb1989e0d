"""Vanilla GAN on toy distributions (Goodfellow et al. 2014): MLPs, non-saturating loss."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ganrt.config import opt
from train.config import MAX_STEPS, MAX_Z, TrainConfig
from train.losses import ADVERSARIAL
from train.nets import MLPDiscriminator, MLPGenerator
from train.noise_gan import TOY_SETS, AdversarialStep, noise_feeds, noise_inputs, points_output, toy_dataset, toy_dim
from train.registry import Variant, register


@dataclass
class GANConfig(TrainConfig):
    """MLP generator and discriminator on a 1-D Gaussian or a 2-D ring of 8 Gaussians."""

    builtin: str = opt("ring", "built-in toy set", choices=TOY_SETS)
    z_dim: int = opt(16, "noise dimension", min=1, max=MAX_Z)
    hidden: int = opt(128, "hidden units per MLP layer", min=1, max=8192)
    layers: int = opt(3, "MLP layers", min=1, max=64)
    loss: str = opt("nonsaturating", "adversarial objective", choices=tuple(ADVERSARIAL))
    steps: int = opt(20000, "generator updates", min=1, max=MAX_STEPS)
    batch_size: int = opt(512, "points per step (the Unrolled-GAN ring setup, Metz et al. 2017)", min=1, max=65536)
    lr_g: float = opt(1e-4, "generator learning rate (Adam)", min=0.0, max=1.0)
    lr_d: float = opt(1e-4, "discriminator learning rate (Adam)", min=0.0, max=1.0)
    sample_every: int = opt(1000, "steps between sample plots", min=1, max=MAX_STEPS)
    eval_samples: int = opt(20000, "generated points used by the final evaluation", min=1, max=10**6)

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"steps": 10000},
        "gaussian": {"builtin": "gaussian", "steps": 3000, "batch_size": 256, "lr_g": 2e-4, "lr_d": 2e-4},
        "paper": {"steps": 25000},
    }


def networks(cfg: GANConfig) -> dict[str, torch.nn.Module]:
    """G: z -> point, D: point -> logit."""
    dim = toy_dim(cfg)
    return {"G": MLPGenerator(cfg.z_dim, dim, cfg.hidden, cfg.layers), "D": MLPDiscriminator(dim, cfg.hidden, cfg.layers)}


register(Variant(
    name="gan",
    summary="Vanilla GAN with MLPs on toy 1-D/2-D distributions (Goodfellow et al. 2014)",
    config=GANConfig,
    generator=lambda c: networks(c)["G"],
    networks=networks,
    inputs=lambda c: noise_inputs(c, conditional=False),
    output=points_output,
    dataset=toy_dataset,
    step=AdversarialStep,
    sample_feeds=lambda c, n, g: noise_feeds(c, n * 32, g, conditional=False),
    papers=("Goodfellow et al., Generative Adversarial Nets, NeurIPS 2014",),
))
