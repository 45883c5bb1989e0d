"""Artifacts that are not what they claim: hostile manifests, files outside the folder, damaged models.

The manifest reader (`ganrt.artifact`) must refuse every bad field with an ArtifactError that
names it, before anything is sized from it; the ONNX Runtime loader must name a damaged model.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from ganrt.artifact import Artifact, BatchRange, ImageFormat, Manifest
from ganrt.errors import ArtifactError
from ganrt.signature import TensorSpec
from ganrt.targets import target
from infer.runners import open_runner

SHA = "ab" * 32


def manifest_json() -> dict[str, Any]:
    """A valid schema-2 manifest of a conditional noise-to-image model (z + label in, 1x28x28 out)."""
    return Manifest(
        name="tiny-cgan", variant="cgan", config={"z_dim": 100},
        inputs=[TensorSpec("z", (None, 100), kind="noise"),
                TensorSpec("label", (None,), "int64", kind="label", num_classes=10)],
        outputs=[TensorSpec("image", (None, 1, 28, 28), range=(-1.0, 1.0))],
        batch=BatchRange(1, 1, 16),
        image=ImageFormat(channels=1, default_size=(28, 28), dynamic_size=False),
        source={"file": "generator.safetensors", "sha256": SHA, "step": 1},
        status="ok",
        models={"onnx": {"fp32": {"file": "generator.onnx", "bytes": 10, "sha256": SHA, "opset": 17}}},
        parity={"ort-cpu/fp32": {"backend": "ort-cpu", "pass": True}},
        versions={"ganrt": "0.1.0"},
        triton={"repository": "triton", "models": ["tiny-cgan_fp32"]},
    ).to_json()


def write(folder: Path, manifest: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def refused(folder: Path, manifest: dict[str, Any]) -> str:
    """The one-line ArtifactError that loading `manifest` raises."""
    write(folder, manifest)
    with pytest.raises(ArtifactError) as e:
        Manifest.load(folder)
    message = str(e.value)
    assert "\n" not in message
    return message


def with_value(manifest: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of `manifest` with the field at a dotted path ("inputs.0.shape") set to `value`."""
    out = copy.deepcopy(manifest)
    *parents, last = dotted.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return out


def test_a_valid_manifest_loads(tmp_path):
    m = Manifest.load(write(tmp_path, manifest_json()))
    assert m.inputs[1].num_classes == 10 and m.batch.max == 16 and m.image.value_range == (-1.0, 1.0)


# -- files outside the artifact folder ------------------------------------------------------------------
@pytest.mark.parametrize("file", ["../../other/generator.onnx", "/etc/passwd", "sub/../../generator.onnx",
                                  "..", "C:\\models\\generator.onnx", "", "generator.onnx\0.txt"])
@pytest.mark.parametrize("field", ["models.onnx.fp32.file", "source.file"])
def test_paths_outside_the_folder_are_refused(tmp_path, field, file):
    message = refused(tmp_path, with_value(manifest_json(), field, file))
    assert field in message


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "other"
    outside.mkdir()
    (outside / "generator.onnx").write_bytes(b"not yours")
    folder = write(tmp_path / "art", manifest_json())
    (folder / "generator.onnx").symlink_to(outside / "generator.onnx")
    (folder / "generator.safetensors").symlink_to(outside)  # a link to a folder outside
    art = Artifact.load(folder)  # the manifest itself is fine: the files are checked where they are used
    with pytest.raises(ArtifactError, match="resolves outside its folder"):
        art.model_path(target("ort-cpu", "fp32"))
    with pytest.raises(ArtifactError, match="resolves outside its folder"):
        open_runner(art, "ort-cpu")
    with pytest.raises(ArtifactError, match="resolves outside its folder"):
        art.generator_path  # noqa: B018
    # A link that stays inside the folder is fine.
    (folder / "generator.onnx").unlink()
    (folder / "real.onnx").write_bytes(b"x")
    (folder / "generator.onnx").symlink_to("real.onnx")
    assert art.model_path(target("ort-cpu", "fp32")) == folder / "generator.onnx"


