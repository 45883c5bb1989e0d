"""The artifact shipped in the package (ganrt/models/cyclegan-photo2sketch/artifact/) is the shipped generator's,
in the current format, and travels as package data. When one of these fails, regenerate it:
`python scripts/ship_artifact.py`."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from export.model_card import render
from ganrt.artifact import MANIFEST, SCHEMA, Artifact
from ganrt.compare import compare
from ganrt.locations import SHIPPED_MODEL, shipped_artifact, shipped_generator
from ganrt.targets import target
from infer.api import load
from infer.runners.base import example_feeds

REPO = Path(__file__).resolve().parents[1]
REGENERATE = "stale shipped artifact: regenerate it with `python scripts/ship_artifact.py`"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def shipped() -> Artifact:
    return Artifact.load(shipped_artifact())


def test_it_is_the_shipped_generator_in_the_current_format(shipped):
    raw = json.loads((shipped_artifact() / MANIFEST).read_text())
    assert raw["schema"] == SCHEMA, REGENERATE
    assert shipped.name == SHIPPED_MODEL and shipped.variant == "cyclegan" and shipped.manifest.status == "ok"
    assert shipped.manifest.source["sha256"] == _sha256(shipped_generator()), REGENERATE
    assert all(report["pass"] for report in shipped.manifest.parity.values())
    assert shipped.manifest.image.min_size == (8, 8), REGENERATE  # found at export since issue #11
    # What a CPU runs, nothing twice: the two ONNX models, the manifest and its model card (no Triton copies, no
    # weights copy).
    files = {entry["file"]: entry for entries in shipped.manifest.models.values() for entry in entries.values()}
    assert set(files) == {"generator.onnx", "generator.int8.onnx"}
    assert {p.name for p in shipped_artifact().iterdir()} == {MANIFEST, "README.md", *files}
    assert (shipped_artifact() / "README.md").read_text() == render(shipped.manifest), REGENERATE
    for name, entry in files.items():
        path = shipped_artifact() / name
        assert path.stat().st_size == entry["bytes"] and _sha256(path) == entry["sha256"], REGENERATE
    assert sum(p.stat().st_size for p in shipped_artifact().iterdir()) < 4_000_000


def test_its_onnx_models_match_the_shipped_generator(shipped):
    """The fp32 model is the generator (max-abs gate), int8 within its PSNR floor, run by today's runners."""
    from infer.runners.torch_runner import TorchRunner, generator_loader

    feeds = example_feeds(shipped.inputs, batch=2, size=(64, 96))
    loader = generator_loader(shipped.variant, shipped.manifest.config, shipped_generator())
    with TorchRunner(loader, shipped.inputs, shipped.outputs) as torch_runner:
        expected = torch_runner.infer(feeds)["image_out"]
    for precision in ("fp32", "int8"):
        with load(shipped, backend="ort-cpu", precision=precision) as model:
            got = model.run(feeds)["image_out"]
        result = compare(expected, got, value_range=2.0)
        tolerance = target("ort-cpu", precision).tolerance
        assert tolerance.passes(result), (precision, result, REGENERATE)


def test_it_travels_as_package_data():
    """Every file of the shipped model's folder matches pyproject.toml's package-data globs (setuptools' own)."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ganrt"]
    root = REPO / "ganrt"
    packaged = {p for pattern in package_data for p in root.glob(pattern) if p.is_file()}
    shipped_files = {p for p in shipped_artifact().parent.rglob("*") if p.is_file()}
    assert shipped_files and shipped_files <= packaged, sorted(map(str, shipped_files - packaged))

