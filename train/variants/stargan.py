"""StarGAN (Choi et al. 2018): one generator G(image, domain) translates between K domains; D also classifies the domain."""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganrt.config import opt
from ganrt.errors import DataError, UsageError
from ganrt.signature import TensorSpec
from train.config import MAX_BATCH, MAX_SIZE, MAX_STEPS, MAX_WEIGHT, MAX_WIDTH, TrainConfig
from train.data import CelebAAttributes, ImageFolder, PhotoStyles, is_celeba, to_tensor
from train.data.styles import DOMAINS as STYLE_DOMAINS
from train.eval import generate, image_metrics, train_classifier
from train.losses import gradient_penalty, wasserstein_d_loss, wasserstein_g_loss
from train.nets import StarDiscriminator, StarGenerator
from train.nets.resnet import UPSAMPLE_KINDS
from train.registry import Variant, register
from train.samples import grid, to_uint8
from train.step import TrainStep
from train.translation import DATA_RANGE, output_io

log = logging.getLogger("ganrt.train")

# The paper's settings (Choi et al. 2018, arXiv:1711.09020, sec. 4 and appendix: Adam 1e-4,
# beta1 0.5, beta2 0.999, batch 16, one G update per five D updates, lambda_cls 1, lambda_rec
# 10, lambda_gp 10), checked against the authors' code (yunjey/stargan main.py and solver.py:
# num_iters 200000 D iterations with the learning rate decaying linearly to 0 over the last
# 100000, i.e. 40000 G updates; the target domain is drawn at random per image).
CLASSIFIER_FILE = "eval_domain_classifier.safetensors"
MEAN_TARGET_IMAGES = 256  # training images of a domain averaged into its mean-target baseline
GRID_ROWS = 6


@dataclass
class StarGANConfig(TrainConfig):
    """One generator for K domains: WGAN-GP + domain classification + reconstruction, the paper's nets and optimiser."""

    size: int = opt(128, "training image size (a multiple of 2^d_layers; G itself takes any multiple of 4)",
                    min=16, max=MAX_SIZE, multiple_of=4)
    channels: int = opt(3, "image channels (colour: the built-in styles and CelebA are RGB)", choices=(3,))
    conv_dim: int = opt(64, "generator width (the paper's 64)", min=1, max=MAX_WIDTH)
    d_conv_dim: int = opt(64, "discriminator width (the paper's 64)", min=1, max=MAX_WIDTH)
    upsample: str = opt("transpose", "generator decoder: transpose (4x4 stride-2 transposed convs, the paper's) or "
                        "resize (nearest upsample + 3x3 conv: no checkerboard artifacts, Odena et al. 2016)",
                        choices=UPSAMPLE_KINDS)
    n_blocks: int = opt(6, "residual blocks in the generator (the paper's 6)", min=0, max=64)
    d_layers: int = opt(6, "stride-2 convs in the discriminator (the paper's 6 at 128 px)", min=1, max=10)
    lambda_cls: float = opt(1.0, "weight of the domain classification losses", min=0.0, max=MAX_WEIGHT)
    lambda_rec: float = opt(10.0, "weight of the reconstruction L1 loss |x - G(G(x, c), c')|", min=0.0, max=MAX_WEIGHT)
    lambda_id: float = opt(0.0, "weight of an identity L1 loss |x - G(x, c')| into the image's own domain (not in the "
                                "paper, which has 0; CycleGAN's identity term, Zhu et al. 2017: it teaches G to keep "
                                "the input's structure early)", min=0.0, max=MAX_WEIGHT)
    lambda_gp: float = opt(10.0, "gradient penalty weight", min=0.0, max=MAX_WEIGHT)
    n_critic: int = opt(5, "discriminator updates per generator update", min=1, max=100)
    decay_from: float = opt(0.5, "fraction of training after which the learning rates decay linearly to 0",
                            min=0.0, max=1.0)
    attrs: tuple[str, ...] = opt(("Black_Hair", "Blond_Hair", "Brown_Hair"),
                                 "CelebA attributes used as mutually exclusive domains (--data with "
                                 "list_attr_celeba.txt): an image is in domain k when exactly attribute k is +1")
    domains: tuple[str, ...] = opt((), "domain names, in label order; recorded from the data when training",
                                   default_text="the data's: the built-in styles, train/'s sub-folders or --attrs")
    eval_classifier_steps: int = opt(600, "training steps of the domain classifier that scores the translations",
                                     min=1, max=10**6)
    builtin_items: int = opt(2400, "training items of the built-in set (photo crops, each in one of its 6 styles)",
                             min=6, max=10**6)
    steps: int = opt(40000, "generator updates (the authors' 200000 D iterations at n_critic 5)", min=1, max=MAX_STEPS)
    batch_size: int = opt(16, "images per D update (the paper's)", min=1, max=MAX_BATCH)
    lr_g: float = opt(1e-4, "generator learning rate (Adam; the paper's)", min=0.0, max=1.0)
    lr_d: float = opt(1e-4, "discriminator learning rate (Adam; the paper's)", min=0.0, max=1.0)
    sample_every: int = opt(1000, "steps between sample grids", min=1, max=MAX_STEPS)
    checkpoint_every: int = opt(2000, "steps between checkpoints", min=1, max=MAX_STEPS)
    eval_samples: int = opt(64, "held-out images of the final evaluation, each translated into every other domain "
                                "(built in: crops, each rendered in every style)", min=1, max=10**5)

    # quick on the built-in styles, 2,000 steps, measured overall L1 / SSIM: Adam at the paper's 1e-4 0.171 / 0.294;
    # 3e-4 0.135 / 0.445; + identity 5: 0.122 / 0.521; + identity 10 and the resize decoder: 0.122 / 0.524, no
    # checkerboard (resize without identity, 3,000 steps: G ignored its input, SSIM 0.03); identity 20: 0.117 / 0.544;
    # identity 40 (13 min): 0.115 / 0.562. L1 beats both baselines for every target; copy-input still wins SSIM
    # everywhere (by 0.003-0.07).
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"size": 32, "conv_dim": 16, "d_conv_dim": 16, "n_blocks": 3, "d_layers": 4, "steps": 2000,
                  "lr_g": 3e-4, "lr_d": 3e-4, "lambda_id": 40.0, "upsample": "resize",
                  "sample_every": 250, "checkpoint_every": 500},
        "paper": {},  # the defaults are the paper's
    }


