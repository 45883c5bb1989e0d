"""Distillation (after GAN Compression, Li et al. 2020): a compact student learns a trained translator's mapping.

The student, a depthwise-separable ResNet (train/nets/compact.py), is trained on the teacher's own input
domain against the teacher's outputs, computed once and cached (train/distillation/cache.py): an L1 term
to the teacher's output, an MSE term between the teacher's and the student's intermediate activations
(mapped by learned 1x1 convs; train/distillation/features.py) and an LSGAN term whose discriminator sees
(input, teacher output) as real and (input, student output) as fake. The deployed generator is the
student: its signature is the teacher's image-to-image one, so export, infer and bench treat it like
any translator.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ganrt.config import opt
from train.config import MAX_BATCH, MAX_CHANNELS, MAX_SIZE, MAX_STEPS, MAX_WEIGHT, MAX_WIDTH, TrainConfig
from train.distillation.cache import TeacherTargets, describe_inputs, from_pixels, teacher_outputs
from train.distillation.features import Activations, Adapters, FeaturePairs, feature_pairs
from train.distillation.teacher import Teacher, check_size, data_config, load_teacher, record
from train.eval import generate, image_metrics
from train.losses import least_squares_d_loss, least_squares_g_loss
from train.nets import UPSAMPLE_KINDS, CompactGenerator, PatchDiscriminator
from train.nets.macs import CONVENTION, count_macs
from train.registry import Variant, register
from train.samples import grid, to_uint8
from train.step import TrainStep
from train.translation import DATA_RANGE, GENERATOR_NORMS, image_io, output_io

log = logging.getLogger("ganrt.train")

GRID_ROWS = 8
TEACHER_BATCH = 16  # images per teacher forward while filling the cache


@dataclass
class DistillConfig(TrainConfig):
    """A compact student on a teacher's outputs: L1 + feature MSE + LSGAN (our weights; GAN Compression's terms)."""

    teacher: str | None = opt(None, "the translator to distil: a run directory or a generator .safetensors file",
                              default_text="the shipped photo->sketch CycleGAN")
    size: int = opt(0, "training image size, a multiple of 4 the teacher takes; 0: the teacher's training size",
                    min=0, max=MAX_SIZE, multiple_of=4)
    channels: int = opt(3, "image channels (recorded from the teacher when training)", min=1, max=MAX_CHANNELS)
    widths: tuple[int, ...] = opt((24, 48, 96), "student widths at full, half and quarter resolution (the residual "
                                                "blocks work at the last)", min=1, max=4 * MAX_WIDTH)
    n_blocks: int = opt(9, "student residual blocks (depthwise-separable)", min=0, max=64)
    norm: str = opt("instance", "student normalisation", choices=GENERATOR_NORMS)
    upsample: str = opt("resize", "student decoder: resize (nearest upsample + 3x3 conv: no checkerboard, the "
                                  "default here) or transpose (stride-2 transposed convs)", choices=UPSAMPLE_KINDS)
    ndf: int = opt(64, "discriminator width", min=1, max=MAX_WIDTH)
    lambda_rec: float = opt(10.0, "weight of the L1 distance between student and teacher outputs",
                            min=0.0, max=MAX_WEIGHT)
    lambda_feat: float = opt(1.0, "weight of the MSE between mapped student and teacher activations (ResNet and "
                                  "U-Net teachers; others have none)", min=0.0, max=MAX_WEIGHT)
    lambda_gan: float = opt(1.0, "weight of the LSGAN term (real: teacher outputs, fake: student outputs); 0 trains "
                                 "no discriminator", min=0.0, max=MAX_WEIGHT)
    teacher_variant: str = opt("", "recorded when training: the teacher's variant", recorded=True)
    teacher_config: str = opt("", "recorded when training: the teacher's settings (JSON), for its data", recorded=True)
    teacher_sha256: str = opt("", "recorded when training: the teacher file's sha256 (a resume refuses another)",
                              recorded=True)
    steps: int = opt(20000, "student updates", min=1, max=MAX_STEPS)
    batch_size: int = opt(4, "images per step", min=1, max=MAX_BATCH)
    sample_every: int = opt(500, "steps between sample grids", min=1, max=MAX_STEPS)
    checkpoint_every: int = opt(2000, "steps between checkpoints", min=1, max=MAX_STEPS)
    eval_samples: int = opt(64, "held-out images used by the final evaluation", min=1, max=10**6)

    # quick, the shipped photo->sketch teacher at 64 px (1 min 45 s here, 2 cores): student vs teacher 17.6 dB,
    # SSIM 0.63; against the true sketches student 15.9 dB / 0.50, teacher 16.4 dB / 0.55; 0.024 vs 0.151 GMACs.
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"widths": (8, 16, 32), "n_blocks": 4, "ndf": 16, "steps": 1000, "sample_every": 100,
                  "checkpoint_every": 500},
        "default": {},
    }

    @property
    def input_range(self) -> tuple[float, float]:
        """The student takes what its teacher takes: the training data's [-1, 1] (teachers are checked for it)."""
        return DATA_RANGE


