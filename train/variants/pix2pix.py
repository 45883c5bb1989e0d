"""pix2pix (Isola et al. 2017): paired translation with a U-Net generator and a PatchGAN."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from ganrt.config import opt
from train.config import MAX_BATCH, MAX_CHANNELS, MAX_SIZE, MAX_STEPS, MAX_WEIGHT, MAX_WIDTH, TrainConfig
from train.losses import minimax_d_loss, nonsaturating_g_loss
from train.nets import BLOCK_ORDERS, UPSAMPLE_KINDS, PatchDiscriminator, UnetGenerator, unet_depth
from train.registry import Variant, register
from train.step import TrainStep
from train.translation import (
    GENERATOR_NORMS,
    fixed_inputs,
    image_io,
    output_io,
    paired_dataset,
    require_training_range,
    translation_feeds,
)


@dataclass
class Pix2PixConfig(TrainConfig):
    """U-Net-256 + 70x70 PatchGAN, GAN + 100 L1, batch norm, Adam 2e-4 / 0.5 (the paper's settings)."""

    size: int = opt(256, "training image size (a power of two >= 32; the U-Net depth follows it)",
                     choices=tuple(2**k for k in range(5, MAX_SIZE.bit_length())))
    channels: int = opt(3, "image channels", min=1, max=MAX_CHANNELS)
    ngf: int = opt(64, "generator width", min=1, max=MAX_WIDTH)
    ndf: int = opt(64, "discriminator width", min=1, max=MAX_WIDTH)
    norm: str = opt("batch", "generator normalisation: batch (the paper's), instance, or instance-affine "
                             "(per-image statistics with a learned scale and shift)", choices=GENERATOR_NORMS)
    dropout: bool = opt(True, "dropout 0.5 in the generator's 512-wide decoder stages (pix2pix's only noise source)")
    block_order: str = opt("pre-activation", "U-Net stage layout: pre-activation (activation, conv, norm; the "
                                             "reference code's) or post-activation (conv, norm, activation, no "
                                             "conv biases; PyTorch-GAN's GeneratorUNet)", choices=BLOCK_ORDERS)
    final_layer: str = opt("transpose", "the U-Net's output upsampling: transpose (4x4 transposed conv, the "
                                        "paper's) or resize (nearest upsample + 4x4 conv, PyTorch-GAN's)",
                           choices=UPSAMPLE_KINDS)
    input_range: tuple[float, float] = opt((-1.0, 1.0), "value range the generator's input images are scaled to "
                                                        "(training data is [-1, 1]; imported generators may differ)",
                                           min=-1e4, max=1e4)
    lambda_l1: float = opt(100.0, "weight of the L1 reconstruction term", min=0.0, max=MAX_WEIGHT)
    direction: str = opt("AtoB", "which side of each pair is the input", choices=("AtoB", "BtoA"))
    jitter: bool = opt(True, "random resize-286/crop-256 and flip on real data (the paper's jitter)")
    steps: int = opt(80000, "generator updates (facades: 200 epochs of 400 images)", min=1, max=MAX_STEPS)
    batch_size: int = opt(1, "images per step", min=1, max=MAX_BATCH)
    sample_every: int = opt(500, "steps between sample grids", min=1, max=MAX_STEPS)
    checkpoint_every: int = opt(2000, "steps between checkpoints", min=1, max=MAX_STEPS)
    eval_samples: int = opt(64, "held-out images used by the final evaluation", min=1, max=10**6)

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"size": 64, "ngf": 32, "ndf": 32, "batch_size": 4, "steps": 1500, "sample_every": 100,
                  "checkpoint_every": 500},
        "paper": {},
    }


def networks(cfg: Pix2PixConfig) -> dict[str, nn.Module]:
    """G: A -> B U-Net as deep as the image size allows; D: 70x70 PatchGAN on (A, B) pairs."""
    return {
        "G": UnetGenerator(cfg.channels, cfg.channels, unet_depth(cfg.size), cfg.ngf, norm=cfg.norm, dropout=cfg.dropout,
                           block_order=cfg.block_order, final_layer=cfg.final_layer),
        "D": PatchDiscriminator(2 * cfg.channels, cfg.ndf, n_layers=3, norm="batch"),
    }


class Pix2PixStep(TrainStep):
    """Conditional GAN + L1 (Isola et al. 2017, eq. 4); D's loss halved as in the paper."""

    def __init__(self, cfg: Pix2PixConfig, nets: dict[str, nn.Module], device: torch.device, amp: bool) -> None:
        super().__init__(cfg, nets, device, amp)
        require_training_range(cfg)
        self.adam("D", nets["D"].parameters(), cfg.lr_d, (cfg.beta1, cfg.beta2))
        self.adam("G", nets["G"].parameters(), cfg.lr_g, (cfg.beta1, cfg.beta2))

    def __call__(self, next_batch: Callable[[], Any]) -> dict[str, Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        batch = next_batch()
        real_a, real_b = batch["A"], batch["B"]

        # (1) Update D: maximize log D(x, y) + log(1 - D(x, G(x)))
        with self.autocast():
            fake_b = G(real_a)
            d_loss = 0.5 * minimax_d_loss(D(torch.cat([real_a, real_b], 1)), D(torch.cat([real_a, fake_b.detach()], 1)))
        self.update("D", d_loss)

        # (2) Update G: maximize log D(x, G(x)) - lambda * ||y - G(x)||_1
        D.requires_grad_(False)  # D's gradients are not needed here
        with self.autocast():
            adversarial = nonsaturating_g_loss(D(torch.cat([real_a, fake_b], 1)))
            l1 = (fake_b - real_b).abs().mean()
            g_loss = adversarial + self.cfg.lambda_l1 * l1
        self.update("G", g_loss)
        D.requires_grad_(True)
        return {"d_loss": d_loss.detach(), "g_adv": adversarial.detach(), "l1": l1.detach()}


register(Variant(
    name="pix2pix",
    summary="Paired image-to-image translation: U-Net + PatchGAN, GAN + L1 (Isola et al. 2017)",
    config=Pix2PixConfig,
    generator=lambda c: networks(c)["G"],
    networks=networks,
    inputs=lambda c: [image_io(c)],
    output=output_io,
    dataset=paired_dataset,
    step=Pix2PixStep,
    sample_feeds=lambda c, n, g: translation_feeds(c, n, paired=True),
    eval_pairs=lambda c, n: fixed_inputs(c, n, paired=True),
    papers=("Isola, Zhu, Zhou, Efros, Image-to-Image Translation with Conditional Adversarial Networks, CVPR 2017",),
))
