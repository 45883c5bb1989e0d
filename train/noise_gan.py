"""Pieces shared by the noise-to-sample variants (gan, cgan, dcgan, wgan-gp).

Their generators take noise `z` (and a class `label` when conditional); their datasets are
built-in sets or real image folders; their training steps alternate D and G updates.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganrt.errors import DataError
from ganrt.signature import TensorSpec
from train.data import IdxImages, ImageFolder, ShapesDataset
from train.losses import ADVERSARIAL, gradient_penalty
from train.step import TrainStep


def noise_inputs(cfg: Any, conditional: bool) -> list[TensorSpec]:
    """`z` of shape (N, z_dim), plus an int64 `label` of shape (N,) when conditional."""
    specs = [TensorSpec("z", (None, cfg.z_dim), "float32", kind="noise")]
    if conditional:
        specs.append(TensorSpec("label", (None,), "int64", kind="label", num_classes=cfg.num_classes))
    return specs


def image_output(cfg: Any) -> TensorSpec:
    """A tanh image batch in [-1, 1]."""
    return TensorSpec("image", (None, cfg.channels, cfg.size, cfg.size), "float32", range=(-1.0, 1.0))


def noise_feeds(cfg: Any, n: int, gen: torch.Generator, conditional: bool) -> dict[str, Tensor]:
    """Fixed noise (and labels cycling through the classes) for sample grids and calibration."""
    feeds = {"z": torch.randn(n, cfg.z_dim, generator=gen)}
    if conditional:
        feeds["label"] = torch.arange(n, dtype=torch.int64) % cfg.num_classes
    return feeds


def labelled_images(cfg: Any) -> Dataset:
    """The built-in shapes set, or `cfg.data`: a folder of MNIST-style IDX files or of class sub-folders."""
    if cfg.data is None:
        dataset: Any = ShapesDataset(size=cfg.size, seed=cfg.seed)
        if cfg.channels != 1:
            dataset = _RepeatChannels(dataset, cfg.channels)
        return dataset
    root = Path(cfg.data)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    if any(root.glob("train-images-idx3-ubyte*")):
        dataset = IdxImages(root, split="train", size=cfg.size, channels=cfg.channels)
    else:
        dataset = ImageFolder(root, size=cfg.size, channels=cfg.channels)
    if getattr(cfg, "num_classes", None) and dataset.num_classes != cfg.num_classes:
        raise DataError(f"{root} has {dataset.num_classes} classes but --num-classes is {cfg.num_classes}")
    return dataset


class _RepeatChannels(Dataset):
    """Grey images as RGB, for the colour architectures on the grey built-in set."""

    def __init__(self, base: Dataset, channels: int) -> None:
        self.base, self.channels = base, channels
        self.num_classes = getattr(base, "num_classes", None)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        image, label = self.base[i]
        return image.expand(self.channels, -1, -1).contiguous(), label


def _real_and_labels(batch: Any) -> tuple[Tensor, Tensor | None]:
    if isinstance(batch, (list, tuple)):
        return batch[0], batch[1]
    return batch, None


class AdversarialStep(TrainStep):
    """One D update then one G update with a chosen objective (`cfg.loss`); D's first output column is its score."""

    conditional = False

    def __init__(self, cfg: Any, nets: dict[str, nn.Module], device: torch.device, amp: bool) -> None:
        super().__init__(cfg, nets, device, amp)
        self.adam("D", nets["D"].parameters(), cfg.lr_d, (cfg.beta1, cfg.beta2))
        self.adam("G", nets["G"].parameters(), cfg.lr_g, (cfg.beta1, cfg.beta2))
        self.objective = ADVERSARIAL[cfg.loss]

    def _cond(self, labels: Tensor | None) -> tuple[Tensor, ...]:
        return (labels,) if self.conditional else ()

    def _with_class_loss(self, loss: Tensor, out: Tensor, labels: Tensor | None) -> Tensor:
        return loss  # unconditional: no class logits

    def __call__(self, next_batch: Callable[[], Any]) -> dict[str, Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        real, labels = _real_and_labels(next_batch())
        cond = self._cond(labels)
        z = torch.randn(real.shape[0], self.cfg.z_dim, device=self.device)

        # (1) Update D: maximize log D(x) + log(1 - D(G(z)))  [or the chosen objective's D side]
        #     [+ aux_weight * CE(C(x), y) with class logits]
        with self.autocast():
            fake = G(z, *cond)
            d_real, d_fake = D(real, *cond), D(fake.detach(), *cond)
            d_loss = self._with_class_loss(self.objective.d_loss(d_real[:, :1], d_fake[:, :1]), d_real, labels)
        self.update("D", d_loss)

        # (2) Update G: maximize log D(G(z))  [non-saturating; or the chosen objective's G side]
        #     [+ aux_weight * CE(C(G(z, y)), y) with class logits]
        with self.autocast():
            g_out = D(fake, *cond)
            g_loss = self._with_class_loss(self.objective.g_loss(g_out[:, :1]), g_out, labels)
        self.update("G", g_loss)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}