# -- the teacher, its data and its outputs --------------------------------------------------------
def bound_teacher(cfg: DistillConfig) -> Teacher:
    """The teacher `cfg` names, checked against (and recorded in) the config."""
    teacher = load_teacher(cfg.teacher)
    record(cfg, teacher)
    return teacher


def _device(cfg: DistillConfig) -> torch.device:
    from train.trainer import Dist, pick_device  # the trainer imports the registry: import it late

    return pick_device(cfg.device, Dist())


def dataset(cfg: DistillConfig, split: str = "train") -> Dataset:
    """The teacher's input images (`--data` or its own dataset, no jitter) with its outputs on them, cached."""
    teacher = bound_teacher(cfg)
    variant, data_cfg = data_config(cfg)
    images = variant.dataset(data_cfg, split)  # type: ignore[call-arg]
    batches = lambda: (item["A"] for item in DataLoader(images, batch_size=TEACHER_BATCH))  # noqa: E731
    outputs = teacher_outputs(teacher.build, teacher.sha256, describe_inputs(data_cfg, split, len(images)), batches,
                              _device(cfg))
    return TeacherTargets(images, outputs)


def held_out(cfg: DistillConfig, n: int) -> tuple[Tensor, Tensor | None]:
    """Up to n held-out inputs of the teacher's data and their ground truth where it has one."""
    variant, data_cfg = data_config(cfg)
    return variant.eval_pairs(data_cfg, n)  # type: ignore[misc]


def sample_feeds(cfg: DistillConfig, n: int, gen: torch.Generator) -> dict[str, Tensor]:
    """The teacher variant's own feeds on its data (held-out input images)."""
    variant, data_cfg = data_config(cfg)
    return variant.sample_feeds(data_cfg, n, gen)


def held_out_teacher(cfg: DistillConfig, inputs: Tensor) -> Tensor:
    """The teacher's outputs ([-1, 1]) on held-out inputs, through the same cache."""
    teacher = bound_teacher(cfg)
    _, data_cfg = data_config(cfg)
    described = describe_inputs(data_cfg, "held-out", len(inputs))
    pixels = teacher_outputs(teacher.build, teacher.sha256, described, lambda: inputs.split(TEACHER_BATCH),
                             torch.device("cpu"))
    return from_pixels(pixels)


# -- the networks -------------------------------------------------------------------------------
def generator(cfg: DistillConfig) -> nn.Module:
    """The student, the deployed generator (built from the config alone: export needs no teacher)."""
    return CompactGenerator(cfg.channels, cfg.channels, cfg.widths, cfg.n_blocks, norm=cfg.norm, upsample=cfg.upsample)


def matched_features(cfg: DistillConfig, teacher: nn.Module) -> FeaturePairs | None:
    """The teacher layers the student is matched with, None without a feature term."""
    return feature_pairs(teacher, cfg.n_blocks) if cfg.lambda_feat > 0 else None


def networks(cfg: DistillConfig) -> dict[str, nn.Module]:
    """G: the student; D: a PatchGAN on (input, output) pairs; A: the 1x1 adapters of the feature term (if any)."""
    teacher = bound_teacher(cfg).build()
    check_size(cfg, teacher)
    nets = {"G": generator(cfg), "D": PatchDiscriminator(2 * cfg.channels, cfg.ndf, n_layers=3, norm="instance")}
    pairs = matched_features(cfg, teacher)
    if pairs is not None:
        nets["A"] = Adapters(cfg.widths[2], pairs.teacher_channels)
    return nets


