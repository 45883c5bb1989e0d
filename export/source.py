"""Where the generator to export comes from: a run, a generator file, a run checkpoint or an artifact."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from export.provenance import sha256_of
from ganrt import config as config_mod
from ganrt.artifact import GENERATOR_FILE, MANIFEST, resolve_dir
from ganrt.errors import CheckpointError, UsageError
from ganrt.locations import shipped_generator
from train import checkpoint as ckpt
from train import registry
from train.eval import load_generator, load_run

log = logging.getLogger("ganrt.export")

# Shipped with the project (another stage trains it); the fallback when there is no run.
DEFAULT_GENERATOR = shipped_generator()


@dataclass
class Source:
    """A generator ready to export, with where it came from."""

    variant: registry.Variant
    config: Any
    generator: nn.Module
    # The file the weights were read from, and whether it is already a generator.safetensors.
    weights: Path
    is_generator_file: bool
    step: int
    sha256: str
    default_name: str
    # Extra `source` fields for the manifest: how a generator trained elsewhere was imported.
    provenance: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the log."""
        return f"{self.variant.name} step {self.step} from {self.weights}"


def latest_run_generator(runs_root: Path) -> Path | None:
    """The most recently written runs/<variant>/<run>/generator.safetensors, if any."""
    found = list(runs_root.glob(f"*/*/{GENERATOR_FILE}")) if runs_root.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def _is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def _from_generator_file(path: Path, default_name: str) -> Source:
    tensors, variant_name, cfg_dict, step = ckpt.read_generator(path)
    variant = registry.get(variant_name)
    cfg = config_mod.from_dict(variant.config, cfg_dict)
    try:
        generator = variant.generator(cfg)
    except ValueError as e:  # the builders validate their settings
        raise CheckpointError(f"{path}: its config cannot build a {variant.name} generator: {e}") from None
    ckpt.load_into(generator, tensors, "", path)
    return Source(variant, cfg, generator.eval(), path, True, step, sha256_of(path), default_name)


def _from_run_checkpoint(run_dir: Path, weights: Path) -> Source:
    variant, cfg = load_run(run_dir)
    generator = load_generator(variant, cfg, weights)
    step = int(weights.stem.split("_")[-1])
    return Source(variant, cfg, generator, weights, False, step, sha256_of(weights), f"{variant.name}-{run_dir.name}")


def _from_run(run_dir: Path) -> Source:
    generator_file = run_dir / GENERATOR_FILE
    variant_name = load_run(run_dir)[0].name
    if generator_file.is_file():
        return _from_generator_file(generator_file, f"{variant_name}-{run_dir.name}")
    found = ckpt.list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise UsageError(f"{run_dir} has neither {GENERATOR_FILE} nor checkpoints: nothing to export")
    log.info("%s has no %s (unfinished run): using its latest checkpoint, step %d", run_dir, GENERATOR_FILE, found[-1][0])
    return _from_run_checkpoint(run_dir, found[-1][1])


def _from_file(path: Path) -> Source:
    run_dir = path.parent.parent
    if path.parent.name == "checkpoints" and _is_run_dir(run_dir):
        return _from_run_checkpoint(run_dir, path)
    if _is_run_dir(path.parent):
        return _from_generator_file(path, f"{load_run(path.parent)[0].name}-{path.parent.name}")
    return _from_generator_file(path, path.parent.resolve().name or path.stem)


def resolve_source(source: str | None, runs_root: Path, artifacts_root: Path,
                   default_generator: Path = DEFAULT_GENERATOR) -> Source:
    """Load the generator named by SOURCE (see `python -m export --help`); errors are UsageErrors."""
    if source is None:
        latest = latest_run_generator(runs_root)
        if latest is not None:
            log.info("no SOURCE given: exporting the latest run, %s", latest.parent)
            return _from_file(latest)
        if default_generator.is_file():
            log.info("no SOURCE given and no runs under %s: exporting the shipped %s", runs_root, default_generator)
            return _from_file(default_generator)
        raise UsageError(f"no SOURCE given, no finished run under {runs_root}/ and no shipped generator at "
                         f"{default_generator}: train one (python -m train cyclegan) or pass a run directory or file")
    path = Path(source)
    if path.is_file():
        return _from_file(path)
    if path.is_dir() and _is_run_dir(path):
        return _from_run(path)
    try:
        artifact_dir = resolve_dir(source, artifacts_root)
    except UsageError:
        raise UsageError(f"unknown source {source!r}: not a run directory (with config.json), a generator "
                         f".safetensors file, nor an artifact under {artifacts_root}/") from None
    generator_file = artifact_dir / GENERATOR_FILE
    if not generator_file.is_file():
        what = "an artifact" if (artifact_dir / MANIFEST).is_file() else "a directory"
        raise UsageError(f"{artifact_dir} is {what} without {GENERATOR_FILE}: nothing to export from")
    return _from_generator_file(generator_file, artifact_dir.resolve().name)
