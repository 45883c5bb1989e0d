"""InfoGAN (Chen et al. 2016): noise, a categorical code and continuous codes in; the codes' meaning is learned unsupervised."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganrt.config import opt
from ganrt.signature import TensorSpec
from train import registry
from train.config import MAX_BATCH, MAX_STEPS, MAX_WEIGHT, MAX_Z, TrainConfig
from train.eval import evaluate_images, generate
from train.losses import ADVERSARIAL
from train.nets import InfoGANDiscriminator28, InfoGANGenerator28
from train.noise_gan import image_output, labelled_images
from train.registry import Variant, register
from train.samples import grid, to_uint8
from train.step import TrainStep

# The paper's settings (Chen et al. 2016, arXiv:1606.03657, appendix C.1: Adam, 2e-4 for D and
# 1e-3 for G, batch 100, lambda 1 for the discrete code, a smaller one for continuous codes "to
# ensure that the differential entropy is on the same scale as GAN objectives"), checked against
# the authors' MNIST launcher (openai/InfoGAN launchers/run_mnist_exp.py: lr 1e-3 G, 2e-4 D,
# beta1 0.5, 62 uniform noise dims, Categorical(10), two Uniform(1, fix_std=True) codes; it trains
# 50 epochs of 100 updates at batch 128). z is Gaussian here, as for every other noise model.
EVAL_SEED = 12345
SWEEP_POINTS = 11  # code values per sweep in the monotonicity measure, -1 to 1
GRID_COLUMNS = 10  # code values per row of the sample grid


@dataclass
class InfoGANConfig(TrainConfig):
    """InfoGAN on 28x28 images with the paper's MNIST networks and optimiser."""

    size: int = opt(28, "image size", choices=(28,))
    channels: int = opt(1, "image channels", choices=(1, 3))
    z_dim: int = opt(62, "noise dimension (incompressible noise, not read by Q)", min=1, max=MAX_Z)
    cat_dim: int = opt(10, "values of the categorical code", min=2, max=10000)
    n_continuous: int = opt(2, "continuous codes, each uniform in [-1, 1]", min=1, max=64)
    lambda_cat: float = opt(1.0, "weight of the categorical code's information term (the paper's lambda 1)",
                            min=0.0, max=MAX_WEIGHT)
    lambda_cont: float = opt(0.1, "weight of the continuous codes' information term (smaller than lambda_cat, as the "
                             "paper advises; 0.1 is the common choice, e.g. PyTorch-GAN's)", min=0.0, max=MAX_WEIGHT)
    loss: str = opt("nonsaturating", "adversarial objective", choices=tuple(ADVERSARIAL))
    steps: int = opt(5000, "generator updates (the authors' launcher: 50 x 100)", min=1, max=MAX_STEPS)
    batch_size: int = opt(100, "images per step (the paper's)", min=1, max=MAX_BATCH)
    lr_g: float = opt(1e-3, "generator learning rate (Adam; the paper's)", min=0.0, max=1.0)
    lr_d: float = opt(2e-4, "discriminator and Q learning rate (Adam; the paper's)", min=0.0, max=1.0)

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"steps": 1500, "eval_classifier_steps": 1500, "sample_every": 100, "checkpoint_every": 500},
        "paper": {},  # the defaults are the paper's
    }


def generator(cfg: InfoGANConfig) -> nn.Module:
    """G(z, category, codes)."""
    return InfoGANGenerator28(cfg.z_dim, cfg.cat_dim, cfg.n_continuous, cfg.channels)


def networks(cfg: InfoGANConfig) -> dict[str, nn.Module]:
    """G(z, category, codes) and D, whose trunk Q shares."""
    return {"G": generator(cfg), "D": InfoGANDiscriminator28(cfg.channels, cfg.cat_dim, cfg.n_continuous)}