# -- training ------------------------------------------------------------------------------------
class DistillStep(TrainStep):
    """D on teacher vs student outputs, then the student (and the adapters) on LSGAN + L1 + feature terms."""

    def __init__(self, cfg: DistillConfig, nets: dict[str, nn.Module], device: torch.device, amp: bool) -> None:
        super().__init__(cfg, nets, device, amp)
        betas = (cfg.beta1, cfg.beta2)
        adapters = nets["A"].parameters() if "A" in nets else iter(())
        self.adam("G", itertools.chain(nets["G"].parameters(), adapters), cfg.lr_g, betas)
        self.adam("D", nets["D"].parameters(), cfg.lr_d, betas)
        self.teacher: nn.Module | None = None
        if cfg.lambda_feat == 0:
            return
        bound = bound_teacher(cfg)
        teacher = bound.build()
        pairs = matched_features(cfg, teacher) if "A" in nets else None
        if pairs is None:
            log.warning("--lambda-feat %g: the layers of a %s teacher are unknown here (ResNet and U-Net teachers "
                        "only): training without the feature term", cfg.lambda_feat, bound.variant.name)
            return
        # The teacher runs each step for its activations (too large to cache); its outputs come from the cache.
        self.teacher = teacher.to(device).eval()
        layers = dict(teacher.named_modules())
        student = getattr(nets["G"], "module", nets["G"])  # under DDP, hooks go on the wrapped module
        self.teacher_features = Activations([layers[name] for name in pairs.teacher_layers])
        self.student_features = Activations(student.tap_modules(pairs.student_taps))

    def _feature_loss(self, image: Tensor) -> Tensor:
        """sum_t mean (f_t(S_t(x)) - T_t(x))^2 over the matched layers (the student's forward has just run)."""
        if self.teacher is None:
            return torch.zeros((), device=image.device)
        student = self.nets["A"](self.student_features.take())
        with torch.no_grad():
            self.teacher(image)
        teacher = self.teacher_features.take()
        return sum(F.mse_loss(s.float(), t.float()) for s, t in zip(student, teacher))  # type: ignore[return-value]

    def __call__(self, next_batch: Callable[[], Any]) -> dict[str, Tensor]:
        G, D, cfg = self.nets["G"], self.nets["D"], self.cfg
        batch = next_batch()
        image, target = batch["A"], batch["T"]  # x and the teacher's T(x), N x C x size x size
        with self.autocast():
            student = G(image)  # S(x)
        zero = torch.zeros((), device=image.device)

        # (1) Update D: minimize 1/2 (D(x, T(x)) - 1)^2 + 1/2 D(x, S(x))^2
        d_loss = zero
        if cfg.lambda_gan > 0:
            with self.autocast():
                d_loss = least_squares_d_loss(D(torch.cat([image, target], 1)),
                                              D(torch.cat([image, student.detach()], 1)))
            self.update("D", d_loss)

        # (2) Update S and the adapters f: minimize lambda_gan (D(x, S(x)) - 1)^2 + lambda_rec |S(x) - T(x)|
        #     + lambda_feat sum_t mean (f_t(S_t(x)) - T_t(x))^2
        D.requires_grad_(False)
        with self.autocast():
            adversarial = least_squares_g_loss(D(torch.cat([image, student], 1))) if cfg.lambda_gan > 0 else zero
            reconstruction = (student.float() - target).abs().mean()
            feature = self._feature_loss(image)
            g_loss = cfg.lambda_gan * adversarial + cfg.lambda_rec * reconstruction + cfg.lambda_feat * feature
        self.update("G", g_loss)
        D.requires_grad_(True)
        return {"d_loss": d_loss.detach(), "g_adv": adversarial.detach(), "rec": reconstruction.detach(),
                "feat": feature.detach()}


# -- evaluation and pictures ----------------------------------------------------------------------
def macs(cfg: DistillConfig, teacher: nn.Module, student: nn.Module) -> dict[str, Any]:
    """Per-image MACs (input-grid convention, train/nets/macs.py) and parameters of both at the training size."""

    image = torch.zeros(1, cfg.channels, cfg.size, cfg.size)
    counts = {name: count_macs(net, image).to_json()["gmacs_per_image"]
              for name, net in (("teacher", teacher), ("student", student))}
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in (("teacher", teacher),
                                                                               ("student", student))}
    return {"size": cfg.size, "gmacs_per_image": counts, "parameters": params,
            "teacher_over_student": round(counts["teacher"] / max(counts["student"], 1e-12), 2),
            "convention": CONVENTION}


@torch.no_grad()
def evaluate(gen: nn.Module, cfg: DistillConfig, data: Any = None, clf: Any = None, real_features: Any = None,
             run_dir: Path | None = None) -> dict[str, Any]:
    """On held-out inputs: the student against the teacher ("model": what the training optimises), both against
    the ground truth where the teacher's data has one, and both models' MACs."""
    inputs, truth = held_out(cfg, cfg.eval_samples)
    teacher_images = held_out_teacher(cfg, inputs)
    student_images = generate(gen, [inputs], batch=TEACHER_BATCH)
    result: dict[str, Any] = {"n": len(inputs), "model": image_metrics(student_images, teacher_images)}
    if truth is None:
        result["note"] = "no ground truth for the teacher's data: only the student against the teacher is measured"
    else:
        result["against_truth"] = {"student": image_metrics(student_images, truth),
                                   "teacher": image_metrics(teacher_images, truth)}
    result["macs"] = macs(cfg, bound_teacher(cfg).build(), gen)
    return result


def sample_grid(cfg: DistillConfig, run: Callable[[dict[str, Tensor]], Tensor]) -> np.ndarray:
    """One row per held-out input: the input, the teacher's output, the student's output."""
    inputs, _ = held_out(cfg, GRID_ROWS)
    cells = torch.stack([inputs, held_out_teacher(cfg, inputs), run({"image": inputs})], 1).flatten(0, 1)
    return grid(to_uint8(cells), cols=3)


register(Variant(
    name="distill",
    summary="Distil a trained translator into a compact depthwise-separable student (after Li et al. 2020)",
    config=DistillConfig,
    generator=generator,
    networks=networks,
    inputs=lambda c: [image_io(c)],
    output=output_io,
    dataset=dataset,
    step=DistillStep,
    sample_feeds=sample_feeds,
    eval_pairs=held_out,
    evaluate=evaluate,
    sample_grid=sample_grid,
    papers=("Li, Lin, Ding, Liu, Zhu, Han, GAN Compression: Efficient Architectures for Interactive Conditional "
            "GANs, CVPR 2020, arXiv:2003.08936",),
))
