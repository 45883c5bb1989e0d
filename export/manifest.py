"""The artifact manifest (docs/artifact.md, schema "ganrt-artifact/1"): what export writes beside the models."""
from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import json
from pathlib import Path
from typing import Any

from infer.artifact import MANIFEST, SCHEMA
from train.checkpoint import atomic_write_text
from train.registry import TensorSpec


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def ganrt_version() -> str | None:
    """The installed ganrt version, else the one in this checkout's pyproject.toml."""
    installed = _version("ganrt")
    if installed:
        return installed
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        return None
    return tomllib.loads(pyproject.read_text())["project"]["version"] if pyproject.is_file() else None


def tool_versions() -> dict[str, str | None]:
    """Versions of the tools that made the artifact (None: not installed)."""
    versions = {"ganrt": ganrt_version()}
    versions.update({p: _version(p) for p in ("torch", "onnx", "onnxruntime", "onnxslim")})
    # tensorrt is imported only where installed; its version is what engines are tied to.
    versions["tensorrt"] = None
    if importlib.util.find_spec("tensorrt") is not None:
        import tensorrt

        versions["tensorrt"] = tensorrt.__version__
    return versions


def image_info(inputs: list[TensorSpec], outputs: list[TensorSpec], size: tuple[int, int] | None,
               size_multiple: int, dynamic_size: bool) -> dict[str, Any] | None:
    """Pre/post-processing of image tensors (None when no input or output is an image)."""
    images = [s for s in inputs + outputs if s.kind == "image"]
    if not images:
        return None
    lo, hi = images[0].range or (-1.0, 1.0)
    span = hi - lo
    default_size = size or tuple(images[-1].shape[2:])
    return {
        "layout": "NCHW", "channel_order": "RGB", "channels": images[0].shape[1], "value_range": [lo, hi],
        # The training I/O normalisation, exactly (design.md "Known hazards").
        "to_model": f"(x / 255 - {-lo / span:g}) / {1 / span:g}",
        "from_model": f"clip((y * {1 / span:g} + {-lo / span:g}) * 255)",
        "size_multiple": size_multiple, "default_size": list(default_size), "dynamic_size": dynamic_size,
        "size_note": (f"height and width must be multiples of {size_multiple}: resize or pad inputs up to one, "
                      "and crop or resize outputs back") if dynamic_size else "fixed output size",
    }


def new_manifest(name: str, variant: str, config: dict[str, Any], source: dict[str, Any], inputs: list[TensorSpec],
                 outputs: list[TensorSpec], image: dict[str, Any] | None, batch: tuple[int, int, int]) -> dict[str, Any]:
    """A manifest with everything but models and parity (status "pending" until parity is measured)."""
    manifest: dict[str, Any] = {
        "schema": SCHEMA, "name": name, "status": "pending",
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "variant": variant, "config": config, "source": source,
        "inputs": [s.to_json() for s in inputs], "outputs": [s.to_json() for s in outputs],
        "batch": {"min": batch[0], "opt": batch[1], "max": batch[2]},
        "models": {}, "parity": {}, "versions": tool_versions(),
    }
    if image is not None:
        manifest["image"] = image
    return manifest


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    """Atomically write directory/manifest.json."""
    path = directory / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")
    return path