def inputs(cfg: InfoGANConfig) -> list[TensorSpec]:
    """`z`, the int64 `category` (not "label": nothing ties it to the data's classes) and the float `codes`."""
    return [
        TensorSpec("z", (None, cfg.z_dim), "float32", kind="noise"),
        TensorSpec("category", (None,), "int64", kind="label", num_classes=cfg.cat_dim),
        TensorSpec("codes", (None, cfg.n_continuous), "float32", range=(-1.0, 1.0), kind="code"),
    ]


def sample_feeds(cfg: InfoGANConfig, n: int, gen: torch.Generator) -> dict[str, Tensor]:
    """Fixed noise, categories cycling through every value and codes uniform in [-1, 1]."""
    return {
        "z": torch.randn(n, cfg.z_dim, generator=gen),
        "category": torch.arange(n, dtype=torch.int64) % cfg.cat_dim,
        "codes": torch.rand(n, cfg.n_continuous, generator=gen) * 2 - 1,
    }


# -- training --------------------------------------------------------------------------------
def information_loss(out: Tensor, category: Tensor, codes: Tensor, cat_dim: int) -> tuple[Tensor, Tensor]:
    """(cross-entropy of Q's category logits, Gaussian NLL of the codes under Q's unit-std means) from D's output.

    Each is -E log Q(c | G(z, c)) up to a constant, so minimising it maximises the lower bound
    L_I on I(c; G(z, c)) (the paper's eq. 4; the prior's entropy H(c) is a constant).
    """
    category_logits, code_means = out[:, 1:1 + cat_dim].float(), out[:, 1 + cat_dim:].float()
    cross_entropy = F.cross_entropy(category_logits, category)
    # -log N(c; mu, 1) = (c - mu)^2 / 2 + log sqrt(2 pi): summed over the factored codes.
    gaussian_nll = 0.5 * (codes - code_means).pow(2).sum(1).mean()
    return cross_entropy, gaussian_nll


