"""Provenance: which tools made an artifact, and the checksums of its files."""
from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

from ganrt.artifact import sha256_of


def package_version(package: str) -> str | None:
    """The installed version of `package`, None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def ganrt_version() -> str | None:
    """The installed ganrt version, else the one in this checkout's pyproject.toml."""
    installed = package_version("ganrt")
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
    versions.update({p: package_version(p) for p in ("torch", "onnx", "onnxruntime", "onnxslim")})
    # tensorrt is imported only where installed; its version is what engines are tied to.
    versions["tensorrt"] = None
    if importlib.util.find_spec("tensorrt") is not None:
        import tensorrt

        versions["tensorrt"] = tensorrt.__version__
    return versions


def model_entry(path: Path, **extra: Any) -> dict[str, Any]:
    """A manifest "models" entry: file, size, checksum and what else is known."""
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_of(path), **extra}
