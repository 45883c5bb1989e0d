"""Conditional GAN (Mirza & Osindero 2014): z and a class label in, a 28x28 image of that class out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ganrt.config import opt
from train.config import MAX_BATCH, MAX_STEPS, MAX_Z, TrainConfig
from train.losses import ADVERSARIAL
from train.nets import ConditionalDiscriminator28, ConditionalGenerator28
from train.noise_gan import ConditionalStep, image_output, labelled_images, noise_feeds, noise_inputs
from train.registry import Variant, register


@dataclass
class CGANConfig(TrainConfig):
    """Label-embedding conditional DCGAN at 28x28."""

    size: int = opt(28, "image size", choices=(28,))
    channels: int = opt(1, "image channels", choices=(1, 3))
    z_dim: int = opt(100, "noise dimension", min=1, max=MAX_Z)
    num_classes: int = opt(10, "number of classes (must match the dataset)", min=2, max=10000)
    embed_dim: int = opt(50, "label embedding size", min=1, max=MAX_Z)
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
        "D": ConditionalDiscriminator28(cfg.num_classes, cfg.channels),
    }


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
