"""Where the generator to export comes from: a run, a generator file, a run checkpoint or an artifact."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ganrt import config as config_mod
from ganrt.artifact import GENERATOR_FILE, MANIFEST, resolve_dir, sha256_of
from ganrt.errors import UsageError
from ganrt.locations import shipped_generator
from train import checkpoint as ckpt
from train import registry
from train.eval import load_run

log = logging.getLogger("ganrt.export")


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


def run_generators(runs_root: Path) -> list[Path]:
    """Every finished run's runs/<variant>/<run>/generator.safetensors, newest first."""
    found = list(runs_root.glob(f"*/*/{GENERATOR_FILE}")) if runs_root.is_dir() else []
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def _run_name(run_dir: Path) -> str:
    # An export of a run is named after its variant and its folder (a timestamp).
    return f"{load_run(run_dir)[0].name}-{run_dir.name}"


def _from_generator_file(path: Path, default_name: str) -> Source:
    variant_name, cfg_dict, step = ckpt.read_generator(path)
    generator = ckpt.build_generator(variant_name, cfg_dict, path)
    variant = registry.get(variant_name)
    cfg = config_mod.from_dict(variant.config, cfg_dict)
    return Source(variant, cfg, generator, path, True, step, sha256_of(path), default_name)


def _from_run_checkpoint(run_dir: Path, weights: Path) -> Source:
    variant, cfg = load_run(run_dir)
    generator = ckpt.build_generator(variant.name, config_mod.to_dict(cfg), weights)
    step = int(weights.stem.split("_")[-1])
    return Source(variant, cfg, generator, weights, False, step, sha256_of(weights), _run_name(run_dir))


def _from_run(run_dir: Path) -> Source:
    weights = ckpt.run_weights(run_dir)
    if weights.name == GENERATOR_FILE:
        return _from_generator_file(weights, _run_name(run_dir))
    log.info("%s has no %s (unfinished run): using its latest checkpoint, %s", run_dir, GENERATOR_FILE, weights.name)
    return _from_run_checkpoint(run_dir, weights)


def _from_file(path: Path) -> Source:
    run_dir = path.parent.parent
    if path.parent.name == "checkpoints" and _is_run_dir(run_dir):
        return _from_run_checkpoint(run_dir, path)
    if _is_run_dir(path.parent):
        return _from_generator_file(path, _run_name(path.parent))
    return _from_generator_file(path, path.parent.resolve().name or path.stem)


def resolve_source(source: str | None, runs_root: Path, artifacts_root: Path) -> Source:
    """Load the generator named by SOURCE (see `python -m export --help`); errors are UsageErrors."""
    if source is None:
        runs = run_generators(runs_root)
        if runs:
            log.info("no SOURCE given: exporting the latest run, %s", runs[0].parent)
            return _from_file(runs[0])
        shipped = shipped_generator()
        if shipped.is_file():
            log.info("no SOURCE given and no runs under %s: exporting the shipped %s", runs_root, shipped)
            return _from_file(shipped)
        raise UsageError(f"no SOURCE given, no finished run under {runs_root}/ and no shipped generator at "
                         f"{shipped}: train one (python -m train cyclegan) or pass a run directory or file")
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
