"""The teacher's outputs on its input images, computed once and kept on disk.

Where: ganrt's cache folder (`ganrt.locations.cache_root()`: $GANRT_CACHE, else ~/.cache/ganrt), under
`distill/<key>.safetensors`. It is something ganrt can rebuild, so it lives with ganrt's other caches
rather than in one run: a resumed run, the run's evaluation and a new run of the same teacher on the
same data all read it. The key is a sha256 of the teacher file's sha256 and a description of the inputs
(the teacher's data settings at the student's size, the folder's absolute path and a fingerprint of its
files' names, sizes and modification times, the split, the item count), so edited data or another
teacher never reads stale outputs. Outputs are stored as uint8 pixels, NCHW: exactly what the teacher
delivers once post-processed ((y * 0.5 + 0.5) * 255, rounded), at a quarter of fp32's size. Written
atomically (temp file + rename), so a kill mid-write leaves no half file under the final name.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganrt import config as config_mod
from ganrt.errors import CheckpointError
from ganrt.locations import cache_root
from train import checkpoint as ckpt
from train.samples import to_pixels

log = logging.getLogger("ganrt.train")

CACHE_FOLDER = "distill"
FORMAT = "ganrt-teacher-outputs/1"
OUTPUTS = "outputs"  # the tensor's name in the cache file


def from_pixels(pixels: Tensor) -> Tensor:
    """uint8 pixels -> float images in [-1, 1]."""
    return pixels.float() / 127.5 - 1


def folder_fingerprint(root: Path) -> str:
    """sha256 of every file's relative path, size and modification time under `root`: changes when the data does."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def describe_inputs(data_cfg: Any, split: str, count: int) -> dict[str, Any]:
    """What decides the input images: the teacher's data settings, the folder (absolute, fingerprinted), split, count."""
    data = data_cfg.data
    return {"settings": config_mod.to_dict(data_cfg), "split": split, "count": count,
            "data": os.path.abspath(data) if data else None,
            "fingerprint": folder_fingerprint(Path(data)) if data else None}


def cache_path(teacher_sha256: str, inputs: dict[str, Any]) -> Path:
    """Where the outputs of the teacher with this sha256 on these described inputs are kept."""
    key = json.dumps({"format": FORMAT, "teacher_sha256": teacher_sha256, "inputs": inputs}, sort_keys=True)
    return cache_root() / CACHE_FOLDER / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.safetensors"


def _read(path: Path, count: int) -> Tensor | None:
    try:
        tensors, _ = ckpt.read_weights(path)
    except CheckpointError as e:  # a damaged cache is rebuilt, not trusted
        log.warning("teacher output cache %s is unreadable (%s): computing it again", path, e)
        return None
    outputs = tensors.get(OUTPUTS)
    if outputs is None or outputs.dtype != torch.uint8 or len(outputs) != count:
        log.warning("teacher output cache %s does not hold %d uint8 images: computing it again", path, count)
        return None
    return outputs


@torch.no_grad()
def teacher_outputs(teacher: Callable[[], nn.Module], teacher_sha256: str, inputs: dict[str, Any],
                    batches: Callable[[], Iterable[Tensor]], device: torch.device) -> Tensor:
    """The teacher's uint8 outputs on the described inputs: read from the cache, else computed once and written.

    `teacher` builds the teacher only when the outputs must be computed; `batches` yields the input
    images in item order (as many as `inputs["count"]`).
    """
    path = cache_path(teacher_sha256, inputs)
    if path.is_file():
        cached = _read(path, inputs["count"])
        if cached is not None:
            log.info("teacher outputs: %d images read from %s", len(cached), path)
            return cached
    # Forked: a cache miss must leave the global RNG (the student's initial weights) as a hit does; a
    # DataLoader's iterator, for one, draws its seed from it.
    with torch.random.fork_rng(devices=[]):
        net = teacher().to(device).eval()
        outputs = torch.cat([to_pixels(net(x.to(device))) for x in batches()])
    if len(outputs) != inputs["count"]:
        raise RuntimeError(f"the teacher made {len(outputs)} outputs for {inputs['count']} inputs")
    ckpt.save_weights(path, {OUTPUTS: outputs.contiguous()},
                      {"format": FORMAT, "teacher_sha256": teacher_sha256, "inputs": json.dumps(inputs)})
    log.info("teacher outputs: %d images computed and cached in %s", len(outputs), path)
    return outputs


class TeacherTargets(Dataset):
    """The teacher's input images ("A") beside its outputs on them ("T", [-1, 1]), item for item."""

    def __init__(self, inputs: Dataset, outputs: Tensor) -> None:
        if len(inputs) != len(outputs):  # type: ignore[arg-type]
            raise ValueError(f"{len(inputs)} inputs but {len(outputs)} teacher outputs")  # type: ignore[arg-type]
        self.inputs, self.outputs = inputs, outputs

    def __len__(self) -> int:
        return len(self.outputs)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"A": self.inputs[index]["A"], "T": from_pixels(self.outputs[index])}
