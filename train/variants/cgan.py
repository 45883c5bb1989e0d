"""Conditional GAN (Mirza & Osindero 2014): z and a class label in, a 28x28 image of that class out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ganrt.config import opt
from ganrt.errors import UsageError
from train.config import MAX_BATCH, MAX_STEPS, MAX_WEIGHT, MAX_Z, TrainConfig
from train.losses import ADVERSARIAL
from train.nets import ConditionalDiscriminator28, ConditionalGenerator28, ProjectionDiscriminator28
from train.noise_gan import ConditionalStep, image_output, labelled_images, noise_feeds, noise_inputs
from train.registry import Variant, register

# Quick runs on MNIST, label accuracy by the evaluation classifier: the label as a plane, 58%
# (four digits never drawn); projection, 89% at 800 steps and 83% at 1,500 (one digit never
# drawn); projection + the auxiliary class loss, 100% (seed 0) and 89% (seed 1: the 9s fail).
D_LABEL = {"projection": ProjectionDiscriminator28, "plane": ConditionalDiscriminator28}


@dataclass
class CGANConfig(TrainConfig):
    """Label-embedding conditional DCGAN at 28x28."""

    size: int = opt(28, "image size", choices=(28,))
    channels: int = opt(1, "image channels", choices=(1, 3))
    z_dim: int = opt(100, "noise dimension", min=1, max=MAX_Z)
    num_classes: int = opt(10, "number of classes (must match the dataset)", min=2, max=10000)
    embed_dim: int = opt(50, "label embedding size", min=1, max=MAX_Z)
    d_label: str = opt("projection", "how D reads the label: projection (an inner product with D's features, "
                       "Miyato & Koyama 2018) or plane (a label map stacked on the image, Mirza & Osindero 2014)",
                       choices=tuple(D_LABEL))
    aux_weight: float = opt(1.0, "weight of the auxiliary class loss (AC-GAN, Odena et al. 2017: D also classifies, "
                            "G is pushed towards images D classifies as their label); 0 turns it off",
                            min=0.0, max=MAX_WEIGHT)
    loss: str = opt("nonsaturating", "adversarial objective", choices=tuple(ADVERSARIAL))
    steps: int = opt(5000, "generator updates", min=1, max=MAX_STEPS)
    batch_size: int = opt(64, "images per step", min=1, max=MAX_BATCH)

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"steps": 800, "sample_every": 100, "checkpoint_every": 400},
        "paper": {"steps": 20000, "batch_size": 100},
    }


def networks(cfg: CGANConfig) -> dict[str, torch.nn.Module]:
    """G(z, label) and D(image, label)."""
    return {
        "G": ConditionalGenerator28(cfg.z_dim, cfg.num_classes, cfg.embed_dim, cfg.channels),
        "D": discriminator(cfg),
    }


def discriminator(cfg: CGANConfig) -> torch.nn.Module:
    """D(image, label) as `cfg.d_label` asks, with class logits when the auxiliary loss is on."""
    if cfg.aux_weight == 0:
        return D_LABEL[cfg.d_label](cfg.num_classes, cfg.channels)
    if cfg.d_label != "projection":
        raise UsageError("--aux-weight needs --d-label projection (the plane discriminator has no class head); "
                         "or pass --aux-weight 0")
    return ProjectionDiscriminator28(cfg.num_classes, cfg.channels, class_head=True)


register(Variant(
    name="cgan",
    summary="Class-conditional GAN on 28x28 images (Mirza & Osindero 2014)",
    config=CGANConfig,
    generator=lambda c: networks(c)["G"],
    networks=networks,
    inputs=lambda c: noise_inputs(c, conditional=True),
    output=image_output,
    dataset=labelled_images,
    step=ConditionalStep,
    sample_feeds=lambda c, n, g: noise_feeds(c, n, g, conditional=True),
    papers=("Mirza & Osindero, Conditional Generative Adversarial Nets, arXiv:1411.1784",),
))
