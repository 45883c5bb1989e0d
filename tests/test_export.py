"""Tests of `python -m export`: every registered variant to fp32/fp16/int8 ONNX with parity, the
artifact contract (manifest, Triton repository), dynamic batch and image sizes, and bad input.

Generators are tiny (tests/tiny_generators.py); one test goes through a real short training run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from export.cli import main
from export.feeds import has_dynamic_size
from export.fp16 import candidates, drop_repeated_nodes, to_fp16
from export.onnx_fp32 import export_fp32, onnx_output_specs
from ganrt import config
from ganrt.artifact import Artifact, name_from
from ganrt.compare import assert_within
from ganrt.errors import ArtifactError
from ganrt.locations import shipped_generator
from ganrt.targets import REFERENCE, target
from infer.runners import example_feeds, open_runner
from tests.tiny_generators import TINY, save_tiny_generator
from train import registry

REPO = Path(__file__).resolve().parents[1]
VARIANTS = [n for n in registry.names() if registry.get(n).trainable]
AUTO_CALIBRATED = ("cyclegan", "gan")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    """Every registered variant exported once with the default outputs (fp32 + fp16 + int8)."""
    root = tmp_path_factory.mktemp("export")
    artifacts = {}
    for name in VARIANTS:
        source = save_tiny_generator(name, root / "gens" / name / "generator.safetensors")
        out = root / "artifacts" / name
        # The calibration search (three methods) for an image and a labelled model; one method elsewhere.
        calibration = "auto" if name in AUTO_CALIBRATED else "minmax"
        code = main([str(source), "--out", str(out), "--batch", "1:2:8", "--calibration", calibration, "-q"])
        assert code == 0, f"export of {name} exited {code}"
        artifacts[name] = Artifact.load(out)
    return artifacts


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m export ARGS` in a subprocess (the real entry point: exit code, stderr)."""
    return subprocess.run([sys.executable, "-m", "export", *args], capture_output=True, text=True, cwd=cwd or REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=300)


# -- every variant: models, parity, dynamic shapes --------------------------------------------
@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_exports_all_precisions_within_tolerance(exported: dict[str, Artifact], name: str) -> None:
    art = exported[name]
    assert art.manifest.status == "ok"
    parity = art.manifest.parity
    for precision in ("fp32", "fp16", "int8"):
        t = target("ort-cpu", precision)
        assert art.has(t), precision
        report = parity[t.key]
        assert report["pass"] is True and report["backend"] == "ort-cpu", (precision, report)
        assert report["gate"] == t.tolerance.to_json()
        assert {c["batch"] for c in report["cases"]} == {1, 3}
    assert parity["ort-cpu/fp32"]["worst"]["max_abs"] <= 1e-4
    # The torch runner rebuilds the generator from the artifact's own files: identical outputs.
    assert parity[REFERENCE.key]["worst"]["max_abs"] == 0


@pytest.mark.parametrize("name", VARIANTS)
def test_dynamic_batch_one_and_five_through_one_model(exported: dict[str, Artifact], name: str) -> None:
    art = exported[name]
    size = art.manifest.image.default_size if art.manifest.image else None
    five = example_feeds(art.inputs, batch=5, size=size, seed=1)
    one = {k: v[:1] for k, v in five.items()}
    with open_runner(art, "ort-cpu", "fp32") as onnx_runner, open_runner(art, "torch") as torch_runner:
        out5, out1 = onnx_runner(five), onnx_runner(one)
        ref5 = torch_runner(five)
    name_out = art.outputs[0].name
    assert out5[name_out].shape[0] == 5 and out1[name_out].shape[0] == 1
    np.testing.assert_allclose(out5[name_out][:1], out1[name_out], atol=1e-5)
    assert_within(ref5[name_out], out5[name_out], target("ort-cpu", "fp32").tolerance)


