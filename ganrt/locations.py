"""Where things are by default: the runs and artifacts folders, and the models shipped in the package."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

RUNS_ROOT = Path("runs")
ARTIFACTS_ROOT = Path("artifacts")
# The demo CycleGAN (photo -> sketch) that ships inside the package: its generator weights,
# and the same generator exported, so infer runs without training, export or torch.
SHIPPED_MODEL = "cyclegan-photo2sketch"


def shipped_dir(name: str = SHIPPED_MODEL) -> Path:
    """The folder of a model shipped with ganrt (package data; found after any kind of install)."""
    return Path(str(resources.files("ganrt") / "models" / name))


def shipped_generator(name: str = SHIPPED_MODEL) -> Path:
    """The shipped generator's weights (`generator.safetensors`)."""
    return shipped_dir(name) / "generator.safetensors"


def shipped_artifact(name: str = SHIPPED_MODEL) -> Path:
    """The shipped generator's exported artifact (a folder with manifest.json)."""
    return shipped_dir(name) / "artifact"


def cache_root() -> Path:
    """Where ganrt keeps what it can rebuild (compiled models, auto's measurements): $GANRT_CACHE, else ~/.cache/ganrt."""
    if os.environ.get("GANRT_CACHE"):
        return Path(os.environ["GANRT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ganrt"
