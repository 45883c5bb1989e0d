"""The teacher of a distillation: a trained image-to-image generator, found from a run directory or a file.

A teacher is a run directory (its generator.safetensors, else its latest checkpoint, as export reads a
run) or a generator.safetensors file; none given means the generator shipped with ganrt. It must be an
image-to-image translator of a variant that has data of its own: the student learns on the teacher's
input domain (CycleGAN's domain A, pix2pix's input side).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganrt import config as config_mod
from ganrt.artifact import GENERATOR_FILE, sha256_unless_unchanged
from ganrt.errors import UsageError
from ganrt.locations import shipped_generator
from train import checkpoint as ckpt
from train import registry
from train.config import RUN_CONFIG
from train.eval import load_run
from train.translation import DATA_RANGE


@dataclass
class Teacher:
    """A located and checked teacher: its variant, config and weights file with the file's sha256."""

    variant: registry.Variant
    config: Any
    weights: Path
    sha256: str

    def build(self) -> nn.Module:
        """The generator (eval mode, CPU, no gradients), built without touching the global RNG."""
        # Building draws initial weights from the global RNG; forking it keeps the student's initial
        # weights the same whether or not a teacher was built first (the output cache may spare it).
        with torch.random.fork_rng(devices=[]):
            generator = ckpt.build_generator(self.variant.name, config_mod.to_dict(self.config), self.weights)
        return generator.requires_grad_(False)


def locate(source: str | None) -> tuple[Path, str, dict[str, Any]]:
    """(weights file, variant name, config dict) of the teacher `source` names; UsageError when there is none."""
    path = shipped_generator() if source is None else Path(source)
    if path.is_dir():
        if (path / RUN_CONFIG).is_file():
            path = ckpt.run_weights(path)
            if path.name != GENERATOR_FILE:  # an unfinished run's checkpoint: the run's config describes it
                variant, cfg = load_run(path.parent.parent)
                return path, variant.name, config_mod.to_dict(cfg)
        elif (path / GENERATOR_FILE).is_file():
            path = path / GENERATOR_FILE
        else:
            raise UsageError(f"--teacher {path}: a folder without {GENERATOR_FILE} or {RUN_CONFIG}; "
                             f"give a run directory or a generator .safetensors file")
    if not path.is_file():
        raise UsageError(f"--teacher {path}: no such run directory or generator file")
    name, cfg, _ = ckpt.read_generator(path)
    return path, name, cfg


def signature(variant: registry.Variant, cfg: Any) -> str:
    """A generator's inputs and output in words: `image (image, 3 channels) -> image (image)`."""
    def one(spec: Any) -> str:
        dims = "x".join("?" if d is None else str(d) for d in spec.shape[1:])
        return f"{spec.name} ({spec.kind}, {dims})"

    return f"{', '.join(one(s) for s in variant.inputs(cfg))} -> {one(variant.output(cfg))}"


def require_translator(variant: registry.Variant, cfg: Any, where: Path) -> None:
    """Refuse a teacher that is not an image-to-image generator with data of its own, saying what it is."""
    inputs, output = variant.inputs(cfg), variant.output(cfg)
    if len(inputs) != 1 or inputs[0].kind != "image" or output.kind != "image":
        raise UsageError(f"--teacher {where}: a {variant.name} generator, {signature(variant, cfg)}; distill needs an "
                         f"image-to-image translator: one image input and an image output (a cyclegan or pix2pix run)")
    if variant.dataset is None or variant.eval_pairs is None:
        raise UsageError(f"--teacher {where}: {variant.name} generators have no training data of their own to "
                         f"distil on; distill takes a translator trained here (a cyclegan or pix2pix run)")
    if inputs[0].range is None or tuple(inputs[0].range) != DATA_RANGE:
        raise UsageError(f"--teacher {where}: it takes images in {inputs[0].range}, not [-1, 1]: "
                         f"only generators that take the training data's range can be distilled")
    if inputs[0].shape[1] != output.shape[1]:
        raise UsageError(f"--teacher {where}: {signature(variant, cfg)}; the student maps C channels to the same C")


def load_teacher(source: str | None) -> Teacher:
    """Locate and check the teacher `source` names (its generator is built on demand: `Teacher.build`)."""
    weights, name, cfg_dict = locate(source)
    variant = registry.get(name)
    cfg = config_mod.from_dict(variant.config, cfg_dict)
    require_translator(variant, cfg, weights)
    return Teacher(variant, cfg, weights, sha256_unless_unchanged(weights))  # read by every stage of a run


def record(cfg: Any, teacher: Teacher) -> None:
    """Write what export and evaluation need to know of the teacher into the student's config (saved with the run).

    A resumed run must see the teacher it started with: another file under the same path is refused.
    """
    if cfg.teacher_sha256 and cfg.teacher_sha256 != teacher.sha256:
        raise UsageError(f"--teacher {teacher.weights} changed since this run started (sha256 {teacher.sha256[:12]}, "
                         f"the run recorded {cfg.teacher_sha256[:12]}): resume with the original teacher")
    channels = teacher.variant.output(teacher.config).shape[1]
    size = cfg.size or teacher.config.size
    cfg.teacher_sha256, cfg.teacher_variant = teacher.sha256, teacher.variant.name
    cfg.teacher_config = json.dumps(config_mod.to_dict(teacher.config), sort_keys=True)
    cfg.channels, cfg.size = channels, size


def check_size(cfg: Any, generator: nn.Module) -> None:
    """Refuse a training size the teacher cannot take (a U-Net needs multiples of 2^depth)."""
    multiple = int(getattr(generator, "size_multiple", 1))
    if cfg.size % multiple:
        raise UsageError(f"--size {cfg.size}: the teacher takes only multiples of {multiple}")


def data_config(cfg: Any) -> tuple[registry.Variant, Any]:
    """The teacher's variant and config set up to load its input domain at the student's size, without jitter.

    Read from what `record` saved when there is one (export and evaluation need no teacher file), else
    from the teacher's own metadata. `--data` replaces the teacher's dataset folder (same layout).
    """
    if cfg.teacher_config:
        name, saved = cfg.teacher_variant, json.loads(cfg.teacher_config)
    else:
        _, name, saved = locate(cfg.teacher)
    variant = registry.get(name)
    teacher_cfg = config_mod.from_dict(variant.config, saved)
    changes: dict[str, Any] = {"size": cfg.size or teacher_cfg.size, "data": cfg.data or teacher_cfg.data}
    if hasattr(teacher_cfg, "jitter"):
        changes["jitter"] = False  # the cached outputs belong to fixed inputs
    return variant, dataclasses.replace(teacher_cfg, **changes)