# -- domains and data ---------------------------------------------------------------------------
def domain_names(cfg: StarGANConfig) -> tuple[str, ...]:
    """The domains in label order: recorded ones, else the built-in styles, CelebA's --attrs or train/'s sub-folders."""
    if cfg.domains:
        return tuple(cfg.domains)
    if cfg.data is None:
        return STYLE_DOMAINS
    root = _root(cfg)
    if is_celeba(root):
        return tuple(cfg.attrs)
    return tuple(sorted(p.name for p in (root / "train").iterdir() if p.is_dir() and not p.name.startswith(".")))


def _root(cfg: StarGANConfig) -> Path:
    root = Path(cfg.data)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    if not is_celeba(root) and not (root / "train").is_dir():
        raise DataError(f"{root}: expected train/<domain>/ image folders (and test/<domain>/), or CelebA's "
                        f"list_attr_celeba.txt with img_align_celeba/")
    return root


def held_out_split(cfg: StarGANConfig) -> str:
    """test where the data has one (always for the built-in set and CelebA), else train with a warning."""
    if cfg.data is None or is_celeba(_root(cfg)) or (_root(cfg) / "test").is_dir():
        return "test"
    log.warning("no test/ folder in %s: evaluating on training images", cfg.data)
    return "train"


def dataset(cfg: StarGANConfig, split: str = "train") -> Dataset:
    """The built-in styled crops, a train/<domain>/ folder tree, or CelebA by attributes; items (image, domain)."""
    if cfg.data is None:
        # The test split needs only the held-out crops; each is rendered lazily.
        n = cfg.builtin_items if split == "train" else max(cfg.eval_samples, GRID_ROWS) * len(STYLE_DOMAINS)
        data: Any = PhotoStyles(n=n, size=cfg.size, split=split, seed=cfg.seed)
    elif is_celeba(_root(cfg)):
        data = CelebAAttributes(_root(cfg), tuple(cfg.attrs), split=split, size=cfg.size)
    else:
        data = ImageFolder(_root(cfg) / split, size=cfg.size, channels=cfg.channels)
        data.domains = data.classes
    if cfg.domains and tuple(data.domains) != tuple(cfg.domains):
        raise DataError(f"the {split} data's domains ({', '.join(data.domains)}) are not this run's "
                        f"({', '.join(cfg.domains)})")
    if len(data.domains) < 2:
        raise DataError(f"StarGAN needs at least 2 domains; the {split} data has {', '.join(data.domains) or 'none'}")
    # Recorded in the config (saved as the run's config.json and in the generator file), so that
    # export and infer know the domains' names without the data.
    cfg.domains = tuple(data.domains)
    return data


