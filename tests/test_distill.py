"""Distillation: the compact student at every preset, real steps on tiny CycleGAN and pix2pix teachers, the
teacher-output cache, exact resume, the student's export, and teachers that cannot be distilled."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from export.cli import main as export_main
from ganrt import config as config_mod
from ganrt.artifact import Artifact
from tests.test_train import _weights
from tests.tiny_generators import save_tiny_generator
from train import checkpoint as ckpt
from train import registry
from train.cli import main as train_main
from train.distillation.cache import CACHE_FOLDER, OUTPUTS
from train.distillation.features import Activations, feature_pairs
from train.nets import CompactGenerator
from train.trainer import Trainer, run_training
from train.variants.distill import GRID_ROWS

TEACHERS = {
    "cyclegan": {"steps": 1, "size": 32, "ngf": 4, "ndf": 4, "n_blocks": 3, "batch_size": 2, "pool_size": 2},
    "pix2pix": {"steps": 1, "size": 32, "ngf": 4, "ndf": 4, "batch_size": 2},
}
TINY = {"widths": [4, 8, 8], "n_blocks": 3, "ndf": 4, "batch_size": 4, "eval_samples": 4, "sample_every": 1000,
        "checkpoint_every": 1000}


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own ganrt cache, so that whether outputs are cached is the test's own doing."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("GANRT_CACHE", str(folder))
    return folder / CACHE_FOLDER


@pytest.fixture(scope="module")
def teachers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny trained run of each teacher kind (one real step through the normal trainer)."""
    root = tmp_path_factory.mktemp("teachers")
    runs = {}
    for name, settings in TEACHERS.items():
        v = registry.get(name)
        runs[name] = run_training(v, config_mod.resolve(v.config, "quick", settings), runs_root=root, evaluate=False)
    return runs


def tiny_cfg(teacher: Path | str, **over):
    v = registry.get("distill")
    return v, config_mod.resolve(v.config, "quick", {**TINY, "teacher": str(teacher), **over})


