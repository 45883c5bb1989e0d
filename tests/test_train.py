"""The training core: registry, config flags, a real step of every variant, resume, bad input."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ganrt import config as config_mod
from ganrt.errors import CheckpointError, UsageError
from train import registry
from train.checkpoint import build_generator
from train.cli import main as train_main
from train.eval import not_better_than_untrained
from train.trainer import Trainer, TrainingDiverged, run_training

ROOT = Path(__file__).resolve().parents[1]

# Tiny settings per variant: one real step each on generated data in seconds.
TINY: dict[str, dict] = {
    "gan": {"batch_size": 32, "hidden": 16, "eval_samples": 256},
    "cgan": {"batch_size": 8, "eval_samples": 64, "eval_classifier_steps": 20},
    "dcgan": {"batch_size": 8, "eval_samples": 64, "eval_classifier_steps": 20},
    "wgan-gp": {"batch_size": 8, "n_critic": 2, "eval_samples": 64, "eval_classifier_steps": 20},
    "pix2pix": {"size": 32, "ngf": 8, "ndf": 8, "batch_size": 2, "eval_samples": 4},
    "cyclegan": {"size": 32, "ngf": 8, "ndf": 8, "n_blocks": 2, "batch_size": 2, "pool_size": 3, "eval_samples": 4},
}


def tiny_cfg(name: str, **over):
    v = registry.get(name)
    return v, config_mod.resolve(v.config, "quick", {**TINY[name], "sample_every": 1000, "checkpoint_every": 1000, **over})


def run(cmd: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Run a command in its own process group, killing the whole group (torchrun's workers too) on timeout."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "train", *args], timeout)


# -- registry and config --------------------------------------------------------------
def test_registry_lists_all_variants():
    assert registry.names() == ["cgan", "cyclegan", "dcgan", "distill", "gan", "infogan", "module", "pix2pix", "stargan", "wgan-gp"]
    assert [n for n in registry.names() if not registry.get(n).trainable] == ["module"]


def test_unknown_variant_names_the_valid_ones():
    with pytest.raises(UsageError, match="unknown variant 'stylegan'.*cyclegan.*wgan-gp"):
        registry.get("stylegan")


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.get("dcgan"))


def test_config_preset_then_overrides():
    v = registry.get("cyclegan")
    cfg = config_mod.resolve(v.config, "quick", {"steps": 7})
    assert (cfg.size, cfg.n_blocks, cfg.steps) == (64, 6, 7)
    assert config_mod.resolve(v.config, "paper").size == 256
    with pytest.raises(UsageError, match="unknown preset 'fast'"):
        config_mod.resolve(v.config, "fast")
    with pytest.raises(UsageError, match="ngf_typo"):
        config_mod.resolve(v.config, None, {"ngf_typo": 3})


def test_config_round_trips_through_json():
    v = registry.get("wgan-gp")
    cfg = config_mod.resolve(v.config, "ring")
    again = config_mod.from_dict(v.config, json.loads(json.dumps(config_mod.to_dict(cfg))))
    assert again == cfg


def test_cli_list_and_variant_help(capsys):
    assert train_main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in registry.names():
        assert name in out
    with pytest.raises(SystemExit) as e:
        train_main(["cyclegan", "--help"])
    assert e.value.code == 0
    helptext = " ".join(capsys.readouterr().out.split())
    assert "--lambda-cycle" in helptext and "(default: 10.0)" in helptext and "--no-jitter" in helptext
    assert "(default: 256; quick: 64; paper128: 128)" in helptext  # --size: each preset's value is shown


# -- a real training step of every variant ----------------------------------------------
@pytest.mark.parametrize("name", list(TINY))
def test_every_variant_trains_and_evaluates(name, tmp_path):
    v, cfg = tiny_cfg(name, steps=2)
    run = run_training(v, cfg, runs_root=tmp_path)
    assert (run / "generator.safetensors").is_file()
    assert (run / "samples" / "step_0000000.png").is_file() and (run / "progress.gif").is_file()
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 2 and all(np.isfinite(v) for k, v in lines[-1].items() if k != "time")
    result = json.loads((run / "eval.json").read_text())
    assert "step_0" in result and "step_2" in result
    # Two steps rarely beat the untrained net on every score; whatever they miss is listed with both values.
    worse = result["not_better_than_untrained"]
    assert worse == not_better_than_untrained(result["step_0"], result["step_2"])
    # The deployed generator's weights equal the G part of the last checkpoint.
    gen = load_file(str(run / "generator.safetensors"))
    ckpt = load_file(str(run / "checkpoints" / "step_0000002.safetensors"))
    key = next(iter(gen))
    assert torch.equal(gen[key], ckpt[f"{v.generator_key}.{key}"])


def test_not_better_than_untrained_reads_each_score_in_its_direction():
    untrained = {"fcd": 900.0, "classifier_score": 1.5, "label_accuracy": 0.1, "label_accuracy_per_class": [0.1]}
    assert not_better_than_untrained(untrained, {"fcd": 80.0, "classifier_score": 8.0, "label_accuracy": 0.9}) == {}
    assert not_better_than_untrained(untrained, {"fcd": 950.0, "classifier_score": 8.0, "label_accuracy": 0.1}) == {
        "fcd": [900.0, 950.0], "label_accuracy": [0.1, 0.1]}  # a tie is not a win
    # Translation runs compare the model's scores, not the baselines'.
    before = {"model": {"l1": 0.3, "psnr": 10.0, "ssim": 0.2}, "baseline_copy_input": {"l1": 0.1}}
    after = {"model": {"l1": 0.2, "psnr": 9.0, "ssim": float("nan")}, "baseline_copy_input": {"l1": 0.1}}
    assert not_better_than_untrained(before, after) == {"psnr": [10.0, 9.0], "ssim": [0.2, after["model"]["ssim"]]}
    assert not_better_than_untrained({"modes_covered": 2, "ks": 0.5}, {"modes_covered": 8, "ks": 0.01}) == {}


def test_cgan_auxiliary_class_loss_trains_the_class_head_and_needs_the_projection():
    from train.variants.cgan import networks

    v, cfg = tiny_cfg("cgan", steps=1)
    assert cfg.d_label == "projection" and cfg.aux_weight > 0
    nets = v.networks(cfg)
    head = nets["D"].class_head.weight.detach().clone()
    step = v.step(cfg, nets, torch.device("cpu"), False)
    batches = iter(torch.utils.data.DataLoader(v.dataset(cfg), batch_size=cfg.batch_size))
    losses = step(lambda: next(batches))
    assert all(torch.isfinite(x) for x in losses.values())
    assert not torch.equal(head, nets["D"].class_head.weight)  # the class loss reached it
    assert networks(config_mod.resolve(v.config, None, {"aux_weight": 0.0}))["D"].class_head is None
    with pytest.raises(UsageError, match="--aux-weight needs --d-label projection"):
        networks(config_mod.resolve(v.config, None, {"d_label": "plane"}))
    assert networks(config_mod.resolve(v.config, None, {"d_label": "plane", "aux_weight": 0.0}))["D"](
        torch.zeros(2, 1, 28, 28), torch.tensor([1, 2])).shape == (2, 1)


def test_build_generator_from_a_generator_file_or_a_checkpoint_in_eval_mode(tmp_path):
    v, cfg = tiny_cfg("dcgan", steps=1)
    run = run_training(v, cfg, runs_root=tmp_path, evaluate=False)
    saved = config_mod.to_dict(cfg)
    deployed = build_generator("dcgan", saved, run / "generator.safetensors")
    # A run checkpoint holds every network, the generator's under its "G." prefix.
    from_checkpoint = build_generator("dcgan", saved, run / "checkpoints" / "step_0000001.safetensors")
    assert not any(m.training for m in deployed.modules())  # batch norm: running statistics
    z = torch.randn(4, cfg.z_dim)
    with torch.no_grad():
        assert torch.equal(deployed(z), from_checkpoint(z))
    with pytest.raises(CheckpointError, match="does not match the model"):
        build_generator("dcgan", {**saved, "z_dim": 64}, run / "generator.safetensors")
    with pytest.raises(UsageError, match="unknown setting"):
        build_generator("dcgan", {**saved, "not_a_setting": 1}, run / "generator.safetensors")
    with pytest.raises(UsageError, match="'n_blocks': -1 is outside its bounds"):
        build_generator("cyclegan", {"n_blocks": -1})


def test_cli_runs_one_step(tmp_path):
    r = run_cli("gan", "--steps", "3", "--batch-size", "16", "--eval-samples", "64", "--runs", str(tmp_path), "-q")
    assert r.returncode == 0, r.stderr
    assert len(list(tmp_path.glob("gan/*/generator.safetensors"))) == 1


# -- reproducibility and resume -----------------------------------------------------------
def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(max((run / "checkpoints").glob("step_*.safetensors"))))


@pytest.mark.parametrize("name", ["dcgan", "cyclegan", "pix2pix"])
def test_resume_gives_the_same_weights_as_one_run(name, tmp_path):
    v, cfg = tiny_cfg(name, steps=4)
    straight = run_training(v, cfg, runs_root=tmp_path / "a", evaluate=False)
    run = tmp_path / "b"
    Trainer(v, cfg, run).fit(until=2)  # as if stopped at step 2 (same schedule as the straight run)
    assert not (run / "generator.safetensors").exists()
    run_training(v, cfg, resume=run, evaluate=False)
    a, b = _weights(straight), _weights(run)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_same_seed_same_run_other_seed_other_run(tmp_path):
    v, cfg = tiny_cfg("gan", steps=3)
    a = _weights(run_training(v, cfg, runs_root=tmp_path / "a", evaluate=False))
    b = _weights(run_training(v, cfg, runs_root=tmp_path / "b", evaluate=False))
    _, other = tiny_cfg("gan", steps=3, seed=1)
    c = _weights(run_training(v, other, runs_root=tmp_path / "c", evaluate=False))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("name", ["cyclegan", "pix2pix"])
def test_cpu_amp_runs_the_same_losses_in_bf16(name, tmp_path):
    import itertools

    from train.trainer import batch_stream

    first: dict[bool, dict[str, float]] = {}
    for amp in (False, True):
        v, cfg = tiny_cfg(name, cpu_amp=amp)
        trainer = Trainer(v, cfg, tmp_path / f"run{amp}")
        assert trainer.step_fn.amp_dtype == (torch.bfloat16 if amp else None)
        batches = itertools.cycle([next(batch_stream(trainer.dataset, cfg.batch_size, cfg.seed, 0, trainer.dist,
                                                     trainer.device, 0))])
        losses = trainer.step_fn(lambda: next(batches))
        first[amp] = {k: float(t) for k, t in losses.items()}
    assert first[False].keys() == first[True].keys()
    for k, exact in first[False].items():  # same weights, same batch: bf16 rounding only
        assert first[True][k] == pytest.approx(exact, rel=0.05, abs=0.02), k
    assert first[True] != first[False]  # and bf16 really ran


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    v, cfg = tiny_cfg("gan", steps=5)
    trainer = Trainer(v, cfg, tmp_path / "run")
    trainer.dataset = torch.full((64, 2), float("nan"))  # poisoned data: the D loss turns NaN
    with pytest.raises(TrainingDiverged, match="d_loss(, g_loss)? became nan at step 1"):
        trainer.fit()
    assert [p.name for p in (tmp_path / "run" / "checkpoints").glob("*.safetensors")] == ["step_0000000.safetensors"]
    assert not (tmp_path / "run" / "generator.safetensors").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path, sig):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "train", "gan", "--steps", "100000", "--batch-size", "16",
                             "--log-every", "1", "--runs", str(tmp_path), "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    # Wait until the loop has logged a step, so the signal lands inside training.
    while time.time() < deadline and not any(p.stat().st_size for p in tmp_path.glob("gan/*/metrics.jsonl")):
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "resume with" in err or "--resume" in err
    run = next(tmp_path.glob("gan/*"))
    steps = [int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("step_*.safetensors")]
    assert max(steps) > 0
    r = run_cli("--resume", str(run), "--steps", str(max(steps) + 2), "--no-eval", "-q")
    assert r.returncode == 0, r.stderr
    assert (run / "checkpoints" / f"step_{max(steps) + 2:07d}.safetensors").is_file()


# -- bad input: exit 2 with one line, no traceback ------------------------------------------
def _one_line_error(r: subprocess.CompletedProcess, pattern: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and pattern in errors[0], r.stderr


def test_bad_input_unknown_variant():
    _one_line_error(run_cli("stylegan"), "unknown variant 'stylegan'")


def test_bad_input_missing_data_folder(tmp_path):
    _one_line_error(run_cli("dcgan", "--data", str(tmp_path / "nope"), "--runs", str(tmp_path)), "not found")


def test_bad_input_corrupt_image(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(tmp_path / "data" / cls / f"{i}.png")
    (tmp_path / "data" / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    # One batch holds all five images, so the broken one is read in the first step.
    r = run_cli("dcgan", "--data", str(tmp_path / "data"), "--batch-size", "5", "--steps", "2", "--runs", str(tmp_path / "runs"))
    _one_line_error(r, "broken.png")


def test_bad_input_mismatched_checkpoint(tmp_path):
    v, cfg = tiny_cfg("dcgan", steps=1)
    run = run_training(v, cfg, runs_root=tmp_path, evaluate=False)
    saved = json.loads((run / "config.json").read_text())
    saved["config"]["z_dim"] = 64  # the checkpoint was trained with z_dim 100
    (run / "config.json").write_text(json.dumps(saved))
    _one_line_error(run_cli("--resume", str(run), "--steps", "2"), "does not match the model")


def test_bad_input_resume_of_a_non_run(tmp_path):
    _one_line_error(run_cli("--resume", str(tmp_path)), "no config.json")


def test_bad_input_unknown_choice_is_argparse_usage_error():
    r = run_cli("pix2pix", "--direction", "sideways")
    assert r.returncode == 2 and "invalid choice" in r.stderr


# -- multi-process training through torchrun (gloo on CPU) --------------------------------------
def test_torchrun_two_processes(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
             f"--master_port={port}", "-m", "train", "dcgan", "--steps", "3", "--batch-size", "8",
             "--runs", str(tmp_path), "--no-eval", "-q"], OMP_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr[-3000:]
    runs = list(tmp_path.glob("dcgan/*"))
    assert len(runs) == 1  # both ranks agreed on one run directory
    assert (runs[0] / "checkpoints" / "step_0000003.safetensors").is_file()
    metrics = [json.loads(x) for x in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 3


# -- every network at every preset ----------------------------------------------------------
def _concrete(shape: tuple, size: int | None) -> list[int]:
    """A spec's shape with batch 2 and the preset's image size for the dynamic dimensions."""
    return [2 if d is None and i == 0 else (size if d is None else d) for i, d in enumerate(shape)]


@pytest.mark.parametrize("name", ["cgan", "cyclegan", "dcgan", "gan", "pix2pix", "wgan-gp"])
def test_networks_have_the_declared_shapes_at_every_preset(name):
    v = registry.get(name)
    for preset in v.config.presets:
        cfg = config_mod.resolve(v.config, preset)
        nets = v.networks(cfg)
        specs = v.inputs(cfg)
        size = getattr(cfg, "size", None)
        feeds = []
        for s in specs:
            shape = _concrete(s.shape, size)
            feeds.append(torch.randint(0, s.num_classes, shape) if s.kind == "label" else torch.randn(shape))
        with torch.no_grad():
            out = nets[v.generator_key].eval()(*feeds)
        assert list(out.shape) == _concrete(v.output(cfg).shape, size), (preset, out.shape)
        if v.output(cfg).range:
            assert -1 <= out.min() and out.max() <= 1
        # The discriminator accepts what it judges: generated samples (beside the input for pix2pix).
        D = nets[next(k for k in nets if k.startswith("D"))].eval()
        first = next(m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
        judges_pairs = isinstance(first, torch.nn.Conv2d) and first.in_channels == 2 * out.shape[1]
        d_in = [torch.cat([feeds[0], out], 1)] if judges_pairs else [out]
        if specs[-1].kind == "label":
            d_in.append(feeds[-1])
        with torch.no_grad():
            assert D(*d_in).shape[0] == 2