@pytest.mark.parametrize("name", [n for n in VARIANTS if n in TINY])
def test_translators_run_at_two_image_sizes(exported: dict[str, Artifact], name: str) -> None:
    art = exported[name]
    image = art.manifest.image
    assert has_dynamic_size(art.inputs) and image.dynamic_size is True
    sizes = {tuple(c["size"]) for c in art.manifest.parity["ort-cpu/fp32"]["cases"]}
    m = image.size_multiple
    assert len(sizes) == 2 and all(h % m == 0 and w % m == 0 for h, w in sizes)
    h, w = image.default_size
    feeds = example_feeds(art.inputs, batch=2, size=(h + m, w + 2 * m), seed=2)  # a third, non-square size
    with open_runner(art, "ort-cpu", "fp32") as onnx_runner, open_runner(art, "torch") as torch_runner:
        out, ref = onnx_runner(feeds), torch_runner(feeds)
    key = art.outputs[0].name
    assert out[key].shape[2:] == (h + m, w + 2 * m)
    assert_within(ref[key], out[key], target("ort-cpu", "fp32").tolerance)


# -- the artifact contract ------------------------------------------------------------------------
def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", AUTO_CALIBRATED)
def test_manifest_follows_the_artifact_contract(exported: dict[str, Artifact], name: str) -> None:
    art = exported[name]
    m = json.loads((art.root / "manifest.json").read_text())
    assert m["schema"] == "ganrt-artifact/2" and m["variant"] == name and m["created"].endswith("Z")
    card = (art.root / "README.md").read_text()  # the model card, from the same manifest
    assert m["source"]["sha256"] in card and "| ort-cpu/int8 |" in card and m["name"] in card
    spec = registry.get(name)
    assert m["inputs"] == [s.to_json() for s in spec.inputs(config.from_dict(spec.config, m["config"]))]
    assert m["source"]["file"] == "generator.safetensors" and len(m["source"]["sha256"]) == 64
    assert m["source"]["sha256"] == sha256(Path(m["source"]["from"]))
    assert m["batch"] == {"min": 1, "opt": 2, "max": 8}
    for precision, entry in m["models"]["onnx"].items():
        assert entry["sha256"] == sha256(art.root / entry["file"]), precision
        assert entry["bytes"] == (art.root / entry["file"]).stat().st_size
    int8 = m["models"]["onnx"]["int8"]
    assert int8["calibration"] in ("minmax", "entropy", "percentile")
    assert set(int8["calibration_search"]) == {"minmax", "entropy", "percentile"}
    assert int8["calibration"] == max(int8["calibration_search"], key=lambda k: int8["calibration_search"][k]["psnr"])
    # ORT's default entropy histogram (128 bins -> 128) degenerates to MinMax's ranges; ours must not.
    assert int8["calibration_search"]["entropy"]["psnr"] != int8["calibration_search"]["minmax"]["psnr"]
    assert set(m["versions"]) >= {"torch", "onnx", "onnxruntime", "tensorrt"}
    assert set(m["parity"]) == {"torch/fp32", "ort-cpu/fp32", "ort-cpu/fp16", "ort-cpu/int8"}
    # No temporary candidates left behind: the directory matches the manifest.
    onnx_files = {p.name for p in art.root.glob("*.onnx")}
    assert onnx_files == {"generator.onnx", "generator.fp16.onnx", "generator.int8.onnx"}


def test_image_section_describes_pre_and_post_processing(exported: dict[str, Artifact]) -> None:
    image = json.loads((exported["cyclegan"].root / "manifest.json").read_text())["image"]
    assert image["to_model"] == "(x / 255 - 0.5) / 0.5" and image["from_model"] == "clip((y * 0.5 + 0.5) * 255)"
    assert image["size_multiple"] == 4 and image["default_size"] == [32, 32] and image["channel_order"] == "RGB"
    assert exported["gan"].manifest.image is None  # toy points: no image anywhere
    assert exported["dcgan"].manifest.image.dynamic_size is False


