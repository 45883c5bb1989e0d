"""Read an export artifact (`artifacts/<name>/`): its manifest, parsed and checked, with paths resolved.

The format is docs/artifact.md. Only pure-Python training code is imported here
(`train.registry.TensorSpec`), so the ONNX/TensorRT backends run without torch.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.errors import UsageError
from train.registry import TensorSpec

log = logging.getLogger("ganrt.infer")

SCHEMA = "ganrt-artifact/1"
MANIFEST = "manifest.json"
ARTIFACTS_ROOT = Path("artifacts")
# Keys every manifest has, whatever was exported.
_REQUIRED = ("schema", "name", "status", "variant", "config", "inputs", "outputs", "batch", "models")


class ArtifactError(UsageError):
    """An artifact is missing, corrupt, or lacks what was asked of it (exit code 2 in the CLIs)."""


def resolve_dir(path_or_name: str | Path, root: Path = ARTIFACTS_ROOT) -> Path:
    """The artifact directory for a path (directory or its manifest.json) or a bare name under `root`."""
    p = Path(path_or_name)
    if p.name == MANIFEST and p.is_file():
        return p.parent
    if p.is_dir():
        return p
    if len(p.parts) == 1 and (root / p).is_dir():
        return root / p
    raise ArtifactError(f"no artifact {str(path_or_name)!r}: not a directory, and no {root / p.name}/ either "
                        f"(export one with: python -m export)")


@dataclass(frozen=True)
class Artifact:
    """A parsed artifact: manifest fields as attributes, file paths resolved against its directory."""

    root: Path
    manifest: dict[str, Any]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @classmethod
    def load(cls, path_or_name: str | Path, root: Path = ARTIFACTS_ROOT) -> "Artifact":
        """Load and check `artifacts/<name>/manifest.json` (or a directory/manifest path)."""
        directory = resolve_dir(path_or_name, root)
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise ArtifactError(f"{directory} has no {MANIFEST}: not an artifact, or its export did not finish")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ArtifactError(f"corrupt manifest {manifest_path}: {e}") from None
        if not isinstance(manifest, dict):
            raise ArtifactError(f"corrupt manifest {manifest_path}: expected a JSON object")
        if manifest.get("schema") != SCHEMA:
            raise ArtifactError(f"{manifest_path}: schema {manifest.get('schema')!r} is not {SCHEMA!r} "
                                f"(re-export it with this version: python -m export {directory})")
        missing = [k for k in _REQUIRED if k not in manifest]
        if missing:
            raise ArtifactError(f"{manifest_path} lacks {', '.join(missing)}")
        try:
            inputs = [TensorSpec.from_json(d) for d in manifest["inputs"]]
            outputs = [TensorSpec.from_json(d) for d in manifest["outputs"]]
        except (KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"{manifest_path}: bad input/output spec ({e!r})") from None
        if not inputs or not outputs:
            raise ArtifactError(f"{manifest_path}: a model needs at least one input and one output")
        art = cls(directory, manifest, inputs, outputs)
        if art.status == "failed":
            log.warning("artifact %s has status %r: %s", art.name, art.status, art.failed_summary() or "see its manifest")
        return art

    @property
    def name(self) -> str:
        """The artifact's name."""
        return str(self.manifest["name"])

    @property
    def status(self) -> str:
        """"ok", or "failed" when a parity gate failed at export time."""
        return str(self.manifest["status"])

    @property
    def variant(self) -> str:
        """Registered variant name of the generator."""
        return str(self.manifest["variant"])

    @property
    def config(self) -> dict[str, Any]:
        """The variant config the generator was built with (train.config.to_dict form)."""
        return dict(self.manifest["config"])

    @property
    def image(self) -> dict[str, Any] | None:
        """Pre/post-processing of image tensors (layout, channel order, value range, sizes), if any."""
        return self.manifest.get("image")

    @property
    def batch(self) -> dict[str, int]:
        """{"min", "opt", "max"} batch sizes the artifact was exported for."""
        return {k: int(v) for k, v in self.manifest["batch"].items()}

    @property
    def models(self) -> dict[str, dict[str, Any]]:
        """Model entries keyed by precision ("fp32", "fp16", "int8") and "trt"."""
        return dict(self.manifest["models"])

    @property
    def parity(self) -> dict[str, Any]:
        """The parity report measured at export time, keyed like `models`."""
        return dict(self.manifest.get("parity", {}))

    @property
    def generator_path(self) -> Path:
        """The generator weights (safetensors) for the torch backend."""
        return self.root / self.manifest.get("source", {}).get("file", "generator.safetensors")

    def has_model(self, precision: str) -> bool:
        """Whether a model of this precision (or "trt") was exported and its file is present."""
        entry = self.manifest["models"].get(precision)
        return bool(entry) and (self.root / entry["file"]).is_file()

    def model_path(self, precision: str) -> Path:
        """Path of the model file for a precision ("fp32", "fp16", "int8") or "trt"."""
        entry = self.manifest["models"].get(precision)
        if not entry:
            have = ", ".join(self.manifest["models"]) or "none"
            raise ArtifactError(f"artifact {self.name} has no {precision} model (it has: {have}); "
                                f"export it with: python -m export {self.root} --{precision}")
        path = self.root / entry["file"]
        if not path.is_file():
            raise ArtifactError(f"artifact {self.name}: {path} is listed in the manifest but missing")
        return path

    def failed_summary(self) -> str:
        """One line naming the precisions whose parity gate failed ("" when none did)."""
        failed = [p for p, r in self.parity.items() if isinstance(r, dict) and r.get("pass") is False]
        return f"parity failed for {', '.join(failed)}" if failed else ""
