"""CycleGAN (Zhu et al. 2017): unpaired translation with two ResNet generators and two PatchGANs."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from ganrt.config import opt
from train.config import MAX_BATCH, MAX_CHANNELS, MAX_SIZE, MAX_STEPS, MAX_WEIGHT, MAX_WIDTH, TrainConfig
from train.losses import least_squares_d_loss, least_squares_g_loss
from train.nets import UPSAMPLE_KINDS, PatchDiscriminator, ResnetGenerator
from train.registry import Variant, register
from train.step import TrainStep
from train.translation import (
    GENERATOR_NORMS,
    fixed_inputs,
    image_io,
    output_io,
    require_training_range,
    translation_feeds,
    unpaired_dataset,
)


@dataclass
class CycleGANConfig(TrainConfig):
    """ResNet generators, LSGAN, cycle 10, identity 0.5, 50-image pools, Adam 2e-4 / 0.5 (the paper's settings)."""

    size: int = opt(256, "training image size (a multiple of 4)", min=32, max=MAX_SIZE, multiple_of=4)
    channels: int = opt(3, "image channels", min=1, max=MAX_CHANNELS)
    ngf: int = opt(64, "generator width", min=1, max=MAX_WIDTH)
    ndf: int = opt(64, "discriminator width", min=1, max=MAX_WIDTH)
    n_blocks: int = opt(9, "residual blocks (9 at 256, 6 at 128 in the paper)", min=0, max=64)
    norm: str = opt("instance", "generator normalisation: instance (the paper's), batch, or instance-affine "
                                "(per-image statistics with a learned scale and shift)", choices=GENERATOR_NORMS)
    dropout: bool = opt(False, "dropout 0.5 inside each residual block (junyanz's --no_dropout off; the paper has none)")
    upsample: str = opt("transpose", "generator decoder: transpose (stride-2 transposed convs, the paper's) or resize "
                                     "(nearest upsample + 3x3 conv: no checkerboard artifacts, Odena et al. 2016)",
                        choices=UPSAMPLE_KINDS)
    edge_padding: int = opt(3, "reflection padding around the generator's first and last 7x7 convs (3 keeps the "
                               "size; PyTorch-GAN's GeneratorResNet pads by the channel count)", min=0, max=3)
    input_range: tuple[float, float] = opt((-1.0, 1.0), "value range the generator's input images are scaled to "
                                                        "(training data is [-1, 1]; imported generators may differ)",
                                           min=-1e4, max=1e4)
    lambda_cycle: float = opt(10.0, "weight of the cycle-consistency L1 terms", min=0.0, max=MAX_WEIGHT)
    lambda_identity: float = opt(0.5, "identity loss weight, relative to lambda_cycle", min=0.0, max=MAX_WEIGHT)
    pool_size: int = opt(50, "generated images kept to show the discriminators (Shrivastava et al. 2017)",
                         min=0, max=10000)
    decay_from: float = opt(0.5, "fraction of training after which the learning rate decays linearly to 0",
                             min=0.0, max=1.0)
    jitter: bool = opt(True, "random resize/crop and flip on real data")
    steps: int = opt(200000, "generator updates (horse2zebra: 200 epochs of ~1,000 images)", min=1, max=MAX_STEPS)
    batch_size: int = opt(1, "images per step", min=1, max=MAX_BATCH)
    sample_every: int = opt(500, "steps between sample grids", min=1, max=MAX_STEPS)
    checkpoint_every: int = opt(2000, "steps between checkpoints", min=1, max=MAX_STEPS)
    eval_samples: int = opt(64, "held-out images used by the final evaluation", min=1, max=10**6)

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"size": 64, "ngf": 16, "ndf": 32, "n_blocks": 6, "batch_size": 4, "steps": 1200,
                  "sample_every": 100, "checkpoint_every": 400},
        "paper": {},
        "paper128": {"size": 128, "n_blocks": 6},
    }


def networks(cfg: CycleGANConfig) -> dict[str, nn.Module]:
    """G: A -> B, F: B -> A, D_B judges domain B, D_A judges domain A."""
    def generator() -> nn.Module:
        return ResnetGenerator(cfg.channels, cfg.channels, cfg.ngf, cfg.n_blocks, norm=cfg.norm, dropout=cfg.dropout,
                               upsample=cfg.upsample, edge_padding=cfg.edge_padding)

    def discriminator() -> nn.Module:
        return PatchDiscriminator(cfg.channels, cfg.ndf, n_layers=3, norm="instance")

    return {"G": generator(), "F": generator(), "D_A": discriminator(), "D_B": discriminator()}


