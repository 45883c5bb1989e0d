"""InfoGAN: its networks at every preset, real training steps, resume, and its evaluation on constructed generators."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from ganrt import config as config_mod
from tests.test_train import _weights
from train import registry
from train.cli import main as train_main
from train.trainer import Trainer, run_training
from train.variants.infogan import (
    GRID_COLUMNS,
    category_accuracy,
    evaluate,
    image_properties,
    information_loss,
    sample_grid,
    sweep_spearman,
)

TINY = {"batch_size": 8, "eval_samples": 64, "eval_classifier_steps": 20, "sample_every": 1000,
        "checkpoint_every": 1000}


def tiny_cfg(**over):
    v = registry.get("infogan")
    return v, config_mod.resolve(v.config, "quick", {**TINY, **over})


# -- networks and the contract ------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_networks_have_the_declared_shapes_at_every_preset(preset):
    v = registry.get("infogan")
    cfg = config_mod.resolve(v.config, preset)
    nets = v.networks(cfg)
    specs = v.inputs(cfg)
    assert [(s.name, s.kind, s.dtype) for s in specs] == [("z", "noise", "float32"), ("category", "label", "int64"),
                                                          ("codes", "code", "float32")]
    assert specs[1].num_classes == cfg.cat_dim and specs[2].shape == (None, cfg.n_continuous)
    feeds = v.sample_feeds(cfg, 2 * cfg.cat_dim, torch.Generator().manual_seed(0))
    assert sorted(feeds["category"].tolist()) == sorted(list(range(cfg.cat_dim)) * 2)  # every value drawn
    assert feeds["codes"].min() >= -1 and feeds["codes"].max() <= 1
    with torch.no_grad():
        image = nets["G"].eval()(*(feeds[s.name] for s in specs))
        out = nets["D"].eval()(image)
    assert image.shape == (2 * cfg.cat_dim, cfg.channels, 28, 28) and -1 <= image.min() and image.max() <= 1
    assert out.shape == (2 * cfg.cat_dim, 1 + cfg.cat_dim + cfg.n_continuous)  # D's logit, Q's category, Q's codes
    assert not any(k.endswith("one_hot") for k in nets["G"].state_dict())  # a constant, not a weight


def test_help_explains_the_flags(capsys):
    with pytest.raises(SystemExit) as e:
        train_main(["infogan", "--help"])
    assert e.value.code == 0
    helptext = " ".join(capsys.readouterr().out.split())
    for flag in ("--cat-dim", "--n-continuous", "--lambda-cat", "--lambda-cont", "--z-dim"):
        assert flag in helptext, flag
    assert "(default: 0.1)" in helptext and "(default: 62)" in helptext


def test_information_loss_is_zero_when_q_reads_the_codes():
    category, codes = torch.tensor([0, 2, 1]), torch.tensor([[0.5, -1.0], [0.0, 0.25], [1.0, 1.0]])
    perfect = torch.cat([torch.zeros(3, 1), 100 * nn.functional.one_hot(category, 3), codes], 1)
    cross_entropy, nll = information_loss(perfect, category, codes, cat_dim=3)
    assert cross_entropy < 1e-6 and nll == 0
    blind = torch.zeros(3, 1 + 3 + 2)  # uniform category, means at 0
    cross_entropy, nll = information_loss(blind, category, codes, cat_dim=3)
    assert cross_entropy == pytest.approx(np.log(3)) and nll == pytest.approx(0.5 * (codes ** 2).sum(1).mean())


# -- real training steps -------------------------------------------------------------------------
def test_trains_and_evaluates(tmp_path):
    v, cfg = tiny_cfg(steps=2)
    nets = v.networks(cfg)
    q_head, g_first = nets["D"].q_head[0].weight.detach().clone(), nets["G"].project[0].weight.detach().clone()
    step = v.step(cfg, nets, torch.device("cpu"), False)
    batches = iter(torch.utils.data.DataLoader(v.dataset(cfg), batch_size=cfg.batch_size))
    losses = step(lambda: next(batches))
    assert set(losses) == {"d_loss", "g_loss", "info_cat", "info_cont"} and all(torch.isfinite(x) for x in losses.values())
    assert not torch.equal(q_head, nets["D"].q_head[0].weight) and not torch.equal(g_first, nets["G"].project[0].weight)

    run = run_training(v, cfg, runs_root=tmp_path)
    result = json.loads((run / "eval.json").read_text())
    for step_key in ("step_0", "step_2"):
        r = result[step_key]
        assert {"fcd", "classifier_score", "category_accuracy", "category_to_class"} <= r.keys()
        assert "label_accuracy" not in r  # the category is not a label of the data
        assert set(r["continuous_codes_spearman"]) == {"code_0", "code_1"}
        assert set(r["continuous_codes_spearman"]["code_0"]) == {"slant", "ink", "width", "height"}
    grid = np.asarray(Image.open(run / "samples" / "step_0000002.png"))
    assert grid.shape[0] == cfg.cat_dim * 30 + 2  # a row of 28 px (+ 2 px gaps) per category


def test_resume_gives_the_same_weights_as_one_run(tmp_path):
    v, cfg = tiny_cfg(steps=4)
    straight = run_training(v, cfg, runs_root=tmp_path / "a", evaluate=False)
    run = tmp_path / "b"
    Trainer(v, cfg, run).fit(until=2)  # as if stopped at step 2
    run_training(v, cfg, resume=run, evaluate=False)
    a, b = _weights(straight), _weights(run)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# -- the evaluation on generators whose codes are known ------------------------------------------------
class ReadsCategoryFromCorner(nn.Module):
    """A stand-in for the evaluation classifier: class k when pixel (0, 0) is near centre k."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        centres = torch.linspace(-0.8, 0.8, 10)
        logits = -(x[:, 0, 0, :1] - centres) ** 2 * 100
        return x[:, 0, 0, :4] + 0.01 * torch.randn(len(x), 4), logits


