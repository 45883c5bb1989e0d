"""StarGAN: its networks at every preset, real training steps, resume, the built-in styles, the folder and
CelebA loaders, and its evaluation and sample grid on constructed generators."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from ganrt import config as config_mod
from ganrt.errors import DataError
from tests.test_train import _weights
from train import registry
from train.cli import main as train_main
from train.data import CelebAAttributes, PhotoStyles, sketch
from train.data.builtin import random_crop
from train.data.styles import DOMAINS, SEPIA, hue
from train.trainer import Trainer, run_training
from train.variants.stargan import evaluate, other_domains, round_robin, sample_grid

TINY = {"size": 16, "conv_dim": 4, "d_conv_dim": 4, "n_blocks": 1, "d_layers": 2, "batch_size": 4, "n_critic": 2,
        "builtin_items": 48, "eval_samples": 2, "eval_classifier_steps": 5, "sample_every": 1000,
        "checkpoint_every": 1000}
K = len(DOMAINS)


def tiny_cfg(**over):
    v = registry.get("stargan")
    return v, config_mod.resolve(v.config, "quick", {**TINY, **over})


# -- networks and the contract ------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_networks_have_the_declared_shapes_at_every_preset(preset):
    v = registry.get("stargan")
    cfg = config_mod.resolve(v.config, preset)
    nets = v.networks(cfg)
    specs = v.inputs(cfg)
    assert [(s.name, s.kind, s.dtype) for s in specs] == [("image", "image", "float32"), ("domain", "label", "int64")]
    assert specs[1].num_classes == K and specs[1].class_names == DOMAINS
    feeds = v.sample_feeds(cfg, 2 * K, torch.Generator().manual_seed(0))
    own = torch.arange(2 * K) % K  # held-out built-in items come in domain order
    assert sorted(feeds["domain"].tolist()) == sorted(list(range(K)) * 2) and not (feeds["domain"] == own).any()
    images = feeds["image"][:2]
    with torch.no_grad():
        out = nets["G"].eval()(images, feeds["domain"][:2])
        source, domain = nets["D"](out)
    assert out.shape == (2, 3, cfg.size, cfg.size) and -1 <= out.min() and out.max() <= 1
    patches = cfg.size // 2**cfg.d_layers
    assert source.shape == (2, 1, patches, patches) and domain.shape == (2, K)
    assert not any(k.endswith("one_hot") for k in nets["G"].state_dict())  # a constant, not a weight
    assert nets["G"].size_multiple == 4


def test_generator_takes_any_size_that_is_a_multiple_of_4_and_the_domain_moves_it():
    v, cfg = tiny_cfg()
    g = v.generator(cfg).eval()
    image = torch.rand(3, 3, 20, 28) * 2 - 1
    with torch.no_grad():
        a, b = g(image, torch.tensor([0, 1, 2])), g(image, torch.tensor([3, 4, 5]))
    assert a.shape == (3, 3, 20, 28) and not torch.allclose(a, b)


def test_resize_decoder_has_no_transposed_convs_and_keeps_the_size():
    v, cfg = tiny_cfg(upsample="resize")
    g = v.generator(cfg).eval()
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
    assert any(isinstance(m, nn.Upsample) for m in g.modules())
    with torch.no_grad():
        assert g(torch.zeros(2, 3, 20, 28), torch.tensor([0, 5])).shape == (2, 3, 20, 28)


def test_identity_term_is_logged_and_enters_the_generator_update():
    def one_step(lambda_id):
        torch.manual_seed(0)
        v, cfg = tiny_cfg(lambda_id=lambda_id)
        nets = v.networks(cfg)
        data = v.dataset(cfg)
        batches = iter(torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=False))
        return v.step(cfg, nets, torch.device("cpu"), False)(lambda: next(batches)), nets["G"]

    (plain, g_plain), (with_id, g_id) = one_step(0.0), one_step(5.0)
    assert "idt" not in plain and set(with_id) == set(plain) | {"idt"}
    assert torch.isfinite(with_id["idt"]) and with_id["idt"] > 0
    assert torch.equal(plain["d_loss"], with_id["d_loss"])  # same D update: the term is G's only
    assert not torch.equal(g_plain.model[0].weight, g_id.model[0].weight)


def test_help_explains_the_flags(capsys):
    with pytest.raises(SystemExit) as e:
        train_main(["stargan", "--help"])
    assert e.value.code == 0
    helptext = " ".join(capsys.readouterr().out.split())
    for flag in ("--lambda-cls", "--lambda-rec", "--lambda-gp", "--lambda-id", "--upsample", "--n-critic", "--attrs",
                 "--domains", "--d-layers"):
        assert flag in helptext, flag
    assert "(default: 10.0)" in helptext and "exactly attribute k is +1" in helptext


def test_a_size_the_discriminator_cannot_take_is_a_usage_error():
    from ganrt.errors import UsageError

    v, cfg = tiny_cfg(size=24, d_layers=4)
    with pytest.raises(UsageError, match="not a multiple of 2\\^4"):
        v.networks(cfg)


# -- real training steps -------------------------------------------------------------------------
def test_trains_and_evaluates(tmp_path):
    v, cfg = tiny_cfg(steps=2)
    nets = v.networks(cfg)
    g_first, d_head = nets["G"].model[0].weight.detach().clone(), nets["D"].domain_head.weight.detach().clone()
    step = v.step(cfg, nets, torch.device("cpu"), False)
    batches = iter(torch.utils.data.DataLoader(v.dataset(cfg), batch_size=cfg.batch_size, shuffle=True))
    losses = step(lambda: next(batches))
    assert set(losses) == {"d_loss", "g_loss", "wasserstein", "gp", "d_cls", "g_cls", "rec", "idt"}  # quick has idt
    assert all(torch.isfinite(x) for x in losses.values())
    assert not torch.equal(g_first, nets["G"].model[0].weight) and not torch.equal(d_head, nets["D"].domain_head.weight)

    run = run_training(v, cfg, runs_root=tmp_path)
    assert json.loads((run / "config.json").read_text())["config"]["domains"] == list(DOMAINS)  # recorded
    assert (run / "eval_domain_classifier.safetensors").is_file()  # cached in the run
    result = json.loads((run / "eval.json").read_text())
    for key in ("step_0", "step_2"):
        r = result[key]
        assert set(r["per_target"]) == set(DOMAINS) and r["n_translations"] == cfg.eval_samples * K * (K - 1)
        for scores in r["per_target"].values():
            assert {"model", "baseline_copy_input", "baseline_mean_target", "domain_accuracy"} <= scores.keys()
            assert scores["n"] == cfg.eval_samples * (K - 1)
        assert {"l1", "psnr", "ssim", "domain_accuracy"} <= r["model"].keys()
    grid = np.asarray(Image.open(run / "samples" / "step_0000002.png"))
    assert grid.shape[:2] == (6 * 18 + 2, (1 + K) * 18 + 2)  # 6 rows; input + K columns of 16 px + 2 px gaps


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


# -- the built-in styles -------------------------------------------------------------------------
def test_builtin_set_is_deterministic_and_its_styles_are_the_documented_ones():
    a, b = PhotoStyles(n=12, size=32, seed=3), PhotoStyles(n=12, size=32, seed=3)
    assert a.domains == ("photo", "gray", "sepia", "hue", "sketch", "cartoon")
    for i in range(12):
        (xa, ya), (xb, yb) = a[i], b[i]
        assert torch.equal(xa, xb) and int(ya) == int(yb) == i % K
    assert not np.array_equal(PhotoStyles(n=1, size=32, seed=4).crop(0), a.crop(0))  # the seed matters
    # Item i's crop is random_crop on PhotoToSketch's shrunk train photos with the stream (seed, 0, i).
    crop = a.crop(5)
    assert np.array_equal(crop, random_crop(a.photos, np.random.default_rng([3, 0, 5]), 32))
    photo, gray, sepia, turned, drawn, cartoon = (a.styled(5, d) for d in range(K))
    assert np.array_equal(photo, crop)
    luma = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    assert all(np.array_equal(gray[:, :, c], luma) for c in range(3))
    want = np.clip(np.rint(crop.reshape(-1, 3).astype(np.float64) @ SEPIA.T.astype(np.float64)), 0, 255)
    assert np.abs(sepia.reshape(-1, 3).astype(int) - want).max() <= 1  # OpenCV rounds in float32
    assert np.array_equal(drawn, sketch(crop))
    assert np.array_equal(cartoon, cv2.medianBlur(crop, 3) // 64 * 85) and set(np.unique(cartoon)) <= {0, 85, 170, 255}
    assert np.array_equal(turned, hue(crop)) and not np.array_equal(turned, crop)
    # Hue: red turns green and green turns blue (120 degrees), saturation and value kept.
    primaries = np.array([[[255, 0, 0], [0, 255, 0], [40, 40, 40]]], np.uint8)
    assert np.array_equal(hue(primaries), np.array([[[0, 255, 0], [0, 0, 255], [40, 40, 40]]], np.uint8))
    # The test split crops other photographs.
    test = PhotoStyles(n=6, size=32, split="test", seed=3)
    assert len(test.photos) == 2 and not any(np.array_equal(test.crop(0), a.crop(i)) for i in range(12))


def test_round_robin_and_targets_cycle_over_every_domain():
    labels = np.array([0, 0, 0, 1, 2, 2])
    assert round_robin(labels, 6, 3) == [0, 3, 4, 1, 5, 2]
    source = torch.arange(24) % 4
    target = other_domains(source, 4)
    assert not (target == source).any()
    pairs = set(zip(source.tolist(), target.tolist()))
    assert len(pairs) == 4 * 3  # every ordered pair of different domains


# -- real data: folders and CelebA ---------------------------------------------------------------
def _write_images(folder: Path, count: int, value: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((20, 24, 3), (value + 17 * i) % 256, np.uint8)).save(folder / f"{i}.jpg")


def test_folder_data_names_the_domains_after_train_subfolders(tmp_path):
    for split, count in (("train", 4), ("test", 2)):
        for d, name in enumerate(("cloudy", "rainy", "sunny")):
            _write_images(tmp_path / split / name, count, 60 * d)
    v, cfg = tiny_cfg(data=str(tmp_path), batch_size=2)
    assert v.inputs(cfg)[1].class_names == ("cloudy", "rainy", "sunny")
    data = v.dataset(cfg)
    assert cfg.domains == ("cloudy", "rainy", "sunny") and len(data) == 12
    image, label = data[5]
    assert image.shape == (3, 16, 16) and int(label) == 1
    feeds = v.sample_feeds(cfg, 6, torch.Generator())
    assert feeds["image"].shape == (6, 3, 16, 16)
    own = torch.tensor([0, 1, 2, 0, 1, 2])
    assert not (feeds["domain"] == own).any() and set(feeds["domain"].tolist()) == {0, 1, 2}
    # No ground truth: only the classifier's accuracy, and eval.json says why.
    g = v.generator(cfg).eval()
    r = evaluate(g, cfg, data)
    assert "no ground truth" in r["note"] and set(r["model"]) == {"domain_accuracy"}
    assert set(r["per_target"]) == {"cloudy", "rainy", "sunny"} and "baseline_copy_input" not in r
    (tmp_path / "test" / "foggy").mkdir()
    _write_images(tmp_path / "test" / "foggy", 1, 9)
    with pytest.raises(DataError, match="domains"):
        v.dataset(cfg, "test")


def test_folder_data_without_train_folder_is_a_clear_error(tmp_path):
    _write_images(tmp_path / "a", 2, 0)
    v, cfg = tiny_cfg(data=str(tmp_path))
    with pytest.raises(DataError, match="train/<domain>/"):
        v.dataset(cfg)


ATTRS = ["5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Brown_Hair", "Male"]


def _write_celeba(root: Path, rows: list[list[int]], partition: list[int] | None = None) -> None:
    lines = [str(len(rows)), " ".join(ATTRS)]
    lines += [f"{i + 1:06d}.jpg " + " ".join(f"{v:2d}" for v in row) for i, row in enumerate(rows)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    for i in range(len(rows)):  # 218 x 178 like the aligned images, a bright centre square
        img = np.zeros((218, 178, 3), np.uint8)
        img[20:198] = 10 * i
        _write_one(root / "img_align_celeba" / f"{i + 1:06d}.jpg", img)
    if partition is not None:
        (root / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg {p}\n" for i, p in enumerate(partition)))


def _write_one(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format="PNG")  # lossless, whatever the .jpg name says


def test_celeba_attributes_act_as_mutually_exclusive_domains(tmp_path):
    hair = {"black": [-1, 1, -1, -1, 1], "blond": [-1, -1, 1, -1, -1], "brown": [1, -1, -1, 1, 1],
            "two": [-1, 1, 1, -1, 1], "none": [-1, -1, -1, -1, 1]}
    rows = [hair[k] for k in ("black", "blond", "brown", "two", "none", "black", "blond", "brown")]
    _write_celeba(tmp_path, rows, partition=[0, 0, 0, 0, 0, 2, 2, 2])
    attrs = ("Black_Hair", "Blond_Hair", "Brown_Hair")
    train = CelebAAttributes(tmp_path, attrs, "train", size=16)
    assert [p.name for p in train.files] == ["000001.jpg", "000002.jpg", "000003.jpg"]  # "two" and "none" skipped
    assert train.labels.tolist() == [0, 1, 2] and train.domains == attrs
    image, label = train[1]
    assert image.shape == (3, 16, 16) and int(label) == 1
    assert float(image.min()) == float(image.max())  # the centre 178 x 178 square only: no black bands
    assert CelebAAttributes(tmp_path, attrs, "test", size=16).labels.tolist() == [0, 1, 2]
    with pytest.raises(DataError, match="unknown CelebA attribute.*Red_Hair.*has: 5_o_Clock_Shadow"):
        CelebAAttributes(tmp_path, ("Black_Hair", "Red_Hair"), "train", size=16)
    # Through the variant: --data with the attribute file, --attrs naming the domains.
    v, cfg = tiny_cfg(data=str(tmp_path), attrs=["Blond_Hair", "Male"], batch_size=2)
    data = v.dataset(cfg)
    assert cfg.domains == ("Blond_Hair", "Male") and v.inputs(cfg)[1].class_names == ("Blond_Hair", "Male")
    # Train rows black, blond, brown, two, none: Male only, Blond only, Male only, both (skipped), Male only.
    assert data.labels.tolist() == [1, 0, 1, 1]


def test_celeba_without_a_partition_file_holds_out_the_last_images(tmp_path):
    rows = [[-1, 1, -1, -1, 1] if i % 2 else [-1, -1, 1, -1, 1] for i in range(20)]
    _write_celeba(tmp_path, rows)
    attrs = ("Black_Hair", "Blond_Hair")
    train, test = CelebAAttributes(tmp_path, attrs, "train", 16), CelebAAttributes(tmp_path, attrs, "test", 16)
    assert len(train) == 18 and [p.name for p in test.files] == ["000019.jpg", "000020.jpg"]


# -- the evaluation and the grid on constructed generators ----------------------------------------
class Copy(nn.Module):
    """Returns its input whatever the domain: the copy-input baseline as a generator."""

    def forward(self, image: Tensor, domain: Tensor) -> Tensor:
        return image


def test_a_copying_generator_scores_exactly_the_copy_baseline():
    v, cfg = tiny_cfg(size=32, eval_samples=2)
    r = evaluate(Copy(), cfg, v.dataset(cfg))
    for name, scores in r["per_target"].items():
        assert scores["model"] == scores["baseline_copy_input"], name
        assert scores["beats_both_baselines"] is False
    assert r["targets_beating_both_baselines"] == []
    assert r["model"]["l1"] == r["baseline_copy_input"]["l1"]


def test_sample_grid_has_a_row_per_input_and_a_column_per_domain():
    _, cfg = tiny_cfg(size=16)

    def paint(feeds: dict[str, Tensor]) -> Tensor:  # domain d -> a flat image of grey level d
        return (feeds["domain"].float() / K * 2 - 1)[:, None, None, None].expand_as(feeds["image"])

    image = sample_grid(cfg, paint)
    assert image.shape == (6 * 18 + 2, (1 + K) * 18 + 2, 3)
    cells = [[image[2 + 18 * r: 18 * r + 18, 2 + 18 * c: 18 * c + 18] for c in range(1 + K)] for r in range(6)]
    for r in range(6):
        levels = [int(cells[r][1 + d][0, 0, 0]) for d in range(K)]
        assert levels == sorted(set(levels)) and levels[0] == 0  # column 1 + d holds domain d
        assert not np.array_equal(cells[r][0], cells[r][1])  # column 0 is the input itself