# -- the compact student ---------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["quick", "default"])
@pytest.mark.parametrize("upsample", ["resize", "transpose"])
def test_student_has_the_declared_shapes_at_every_preset(preset, upsample):
    v = registry.get("distill")
    cfg = config_mod.resolve(v.config, preset, {"upsample": upsample})
    g = v.generator(cfg).eval()
    assert isinstance(g, CompactGenerator) and g.size_multiple == 4
    kinds = {type(m) for m in g.decoder}
    assert (torch.nn.ConvTranspose2d in kinds) == (upsample == "transpose")
    depthwise = [m for m in g.blocks.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 2 * cfg.n_blocks and all(m.groups == m.in_channels == cfg.widths[2] for m in depthwise)
    taps = Activations(g.tap_modules((0, cfg.n_blocks)))
    for h, w in ((32, 32), (20, 28)):
        x = torch.rand(2, 3, h, w) * 2 - 1
        with torch.no_grad():
            out = g(x)
            features = taps.take()
        assert out.shape == x.shape and -1 <= out.min() and out.max() <= 1
        assert [f.shape for f in features] == [(2, cfg.widths[2], h // 4, w // 4)] * 2
    assert v.inputs(cfg)[0].range == (-1.0, 1.0) and v.output(cfg).shape == (None, 3, None, None)


def test_student_refuses_bad_widths_and_taps():
    with pytest.raises(ValueError, match="three positive widths"):
        CompactGenerator(widths=(8, 16))
    with pytest.raises(ValueError, match="taps must be 0 to 2"):
        CompactGenerator(widths=(4, 8, 8), n_blocks=2).tap_modules([3])


# -- real steps on both teacher kinds -----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["cyclegan", "pix2pix"])
def test_distils_each_teacher_kind_with_all_three_terms(kind, teachers):
    v, cfg = tiny_cfg(teachers[kind])
    nets = v.networks(cfg)
    assert cfg.teacher_variant == kind and cfg.size == 32 and len(cfg.teacher_sha256) == 64  # recorded
    assert set(nets) == {"G", "D", "A"}
    teacher = ckpt.build_generator(kind, json.loads(cfg.teacher_config), teachers[kind] / "generator.safetensors")
    pairs = feature_pairs(teacher, cfg.n_blocks)
    if kind == "cyclegan":  # the encoder's output and blocks 1, 2, 3 of 3 (student: 1, 2, 3 of 3)
        assert pairs.teacher_layers == ("model.9", "model.10", "model.11", "model.12")
        assert pairs.student_taps == (0, 1, 2, 3) and pairs.teacher_channels == (16,) * 4
    else:  # the U-Net's two quarter-size activations
        assert pairs.teacher_layers == ("encoder.1", "decoder.2") and pairs.student_taps == (0, 3)
        assert pairs.teacher_channels == (8, 8)
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in nets.items()}
    step = v.step(cfg, nets, torch.device("cpu"), False)
    data = v.dataset(cfg)
    item = data[0]
    assert set(item) == {"A", "T"} and item["T"].shape == item["A"].shape == (3, 32, 32)
    batches = iter(torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True))
    for _ in range(2):
        losses = step(lambda: next(batches))
    assert set(losses) == {"d_loss", "g_adv", "rec", "feat"}
    assert all(torch.isfinite(x) for x in losses.values()) and losses["feat"] > 0 and losses["rec"] > 0
    for k, net in nets.items():  # every network learned, the adapters too
        assert any(not torch.equal(a, b) for a, b in zip(before[k], net.parameters())), k


def test_a_run_evaluates_against_teacher_and_truth_and_draws_the_grid(teachers):
    v, cfg = tiny_cfg(teachers["pix2pix"], steps=2)
    run = run_training(v, cfg, runs_root=teachers["pix2pix"].parent.parent / "students")
    result = json.loads((run / "eval.json").read_text())
    for key in ("step_0", "step_2"):
        r = result[key]
        assert r["n"] == 4 and {"l1", "psnr", "ssim"} <= r["model"].keys()
        assert {"student", "teacher"} == r["against_truth"].keys()  # edges->scenes has ground truth
        macs = r["macs"]
        teacher_gmacs, student_gmacs = macs["gmacs_per_image"]["teacher"], macs["gmacs_per_image"]["student"]
        # (A 4-wide U-Net at 32 px works mostly at low resolution: it costs less than this student.)
        assert macs["size"] == 32 and teacher_gmacs > 0 and student_gmacs > 0
        assert macs["teacher_over_student"] == round(teacher_gmacs / student_gmacs, 2)
        assert macs["parameters"]["student"] == sum(p.numel() for p in v.generator(cfg).parameters())
    assert result["step_0"]["against_truth"]["teacher"] == result["step_2"]["against_truth"]["teacher"]
    grid = np.asarray(Image.open(run / "samples" / "step_0000002.png"))
    assert grid.shape[:2] == (GRID_ROWS * 34 + 2, 3 * 34 + 2)  # rows of input | teacher | student, 32 px + gaps


# -- the teacher-output cache ---------------------------------------------------------------------
def test_teacher_outputs_are_cached_once_and_read_back(teachers, own_cache, caplog):
    v, cfg = tiny_cfg(teachers["cyclegan"])
    with caplog.at_level(logging.INFO, logger="ganrt.train"):
        first = v.dataset(cfg)
    files = list(own_cache.glob("*.safetensors"))
    assert len(files) == 1 and "computed and cached" in caplog.text
    teacher = ckpt.build_generator("cyclegan", json.loads(cfg.teacher_config), teachers["cyclegan"] / "generator.safetensors")
    with torch.no_grad():  # what was cached is the teacher's output, as uint8 pixels
        direct = teacher(first[5]["A"][None])[0]
    assert (first[5]["T"] - direct).abs().max() <= 1 / 127.5 + 1e-6
    # Replace the cached pixels: a second dataset must serve the file's content, not a recomputation.
    tensors, meta = ckpt.read_weights(files[0])
    ckpt.save_weights(files[0], {OUTPUTS: torch.zeros_like(tensors[OUTPUTS])}, meta)
    stamp = files[0].stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ganrt.train"):
        again = v.dataset(cfg)
    assert torch.equal(again[5]["T"], torch.full((3, 32, 32), -1.0)) and "read from" in caplog.text
    assert files[0].stat().st_mtime_ns == stamp and list(own_cache.glob("*.safetensors")) == files
    # Another size is other inputs: another cache file.
    _, other = tiny_cfg(teachers["cyclegan"], size=16)
    v.dataset(other)
    assert len(list(own_cache.glob("*.safetensors"))) == 2


def test_a_damaged_cache_is_computed_again(teachers, own_cache):
    v, cfg = tiny_cfg(teachers["cyclegan"])
    good = v.dataset(cfg)[3]["T"]
    (path,) = own_cache.glob("*.safetensors")
    path.write_bytes(b"not a safetensors file")
    assert torch.equal(v.dataset(cfg)[3]["T"], good)
    assert ckpt.read_weights(path)[0][OUTPUTS].dtype == torch.uint8


# -- exact resume -----------------------------------------------------------------------------------
def test_resume_gives_the_same_weights_as_one_run(teachers, tmp_path, own_cache):
    v, cfg = tiny_cfg(teachers["cyclegan"], steps=4)
    straight = run_training(v, cfg, runs_root=tmp_path / "a", evaluate=False)
    cached = sorted(own_cache.glob("*.safetensors"))
    run = tmp_path / "b"
    _, fresh = tiny_cfg(teachers["cyclegan"], steps=4)
    Trainer(v, fresh, run).fit(until=2)  # as if stopped at step 2
    assert not (run / "generator.safetensors").exists()
    run_training(v, fresh, resume=run, evaluate=False)
    assert sorted(own_cache.glob("*.safetensors")) == cached  # the resumed run read the same cache
    a, b = _weights(straight), _weights(run)
    assert a.keys() == b.keys() and any(k.startswith("A.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_refuses_a_teacher_that_changed(teachers, tmp_path):
    teacher = tmp_path / "teacher.safetensors"
    teacher.write_bytes((teachers["cyclegan"] / "generator.safetensors").read_bytes())
    v, cfg = tiny_cfg(teacher, steps=2)
    run = tmp_path / "run"
    Trainer(v, cfg, run).fit(until=1)
    gen = load_file(str(teacher))
    first = next(iter(gen))
    gen[first] = gen[first] + 1
    _, name_cfg, step = ckpt.read_generator(teacher)
    net = ckpt.build_generator("cyclegan", name_cfg)
    net.load_state_dict(gen)
    ckpt.save_generator(teacher, net, "cyclegan", name_cfg, step)
    assert train_main(["--resume", str(run), "--runs", str(tmp_path), "-q"]) == 2


# -- export of a distilled student ------------------------------------------------------------------
def test_distilled_student_exports_with_onnx_parity(teachers, tmp_path):
    v, cfg = tiny_cfg(teachers["cyclegan"], steps=1)
    run = run_training(v, cfg, runs_root=tmp_path, evaluate=False)
    out = tmp_path / "artifact"
    assert export_main([str(run), "--onnx", "--out", str(out), "-q"]) == 0
    art = Artifact.load(out)
    assert art.manifest.variant == "distill" and art.manifest.status == "ok"
    parity = art.manifest.parity["ort-cpu/fp32"]
    assert parity["pass"] and parity["worst"]["max_abs"] <= 1e-4
    assert [s.name for s in art.inputs] == ["image"] and art.inputs[0].shape == (None, 3, None, None)


# -- teachers that cannot be distilled ---------------------------------------------------------------
def test_bad_teachers_exit_2_with_a_clear_line(tmp_path, capsys):
    runs = ["--runs", str(tmp_path / "runs"), "--steps", "1"]
    assert train_main(["distill", "--teacher", str(tmp_path / "missing"), *runs]) == 2
    assert "no such run directory or generator file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert train_main(["distill", "--teacher", str(tmp_path / "empty"), *runs]) == 2
    assert "without generator.safetensors or config.json" in capsys.readouterr().err
    noise = save_tiny_generator("dcgan", tmp_path / "dcgan" / "generator.safetensors")
    assert train_main(["distill", "--teacher", str(noise), *runs]) == 2
    err = capsys.readouterr().err
    assert "a dcgan generator, z (noise, 100) -> image (image, 1x28x28)" in err and "image-to-image" in err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.safetensors"))


def test_a_teacher_of_unknown_structure_trains_without_the_feature_term(teachers, tmp_path, caplog):
    # A distilled student as the teacher: an image-to-image generator whose layers are not mapped here.
    student = save_tiny_generator("distill", tmp_path / "student.safetensors", widths=[4, 8, 8], n_blocks=1,
                                  size=32, teacher=str(teachers["cyclegan"]))
    v, cfg = tiny_cfg(student)
    nets = v.networks(cfg)
    assert set(nets) == {"G", "D"}
    with caplog.at_level(logging.WARNING, logger="ganrt.train"):
        step = v.step(cfg, nets, torch.device("cpu"), False)
    assert "training without the feature term" in caplog.text and step.teacher is None