class KnownCodes(nn.Module):
    """A generator drawing class perm[category] (in the corner pixel) and a bar as long as code 0 says; code 1 unused."""

    def __init__(self, perm: list[int] | None) -> None:
        super().__init__()
        self.perm = perm

    def forward(self, z: Tensor, category: Tensor, codes: Tensor) -> Tensor:
        image = -torch.ones(len(z), 1, 28, 28)
        cls = torch.tensor(self.perm)[category] if self.perm else torch.zeros_like(category)
        image[:, 0, 0, 0] = torch.linspace(-0.8, 0.8, 10)[cls]
        length = ((codes[:, 0] + 1) * 5).round().long() + 1  # 1 to 11 px
        image[:, 0, 14, 8:19] = torch.where(torch.arange(11) < length[:, None], 1.0, -1.0)
        return image


def test_code_accuracy_finds_a_permuted_perfect_generator_and_scores_a_constant_one_at_chance():
    v, cfg = tiny_cfg(eval_samples=200)
    real_features = np.random.default_rng(0).normal(size=(200, 4))
    perm = [3, 7, 0, 9, 1, 5, 2, 8, 4, 6]
    perfect = evaluate(KnownCodes(perm), cfg, None, ReadsCategoryFromCorner(), real_features)
    assert perfect["category_accuracy"] == 1.0 and perfect["category_to_class"] == perm
    constant = evaluate(KnownCodes(None), cfg, None, ReadsCategoryFromCorner(), real_features)
    assert constant["category_accuracy"] == 0.1
    # Code 0 sets the bar's length, so its ink grows with it; code 1 changes nothing.
    spearman = perfect["continuous_codes_spearman"]
    assert spearman["code_0"]["ink"] == 1.0
    assert all(rho == 0 for rho in spearman["code_1"].values())


def test_category_accuracy_counts_unmatched_values_as_errors():
    category = np.repeat(np.arange(4), 5)
    predicted = np.array([1] * 5 + [0] * 5 + [0] * 5 + [1] * 4 + [0])  # values 2 and 3 repeat 1 and 0
    r = category_accuracy(category, predicted, cat_dim=4, num_classes=2)
    assert r["category_accuracy"] == 0.5 and sorted(r["category_to_class"]).count(-1) == 2


def test_image_properties_read_slant_and_stroke():
    image = -torch.ones(2, 1, 28, 28)
    for y in range(6, 22):  # a stroke leaning right (its top to the right), then an upright one
        image[0, 0, y, 14 + (14 - y) // 3] = 1
        image[1, 0, y, 14] = 1
    props = image_properties(image)
    assert props["slant"][0] > 0.2 and props["slant"][1] == pytest.approx(0, abs=1e-6)
    thick = image.clone()
    thick[1, 0, 6:22, 15] = 1
    assert image_properties(thick)["ink"][1] > props["ink"][1]
    assert sweep_spearman(np.array([[1.0, 2, 3], [3, 2, 1], [5, 5, 5]])) == 0.0  # +1, -1 and a constant row
    assert sweep_spearman(np.array([[1.0, 2, 3], [0, 1, 9]])) == 1.0


def test_sample_grid_has_a_row_per_category_and_sweeps_one_code_per_block():
    _, cfg = tiny_cfg()
    gen = KnownCodes(list(range(10)))
    image = sample_grid(cfg, lambda feeds: gen(feeds["z"], feeds["category"], feeds["codes"]))
    block = GRID_COLUMNS * 30 + 2
    assert image.shape == (cfg.cat_dim * 30 + 2, 2 * block + 8, 3)

    def cell(r: int, c: int) -> np.ndarray:
        return image[2 + 30 * r: 30 * r + 30, 2 + 30 * c: 30 * c + 30]

    first, second = image[:, :block], image[:, block + 8:]
    assert not np.array_equal(cell(0, 0), cell(0, GRID_COLUMNS - 1))  # code 0 swept across the first block
    assert not np.array_equal(cell(0, 0), cell(1, 0))  # rows differ by category
    second_cells = [second[2:30, 2 + 30 * c: 30 * c + 30] for c in range(GRID_COLUMNS)]
    assert all(np.array_equal(second_cells[0], c) for c in second_cells)  # code 1 does nothing here
    assert first.shape == second.shape