class ConditionalStep(AdversarialStep):
    """AdversarialStep with the class label fed to both networks (Mirza & Osindero 2014).

    With `cfg.aux_weight` > 0, D's class logits follow its score (AC-GAN, Odena et al. 2017)
    and both updates also minimise their cross-entropy with the label; D learns to classify
    on real images only, so that it cannot learn to call G's mistakes their intended class.
    """

    conditional = True

    def _with_class_loss(self, loss: Tensor, out: Tensor, labels: Tensor | None) -> Tensor:
        if self.cfg.aux_weight == 0:
            return loss
        return loss + self.cfg.aux_weight * nn.functional.cross_entropy(out[:, 1:].float(), labels)


class WassersteinGPStep(TrainStep):
    """n_critic critic updates with gradient penalty per generator update (Gulrajani et al. 2017, alg. 1)."""

    def __init__(self, cfg: Any, nets: dict[str, nn.Module], device: torch.device, amp: bool) -> None:
        super().__init__(cfg, nets, device, amp)
        self.adam("D", nets["D"].parameters(), cfg.lr_d, (cfg.beta1, cfg.beta2))
        self.adam("G", nets["G"].parameters(), cfg.lr_g, (cfg.beta1, cfg.beta2))

    def __call__(self, next_batch: Callable[[], Any]) -> dict[str, Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        # (1) Update the critic n_critic times: minimize C(G(z)) - C(x) + lambda (||grad C(x^)|| - 1)^2
        for _ in range(self.cfg.n_critic):
            real, _labels = _real_and_labels(next_batch())
            z = torch.randn(real.shape[0], self.cfg.z_dim, device=self.device)
            with torch.no_grad(), self.autocast():
                fake = G(z)
            with self.autocast():
                wasserstein = D(fake).mean() - D(real).mean()
            # The penalty needs a double backward: kept in fp32 for its precision.
            penalty = gradient_penalty(D, real, fake.float())
            d_loss = wasserstein + self.cfg.gp_lambda * penalty
            self.update("D", d_loss)

        # (2) Update G: minimize -C(G(z))
        z = torch.randn(real.shape[0], self.cfg.z_dim, device=self.device)
        with self.autocast():
            g_loss = -D(G(z)).mean()
        self.update("G", g_loss)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "wasserstein": -wasserstein.detach(),
                "gp": penalty.detach()}


TOY_SETS = ("gaussian", "ring")


def is_toy(cfg: Any) -> bool:
    """True when the config trains on a built-in 1-D/2-D toy distribution."""
    return cfg.data is None and cfg.builtin in TOY_SETS


def toy_dataset(cfg: Any) -> Dataset:
    """The built-in toy set named by `cfg.builtin`."""
    from train.data import Gaussian1D, Ring2D

    if cfg.data is not None:
        raise DataError("toy sets are built in: --data is for image variants (use --builtin ring or gaussian)")
    return Gaussian1D(seed=cfg.seed) if cfg.builtin == "gaussian" else Ring2D(seed=cfg.seed)


def toy_dim(cfg: Any) -> int:
    """Dimension of the toy distribution's samples."""
    return 1 if cfg.builtin == "gaussian" else 2


def points_output(cfg: Any) -> TensorSpec:
    """Unbounded points of the toy distribution's dimension."""
    return TensorSpec("points", (None, toy_dim(cfg)), "float32", kind="points")
