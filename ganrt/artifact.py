"""The artifact format (docs/artifact.md): the manifest's writer and reader side by side.

An artifact is a folder: `manifest.json` plus the model files it lists. Export builds a
`Manifest` and `save`s it; infer `Artifact.load`s it back. Every field is checked on load
(types, ranges, sizes) before anything is built from it, and every file a manifest names
must lie inside the artifact's folder. Old manifests (schema 1) are read and upgraded.
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ganrt.atomic import atomic_write_text
from ganrt.errors import ArtifactError
from ganrt.locations import ARTIFACTS_ROOT
from ganrt.signature import TensorSpec, checked_range
from ganrt.targets import ONNX, OPENVINO, TENSORRT, WEIGHTS, Target

log = logging.getLogger("ganrt")

SCHEMA = "ganrt-artifact/2"
SCHEMA_1 = "ganrt-artifact/1"
MANIFEST = "manifest.json"
GENERATOR_FILE = "generator.safetensors"
ONNX_FILES = {"fp32": "generator.onnx", "fp16": "generator.fp16.onnx", "int8": "generator.int8.onnx"}
# OpenVINO IR: each model's graph (.xml) with its weights (.bin) beside it, as OpenVINO pairs them.
OPENVINO_FILES = {"fp32": ("generator.xml", "generator.bin"), "int8": ("generator.int8.xml", "generator.int8.bin")}
STATUSES = ("pending", "ok", "failed")
CHANNEL_ORDERS = ("RGB", "BGR")
MAX_BATCH = 4096
MAX_SIDE = 16384
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
NAME_RULE = "letters, digits, '.', '_', '+', '-'; a letter or digit first; 128 at most"


def check_name(name: Any, where: str = "name") -> str:
    """`name` when it is a valid artifact name (it names a folder and Triton models), else ArtifactError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ArtifactError(f"{where}: {name!r} is not a valid artifact name ({NAME_RULE})")
    return name


