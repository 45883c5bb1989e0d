"""`python -m infer ...` as a user runs it (subprocesses), on tiny real artifacts and on the shipped one."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from ganrt.locations import SHIPPED_MODEL
from infer.cli import build_parser
from infer.server.process import ServerProcess

REPO = Path(__file__).resolve().parents[1]
# Loaded by every Python started with it on PYTHONPATH: what a deployment without training code lacks.
WITHOUT_TRAINING = """import sys
for name in ("torch", "safetensors", "skimage", "onnx", "onnxslim", "train", "export", "bench"):
    sys.modules[name] = None  # `import name` fails, and importlib.util.find_spec(name) is None
"""


def infer_cli(*args: str, cwd: Path, pythonpath: str = str(REPO)) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run([sys.executable, "-m", "infer", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:") or "error:" in line[:20]]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_sample_grid_npz_and_default_artifact(cgan_artifact, tmp_path):
    grid = tmp_path / "grid.png"
    proc = infer_cli("sample", str(cgan_artifact), "--n", "6", "--grid", str(grid), "--seed", "1", "--labels", "4",
                     "--npz", str(tmp_path / "s.npz"), "--backend", "ort-cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(grid).size == (3 * 30 + 2, 2 * 30 + 2)
    data = np.load(tmp_path / "s.npz")
    assert data["images"].shape == (6, 28, 28, 1) and data["labels"].tolist() == [4] * 6
    # Same seed, same grid (on the same backend and precision: auto may pick bf16 or int8 where they are faster).
    again = tmp_path / "again.png"
    infer_cli("sample", str(cgan_artifact), "--n", "6", "--grid", str(again), "--seed", "1", "--labels", "4",
              "--backend", "ort-cpu", cwd=tmp_path)
    assert again.read_bytes() == grid.read_bytes()
    # Without ARTIFACT: the newest under ./artifacts.
    work = tmp_path / "work"
    shutil.copytree(cgan_artifact, work / "artifacts" / "only")
    proc = infer_cli("sample", "--n", "2", "--grid", "g.png", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (work / "g.png").is_file()


def test_bad_usage_exits_2_with_one_line(cgan_artifact, cyclegan_artifact, tmp_path):
    assert "no artifact" in _one_line_error(infer_cli("sample", str(tmp_path / "nowhere"), cwd=tmp_path))
    # No artifact under ./artifacts: the shipped default, which translates.
    assert "image-to-image" in _one_line_error(infer_cli("sample", cwd=tmp_path))
    assert "unknown label 99" in _one_line_error(infer_cli("sample", str(cgan_artifact), "--labels", "99", cwd=tmp_path))
    assert "translate" in _one_line_error(infer_cli("sample", str(cyclegan_artifact), cwd=tmp_path))
    (tmp_path / "in").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "x.png")
    assert "sample" in _one_line_error(infer_cli("translate", str(cgan_artifact), str(tmp_path / "in"),
                                                 str(tmp_path / "out"), cwd=tmp_path))
    bogus = infer_cli("sample", str(cgan_artifact), "--n", "0", cwd=tmp_path)  # a bound checked where every setting is
    assert bogus.returncode == 2 and "outside its bounds (at least 1)" in bogus.stderr


def test_translate_folder_skips_and_reports(cyclegan_artifact, tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(src / "sub" / "b.jpg")
    (src / "notes.txt").write_text("not an image")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    proc = infer_cli("translate", str(cyclegan_artifact), str(src), str(dst), "--backend", "ort-cpu", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr  # one image could not be read: reported, the rest done
    assert "Traceback" not in proc.stderr
    assert "notes.txt" in proc.stderr and "not an image" in proc.stderr
    assert "broken.png" in proc.stderr
    assert Image.open(dst / "a.png").size == (50, 37)
    assert Image.open(dst / "sub" / "b.png").size == (24, 24)
    assert not (dst / "broken.png").exists() and not (dst / "notes.png").exists()
    assert "translated 2 image(s)" in proc.stdout
    assert "translate" in proc.stderr  # the tqdm bar


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_translate_folder_keeps_going_past_tiny_clashing_and_odd_entries(cyclegan_artifact, tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    (src / "dir.png").mkdir(parents=True)  # a directory named like an image, with an image in it
    Image.fromarray(_rgb(37, 50)).save(src / "a.png")
    Image.fromarray(_rgb(3, 3)).save(src / "tiny.png")  # below the model's minimum: once a traceback, nothing written
    Image.fromarray(_rgb(24, 24, 1)).save(src / "clash.jpg")
    Image.fromarray(_rgb(24, 24, 2)).save(src / "clash.png")  # both once wrote out/clash.png
    Image.fromarray(_rgb(16, 16, 3)).save(src / "dir.png" / "inner.png")
    (src / "link.png").symlink_to(tmp_path / "nowhere.png")
    proc = infer_cli("translate", str(cyclegan_artifact), str(src), str(dst), "--backend", "ort-cpu",
                     "--batch-size", "4", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "tiny.png" in proc.stderr and "at least 5x5" in proc.stderr
    assert "link.png: a broken link" in proc.stderr
    assert "dir.png: a directory" in proc.stderr
    assert "clash.jpg.png" in proc.stderr  # the rename is announced
    written = sorted(str(p.relative_to(dst)) for p in dst.rglob("*.png") if p.is_file())
    assert written == ["a.png", "clash.jpg.png", "clash.png.png", "dir.png/inner.png"]
    assert (dst / "clash.jpg.png").read_bytes() != (dst / "clash.png.png").read_bytes()
    assert "translated 4 image(s)" in proc.stdout and "2 failed" in proc.stdout


def _translated(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_translate_runs_at_the_trained_size_unless_told_otherwise(cyclegan_artifact, tmp_path):
    from infer.api import load
    from infer.prepost import NATIVE

    src = tmp_path / "in"
    src.mkdir()
    photo = _rgb(64, 80, 4)  # the tiny model was trained at 32 x 32
    Image.fromarray(photo).save(src / "p.png")
    pair = np.concatenate([_rgb(32, 32, 5), _rgb(32, 32, 6)], axis=1)  # A | B
    Image.fromarray(pair).save(tmp_path / "pair.png")
    (tmp_path / "pairs").mkdir()
    Image.fromarray(pair).save(tmp_path / "pairs" / "pair.png")
    runs = {name: infer_cli("translate", str(cyclegan_artifact), str(folder), str(tmp_path / name), "--backend",
                            "ort-cpu", *flags, cwd=tmp_path)
            for name, folder, flags in (("trained", src, []), ("native", src, ["--size", "native"]),
                                        ("a", tmp_path / "pairs", ["--pairs", "AtoB"]),
                                        ("b", tmp_path / "pairs", ["--pairs", "BtoA"]))}
    for proc in runs.values():
        assert proc.returncode == 0, proc.stderr
    with load(cyclegan_artifact, backend="ort-cpu") as model:
        np.testing.assert_array_equal(_translated(tmp_path / "trained" / "p.png"), model.translate(photo))
        np.testing.assert_array_equal(_translated(tmp_path / "native" / "p.png"), model.translate(photo, side=NATIVE))
        np.testing.assert_array_equal(_translated(tmp_path / "a" / "pair.png"), model.translate(pair[:, :32]))
        np.testing.assert_array_equal(_translated(tmp_path / "b" / "pair.png"), model.translate(pair[:, 32:]))
    assert not np.array_equal(_translated(tmp_path / "trained" / "p.png"), _translated(tmp_path / "native" / "p.png"))
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["translate"].format_help().split())
    assert "the size the model was trained at" in help_text and "native" in help_text and "--pairs" in help_text
    bad = infer_cli("translate", str(cyclegan_artifact), str(src), str(tmp_path / "x"), "--size", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "trained, native or a positive number" in bad.stderr


def test_backends_and_help(tmp_path):
    proc = infer_cli("backends", cwd=tmp_path)
    assert proc.returncode == 0 and "ort-cpu" in proc.stdout.split()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        text = p.format_help()
        for action in p._actions:
            if action.help and action.help != "==SUPPRESS==":
                for flag in action.option_strings:
                    assert flag in text, (name, flag)
                    assert action.help.strip(), (name, flag)
    assert infer_cli("serve", "--help", cwd=tmp_path).returncode == 0
    # From the options dataclasses: choices from ganrt.targets, what a None default means.
    assert "{auto,torch,ort-cpu,ov-cpu,ort-cuda,ort-trt,trt}" in sub.choices["translate"].format_help()
    assert "(default: random)" in sub.choices["sample"].format_help()
    assert "--no-window" in sub.choices["webcam"].format_help()


def test_options_come_from_dataclasses():
    from ganrt import config
    from infer.options import SampleOptions, ServeOptions

    args = build_parser().parse_args(["sample", "--labels", "3", "4", "--n", "2"])
    opts = config.resolve(SampleOptions, None, {k: v for k, v in vars(args).items()
                                                if k in SampleOptions.__dataclass_fields__})
    assert opts.labels == ("3", "4") and opts.n == 2 and opts.backend == "auto" and opts.seed is None
    serve = build_parser().parse_args(["serve", "--no-warmup", "--max-body-mb", "0.5"])
    assert serve.warmup is False and ServeOptions(max_body_mb=0.5).max_body_bytes == 524288


@pytest.mark.parametrize("bad", [["serve", "--port", "x"], ["nonsense"]])
def test_argparse_errors_are_exit_2(bad, tmp_path):
    assert infer_cli(*bad, cwd=tmp_path).returncode == 2


def _clip(path: Path, frames: int = 6) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (80, 48))
    for i in range(frames):
        writer.write(np.full((48, 80, 3), 30 * i, np.uint8))
    writer.release()
    return path


def test_shipped_artifact_without_torch_from_an_empty_folder(cgan_artifact, tmp_path, monkeypatch):
    """translate, webcam --no-window and serve with no ARTIFACT, in a folder with no artifacts/ and no torch."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(WITHOUT_TRAINING)
    pythonpath = os.pathsep.join([str(site), str(REPO)])
    work = tmp_path / "work"
    (work / "photos").mkdir(parents=True)
    blocked = subprocess.run([sys.executable, "-c", "import torch"], env={**os.environ, "PYTHONPATH": pythonpath},
                             capture_output=True)
    assert blocked.returncode != 0  # the block holds, so what follows runs without torch

    backends = infer_cli("backends", cwd=work, pythonpath=pythonpath)
    assert backends.returncode == 0 and "torch" not in backends.stdout.split() and "ort-cpu" in backends.stdout
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(work / "photos/a.png")
    proc = infer_cli("translate", "photos", "sketches", cwd=work, pythonpath=pythonpath)
    assert proc.returncode == 0, proc.stderr
    assert "shipped" in proc.stderr and Image.open(work / "sketches" / "a.png").size == (52, 40)

    _clip(work / "clip.mp4")
    proc = infer_cli("webcam", "--source", "clip.mp4", "--no-window", cwd=work, pythonpath=pythonpath)
    assert proc.returncode == 0, proc.stderr
    # auto measured this machine's backends without torch (ONNX Runtime, and OpenVINO where installed)
    assert "processed 6" in proc.stdout and ("ort-cpu" in proc.stdout or "ov-cpu" in proc.stdout)

    proc = infer_cli("sample", str(cgan_artifact), "--n", "4", "--grid", "g.png", cwd=work, pythonpath=pythonpath)
    assert proc.returncode == 0, proc.stderr

    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.chdir(work)
    with ServerProcess([]) as server:
        health = httpx.get(server.url + "/health").json()
        assert health["artifact"] == SHIPPED_MODEL and health["backend"] in ("ort-cpu", "ov-cpu")
        photo = (work / "photos" / "a.png").read_bytes()
        r = httpx.post(server.url + "/v1/translate", content=photo, headers={"content-type": "image/png"}, timeout=60)
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (52, 40)
    assert server.proc is not None and server.proc.returncode == 0  # stopped gracefully by SIGINT