class InfoGANStep(TrainStep):
    """One D-and-Q update then one G update, each with the adversarial loss minus lambda * L_I (Chen et al. 2016, eq. 5)."""

    def __init__(self, cfg: Any, nets: dict[str, nn.Module], device: torch.device, amp: bool) -> None:
        super().__init__(cfg, nets, device, amp)
        # Q's head lives in D, so D's optimiser trains it (the authors' code: Q's variables are D's).
        self.adam("D", nets["D"].parameters(), cfg.lr_d, (cfg.beta1, cfg.beta2))
        self.adam("G", nets["G"].parameters(), cfg.lr_g, (cfg.beta1, cfg.beta2))
        self.objective = ADVERSARIAL[cfg.loss]

    def _latent(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        cfg = self.cfg
        z = torch.randn(n, cfg.z_dim, device=self.device)
        category = torch.randint(cfg.cat_dim, (n,), device=self.device)
        codes = torch.rand(n, cfg.n_continuous, device=self.device) * 2 - 1
        return z, category, codes

    def _weighted(self, cross_entropy: Tensor, gaussian_nll: Tensor) -> Tensor:
        return self.cfg.lambda_cat * cross_entropy + self.cfg.lambda_cont * gaussian_nll

    def __call__(self, next_batch: Callable[[], Any]) -> dict[str, Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        real, _labels = next_batch()  # the labels stay unused: InfoGAN is unsupervised
        z, category, codes = self._latent(real.shape[0])

        # (1) Update D and Q: maximize log D(x) + log(1 - D(G(z, c))) + lambda L_I(Q)
        #     [L_I on G's samples: -CE(Q_cat, c_cat) - lambda_cont/lambda_cat * NLL(c_cont | Q_mean)]
        with self.autocast():
            fake = G(z, category, codes)  # N x channels x 28 x 28
            d_real, d_fake = D(real), D(fake.detach())  # N x (1 + cat_dim + n_continuous)
            d_info = information_loss(d_fake, category, codes, self.cfg.cat_dim)
            d_loss = self.objective.d_loss(d_real[:, :1], d_fake[:, :1]) + self._weighted(*d_info)
        self.update("D", d_loss)

        # (2) Update G: maximize log D(G(z, c)) + lambda L_I(G)  [non-saturating; or the chosen objective's G side]
        with self.autocast():
            g_out = D(fake)
            cross_entropy, gaussian_nll = information_loss(g_out, category, codes, self.cfg.cat_dim)
            g_loss = self.objective.g_loss(g_out[:, :1]) + self._weighted(cross_entropy, gaussian_nll)
        self.update("G", g_loss)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "info_cat": cross_entropy.detach(),
                "info_cont": gaussian_nll.detach()}


# -- evaluation ------------------------------------------------------------------------------
def category_accuracy(category: np.ndarray, predicted: np.ndarray, cat_dim: int, num_classes: int) -> dict[str, Any]:
    """The categorical code read as a clustering of the classifier's classes: accuracy under the best one-to-one map.

    The map maximises the matched count (Hungarian assignment); with more code values than
    classes the unmatched values count as errors.
    """
    from scipy.optimize import linear_sum_assignment

    counts = np.zeros((cat_dim, num_classes), np.int64)  # code value x predicted class
    np.add.at(counts, (category, predicted), 1)
    values, classes = linear_sum_assignment(counts, maximize=True)
    to_class, hits = np.full(cat_dim, -1), np.zeros(cat_dim, np.int64)
    to_class[values], hits[values] = classes, counts[values, classes]
    drawn = counts.sum(1)
    return {
        "category_accuracy": round(float(hits.sum() / max(drawn.sum(), 1)), 4),
        "category_to_class": to_class.tolist(),
        "category_accuracy_per_value": [round(float(h / d), 4) if d else None for h, d in zip(hits, drawn)],
    }


def image_properties(images: Tensor) -> dict[str, Tensor]:
    """Per image, from its ink's moments: slant (x shift per unit of height, > 0 leaning right), ink, width, height.

    Ink is the image mapped to [0, 1] (bright strokes on a dark ground, as in MNIST); its mean
    grows with stroke width for a fixed shape; width and height are the ink's standard
    deviations along x and y, in pixels.
    """
    ink = (images.float().mean(1).clamp(-1, 1) + 1) / 2  # N x H x W
    h, w = ink.shape[1:]
    ys = torch.arange(h, dtype=ink.dtype)[:, None]
    xs = torch.arange(w, dtype=ink.dtype)[None, :]
    mass = ink.sum((1, 2)).clamp_min(1e-6)

    def moment(f: Tensor) -> Tensor:
        return (ink * f).sum((1, 2)) / mass

    cx, cy = moment(xs), moment(ys)
    dx, dy = xs - cx[:, None, None], ys - cy[:, None, None]
    mu20, mu02, mu11 = moment(dx * dx), moment(dy * dy), moment(dx * dy)
    # Image y grows downwards: a stroke leaning right has x falling as y grows, so mu11 < 0.
    return {"slant": -mu11 / mu02.clamp_min(1e-6), "ink": ink.mean((1, 2)), "width": mu20.sqrt(),
            "height": mu02.sqrt()}


def sweep_spearman(values: np.ndarray) -> float:
    """Mean over sweeps (rows) of the Spearman correlation between the position along the sweep and `values`.

    A row with a constant value has no order and counts as 0.
    """
    from scipy.stats import rankdata

    ranks = rankdata(values, axis=1)
    ranks -= ranks.mean(1, keepdims=True)
    position = np.arange(values.shape[1]) - (values.shape[1] - 1) / 2
    norm = np.sqrt((ranks ** 2).sum(1) * (position ** 2).sum())
    rho = np.divide((ranks * position).sum(1), norm, out=np.zeros(len(values)), where=norm > 0)
    return round(float(rho.mean()), 4)


def code_sweeps(cfg: InfoGANConfig, code: int, n_sweeps: int, gen: torch.Generator) -> dict[str, Tensor]:
    """Feeds for `n_sweeps` sweeps of code `code` over [-1, 1], everything else drawn once per sweep and held."""
    feeds = sample_feeds(cfg, n_sweeps, gen)
    feeds = {k: v.repeat_interleave(SWEEP_POINTS, 0) for k, v in feeds.items()}
    feeds["codes"][:, code] = torch.linspace(-1, 1, SWEEP_POINTS).repeat(n_sweeps)
    return feeds


@torch.no_grad()
def code_monotonicity(gen: nn.Module, cfg: InfoGANConfig) -> dict[str, dict[str, float]]:
    """For each continuous code, how monotonically each image property follows it (mean Spearman rho per sweep)."""
    n_sweeps = max(1, cfg.eval_samples // (SWEEP_POINTS * cfg.n_continuous))
    result = {}
    for code in range(cfg.n_continuous):
        feeds = code_sweeps(cfg, code, n_sweeps, torch.Generator().manual_seed(EVAL_SEED + 1 + code))
        images = generate(gen, [feeds[s.name] for s in inputs(cfg)])
        result[f"code_{code}"] = {name: sweep_spearman(v.view(n_sweeps, SWEEP_POINTS).numpy())
                                  for name, v in image_properties(images).items()}
    return result


@torch.no_grad()
def evaluate(gen: nn.Module, cfg: InfoGANConfig, dataset: Any, clf: nn.Module, real_features: np.ndarray,
             run_dir: Path | None = None) -> dict[str, Any]:
    """FCD and classifier score, the categorical code's accuracy as a clustering, the continuous codes' monotonicity
    (the run directory is not needed: evaluate_run caches the classifier these scores use)."""
    # The other noise models' scores; "category" is not a "label" feed, so no label accuracy is claimed.
    result = evaluate_images(gen, registry.get("infogan"), cfg, dataset, clf, real_features)
    feeds = sample_feeds(cfg, cfg.eval_samples, torch.Generator().manual_seed(EVAL_SEED))
    images = generate(gen, [feeds[s.name] for s in inputs(cfg)])
    logits = torch.cat([clf(images[i:i + 500])[1] for i in range(0, len(images), 500)])  # N x classes
    result.update(category_accuracy(feeds["category"].numpy(), logits.argmax(1).numpy(), cfg.cat_dim, logits.shape[1]))
    result["continuous_codes_spearman"] = code_monotonicity(gen, cfg)
    return result


def sample_grid(cfg: InfoGANConfig, run: Callable[[dict[str, Tensor]], Tensor]) -> np.ndarray:
    """The paper's layout: a row per category, columns sweeping one code over [-1, 1]; a block per code, side by side.

    One noise vector for the whole grid, the other codes at 0, so each row differs only in its category.
    """
    z = torch.randn(1, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 1))
    n = cfg.cat_dim * GRID_COLUMNS
    category = torch.arange(cfg.cat_dim).repeat_interleave(GRID_COLUMNS)
    blocks = []
    for code in range(cfg.n_continuous):
        codes = torch.zeros(n, cfg.n_continuous)
        codes[:, code] = torch.linspace(-1, 1, GRID_COLUMNS).repeat(cfg.cat_dim)
        blocks.append(grid(to_uint8(run({"z": z.repeat(n, 1), "category": category, "codes": codes})), cols=GRID_COLUMNS))
        blocks.append(np.full((blocks[-1].shape[0], 8, 3), 255, np.uint8))  # a gap between the codes' blocks
    return np.concatenate(blocks[:-1], axis=1)


register(Variant(
    name="infogan",
    summary="Unsupervised categorical and continuous codes by mutual information, 28x28 (Chen et al. 2016)",
    config=InfoGANConfig,
    generator=generator,
    networks=networks,
    inputs=inputs,
    output=image_output,
    dataset=labelled_images,
    step=InfoGANStep,
    sample_feeds=sample_feeds,
    evaluate=evaluate,
    sample_grid=sample_grid,
    papers=("Chen, Duan, Houthooft, Schulman, Sutskever, Abbeel, InfoGAN: Interpretable Representation Learning by "
            "Information Maximizing Generative Adversarial Nets, NIPS 2016, arXiv:1606.03657",),
))