def _triton_config(path: Path) -> Any:
    """config.pbtxt parsed with Triton's own model_config.proto (tritonclient's copy): unknown fields fail."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _assert_tensors_match(cfg: Any, art: Artifact, name: str) -> None:
    assert cfg.max_batch_size == art.manifest.batch.max and cfg.dynamic_batching.max_queue_delay_microseconds > 0
    assert [i.name for i in cfg.input] == [s.name for s in art.inputs]
    assert [o.name for o in cfg.output] == [s.name for s in art.outputs]
    for tensor, spec in zip(list(cfg.input) + list(cfg.output), art.inputs + art.outputs):
        expected = [-1 if d is None else d for d in spec.shape[1:]] or [1]  # batch dim is Triton's
        assert list(tensor.dims) == expected, spec.name
    types = {i.name: i.data_type for i in cfg.input}
    if name == "cgan":
        assert types["label"] == 9 and types["z"] == 11  # TYPE_INT64, TYPE_FP32
        label = next(i for i in cfg.input if i.name == "label")
        assert label.HasField("reshape") and list(label.reshape.shape) == []


@pytest.mark.parametrize("name", ["cyclegan", "cgan"])
def test_triton_configs_parse_and_name_the_right_tensors(exported: dict[str, Artifact], name: str) -> None:
    art = exported[name]
    repo = art.root / "triton"
    expected_models = [f"{art.name}_{p}" for p in ("fp32", "fp16", "int8", "python")]
    assert sorted(p.name for p in repo.iterdir()) == sorted(expected_models)
    assert art.manifest.triton == {"repository": "triton", "models": expected_models}
    for precision in ("fp32", "fp16", "int8"):
        model_dir = repo / f"{art.name}_{precision}"
        cfg = _triton_config(model_dir / "config.pbtxt")
        assert cfg.name == model_dir.name and cfg.platform == "onnxruntime_onnx"
        _assert_tensors_match(cfg, art, name)
        assert (model_dir / "1" / "model.onnx").read_bytes() == art.model_path(target("ort-cpu", precision)).read_bytes()


@pytest.mark.parametrize("name", ["cyclegan", "cgan"])
def test_triton_python_model_runs_the_fp32_onnx_file_without_a_copy(exported: dict[str, Artifact], name: str) -> None:
    from export.triton import PYTHON_MODEL_SOURCE

    art = exported[name]
    model_dir = art.root / "triton" / f"{art.name}_python"
    cfg = _triton_config(model_dir / "config.pbtxt")
    assert cfg.name == model_dir.name and cfg.backend == "python" and not cfg.platform
    _assert_tensors_match(cfg, art, name)
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(2, 1)]  # KIND_CPU, one instance
    onnx = (model_dir / cfg.parameters["onnx_model"].string_value).resolve()
    assert onnx == (art.root / "triton" / f"{art.name}_fp32" / "1" / "model.onnx").resolve()
    assert sorted(p.name for p in (model_dir / "1").iterdir()) == ["model.py"]  # no second ONNX file
    assert (model_dir / "1" / "model.py").read_bytes() == PYTHON_MODEL_SOURCE.read_bytes()


def test_output_names_never_shadow_input_names() -> None:
    spec = registry.get("cyclegan")
    cfg = config.resolve(spec.config, None, TINY["cyclegan"])
    inputs = spec.inputs(cfg)
    outputs = onnx_output_specs(inputs, [spec.output(cfg)])
    assert outputs[0].name == "image_out" and inputs[0].name == "image"


# -- hazards ------------------------------------------------------------------------------------
def test_generator_left_in_train_mode_is_exported_in_eval_mode(tmp_path: Path) -> None:
    # pix2pix has dropout and batch norm: a train-mode export would not match the eval reference.
    spec = registry.get("pix2pix")
    cfg = config.resolve(spec.config, None, TINY["pix2pix"])
    torch.manual_seed(0)
    generator = spec.generator(cfg).train()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    export_fp32(generator, spec.inputs(cfg), onnx_output_specs(spec.inputs(cfg), [spec.output(cfg)]), {"image": x},
                tmp_path / "g.onnx")
    import onnxruntime as ort

    onnx_out = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    with torch.no_grad():
        eval_out = generator.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(onnx_out, eval_out, atol=1e-4)


def test_fp16_keeps_instance_norm_in_fp32_only_as_a_candidate(exported: dict[str, Artifact]) -> None:
    cyclegan = onnx.load(str(exported["cyclegan"].model_path(target("ort-cpu", "fp32"))))
    assert candidates(cyclegan) == {"all-fp16": (), "norm-fp32": ("InstanceNormalization",)}
    assert candidates(onnx.load(str(exported["dcgan"].model_path(target("ort-cpu", "fp32"))))) == {"all-fp16": ()}
    kept = to_fp16(cyclegan, ("InstanceNormalization",))
    inits = {i.name: i.data_type for i in kept.graph.initializer}
    norm_inputs = [n.input[1] for n in kept.graph.node if n.op_type == "InstanceNormalization"]
    assert norm_inputs and all(inits.get(n, onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT for n in norm_inputs)
    assert any(n.op_type == "Cast" for n in kept.graph.node)
    # The manifest records both candidates' PSNR and which one was kept.
    fp16 = exported["cyclegan"].manifest.model("onnx", "fp16")
    assert set(fp16["candidates_psnr"]) == {"all-fp16", "norm-fp32"} and fp16["variant"] in fp16["candidates_psnr"]


def test_calibration_rows_follow_a_pixel_budget() -> None:
    from export.context import real_rows_for

    assert real_rows_for(None) == real_rows_for((32, 32)) == real_rows_for((64, 64)) == 320
    assert real_rows_for((128, 128)) == 160 and real_rows_for((256, 256)) == 40
    assert real_rows_for((2048, 2048)) == 16


def _two_norms_sharing_parameters() -> onnx.ModelProto:
    from onnx import TensorProto, helper, numpy_helper

    scale = numpy_helper.from_array(np.ones(3, np.float32), "scale")
    bias = numpy_helper.from_array(np.zeros(3, np.float32), "bias")  # zero biases: onnxslim shares them
    nodes = [helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["h"], name="norm1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("InstanceNormalization", ["r", "scale", "bias"], ["y"], name="norm2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])], [scale, bias])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_fp16_with_norms_sharing_an_initializer_loads_in_onnx_runtime() -> None:
    # onnxruntime 1.30's converter wrote "bias_cast_to_fp32" once per consumer: ORT refused the model.
    import onnxruntime as ort

    model = to_fp16(_two_norms_sharing_parameters(), ("InstanceNormalization",))
    outputs = [o for n in model.graph.node for o in n.output]
    assert len(outputs) == len(set(outputs))
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert y.shape == x.shape and np.isfinite(y).all()


def test_drop_repeated_nodes_keeps_one_of_identical_nodes_and_rejects_conflicts() -> None:
    from onnx import helper

    model = _two_norms_sharing_parameters()
    cast = helper.make_node("Cast", ["bias"], ["bias32"], name="bias_cast", to=onnx.TensorProto.FLOAT)
    model.graph.node.insert(0, cast)
    model.graph.node.insert(1, cast)
    assert [n.name for n in drop_repeated_nodes(model).graph.node].count("bias_cast") == 1
    other = helper.make_node("Identity", ["scale"], ["bias32"], name="other")
    model.graph.node.insert(1, other)
    with pytest.raises(ValueError, match="bias32"):
        drop_repeated_nodes(model)


def test_export_leaves_the_working_directory_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ORT's symbolic shape inference gives up on the U-Net and writes sym_shape_infer_temp.onnx
    # (+ external data) into the working directory; export must not let it.
    source = save_tiny_generator("pix2pix", tmp_path / "g.safetensors")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert main([str(source), "--int8", "--calibration", "minmax", "--out", str(tmp_path / "out"), "-q"]) == 0
    assert list(cwd.iterdir()) == []
    assert Artifact.load(tmp_path / "out").manifest.model("onnx", "int8")["preprocessed"] is True


# -- a real run, default source --------------------------------------------------------------------
def test_exports_the_latest_run_by_default_and_an_unfinished_run(tmp_path: Path) -> None:
    from train.trainer import run_training

    spec = registry.get("dcgan")
    cfg = config.resolve(spec.config, "quick", {"steps": 2, "batch_size": 8, "eval_samples": 64,
                                                "sample_every": 1000, "checkpoint_every": 1})
    run_dir = run_training(spec, cfg, runs_root=tmp_path / "runs", evaluate=False)
    args = ["--onnx", "--runs", str(tmp_path / "runs"), "--artifacts", str(tmp_path / "artifacts"), "-q"]
    assert main(args) == 0
    art = Artifact.load(tmp_path / "artifacts" / f"dcgan-{run_dir.name}")
    assert art.manifest.source["from"] == str(run_dir / "generator.safetensors")
    assert art.manifest.source["step"] == 2 and art.manifest.parity["ort-cpu/fp32"]["pass"]
    # Without generator.safetensors (an interrupted run) the latest checkpoint is exported.
    (run_dir / "generator.safetensors").unlink()
    assert main([str(run_dir), "--onnx", "--out", str(tmp_path / "from-ckpt"), "-q"]) == 0
    source = Artifact.load(tmp_path / "from-ckpt").manifest.source
    assert source["from"].endswith("step_0000002.safetensors") and source["step"] == 2


# -- bad input: exit 2 with one clear line ---------------------------------------------------------
def test_corrupt_checkpoint_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "generator.safetensors"
    bad.write_bytes(b"\x00\x01 definitely not safetensors")
    result = run_cli(str(bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "cannot read checkpoint" in lines[0]
    assert "Traceback" not in result.stderr


def test_impossible_size_exits_2_via_the_real_cli(tmp_path: Path) -> None:
    source = save_tiny_generator("cyclegan", tmp_path / "g.safetensors")
    result = run_cli(str(source), "--size", "30,32", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "multiples of 4" in result.stderr and "Traceback" not in result.stderr


def test_checkpoint_that_does_not_match_its_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from safetensors.torch import load_file, save_file

    source = save_tiny_generator("cyclegan", tmp_path / "g.safetensors")
    tensors = load_file(str(source))
    meta = {"format": "ganrt-generator/1", "variant": "cyclegan", "step": "0",
            "config": json.dumps({**TINY["cyclegan"], "ngf": 16})}  # the weights are ngf 8
    save_file(tensors, str(source), metadata=meta)
    assert main([str(source), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match the model" in err[0]


@pytest.mark.parametrize("args, message", [
    (["--size", "4,4"], "too small"),
    (["--size=-8,8"], "positive multiples"),
    (["--batch", "4:2:1"], "MIN <= OPT <= MAX"),
    (["--batch", "1:x:2"], "MIN:OPT:MAX"),
    (["--opset", "11"], "needs opset 13"),
    (["--opset", "99"], "Unsupported onnx_opset_version: 99"),
])
def test_bad_sizes_and_batches_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str) -> None:
    source = save_tiny_generator("cyclegan", tmp_path / "g.safetensors")
    assert main([str(source), "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err


def test_size_for_a_fixed_size_model_and_unknown_sources_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = save_tiny_generator("dcgan", tmp_path / "g.safetensors")
    assert main([str(source), "--size", "32,32", "--out", str(tmp_path / "out")]) == 2
    assert "--size applies to image inputs" in capsys.readouterr().err
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "unknown source" in capsys.readouterr().err


def test_no_argument_exports_the_shipped_generator_from_an_empty_folder(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    shipped = "".join(str(shipped_generator()).split())
    # --help and --list say where the shipped generator is (package data, not the working directory).
    assert main(["--help"]) == 0
    assert shipped in "".join(capsys.readouterr().out.split())
    assert main(["--list"]) == 0
    assert f"shipped generator: {shipped} (the default source: no finished run)" in capsys.readouterr().out
    result = run_cli("--onnx", "-q", cwd=empty)
    assert result.returncode == 0, result.stderr
    art = Artifact.load(empty / "artifacts" / "cyclegan-photo2sketch")
    assert art.variant == "cyclegan" and art.manifest.source["sha256"] == sha256(shipped_generator())
    assert sorted(p.name for p in empty.iterdir()) == ["artifacts"]


def test_names_from_folders_are_made_valid_and_a_bad_name_exits_2(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    # Folder names become artifact (and Triton model) names: ones the manifest's name rule refuses are made valid.
    source = save_tiny_generator("gan", tmp_path / "my gens" / "generator.safetensors")
    assert main([str(source), "--onnx", "--artifacts", str(tmp_path / "arts"), "-q"]) == 0
    assert Artifact.load(tmp_path / "arts" / "my-gens").name == "my-gens"
    out = tmp_path / "out dir (2)"
    assert main([str(source), "--onnx", "--out", str(out), "-q"]) == 0
    assert Artifact.load(out).name == "out-dir-2" and (out / "triton" / "out-dir-2_fp32" / "config.pbtxt").is_file()
    capsys.readouterr()
    assert main([str(source), "--onnx", "--name", "my model", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--name: 'my model' is not a valid artifact name" in err[0]
    assert not (tmp_path / "bad").exists()
    assert name_from("..runs/x y") == "runs-x-y" and name_from("模型") == ""  # "": the variant's name is used


def test_export_options_are_the_flags(tmp_path: Path) -> None:
    from export.cli import build_parser
    from export.options import ExportOptions

    parser = build_parser()
    assert config.from_args(ExportOptions, parser.parse_args([])) == ExportOptions()
    args = ["src", "--fp16", "--batch", "1:2:4", "--size", "64", "--calibration", "entropy", "--runs", "r"]
    assert config.from_args(ExportOptions, parser.parse_args(args)) == ExportOptions(
        source="src", fp16=True, batch=(1, 2, 4), size=(64, 64), calibration="entropy", runs_root=Path("r"))
    # Every field is a flag with its own help text, and its default is shown.
    help_text = "".join(parser.format_help().split())
    for f in dataclasses.fields(ExportOptions):
        assert "".join(f.metadata["help"].split()) in help_text, f.name
    assert "(default:1:1:16)" in help_text and "{auto,minmax,entropy,percentile}" in help_text


def test_list_shows_variants_runs_and_artifacts(exported: dict[str, Artifact], capsys: pytest.CaptureFixture) -> None:
    artifacts_root = exported["gan"].root.parent
    assert main(["--list", "--artifacts", str(artifacts_root), "--runs", str(artifacts_root / "none")]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in VARIANTS) and "no finished runs" in out


# -- TensorRT ---------------------------------------------------------------------------------------
def test_trt_without_tensorrt_exits_2_and_still_writes_the_onnx_parts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from export.tensorrt_build import missing_requirements

    if not missing_requirements():
        pytest.skip("TensorRT and a GPU are present: the engine build is tested by test_trt_engine_build")
    source = save_tiny_generator("cyclegan", tmp_path / "g.safetensors")
    out = tmp_path / "out"
    assert main([str(source), "--trt", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "tensorrt" in captured.err and "wrote the ONNX parts" in captured.err
    art = Artifact.load(out)
    assert art.has(target("ort-cpu", "fp32")) and "tensorrt" not in art.manifest.models
    assert art.manifest.status == "ok"
    assert (out / "triton" / f"{art.name}_fp32" / "config.pbtxt").is_file()


@pytest.mark.gpu
@pytest.mark.trt
def test_trt_engine_build(tmp_path: Path) -> None:
    from export.tensorrt_build import missing_requirements

    if missing_requirements():
        pytest.skip("needs " + " and ".join(missing_requirements()))
    source = save_tiny_generator("cyclegan", tmp_path / "g.safetensors")
    out = tmp_path / "out"
    assert main([str(source), "--trt", "--out", str(out), "--batch", "1:2:4"]) == 0
    art = Artifact.load(out)
    entry = art.manifest.model("tensorrt", "fp16")
    assert entry["precision"] == "fp16" and entry["tensorrt"] and entry["gpu"] and art.manifest.parity["trt/fp16"]["pass"]
    assert entry["profiles"]["image"]["max"] == [4, 3, 32, 32] and (out / "timing.cache").stat().st_size > 0
    assert (out / "triton" / f"{art.name}_trt" / "1" / "model.plan").is_file()


# -- OpenVINO IR --------------------------------------------------------------------------------------
def test_openvino_ir_is_written_gated_on_ov_cpu_and_run_by_it(tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="the IR stage needs OpenVINO: pip install openvino")
    from infer.runners import _openvino_model

    source = save_tiny_generator("cyclegan", tmp_path / "g.safetensors")
    out = tmp_path / "out"
    assert main([str(source), "--openvino", "--calibration", "minmax", "--out", str(out), "-q"]) == 0
    art = Artifact.load(out)
    for precision, stem in (("fp32", "generator"), ("int8", "generator.int8")):
        entry = art.manifest.model("openvino", precision)
        assert entry["file"] == f"{stem}.xml" and entry["weights"] == f"{stem}.bin"
        assert (out / entry["weights"]).stat().st_size == entry["weights_bytes"]
        report = art.manifest.parity[f"ov-cpu/{precision}"]
        assert report["pass"] and report["gate"] == target("ov-cpu", precision).tolerance.to_json()
        # ov-cpu runs the IR when there is one, and agrees with the ONNX model on ONNX Runtime.
        assert _openvino_model(art, target("ov-cpu", precision)).name == entry["file"]
    assert "openvino" not in json.dumps(art.manifest.triton)  # Triton gets the ONNX models and engines only
    int8 = art.manifest.model("openvino", "int8")
    try:
        import nncf  # noqa: F401
    except ImportError:
        assert int8["quantizer"] == "onnxruntime QDQ" and int8["from"] == "generator.int8.onnx"
    else:  # both quantizers measured on the validation rows, and the kept one says where it came from
        search = int8["quantizer_search"]
        assert set(search) == {"onnxruntime QDQ", "nncf"} and int8["calibration_rows"] > 0
        kept_nncf = search["nncf"]["pass"] and search["nncf"]["psnr"] >= search["onnxruntime QDQ"]["psnr"] - 1.0
        assert (int8["quantizer"], int8["from"]) == (("nncf", "generator.onnx") if kept_nncf
                                                     else ("onnxruntime QDQ", "generator.int8.onnx"))
    assert not list(out.glob("*nncf*"))
    feeds = example_feeds(art.inputs, batch=2, size=(32, 32), seed=3)
    with open_runner(art, "ort-cpu") as onnx_runner, open_runner(art, "ov-cpu") as ir_runner:
        assert_within(onnx_runner(feeds)["image_out"], ir_runner(feeds)["image_out"], target("ov-cpu", "fp32").tolerance)
    # Without the IR, ov-cpu reads the ONNX file itself; an IR whose weights point outside the folder is refused.
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["models"]["openvino"]["fp32"]["weights"] = "../elsewhere.bin"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="models.openvino.fp32.weights"):
        Artifact.load(out)
    (out / "generator.xml").unlink()
    del manifest["models"]["openvino"]["fp32"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert _openvino_model(Artifact.load(out), target("ov-cpu", "fp32")).name == "generator.onnx"


def test_openvino_without_openvino_exits_2_before_writing(tmp_path: Path) -> None:
    source = save_tiny_generator("cyclegan", tmp_path / "g.safetensors")
    code = ("import sys; sys.modules['openvino'] = None; from export.cli import main; "
            f"sys.exit(main([{str(source)!r}, '--openvino', '--out', {str(tmp_path / 'out')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and "pip install openvino" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