# -- absurd sizes and ranges: refused before anything is allocated ---------------------------------------
@pytest.mark.parametrize("field,value,words", [
    ("inputs.0.shape", [None, 10**9], "elements per row"),
    ("inputs.0.shape", [None, 1e9], "positive integers"),
    ("inputs.0.shape", [None, 100000, 100000], "elements per row"),
    ("outputs.0.shape", [None, 1, 2**40, 2**40], "elements per row"),
    ("inputs.0.shape", [None, -100], "positive integers"),
    ("inputs.0.shape", [None] * 9, "1 to 8 dimensions"),
    ("image.value_range", [0, 0], "low < high"),
    ("image.value_range", [1, -1], "low < high"),
    ("image.value_range", [float("nan"), 1], "finite"),
    ("outputs.0.range", [0, 0], "low < high"),
    ("outputs.0.range", ["-1", "1"], "low < high"),
    ("batch.max", "16", "integer"),
    ("batch.max", 10**9, "integer in [1, 4096]"),
    ("batch.min", 1.5, "integer"),
    ("batch.opt", True, "integer"),
    ("batch.min", 8, "min <= opt <= max"),
    ("image.size_multiple", "4", "integer"),
    ("image.size_multiple", 0, "integer in [1, 4096]"),
    ("image.size_multiple", 4.0, "integer"),
    ("image.default_size", [28, 10**6], "integer in [1, 16384]"),
    ("inputs.1.num_classes", 10**9, "num_classes"),
])
def test_absurd_shapes_and_ranges_are_refused_before_allocating(tmp_path, field, value, words):
    manifest = with_value(manifest_json(), field, value)
    tracemalloc.start()
    try:
        message = refused(tmp_path, manifest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    name = field.split(".")[-1]
    assert name in message and words in message, message
    assert peak < 4 * 2**20, f"{peak} bytes allocated while refusing it"


# -- a wrong type in every field ------------------------------------------------------------------------
WRONG_TYPES = [
    ("schema", 2, "schema"), ("name", 5, "name"), ("name", "../evil", "name"), ("variant", ["cgan"], "variant"),
    ("status", "great", "status"), ("created", 5, "created"), ("config", "z_dim=100", "config"),
    ("inputs", "z", "inputs"), ("inputs", [], "inputs"), ("inputs.0", "z", "inputs[0]"),
    ("inputs.0.name", 5, "inputs[0].name"), ("inputs.0.shape", "N,100", "'z'.shape"),
    ("inputs.0.dtype", "float64", "'z'.dtype"), ("inputs.0.kind", 5, "'z'.kind"),
    ("inputs.1.num_classes", "10", "'label'.num_classes"), ("inputs.1.class_names", "abc", "'label'.class_names"),
    ("outputs", {"name": "image"}, "outputs"), ("outputs.0.shape", [None, 1, 28], "'image'"),
    ("batch", [1, 1, 16], "batch"), ("batch.min", None, "batch.min"),
    ("image", "28x28", "image"), ("image.channels", "1", "image.channels"), ("image.channels", 7, "image.channels"),
    ("image.channel_order", 5, "image.channel_order"), ("image.layout", "NHWC", "image.layout"),
    ("image.dynamic_size", "yes", "image.dynamic_size"), ("image.default_size", 28, "image.default_size"),
    ("image.min_size", [0, 0], "image.min_size"),
    ("models", [], "models"), ("models.onnx", "generator.onnx", "models.onnx"),
    ("models.tflite", {}, "models.tflite"), ("models.onnx.fp32", "generator.onnx", "models.onnx.fp32"),
    ("models.onnx.fp32.file", 5, "models.onnx.fp32.file"), ("models.onnx.fp32.sha256", 5, "models.onnx.fp32.sha256"),
    ("models.onnx.fp32.sha256", "abc", "models.onnx.fp32.sha256"), ("models.onnx.fp32.bytes", "10", "models.onnx.fp32.bytes"),
    ("models.onnx.fp32.bytes", -1, "models.onnx.fp32.bytes"),
    ("source", "generator.safetensors", "source"), ("source.file", 5, "source.file"),
    ("parity", [], "parity"), ("parity.ort-cpu/fp32", "pass", "parity.ort-cpu/fp32"),
    ("versions", "0.1", "versions"), ("triton", "triton/", "triton"),
]


@pytest.mark.parametrize("field,value,named", WRONG_TYPES, ids=[f"{f}={v!r}" for f, v, _ in WRONG_TYPES])
def test_a_wrong_type_in_any_field_names_the_field(tmp_path, field, value, named):
    message = refused(tmp_path, with_value(manifest_json(), field, value))
    assert named in message, message


def test_a_missing_required_field_is_named(tmp_path):
    for key in ("name", "variant", "config", "inputs", "outputs", "batch", "models"):
        manifest = manifest_json()
        del manifest[key]
        assert key in refused(tmp_path, manifest)


# -- schema 1, as the old exporter wrote it ---------------------------------------------------------------
def schema_1_json() -> dict[str, Any]:
    """A manifest in the layout export/manifest.py wrote before schema 2 (models and parity keyed by precision)."""
    spec = {"shape": [None, 3, None, None], "dtype": "float32", "range": [-1.0, 1.0], "kind": "image",
            "num_classes": None, "class_names": None}
    entry = {"bytes": 10, "sha256": SHA}
    return {
        "schema": "ganrt-artifact/1", "name": "old-cyclegan", "status": "ok", "created": "2026-11-25T21:00:00Z",
        "variant": "cyclegan", "config": {"ngf": 8}, "source": {"file": "generator.safetensors", "sha256": SHA},
        "inputs": [{"name": "image", **spec}], "outputs": [{"name": "image_out", **spec}],
        "batch": {"min": 1, "opt": 1, "max": 16},
        "models": {"fp32": {"file": "generator.onnx", "opset": 17, **entry},
                   "fp16": {"file": "generator.fp16.onnx", **entry},
                   "trt": {"file": "generator.h100.plan", "precision": "fp16", "gpu": "NVIDIA H100", **entry}},
        "parity": {"torch": {"backend": "torch", "pass": True}, "fp32": {"backend": "ort-cpu", "pass": True},
                   "fp16": {"backend": "ort-cpu", "pass": True}, "trt": {"backend": "trt", "pass": True}},
        "versions": {"ganrt": "0.1.0", "tensorrt": None},
        "image": {"layout": "NCHW", "channel_order": "RGB", "channels": 3, "value_range": [-1.0, 1.0],
                  "to_model": "(x / 255 - 0.5) / 0.5", "from_model": "clip((y * 0.5 + 0.5) * 255)",
                  "size_multiple": 4, "default_size": [32, 32], "dynamic_size": True,
                  "size_note": "height and width must be multiples of 4"},
        "triton": {"repository": "triton", "models": ["old-cyclegan_fp32", "old-cyclegan_fp16", "old-cyclegan_trt"]},
    }


def test_a_schema_1_manifest_loads_upgraded(tmp_path):
    m = Manifest.load(write(tmp_path, schema_1_json()))
    assert set(m.models) == {"onnx", "tensorrt"}
    assert set(m.models["onnx"]) == {"fp32", "fp16"} and m.models["tensorrt"]["fp16"]["gpu"] == "NVIDIA H100"
    assert set(m.parity) == {"torch/fp32", "ort-cpu/fp32", "ort-cpu/fp16", "trt/fp16"}
    assert m.image.size_multiple == 4 and m.image.min_size is None and m.outputs[0].name == "image_out"
    assert m.to_json()["schema"] == "ganrt-artifact/2"


@pytest.mark.parametrize("field,value,named", [
    ("models.trt.precision", ["fp16"], "models.trt.precision"),
    ("models.trt", "plan", "models.trt"),
    ("models.fp32.file", "../../other/generator.onnx", "models.onnx.fp32.file"),
    ("parity.fp32", 1, "parity.fp32"),
    ("parity.fp32.backend", 5, "parity.fp32.backend"),
])
def test_a_bad_schema_1_manifest_is_refused_naming_the_field(tmp_path, field, value, named):
    assert named in refused(tmp_path, with_value(schema_1_json(), field, value))


# -- model files that are not what the manifest says -----------------------------------------------------
@pytest.fixture
def damaged(cgan_artifact: Path, tmp_path: Path) -> Path:
    """A copy of a real exported artifact, to damage."""
    return Path(shutil.copytree(cgan_artifact, tmp_path / "art"))


def activate(folder: Path) -> None:
    with open_runner(folder, "ort-cpu"):
        pass


def test_the_real_artifact_loads(damaged):
    activate(damaged)


def test_a_truncated_onnx_model_is_named_as_truncated(damaged):
    model = damaged / "generator.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(ArtifactError, match=r"generator\.onnx is truncated"):
        activate(damaged)


def test_a_replaced_onnx_model_fails_its_checksum(damaged):
    model = damaged / "generator.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    model.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"generator\.onnx is not the exported file: its sha256 differs"):
        activate(damaged)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, b"hello"],
                         ids=["empty", "png", "text"])
