"""`python -m train.eval RUN_DIR`: measure how well a run's generator matches its data.

- toy points: 1-D moments and Kolmogorov-Smirnov statistic; ring modes covered and the
  fraction of high-quality samples;
- noise-to-image: the TF-GAN approach (Salimans et al. 2016; Heusel et al. 2017, with a
  small classifier trained here on the real data instead of Inception): classifier score and
  Frechet classifier distance (FCD), plus per-label accuracy for conditional models;
- image-to-image: L1, PSNR and SSIM against the ground truth on held-out images, beside two
  trivial baselines (copy the input; predict the mean training target).

The step-0 checkpoint is evaluated too, so every run reports where it started.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ganrt import config as config_mod
from ganrt.atomic import atomic_write_text
from ganrt.errors import UsageError
from train import checkpoint as ckpt
from train import registry
from train.config import RUN_CONFIG, read_run_config

log = logging.getLogger("ganrt.eval")


# -- models from runs -------------------------------------------------------------
def load_run(run_dir: Path) -> tuple[registry.Variant, Any]:
    """(variant, config) of a run directory."""
    name, saved = read_run_config(run_dir)
    variant = registry.get(name)
    try:
        return variant, config_mod.from_dict(variant.config, saved)
    except UsageError as e:
        raise UsageError(f"{run_dir / RUN_CONFIG}: {e}") from None


@torch.no_grad()
def generate(gen: nn.Module, feeds: list[Tensor], batch: int = 256) -> Tensor:
    """Run `gen` over feeds in chunks."""
    n = feeds[0].shape[0]
    return torch.cat([gen(*(f[i:i + batch] for f in feeds)) for i in range(0, n, batch)])


# -- toy distributions --------------------------------------------------------------
def evaluate_points(gen: nn.Module, variant: registry.Variant, cfg: Any, dataset: Any) -> dict[str, Any]:
    """Distance between generated points and the toy target distribution."""
    from train.data.toy import gaussian_stats, ring_stats

    feeds = variant.sample_feeds(cfg, max(1, cfg.eval_samples // 32), torch.Generator().manual_seed(12345))
    points = generate(gen, [feeds[s.name] for s in variant.inputs(cfg)]).numpy()
    if points.shape[1] == 1:
        return gaussian_stats(points[:, 0], dataset.mean, dataset.std)
    return ring_stats(points, dataset.centers, dataset.std)


# -- noise-to-image: classifier-based scores ------------------------------------------
class EvalClassifier(nn.Module):
    """A small CNN trained on the real data; its penultimate layer is the FCD feature space."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.features(x)
        return f, self.head(f)


def _labelled_arrays(dataset: Any, n: int, seed: int) -> tuple[Tensor, Tensor]:
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
    items = [dataset[int(i)] for i in idx]
    return torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])


def train_classifier(dataset: Any, channels: int, num_classes: int, path: Path, steps: int = 600) -> EvalClassifier:
    """Train (or load from `path`) the evaluation classifier on real labelled images."""
    clf = EvalClassifier(channels, num_classes)
    if path.is_file():
        tensors, _ = ckpt.read_weights(path)
        clf.load_state_dict(tensors)
        return clf.eval()
    torch.manual_seed(0)
    images, labels = _labelled_arrays(dataset, min(len(dataset), steps * 64), seed=1)
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
    clf.train()
    for i in range(steps):
        j = torch.randint(len(images), (64,))
        _, logits = clf(images[j])
        loss = nn.functional.cross_entropy(logits, labels[j])
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.eval()
    ckpt.save_weights(path, {k: v.contiguous() for k, v in clf.state_dict().items()}, {"what": "ganrt eval classifier"})
    return clf


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) between Gaussian fits of two feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S_a S_b)^1/2) = sum of sqrt eigenvalues of S_a^1/2 S_b S_a^1/2, which is symmetric PSD.
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.sqrt(np.clip(cross, 0, None)).sum())


def classifier_score(logits: Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))): the Inception Score computed with the evaluation classifier."""
    p = logits.softmax(1).double()
    marginal = p.mean(0, keepdim=True)
    kl = (p * (p.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1).mean()
    return float(kl.exp())


@torch.no_grad()
def evaluate_images(gen: nn.Module, variant: registry.Variant, cfg: Any, dataset: Any, clf: EvalClassifier,
                    real_features: np.ndarray) -> dict[str, Any]:
    """FCD and classifier score of generated images; per-label accuracy when labels are inputs."""
    specs = variant.inputs(cfg)
    feeds = variant.sample_feeds(cfg, cfg.eval_samples, torch.Generator().manual_seed(12345))
    images = generate(gen, [feeds[s.name] for s in specs])
    feats, logits = zip(*(clf(images[i:i + 500]) for i in range(0, len(images), 500)))
    feats_np, logits_t = torch.cat(feats).numpy(), torch.cat(logits)
    result: dict[str, Any] = {"fcd": frechet_distance(feats_np, real_features), "classifier_score": classifier_score(logits_t)}
    if "label" in feeds:
        wanted = feeds["label"]
        hit = (logits_t.argmax(1) == wanted).float()
        result["label_accuracy"] = float(hit.mean())
        result["label_accuracy_per_class"] = [round(float(hit[wanted == c].mean()), 4) for c in range(cfg.num_classes)]
    return result


# -- image-to-image ---------------------------------------------------------------------
def image_metrics(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Mean L1 (0-1 scale), PSNR (dB, peak 1) and SSIM of image batches in [-1, 1]."""
    from skimage.metrics import structural_similarity

    p = (pred.clamp(-1, 1) * 0.5 + 0.5).double()
    t = (target.clamp(-1, 1) * 0.5 + 0.5).double()
    mse = ((p - t) ** 2).flatten(1).mean(1)
    psnr = (10 * torch.log10(1.0 / mse.clamp_min(1e-12))).mean()
    pn, tn = p.permute(0, 2, 3, 1).numpy(), t.permute(0, 2, 3, 1).numpy()
    ssim = np.mean([structural_similarity(a, b, channel_axis=-1, data_range=1.0) for a, b in zip(pn, tn)])
    return {"l1": round(float((p - t).abs().mean()), 5), "psnr": round(float(psnr), 3), "ssim": round(float(ssim), 4)}


