"""Shared fixtures: tiny trained and exported artifacts (session-scoped: trained and exported once).

`cyclegan_artifact` (image-to-image, 32 px, ngf 8, 2 blocks), `cgan_artifact` (conditional
noise-to-image, 28 px grey, 10 classes), `infogan_artifact` (z, a 10-way category and 2
continuous codes in) and `stargan_artifact` (an image and a named target domain in) are real runs of one training step, exported with
export's Python API (what `python -m export RUN --onnx --out DIR` runs: fp32 ONNX, safetensors,
manifest with its parity report) into a session temp folder. ganrt's cache (auto's measurements,
OpenVINO's compiled models) is a session folder too, so tests never read or write ~/.cache/ganrt.
"""
from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

TINY_RUNS = {
    "cyclegan": {"steps": 1, "size": 32, "ngf": 8, "ndf": 8, "n_blocks": 2, "batch_size": 1, "eval_samples": 8},
    "cgan": {"steps": 1, "batch_size": 4, "eval_samples": 8},
    "infogan": {"steps": 1, "batch_size": 4, "eval_samples": 8},
    "stargan": {"steps": 1, "size": 32, "conv_dim": 8, "d_conv_dim": 8, "n_blocks": 1, "d_layers": 2, "batch_size": 2,
                "n_critic": 1, "eval_samples": 4, "builtin_items": 24},
}


def pytest_configure(config: pytest.Config) -> None:
    """Let the Ctrl-C tests' subprocesses see SIGINT even when pytest itself runs in a background job.

    A shell starts background jobs with SIGINT ignored; an ignored signal stays ignored across
    exec, and Python then installs no KeyboardInterrupt handler, so a child would never see the
    tests' Ctrl-C. A handled signal is reset to its default on exec, which Python turns into
    KeyboardInterrupt.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def ganrt_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """ganrt's cache (auto's measurements, OpenVINO's compiled models) in a session folder, for subprocesses too."""
    folder = tmp_path_factory.mktemp("ganrt-cache")
    before = os.environ.get("GANRT_CACHE")
    os.environ["GANRT_CACHE"] = str(folder)
    yield folder
    if before is None:
        del os.environ["GANRT_CACHE"]
    else:
        os.environ["GANRT_CACHE"] = before


def _train_and_export(variant_name: str, root: Path) -> Path:
    from export.options import ExportOptions
    from export.pipeline import run_export
    from ganrt import config
    from train import registry
    from train.trainer import run_training

    variant = registry.get(variant_name)
    cfg = config.resolve(variant.config, "quick", TINY_RUNS[variant_name])
    run_dir = run_training(variant, cfg, runs_root=root / "runs", evaluate=False)
    out = root / "artifacts" / f"tiny-{variant_name}"
    result = run_export(ExportOptions(source=str(run_dir), onnx=True, out=out, name=f"tiny-{variant_name}"))
    assert result.exit_code == 0, f"export of the tiny {variant_name} run failed: {result.manifest.get('parity')}"
    return out


@pytest.fixture(scope="session")
def cyclegan_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CycleGAN artifact directory (image in, image out; dynamic H/W, multiples of 4)."""
    return _train_and_export("cyclegan", tmp_path_factory.mktemp("tiny-cyclegan"))


@pytest.fixture(scope="session")
def cgan_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny conditional GAN artifact directory (z + label in, 1x28x28 image out)."""
    return _train_and_export("cgan", tmp_path_factory.mktemp("tiny-cgan"))


@pytest.fixture(scope="session")
def infogan_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny InfoGAN artifact directory (z + category + 2 codes in, 1x28x28 image out)."""
    return _train_and_export("infogan", tmp_path_factory.mktemp("tiny-infogan"))


@pytest.fixture(scope="session")
def stargan_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny StarGAN artifact directory (an image and a target domain of the built-in styles in, an image out)."""
    return _train_and_export("stargan", tmp_path_factory.mktemp("tiny-stargan"))