def test_a_non_onnx_file_without_checksums_is_an_artifact_error_naming_it(damaged, content):
    manifest = json.loads((damaged / "manifest.json").read_text())
    for key in ("sha256", "bytes"):  # as if the manifest recorded neither: ONNX Runtime itself must be caught
        del manifest["models"]["onnx"]["fp32"][key]
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    (damaged / "generator.onnx").write_bytes(content)
    with pytest.raises(ArtifactError, match=r"generator\.onnx is not a usable ONNX model"):
        activate(damaged)


def test_a_damaged_model_is_one_line_from_the_command_line(damaged, tmp_path):
    (damaged / "generator.onnx").write_bytes(b"junk")
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "infer", "sample", str(damaged), "--backend", "ort-cpu", "--n", "1",
                        "--grid", str(tmp_path / "g.png")], capture_output=True, text=True, timeout=120,
                       cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "generator.onnx is truncated" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def with_ir(cgan_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny cgan exported again with OpenVINO IR beside its ONNX models (fp32 and int8)."""
    pytest.importorskip("openvino")
    from export.cli import main as export_main

    out = tmp_path_factory.mktemp("ir") / "art"
    assert export_main([str(cgan_artifact / "generator.safetensors"), "--int8", "--openvino", "--out", str(out),
                        "-q"]) == 0
    return out


@pytest.mark.parametrize("name", ["generator.xml", "generator.bin", "generator.int8.bin"])
def test_ov_cpu_checks_both_ir_files_against_the_manifest(with_ir: Path, tmp_path: Path, name: str) -> None:
    art = Path(shutil.copytree(with_ir, tmp_path / "art"))
    with open_runner(art, "ov-cpu", "int8" if "int8" in name else "fp32"):
        pass  # undamaged: loads
    data = bytearray((art / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (art / name).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=rf"{name.replace('.', '[.]')} is not the exported file"):
        with open_runner(art, "ov-cpu", "int8" if "int8" in name else "fp32"):
            pass


def test_ov_cpu_on_the_onnx_model_checks_it_too(damaged):
    pytest.importorskip("openvino")
    model = damaged / "generator.onnx"
    model.write_bytes(model.read_bytes()[:100])
    with pytest.raises(ArtifactError, match=r"generator\.onnx is truncated"):
        with open_runner(damaged, "ov-cpu", "fp32"):
            pass
