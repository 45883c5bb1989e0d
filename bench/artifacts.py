"""The models the benchmarks run, and their export artifacts, built once and cached by config hash.

Paper-size models get DCGAN-style random weights (train.nets.init.init_weights, seed 0): speed
does not depend on the weights, and parity is measured against the same weights in torch.
The shipped CycleGAN (ganrt/models/cyclegan-photo2sketch/generator.safetensors) is used as trained
when it exists; until then its quick-preset architecture with random weights stands in, and
every benchmark of it says so in extra_info ("weights").

Artifacts are written by export's Python API (what `python -m export` runs) into
`.benchmarks/artifacts/<model>-<hash>/`; the hash covers the weights, the export options,
the tool versions and export's own source, so a change in any of them re-exports and an
unchanged setup reuses the artifact across sessions.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganrt.locations import shipped_generator

REPO = Path(__file__).resolve().parents[1]
CACHE_ROOT = Path(os.environ.get("GANRT_BENCH_CACHE", REPO / ".benchmarks" / "artifacts"))
SHIPPED_GENERATOR = shipped_generator()
# Every artifact covers batches 1..32 (TensorRT profiles; the API's max batch).
EXPORT_BATCH = (1, 1, 32)
INIT_NOTE = "random init: N(0, 0.02) conv/linear weights, N(1, 0.02) norm scales, seed 0 (train.nets.init)"

log = logging.getLogger("ganrt.bench")


@dataclass(frozen=True)
class ModelSpec:
    """One benchmarked model: a registered variant at a named preset, with real or random weights."""

    key: str
    variant: str
    preset: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()
    shipped: bool = False
    # Image sizes (square side) for translators, the model's own size first; () for noise models.
    sizes: tuple[int, ...] = ()
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def translator(self) -> bool:
        """Image in, image out."""
        return bool(self.sizes)

    def config(self) -> Any:
        """The resolved variant config (the shipped file's own config when it exists)."""
        from ganrt import config
        from train import registry

        variant = registry.get(self.variant)
        if self.shipped and SHIPPED_GENERATOR.is_file():
            from train import checkpoint

            _, cfg_dict, _ = checkpoint.read_generator(SHIPPED_GENERATOR)
            return config.from_dict(variant.config, cfg_dict)
        return config.resolve(variant.config, self.preset, dict(self.overrides))

    def weights_note(self) -> str:
        """Where the weights come from, for extra_info and the report."""
        # Relative to the checkout when it is one; an installed package's path otherwise.
        shown = SHIPPED_GENERATOR.relative_to(REPO) if SHIPPED_GENERATOR.is_relative_to(REPO) else SHIPPED_GENERATOR
        if self.shipped and SHIPPED_GENERATOR.is_file():
            return f"trained: {shown}"
        if self.shipped:
            return f"{shown} not found: its quick-preset architecture, {INIT_NOTE}"
        return INIT_NOTE


MODELS: dict[str, ModelSpec] = {m.key: m for m in (
    ModelSpec("cyclegan-256", "cyclegan", "paper", sizes=(256, 128, 512),
              summary="CycleGAN ResNet-9 generator, ngf 64 (the paper's 256x256 model)"),
    ModelSpec("cyclegan-shipped", "cyclegan", "quick", shipped=True, sizes=(64, 256),
              summary="the shipped photo->sketch CycleGAN (quick preset)"),
    ModelSpec("pix2pix-256", "pix2pix", "paper", sizes=(256, 512), summary="pix2pix U-Net-256, ngf 64"),
    ModelSpec("dcgan-28", "dcgan", None, summary="DCGAN 28x28x1 (TF tutorial networks)"),
    ModelSpec("dcgan-64", "dcgan", "paper", summary="DCGAN 64x64x3, ngf 64 (the paper's networks)"),
    ModelSpec("cgan", "cgan", None, summary="conditional GAN 28x28x1, 10 classes"),
    ModelSpec("infogan", "infogan", None, summary="InfoGAN 28x28x1 (the paper's MNIST nets): z 62, a 10-way category, "
                                                    "2 continuous codes"),
    ModelSpec("gan", "gan", None, summary="toy GAN: MLP generator, 2-D ring"),
)}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _code_digest() -> str:
    """Hash of the code that shapes an artifact (the core, export, the registry's nets/variants)."""
    h = hashlib.sha256()
    for folder in ("ganrt", "export", "train/nets", "train/variants"):
        for path in sorted((REPO / folder).glob("*.py")):
            if path.name in ("cli.py", "__main__.py"):  # the command line does not change what is written
                continue
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _source(spec: ModelSpec, cache_root: Path) -> tuple[Path, str]:
    """(generator.safetensors path, its sha256): the shipped file, or a random-init file made once."""
    from ganrt.artifact import sha256_of

    if spec.shipped and SHIPPED_GENERATOR.is_file():
        return SHIPPED_GENERATOR, sha256_of(SHIPPED_GENERATOR)
    import torch

    from ganrt import config
    from train import checkpoint
    from train.nets.init import init_weights

    cfg = config.to_dict(spec.config())
    key = _digest({"variant": spec.variant, "config": cfg, "init": INIT_NOTE, "code": _code_digest()})
    path = cache_root / "sources" / f"{spec.key}-{key[:12]}" / "generator.safetensors"
    if not path.is_file():
        torch.manual_seed(0)
        generator = checkpoint.build_generator(spec.variant, cfg)
        init_weights(generator)
        checkpoint.save_generator(path, generator, spec.variant, cfg, 0)
        _prune(path.parent)
    return path, sha256_of(path)


def export_key(opts: Any) -> dict[str, Any]:
    """The export options (`ExportOptions`) that shape an artifact, defaults included, for its cache key.

    Paths say where export reads and writes, not what it writes: the source, the output and
    the default folders are left out (the source counts by its sha256), so the key stays the
    same wherever the checkout and the cache are.
    """
    return {name: value for name, value in dataclasses.asdict(opts).items()
            if name not in ("source", "out") and not isinstance(value, Path)}


def artifact_dir(spec: ModelSpec, cache_root: Path = CACHE_ROOT, trt: bool = False) -> Path:
    """The cached artifact of `spec` (exported now if missing); `trt` adds a TensorRT fp16 engine (GPU)."""
    from export.options import ExportOptions
    from export.pipeline import run_export
    from export.provenance import tool_versions

    source, sha = _source(spec, cache_root)
    opts = ExportOptions(source=str(source), name=spec.key, batch=EXPORT_BATCH, trt=trt)
    key = _digest({"source": sha, "options": export_key(opts), "versions": tool_versions(), "code": _code_digest()})
    out = cache_root / f"{spec.key}{'-trt' if trt else ''}-{key[:12]}"
    if (out / "manifest.json").is_file():
        return out
    partial = out.with_name(out.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    log.info("exporting %s into %s (cached for later sessions)", spec.key, out)
    t0 = time.perf_counter()
    result = run_export(dataclasses.replace(opts, out=partial))
    manifest = result.manifest
    (partial / "bench.json").write_text(json.dumps({"model": spec.key, "weights": spec.weights_note(),
                                                    "export_seconds": round(time.perf_counter() - t0, 1),
                                                    "stages": {k: round(v, 1) for k, v in result.stages},
                                                    "status": manifest.status}, indent=1))
    try:
        partial.rename(out)
    except OSError:  # another session finished the same export first: use theirs
        shutil.rmtree(partial, ignore_errors=True)
    _prune(out)
    return out


def _prune(current: Path) -> None:
    """Delete this model's artifacts (or sources) made by other code or versions: they are never read again."""
    stem = current.name.rsplit("-", 1)[0]
    for old in current.parent.glob(f"{stem}-*"):
        if old != current and old.is_dir() and old.name.rsplit("-", 1)[0] == stem and ".partial-" not in old.name:
            shutil.rmtree(old, ignore_errors=True)


def export_info(artifact: Path) -> dict[str, Any]:
    """What the bench recorded when it exported `artifact` (time per stage), if it did."""
    path = artifact / "bench.json"
    return json.loads(path.read_text()) if path.is_file() else {}