def evaluate_translation(gen: nn.Module, variant: registry.Variant, cfg: Any, dataset: Any) -> dict[str, Any]:
    """Translation quality against ground truth, beside copy-input and mean-target baselines."""
    inputs, targets = variant.eval_pairs(cfg, cfg.eval_samples)  # type: ignore[misc]
    if targets is None:
        return {"note": "no ground truth for this data (no aligned test pairs): nothing to measure"}
    pred = generate(gen, [inputs], batch=16)
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:256]
    mean_target = torch.stack([dataset[int(i)]["B"] for i in idx]).mean(0, keepdim=True).expand_as(targets)
    return {
        "n": len(inputs),
        "model": image_metrics(pred, targets),
        "baseline_copy_input": image_metrics(inputs, targets),
        "baseline_mean_target": image_metrics(mean_target, targets),
    }


# -- the whole evaluation ----------------------------------------------------------------
# Each score a run reports, and whether higher is better; translation scores are the model's.
HIGHER_IS_BETTER = {
    "fcd": False, "classifier_score": True, "label_accuracy": True,  # noise-to-image
    "l1": False, "psnr": True, "ssim": True,  # image-to-image, under "model"
    "modes_covered": True, "high_quality_fraction": True, "ks": False,  # toy points
    "domain_accuracy": True,  # multi-domain translation (StarGAN), under "model"
    "category_accuracy": True,  # InfoGAN's categorical code as an unsupervised clustering
}


def not_better_than_untrained(untrained: dict[str, Any], trained: dict[str, Any]) -> dict[str, list[float]]:
    """The scores on which the trained checkpoint does not beat step 0: {name: [step 0, trained]}."""
    before, after = untrained.get("model", untrained), trained.get("model", trained)
    worse = {}
    for name, higher in HIGHER_IS_BETTER.items():
        a, b = before.get(name), after.get(name)
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            continue
        if not (b > a if higher else b < a):  # also true when either is nan
            worse[name] = [a, b]
    return worse


def evaluate_run(run_dir: Path, steps: list[int] | None = None) -> dict[str, Any]:
    """Evaluate the step-0 and latest checkpoints (or `steps`), write eval.json, return it."""
    variant, cfg = load_run(run_dir)
    found = dict(ckpt.list_checkpoints(run_dir / "checkpoints"))
    if not found:
        raise UsageError(f"no checkpoints in {run_dir / 'checkpoints'}")
    wanted = steps or sorted({0, max(found)} & set(found))
    missing = [s for s in wanted if s not in found]
    if missing:
        raise UsageError(f"no checkpoint for step(s) {missing} in {run_dir}; have {sorted(found)}")
    dataset = variant.dataset(cfg)
    output = variant.output(cfg)
    first_input = variant.inputs(cfg)[0]
    results: dict[str, Any] = {"variant": variant.name}
    clf = real_features = None
    if output.kind == "image" and first_input.kind != "image":
        channels = output.shape[1]
        num_classes = getattr(dataset, "num_classes", None) or 10
        clf = train_classifier(dataset, channels, num_classes, run_dir / "eval_classifier.safetensors",
                               cfg.eval_classifier_steps)
        real_images, real_labels = _labelled_arrays(dataset, cfg.eval_samples, seed=2)
        with torch.no_grad():
            feats, logits = clf(real_images)
        real_features = feats.numpy()
        results["real_data"] = {"classifier_accuracy": round(float((logits.argmax(1) == real_labels).float().mean()), 4),
                                "classifier_score": classifier_score(logits)}
    for step in wanted:
        gen = ckpt.build_generator(variant.name, config_mod.to_dict(cfg), found[step])
        if variant.evaluate is not None:
            r = variant.evaluate(gen, cfg, dataset, clf, real_features, run_dir)
        elif output.kind == "points":
            r = evaluate_points(gen, variant, cfg, dataset)
        elif variant.eval_pairs is not None:
            r = evaluate_translation(gen, variant, cfg, dataset)
        else:
            r = evaluate_images(gen, variant, cfg, dataset, clf, real_features)  # type: ignore[arg-type]
        results[f"step_{step}"] = r
    last = max(wanted)
    worse = None
    if "step_0" in results and last != 0:
        worse = results["not_better_than_untrained"] = not_better_than_untrained(results["step_0"],
                                                                                  results[f"step_{last}"])
    atomic_write_text(run_dir / "eval.json", json.dumps(results, indent=2))
    log.info("evaluation (%s):\n%s", run_dir / "eval.json", json.dumps(results, indent=2))
    if worse:  # last, so that it is the line a user sees
        log.warning("WARNING: after %d steps the generator does not beat its untrained state (step 0) on: %s",
                    last, ", ".join(f"{k} {a:.4g} -> {b:.4g}" for k, (a, b) in worse.items()))
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m train.eval`."""
    p = argparse.ArgumentParser(prog="python -m train.eval", description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="run directory (runs/<variant>/<timestamp>)")
    p.add_argument("--step", type=int, action="append", help="evaluate this checkpoint step (repeatable)")
    opts = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        evaluate_run(opts.run, opts.step)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