def name_from(text: str) -> str:
    """A valid artifact name made from a folder or file name ("" when nothing of it is usable)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).lstrip("._+-")[:128].rstrip("-")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def engine_file(gpu_slug: str) -> str:
    """The file name of a TensorRT engine built for one GPU ("h100-80gb-hbm3")."""
    return f"generator.{gpu_slug}.plan"


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ArtifactError(f"{where}: expected an integer in [{lo}, {hi}], got {value!r}")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ArtifactError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _hw(value: Any, where: str) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise ArtifactError(f"{where}: expected [height, width], got {value!r}")
    return _int(value[0], where, 1, MAX_SIDE), _int(value[1], where, 1, MAX_SIDE)


def relative_file(value: Any, where: str) -> str:
    """A file name a manifest may hold: relative, inside the artifact (no '..', no absolute path)."""
    if not isinstance(value, str) or not value or "\\" in value or "\0" in value:
        raise ArtifactError(f"{where}: expected a relative file name, got {value!r}")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or Path(value).is_absolute():
        raise ArtifactError(f"{where}: {value!r} points outside the artifact folder")
    return value


def _file_entry(entry: Any, where: str) -> dict[str, Any]:
    """A file a manifest lists: its relative name and, when recorded, its size and sha256 (the loaders check them)."""
    entry = _object(entry, where)
    relative_file(entry.get("file"), f"{where}.file")
    if entry.get("bytes") is not None:
        _int(entry["bytes"], f"{where}.bytes", 0, 1 << 50)
    sha256 = entry.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.match(sha256)):
        raise ArtifactError(f"{where}.sha256: expected 64 lowercase hex digits, got {sha256!r}")
    return entry


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_unless_unchanged(path: Path) -> str:
    """sha256_of(path), hashed again only when the file's size or modification time changed (per process)."""
    stat = path.stat()
    return _sha256_at(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_at(path: Path, size: int, mtime_ns: int) -> str:
    # size and mtime are the cache key: a rewritten file is hashed again.
    return sha256_of(path)


def check_model_file(path: Path, sha256: str | None = None, size: int | None = None) -> None:
    """Refuse a model file that is missing or is not the one the manifest recorded (its size, then its sha256)."""
    if not path.is_file():
        raise ArtifactError(f"model file not found: {path}")
    actual = path.stat().st_size
    if size is not None and actual != size:
        what = "truncated" if actual < size else "not the exported file"
        raise ArtifactError(f"{path} is {what}: {actual} bytes where the manifest recorded {size}; re-export it")
    if sha256 is not None:
        if sha256_of(path) != sha256.lower():
            raise ArtifactError(f"{path} is not the exported file: its sha256 differs from the manifest's "
                                "(damaged or replaced); re-export it")



@dataclass(frozen=True)
class ImageFormat:
    """How pixels map to an image tensor's values, and which sizes the model accepts."""

    channels: int
    value_range: tuple[float, float] = (-1.0, 1.0)
    channel_order: str = "RGB"
    size_multiple: int = 1
    default_size: tuple[int, int] | None = None
    dynamic_size: bool = True
    # The smallest height and width the model runs at (None: one size multiple).
    min_size: tuple[int, int] | None = None

    @classmethod
    def describe(cls, specs: list[TensorSpec], size: tuple[int, int] | None, size_multiple: int,
                 dynamic_size: bool, min_size: tuple[int, int] | None = None) -> "ImageFormat | None":
        """The format of a model's image tensors (None when it has none), from the registry's specs."""
        images = [s for s in specs if s.kind == "image"]
        if not images:
            return None
        default = size or tuple(images[-1].shape[2:])
        return cls(channels=int(images[0].shape[1] or 3), value_range=images[0].range or (-1.0, 1.0),
                   size_multiple=size_multiple, default_size=default, dynamic_size=dynamic_size,  # type: ignore[arg-type]
                   min_size=min_size)

    def for_tensor(self, spec: TensorSpec) -> "ImageFormat":
        """This format with the channel count and value range of one tensor."""
        channels = spec.shape[1] if len(spec.shape) == 4 and spec.shape[1] else self.channels
        return dataclasses.replace(self, channels=int(channels), value_range=spec.range or self.value_range)

    def to_json(self) -> dict[str, Any]:
        """The manifest's `image` section, with the normalisation written out for people."""
        lo, hi = self.value_range
        span = hi - lo
        m = self.size_multiple
        return {
            "layout": "NCHW", "channel_order": self.channel_order, "channels": self.channels,
            "value_range": [lo, hi],
            # The training I/O normalisation, exactly (design.md "Known hazards").
            "to_model": f"(x / 255 - {-lo / span:g}) / {1 / span:g}",
            "from_model": f"clip((y * {1 / span:g} + {-lo / span:g}) * 255)",
            "size_multiple": m, "default_size": list(self.default_size) if self.default_size else None,
            "dynamic_size": self.dynamic_size, "min_size": list(self.min_size) if self.min_size else None,
            "size_note": (f"height and width must be multiples of {m}"
                          + (f" and at least {self.min_size[0]}x{self.min_size[1]}" if self.min_size else "")
                          + ": inputs are resized to fit, and outputs back") if self.dynamic_size
            else "fixed size",
        }

    @classmethod
    def from_json(cls, d: Any, where: str = "image") -> "ImageFormat":
        """Inverse of `to_json`, every field checked."""
        d = _object(d, where)
        order = d.get("channel_order", "RGB")
        if order not in CHANNEL_ORDERS:
            raise ArtifactError(f"{where}.channel_order: {order!r} is not one of {', '.join(CHANNEL_ORDERS)}")
        if d.get("layout", "NCHW") != "NCHW":
            raise ArtifactError(f"{where}.layout: only NCHW is supported, not {d.get('layout')!r}")
        dynamic = d.get("dynamic_size", True)
        if not isinstance(dynamic, bool):
            raise ArtifactError(f"{where}.dynamic_size: expected true or false, got {dynamic!r}")
        default = d.get("default_size")
        min_size = d.get("min_size")
        return cls(channels=_int(d.get("channels", 3), f"{where}.channels", 1, 4),
                   value_range=checked_range(d.get("value_range", [-1.0, 1.0]), f"{where}.value_range"),
                   channel_order=order,
                   size_multiple=_int(d.get("size_multiple", 1), f"{where}.size_multiple", 1, 4096),
                   default_size=_hw(default, f"{where}.default_size") if default is not None else None,
                   dynamic_size=dynamic,
                   min_size=_hw(min_size, f"{where}.min_size") if min_size is not None else None)


@dataclass(frozen=True)
class BatchRange:
    """The batch sizes an artifact was exported for (TensorRT profile, Triton's max_batch_size)."""

    min: int = 1
    opt: int = 1
    max: int = 16

    def to_json(self) -> dict[str, int]:
        """{"min", "opt", "max"}."""
        return {"min": self.min, "opt": self.opt, "max": self.max}

    @classmethod
    def from_json(cls, d: Any, where: str = "batch") -> "BatchRange":
        """Inverse of `to_json`: integers with 1 <= min <= opt <= max."""
        d = _object(d, where)
        lo, opt, hi = (_int(d.get(k), f"{where}.{k}", 1, MAX_BATCH) for k in ("min", "opt", "max"))
        if not lo <= opt <= hi:
            raise ArtifactError(f"{where}: need min <= opt <= max, got {lo}, {opt}, {hi}")
        return cls(lo, opt, hi)


def _model_entries(models: Any) -> dict[str, dict[str, dict[str, Any]]]:
    models = _object(models, "models")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for fmt, entries in models.items():
        if fmt not in (ONNX, TENSORRT, OPENVINO):
            raise ArtifactError(f"models.{fmt}: unknown model format (known: {ONNX}, {TENSORRT}, {OPENVINO})")
        out[fmt] = {}
        for precision, entry in _object(entries, f"models.{fmt}").items():
            where = f"models.{fmt}.{precision}"
            entry = _file_entry(entry, where)
            if fmt == OPENVINO:  # an IR is two files: the graph and its weights
                _file_entry({"file": entry.get("weights"), "bytes": entry.get("weights_bytes"),
                             "sha256": entry.get("weights_sha256")}, f"{where}.weights")
            out[fmt][str(precision)] = entry
    return out


def _upgrade_1(d: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: models were keyed by precision with "trt" beside them; parity by model key."""
    d = dict(d)
    old_models = _object(d.get("models", {}), "models")
    models: dict[str, dict[str, Any]] = {ONNX: {}}
    for key, entry in old_models.items():
        if key == "trt":
            precision = _object(entry, "models.trt").get("precision", "fp16")
            if not isinstance(precision, str):
                raise ArtifactError(f"models.trt.precision: expected a precision name, got {precision!r}")
            models.setdefault(TENSORRT, {})[precision] = entry
        else:
            models[ONNX][key] = entry
    trt_precision = next(iter(models.get(TENSORRT, {})), "fp16")
    parity = {}
    for key, report in _object(d.get("parity", {}), "parity").items():
        report = _object(report, f"parity.{key}")
        if key == "torch":
            parity["torch/fp32"] = report
        elif key == "trt":
            parity[f"trt/{trt_precision}"] = report
        else:
            backend = report.get("backend", "ort-cpu")
            if not isinstance(backend, str):
                raise ArtifactError(f"parity.{key}.backend: expected a backend name, got {backend!r}")
            parity[f"{backend}/{key}"] = report
    d.update(schema=SCHEMA, models=models, parity=parity)
    return d


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Manifest:
    """Everything an artifact says about its models: written by export, read by infer and bench."""

    name: str
    variant: str
    config: dict[str, Any]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    batch: BatchRange = BatchRange()
    image: ImageFormat | None = None
    source: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"
    created: str = field(default_factory=_now)
    # format ("onnx", "tensorrt", "openvino") -> precision -> {"file", "bytes", "sha256", ...}
    models: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # Target key ("ort-cpu/int8") -> its parity report at export time.
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    triton: dict[str, Any] | None = None

    # ---- the writer ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON-ready data."""
        d: dict[str, Any] = {
            "schema": SCHEMA, "name": self.name, "status": self.status, "created": self.created,
            "variant": self.variant, "config": self.config, "source": self.source,
            "inputs": [s.to_json() for s in self.inputs], "outputs": [s.to_json() for s in self.outputs],
            "batch": self.batch.to_json(), "models": self.models, "parity": self.parity, "versions": self.versions,
        }
        if self.image is not None:
            d["image"] = self.image.to_json()
        if self.triton is not None:
            d["triton"] = self.triton
        return d

    def save(self, directory: Path) -> Path:
        """Atomically write directory/manifest.json (its name checked as the reader will)."""
        check_name(self.name)
        path = Path(directory) / MANIFEST
        atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")
        return path

    # ---- the reader ---------------------------------------------------------------------
    @classmethod
    def from_json(cls, d: Any) -> "Manifest":
        """Check every field and build the manifest; ArtifactError names the first bad field."""
        d = _object(d, "manifest")
        schema = d.get("schema")
        if schema == SCHEMA_1:
            d = _upgrade_1(d)
        elif schema != SCHEMA:
            raise ArtifactError(f"schema {schema!r} is not {SCHEMA!r} (nor the older {SCHEMA_1!r} this version "
                                f"reads): re-export it with this version of ganrt")
        missing = [k for k in ("name", "variant", "config", "inputs", "outputs", "batch", "models") if k not in d]
        if missing:
            raise ArtifactError(f"manifest lacks {', '.join(missing)}")
        name = check_name(d["name"])
        if not isinstance(d["variant"], str) or not d["variant"]:
            raise ArtifactError(f"variant: expected a name, got {d['variant']!r}")
        status = d.get("status", "pending")
        if status not in STATUSES:
            raise ArtifactError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
        specs = {}
        for key in ("inputs", "outputs"):
            if not isinstance(d[key], list) or not 1 <= len(d[key]) <= 16:
                raise ArtifactError(f"{key}: expected a list of 1 to 16 tensors")
            specs[key] = [TensorSpec.from_json(s, f"{key}[{i}]") for i, s in enumerate(d[key])]
        source = _object(d.get("source", {}), "source")
        if "file" in source:
            _file_entry(source, "source")
        created = d.get("created", "")
        if not isinstance(created, str):
            raise ArtifactError(f"created: expected a date string, got {created!r}")
        parity = {key: _object(report, f"parity.{key}")
                  for key, report in _object(d.get("parity", {}), "parity").items()}
        return cls(name=name, variant=d["variant"], config=_object(d["config"], "config"),
                   inputs=specs["inputs"], outputs=specs["outputs"], batch=BatchRange.from_json(d["batch"]),
                   image=ImageFormat.from_json(d["image"]) if d.get("image") is not None else None,
                   source=source, status=status, created=created,
                   models=_model_entries(d["models"]), parity=parity,
                   versions=_object(d.get("versions", {}), "versions"),
                   triton=_object(d["triton"], "triton") if d.get("triton") is not None else None)

    @classmethod
    def load(cls, directory: Path) -> "Manifest":
        """Read and check directory/manifest.json."""
        path = Path(directory) / MANIFEST
        if not path.is_file():
            raise ArtifactError(f"{directory} has no {MANIFEST}: not an artifact, or its export did not finish")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ArtifactError(f"corrupt manifest {path}: {e}") from None
        try:
            return cls.from_json(data)
        except ArtifactError as e:
            raise ArtifactError(f"{path}: {e}") from None

    # ---- models -------------------------------------------------------------------------
    def model(self, fmt: str, precision: str) -> dict[str, Any] | None:
        """The entry of one model file, or None."""
        return self.models.get(fmt, {}).get(precision)

    def set_model(self, fmt: str, precision: str, entry: dict[str, Any]) -> None:
        """Record a model file written beside the manifest."""
        self.models.setdefault(fmt, {})[precision] = entry

    def failed_summary(self) -> str:
        """One line naming the targets whose parity gate failed ("" when none did)."""
        failed = [k for k, r in self.parity.items() if isinstance(r, dict) and r.get("pass") is False]
        return f"parity failed for {', '.join(failed)}" if failed else ""


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
    """An artifact folder and its checked manifest; every path it hands out lies inside the folder."""

    root: Path
    manifest: Manifest

    @classmethod
    def load(cls, path_or_name: str | Path, root: Path = ARTIFACTS_ROOT) -> "Artifact":
        """Load `artifacts/<name>/` (or a directory, or its manifest.json) and check its manifest."""
        directory = resolve_dir(path_or_name, root)
        art = cls(directory, Manifest.load(directory))
        if art.manifest.status == "failed":
            log.warning("artifact %s has status 'failed': %s", art.name, art.manifest.failed_summary() or "see its manifest")
        return art

    @property
    def name(self) -> str:
        """The artifact's name."""
        return self.manifest.name

    @property
    def variant(self) -> str:
        """Registered variant name of the generator."""
        return self.manifest.variant

    @property
    def inputs(self) -> list[TensorSpec]:
        """The models' inputs."""
        return self.manifest.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """The models' outputs."""
        return self.manifest.outputs

    def path_of(self, file: str) -> Path:
        """`file` inside the artifact folder; one that escapes it (a link, '..') is an ArtifactError."""
        path = self.root / relative_file(file, "file")
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise ArtifactError(f"artifact {self.name}: {file!r} resolves outside its folder {self.root}")
        return path

    @property
    def generator_path(self) -> Path:
        """The generator weights (safetensors) for the torch backend."""
        return self.path_of(self.manifest.source.get("file", GENERATOR_FILE))

    def has(self, target: Target) -> bool:
        """Whether the model file `target` runs was exported and is present."""
        fmt, precision = target.model
        if fmt == WEIGHTS:
            return self.generator_path.is_file()
        entry = self.manifest.model(fmt, precision)
        return entry is not None and self.path_of(entry["file"]).is_file()

    def model_path(self, target: Target) -> Path:
        """The model file that `target` runs; ArtifactError says how to export it when absent."""
        fmt, precision = target.model
        if fmt == WEIGHTS:
            path = self.generator_path
        else:
            entry = self.manifest.model(fmt, precision)
            if entry is None:
                have = ", ".join(f"{f} {p}" for f, entries in self.manifest.models.items() for p in entries) or "none"
                flag = "--trt" + (" --int8" if precision == "int8" else "") if fmt == TENSORRT else f"--{precision}"
                raise ArtifactError(f"artifact {self.name} has no {fmt} {precision} model for {target.key} "
                                    f"(it has: {have}); export it with: python -m export {self.root} {flag}")
            path = self.path_of(entry["file"])
        if not path.is_file():
            raise ArtifactError(f"artifact {self.name}: {path} is listed in the manifest but missing")
        return path