class ImagePool:
    """A history of generated images; D sees a random old one half the time once the pool is full."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[Tensor] = []

    def query(self, batch: Tensor) -> Tensor:
        """Swap each image for a stored one with probability 1/2 (once full)."""
        if self.size == 0:
            return batch
        out = []
        for image in batch.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()) < 0.5:
                i = int(torch.randint(len(self.images), ()))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)


class CycleGANStep(TrainStep):
    """Generators on adversarial + cycle + identity losses, then discriminators on pooled fakes."""

    def __init__(self, cfg: CycleGANConfig, nets: dict[str, nn.Module], device: torch.device, amp: bool) -> None:
        super().__init__(cfg, nets, device, amp)
        require_training_range(cfg)
        betas = (cfg.beta1, cfg.beta2)
        self.adam("G", itertools.chain(nets["G"].parameters(), nets["F"].parameters()), cfg.lr_g, betas)
        self.adam("D", itertools.chain(nets["D_A"].parameters(), nets["D_B"].parameters()), cfg.lr_d, betas)
        decay_start = int(cfg.steps * cfg.decay_from)

        def linear_decay(step: int) -> float:
            return 1.0 - max(0, step - decay_start) / float(cfg.steps - decay_start + 1)

        for name, o in self.optimizers.items():
            self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(o, linear_decay)
        self.pool_a, self.pool_b = ImagePool(cfg.pool_size), ImagePool(cfg.pool_size)

    def __call__(self, next_batch: Callable[[], Any]) -> dict[str, Tensor]:
        G, F, D_A, D_B = (self.nets[k] for k in ("G", "F", "D_A", "D_B"))
        cfg = self.cfg
        batch = next_batch()
        real_a, real_b = batch["A"], batch["B"]

        # (1) Update G and F: minimize (D_B(G(a)) - 1)^2 + (D_A(F(b)) - 1)^2
        #     + lambda_cycle (|F(G(a)) - a| + |G(F(b)) - b|) + lambda_cycle lambda_identity (|G(b) - b| + |F(a) - a|)
        D_A.requires_grad_(False)
        D_B.requires_grad_(False)
        with self.autocast():
            fake_b, fake_a = G(real_a), F(real_b)
            adversarial = least_squares_g_loss(D_B(fake_b)) + least_squares_g_loss(D_A(fake_a))
            cycle = (F(fake_b) - real_a).abs().mean() + (G(fake_a) - real_b).abs().mean()
            loss = adversarial + cfg.lambda_cycle * cycle
            if cfg.lambda_identity > 0:
                identity = (G(real_b) - real_b).abs().mean() + (F(real_a) - real_a).abs().mean()
                loss = loss + cfg.lambda_cycle * cfg.lambda_identity * identity
            else:
                identity = torch.zeros((), device=real_a.device)
        self.update("G", loss)
        D_A.requires_grad_(True)
        D_B.requires_grad_(True)

        # (2) Update D_A and D_B: minimize 1/2 (D(real) - 1)^2 + 1/2 D(pooled fake)^2 for each
        with self.autocast():
            d_b = least_squares_d_loss(D_B(real_b), D_B(self.pool_b.query(fake_b)))
            d_a = least_squares_d_loss(D_A(real_a), D_A(self.pool_a.query(fake_a)))
        self.update("D", d_a + d_b)
        return {"g_adv": adversarial.detach(), "cycle": cycle.detach(), "identity": identity.detach(),
                "d_a": d_a.detach(), "d_b": d_b.detach()}

    def extra_state(self) -> dict[str, Any]:
        """The image pools, so a resumed run continues exactly."""
        return {"pool_a": _stack(self.pool_a.images), "pool_b": _stack(self.pool_b.images)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Refill the pools from a checkpoint (on this step's device)."""
        for pool, key in ((self.pool_a, "pool_a"), (self.pool_b, "pool_b")):
            saved = state.get(key)
            pool.images = [] if saved is None else [t.to(self.device) for t in saved]


def _stack(images: list[Tensor]) -> Tensor | None:
    return torch.stack(images).cpu() if images else None


register(Variant(
    name="cyclegan",
    summary="Unpaired image-to-image translation: ResNet generators, cycle consistency (Zhu et al. 2017)",
    config=CycleGANConfig,
    generator=lambda c: networks(c)["G"],
    networks=networks,
    inputs=lambda c: [image_io(c)],
    output=output_io,
    dataset=unpaired_dataset,
    step=CycleGANStep,
    sample_feeds=lambda c, n, g: translation_feeds(c, n, paired=False),
    eval_pairs=lambda c, n: fixed_inputs(c, n, paired=False),
    papers=("Zhu, Park, Isola, Efros, Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks, ICCV 2017",),
))