def round_robin(labels: np.ndarray, n: int, num_domains: int) -> list[int]:
    """Up to n indices taking each domain's items in turn (domain 0's first, domain 1's first, ...)."""
    per_domain = [np.flatnonzero(labels == d).tolist() for d in range(num_domains)]
    order: list[int] = []
    for rank in range(max(len(p) for p in per_domain)):
        order += [p[rank] for p in per_domain if rank < len(p)]
    return order[:n]


def held_out(cfg: StarGANConfig, n: int) -> tuple[Tensor, Tensor]:
    """Up to n held-out images, domains in turn, and their own domains."""
    data = dataset(cfg, held_out_split(cfg))
    items = [data[i] for i in round_robin(data.labels, n, len(data.domains))]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def other_domains(source: Tensor, num_domains: int) -> Tensor:
    """For the i-th of a batch of own domains, target (source + 1 + (i // K) mod (K - 1)) mod K: never its own."""
    shift = 1 + (torch.arange(len(source)) // num_domains) % (num_domains - 1)
    return (source + shift) % num_domains


# -- the contract -------------------------------------------------------------------------------
def generator(cfg: StarGANConfig) -> nn.Module:
    """G(image, domain)."""
    return StarGenerator(len(domain_names(cfg)), cfg.conv_dim, cfg.n_blocks, cfg.channels, cfg.upsample)


def networks(cfg: StarGANConfig) -> dict[str, nn.Module]:
    """G(image, domain) and D with its source and domain heads."""
    if cfg.size % 2**cfg.d_layers:
        raise UsageError(f"--size {cfg.size} is not a multiple of 2^{cfg.d_layers}: the discriminator's "
                         f"{cfg.d_layers} stride-2 convs need one (lower --d-layers or change --size)")
    num_domains = len(domain_names(cfg))
    return {"G": generator(cfg),
            "D": StarDiscriminator(num_domains, cfg.size, cfg.d_conv_dim, cfg.d_layers, cfg.channels)}


def inputs(cfg: StarGANConfig) -> list[TensorSpec]:
    """A fully convolutional image in [-1, 1] and the int64 target `domain`, with the domains' names."""
    names = domain_names(cfg)
    return [TensorSpec("image", (None, cfg.channels, None, None), "float32", range=DATA_RANGE),
            TensorSpec("domain", (None,), "int64", kind="label", num_classes=len(names), class_names=names)]


def sample_feeds(cfg: StarGANConfig, n: int, gen: torch.Generator) -> dict[str, Tensor]:
    """Up to n held-out images, own domains in turn, each with a target other than its own that cycles over all K."""
    images, source = held_out(cfg, n)
    return {"image": images, "domain": other_domains(source, len(domain_names(cfg)))}


# -- training ------------------------------------------------------------------------------------
class StarGANStep(TrainStep):
    """n_critic D updates (WGAN-GP + domain classification of real images), then one G update (Choi et al. 2018, eq. 5-6)."""

    def __init__(self, cfg: Any, nets: dict[str, nn.Module], device: torch.device, amp: bool) -> None:
        super().__init__(cfg, nets, device, amp)
        betas = (cfg.beta1, cfg.beta2)
        self.adam("D", nets["D"].parameters(), cfg.lr_d, betas)
        self.adam("G", nets["G"].parameters(), cfg.lr_g, betas)
        decay_start = int(cfg.steps * cfg.decay_from)

        def linear_decay(step: int) -> float:
            return 1.0 - max(0, step - decay_start) / float(cfg.steps - decay_start + 1)

        for name, o in self.optimizers.items():
            self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(o, linear_decay)
        self.num_domains = len(domain_names(cfg))

    def _targets(self, source: Tensor) -> Tensor:
        # Uniform over the other K - 1 domains (the authors permute the batch's labels, which
        # spends about 1/K of the updates on the identity; every pair evaluated has c != c').
        return (source + torch.randint(1, self.num_domains, source.shape, device=source.device)) % self.num_domains

    def __call__(self, next_batch: Callable[[], Any]) -> dict[str, Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        cfg = self.cfg

        # (1) Update D n_critic times: minimize D_src(G(x, c)) - D_src(x) + lambda_gp (||grad D_src(x^)|| - 1)^2
        #     + lambda_cls CE(D_cls(x), c')  [c' the real image's domain, c a random other one]
        for _ in range(cfg.n_critic):
            real, source = next_batch()  # N x channels x size x size, N
            target = self._targets(source)
            with torch.no_grad(), self.autocast():
                fake = G(real, target)
            with self.autocast():
                src_real, cls_real = D(real)  # N x 1 x size/2^n x size/2^n, N x K
                src_fake, _ = D(fake)
                adversarial = wasserstein_d_loss(src_real, src_fake)
                domain_real = F.cross_entropy(cls_real.float(), source)
            # The penalty needs a double backward: kept in fp32 for its precision.
            penalty = gradient_penalty(lambda x: D(x)[0], real, fake.float())
            d_loss = adversarial + cfg.lambda_cls * domain_real + cfg.lambda_gp * penalty
            self.update("D", d_loss)

        # (2) Update G: minimize -D_src(G(x, c)) + lambda_cls CE(D_cls(G(x, c)), c) + lambda_rec |x - G(G(x, c), c')|
        #     [+ lambda_id |x - G(x, c')|]
        D.requires_grad_(False)
        with self.autocast():
            fake = G(real, target)  # N x channels x size x size
            src_fake, cls_fake = D(fake)
            g_adv = wasserstein_g_loss(src_fake)
            domain_fake = F.cross_entropy(cls_fake.float(), target)
            reconstruction = (G(fake, source) - real).abs().mean()
            g_loss = g_adv + cfg.lambda_cls * domain_fake + cfg.lambda_rec * reconstruction
            if cfg.lambda_id:
                identity = (G(real, source) - real).abs().mean()
                g_loss = g_loss + cfg.lambda_id * identity
        self.update("G", g_loss)
        D.requires_grad_(True)
        losses = {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "wasserstein": -adversarial.detach(),
                  "gp": penalty.detach(), "d_cls": domain_real.detach(), "g_cls": domain_fake.detach(),
                  "rec": reconstruction.detach()}
        return losses | ({"idt": identity.detach()} if cfg.lambda_id else {})


# -- evaluation ----------------------------------------------------------------------------------
def _classifier(cfg: StarGANConfig, data: Dataset, run_dir: Path | None) -> nn.Module:
    """The domain classifier on real training images, cached in the run being evaluated."""
    if run_dir is not None:
        return train_classifier(data, cfg.channels, len(domain_names(cfg)), run_dir / CLASSIFIER_FILE,
                                cfg.eval_classifier_steps)
    with tempfile.TemporaryDirectory() as tmp:  # no run to cache it in
        return train_classifier(data, cfg.channels, len(domain_names(cfg)), Path(tmp) / CLASSIFIER_FILE,
                                cfg.eval_classifier_steps)


@torch.no_grad()
def _accuracy(clf: nn.Module, images: Tensor, wanted: Tensor) -> float:
    logits = torch.cat([clf(images[i:i + 500])[1] for i in range(0, len(images), 500)])
    return round(float((logits.argmax(1) == wanted).float().mean()), 4)


def mean_targets(data: Dataset, num_domains: int) -> Tensor:
    """Each domain's mean training image (K x channels x size x size): the mean-target baseline."""
    labels = np.asarray(data.labels)
    means = []
    for d in range(num_domains):
        idx = np.flatnonzero(labels == d)[:MEAN_TARGET_IMAGES]
        means.append(torch.stack([data[int(i)][0] for i in idx]).mean(0))
    return torch.stack(means)


def _mean_scores(per_target: dict[str, dict[str, Any]], key: str) -> dict[str, float]:
    scores = [p[key] for p in per_target.values()]
    return {name: round(float(np.mean([s[name] for s in scores])), 5) for name in scores[0]}


def ground_truth_pairs(cfg: StarGANConfig, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Built-in set: every held-out crop of n in every style, translated into every other: (inputs, sources, targets, truths)."""
    data = dataset(cfg, "test")
    k = len(data.domains)
    inputs_, sources, targets, truths = [], [], [], []
    for j in range(min(n, len(data) // k)):
        styled = [to_tensor(data.styled(j, d)) for d in range(k)]
        for s in range(k):
            for t in range(k):
                if s != t:
                    inputs_.append(styled[s])
                    truths.append(styled[t])
                    sources.append(s)
                    targets.append(t)
    return torch.stack(inputs_), torch.tensor(sources), torch.tensor(targets), torch.stack(truths)


@torch.no_grad()
def evaluate(gen: nn.Module, cfg: StarGANConfig, data: Dataset, clf: Any = None, real_features: Any = None,
             run_dir: Path | None = None) -> dict[str, Any]:
    """Per target domain: L1/PSNR/SSIM against the true output beside copy-input and mean-target baselines (built-in
    set), and a domain classifier's accuracy on the translations (any data)."""
    names = domain_names(cfg)
    k = len(names)
    with torch.enable_grad():  # the classifier trains here, inside this no-grad evaluation
        domain_clf = _classifier(cfg, data, run_dir)
    if cfg.data is None:
        images, sources, targets, truths = ground_truth_pairs(cfg, cfg.eval_samples)
    else:
        held, own = held_out(cfg, cfg.eval_samples)
        images, sources = held.repeat_interleave(k - 1, 0), own.repeat_interleave(k - 1)
        targets = (sources + torch.arange(1, k).repeat(len(held))) % k  # every other domain
        truths = None
    pred = generate(gen, [images, targets], batch=64)
    real_held, real_own = held_out(cfg, cfg.eval_samples * k if cfg.data is None else cfg.eval_samples)
    result: dict[str, Any] = {"n_translations": len(pred), "real_images_domain_accuracy":
                              _accuracy(domain_clf, real_held, real_own)}
    per_target: dict[str, dict[str, Any]] = {}
    means = mean_targets(data, k) if truths is not None else None
    for t, name in enumerate(names):
        into = targets == t
        scores: dict[str, Any] = {"n": int(into.sum()), "domain_accuracy": None}
        if not into.any():  # real data with fewer held-out images than domains
            per_target[name] = scores
            continue
        scores["domain_accuracy"] = _accuracy(domain_clf, pred[into], targets[into])
        if truths is not None:
            scores["model"] = image_metrics(pred[into], truths[into])
            scores["baseline_copy_input"] = image_metrics(images[into], truths[into])
            scores["baseline_mean_target"] = image_metrics(means[t:t + 1].expand_as(truths[into]), truths[into])
            scores["beats_both_baselines"] = all(
                scores["model"]["l1"] < scores[b]["l1"] and scores["model"]["ssim"] > scores[b]["ssim"]
                for b in ("baseline_copy_input", "baseline_mean_target"))
        per_target[name] = scores
    accuracy = _accuracy(domain_clf, pred, targets)
    if truths is None:
        result["note"] = ("no ground truth for this data (real images have no true translation): only the domain "
                          "classifier's accuracy on the translations is measured")
        result["model"] = {"domain_accuracy": accuracy}
    else:
        result["model"] = {**_mean_scores(per_target, "model"), "domain_accuracy": accuracy}
        result["baseline_copy_input"] = _mean_scores(per_target, "baseline_copy_input")
        result["baseline_mean_target"] = _mean_scores(per_target, "baseline_mean_target")
        result["targets_beating_both_baselines"] = [n for n, s in per_target.items() if s["beats_both_baselines"]]
    result["per_target"] = per_target
    return result


def sample_grid(cfg: StarGANConfig, run: Callable[[dict[str, Tensor]], Tensor]) -> np.ndarray:
    """A row per held-out input (own domains in turn); columns: the input, then its translation into each domain."""
    k = len(domain_names(cfg))
    images, _ = held_out(cfg, max(GRID_ROWS, k))
    rows = len(images)
    domains = torch.arange(k).repeat(rows)  # row-major: input r into 0, 1, ..., K-1
    translated = run({"image": images.repeat_interleave(k, 0), "domain": domains}).view(rows, k, *images.shape[1:])
    cells = torch.cat([images[:, None], translated], 1).flatten(0, 1)  # rows * (1 + K) images
    return grid(to_uint8(cells), cols=1 + k)


register(Variant(
    name="stargan",
    summary="Multi-domain image-to-image translation with one generator G(image, domain) (Choi et al. 2018)",
    config=StarGANConfig,
    generator=generator,
    networks=networks,
    inputs=inputs,
    output=output_io,
    dataset=dataset,
    step=StarGANStep,
    sample_feeds=sample_feeds,
    evaluate=evaluate,
    sample_grid=sample_grid,
    papers=("Choi, Choi, Kim, Ha, Kim, Choo, StarGAN: Unified Generative Adversarial Networks for Multi-Domain "
            "Image-to-Image Translation, CVPR 2018, arXiv:1711.09020",),
))
