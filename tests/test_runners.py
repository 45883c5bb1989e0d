"""The runner contract, shared by every backend (Polygraphy's lesson: one contract test, or runners drift).

Each available runner gets the same feeds as the torch runner and must agree within the
tolerance table; each rejects bad feeds the same way (the base validates, once); each has
the same lifecycle. Backends missing here skip with the reason; GPU/TensorRT ones are marked.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from export.options import ExportOptions
from export.pipeline import run_export
from ganrt.artifact import Artifact
from ganrt.compare import PSNR_IDENTICAL, Tolerance, assert_close, assert_within, compare
from ganrt.errors import ArtifactError, BackendUnavailable, FeedError, UsageError
from ganrt.targets import BACKENDS, TARGETS, target
from infer.runners import available_backends, open_runner
from infer.runners.base import RunnerNotActive, example_feeds
from infer.runners.devices import cuda_device_count
from infer.runners.onnxrt import OrtRunner, session_loader
from tests.tiny_generators import save_tiny_generator

REPO = Path(__file__).resolve().parents[1]

RUNNERS = [
    pytest.param("torch", "fp32", {}, id="torch-fp32"),
    pytest.param("torch", "bf16", {}, id="torch-bf16"),
    pytest.param("ort-cpu", "fp32", {}, id="ort-cpu-fp32"),
    pytest.param("ort-cpu", "fp16", {}, id="ort-cpu-fp16"),
    pytest.param("ort-cpu", "int8", {}, id="ort-cpu-int8"),
    pytest.param("ov-cpu", "fp32", {}, id="ov-cpu-fp32"),
    pytest.param("ov-cpu", "bf16", {}, id="ov-cpu-bf16"),
    pytest.param("ov-cpu", "int8", {}, id="ov-cpu-int8"),
    pytest.param("ov-cpu", "fp32", {"hint": "throughput"}, id="ov-cpu-fp32-throughput"),
    pytest.param("torch", "fp32", {"device": "cuda"}, id="torch-cuda", marks=pytest.mark.gpu),
    pytest.param("ort-cuda", "fp32", {}, id="ort-cuda-fp32", marks=pytest.mark.gpu),
    pytest.param("ort-cuda", "fp16", {"keep_on_device": True}, id="ort-cuda-fp16-iobinding", marks=pytest.mark.gpu),
    pytest.param("ort-trt", "fp16", {}, id="ort-trt-fp16", marks=[pytest.mark.gpu, pytest.mark.trt]),
    pytest.param("trt", None, {}, id="trt", marks=[pytest.mark.gpu, pytest.mark.trt]),
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    """A translator (image in) and a conditional noise model (z + label in), fp32/fp16/int8."""
    root = tmp_path_factory.mktemp("runners")
    found = {}
    for name in ("cyclegan", "cgan"):
        source = save_tiny_generator(name, root / name / "generator.safetensors")
        result = run_export(ExportOptions(source=str(source), out=root / "artifacts" / name, calibration="minmax"))
        assert result.exit_code == 0, result.manifest.parity
        found[name] = Artifact.load(root / "artifacts" / name)
    return found


def require(art: Artifact, backend: str, precision: str | None, options: dict[str, Any]) -> None:
    """Skip, with the reason, when this machine or artifact cannot run the case."""
    have = available_backends()
    if backend not in have:
        hint = " (pip install openvino)" if backend == "ov-cpu" else ""
        pytest.skip(f"{backend} is not available here{hint} (available: {', '.join(have)})")
    if options.get("device") == "cuda" and cuda_device_count() == 0:
        pytest.skip("no CUDA GPU")
    if precision == "bf16" and backend == "ov-cpu":
        from infer.runners.openvino_runner import bf16_supported as ov_bf16_supported

        if not ov_bf16_supported():
            pytest.skip("OpenVINO reports no bf16 on this CPU (needs AVX512-BF16 or AMX)")
    elif precision == "bf16":
        from infer.runners.torch_runner import bf16_supported

        if not bf16_supported(options.get("device", "cpu")):
            pytest.skip("bf16 autocast does not run on this machine")
    if backend == "trt" and not art.manifest.models.get("tensorrt"):
        pytest.skip("the artifact has no TensorRT engine (export with --trt on a GPU machine)")


def default_size(art: Artifact) -> tuple[int, int] | None:
    image = art.manifest.image
    return image.default_size if image and any(s.kind == "image" for s in art.inputs) else None


# -- the shared contract ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cyclegan", "cgan"])
@pytest.mark.parametrize("backend, precision, options", RUNNERS)
def test_runner_agrees_with_torch_within_tolerance(artifacts: dict[str, Artifact], name: str, backend: str,
                                                   precision: str | None, options: dict[str, Any]) -> None:
    art = artifacts[name]
    require(art, backend, precision, options)
    feeds = example_feeds(art.inputs, batch=3, size=default_size(art), seed=5)
    with open_runner(art, "torch") as reference:
        expected = reference(feeds)
    with open_runner(art, backend, precision, **options) as runner:
        assert runner.backend == backend and runner.is_active
        assert runner.input_spec() == art.inputs and runner.output_spec() == art.outputs
        runner.warmup(1)
        got = runner(feeds)
    gate = target(backend, runner.precision).tolerance
    for spec in art.outputs:
        assert got[spec.name].dtype == np.float32 and got[spec.name].shape == expected[spec.name].shape
        assert_within(expected[spec.name], got[spec.name], gate, name=f"{backend}/{runner.precision} {spec.name}")


@pytest.mark.slow
def test_torch_compile_runner_agrees_with_eager(artifacts: dict[str, Artifact]) -> None:
    # torch.compile costs 10-15 s cold (design.md section 8): one model, one case.
    art = artifacts["cgan"]
    feeds = example_feeds(art.inputs, batch=2, seed=6)
    with open_runner(art, "torch") as eager, open_runner(art, "torch", compile=True) as compiled:
        expected, got = eager(feeds), compiled(feeds)
    key = art.outputs[0].name
    assert_within(expected[key], got[key], target("torch", "fp32").tolerance)


def bad_image_feeds(art: Artifact) -> list[tuple[Any, str]]:
    good = example_feeds(art.inputs, batch=2, size=default_size(art))
    x = good["image"]
    return [
        ({}, "missing image"),
        ({**good, "extra": x}, "unexpected extra"),
        ({"image": x.astype(np.float64)}, "dtype float64, expected float32"),
        ({"image": x[0]}, "has 3 dims, expected 4"),
        ({"image": np.concatenate([x, x[:, :1]], axis=1)}, "dim 1 is 4, expected 3"),
        ({"image": x[:, :, :30, :30].copy()}, "30x30 is not a size this model accepts.*multiples of 4"),
        ({"image": x[:0]}, "empty batch"),
        ({"image": x.tolist()}, "expected a numpy array"),
        ([x], "feeds must be a dict"),
    ]


def bad_label_feeds(art: Artifact) -> list[tuple[Any, str]]:
    good = example_feeds(art.inputs, batch=2)
    return [
        ({**good, "label": np.array([0, 10])}, r"labels must be in \[0, 9\]"),
        ({**good, "label": np.array([0])}, "disagree on the batch size"),
        ({**good, "label": good["label"].astype(np.int32)}, "dtype int32, expected int64"),
    ]


@pytest.mark.parametrize("backend, precision, options", RUNNERS)
def test_runner_rejects_bad_feeds_with_a_clear_error(artifacts: dict[str, Artifact], backend: str,
                                                      precision: str | None, options: dict[str, Any]) -> None:
    for name, bad_feeds in (("cyclegan", bad_image_feeds), ("cgan", bad_label_feeds)):
        art = artifacts[name]
        require(art, backend, precision, options)
        with open_runner(art, backend, precision, **options) as runner:
            for feeds, message in bad_feeds(art):
                with pytest.raises(FeedError, match=message):
                    runner(feeds)
            assert isinstance(FeedError("x"), ValueError)


@pytest.mark.parametrize("backend, precision, options", RUNNERS)
def test_runner_lifecycle(artifacts: dict[str, Artifact], backend: str, precision: str | None,
                          options: dict[str, Any]) -> None:
    art = artifacts["cgan"]
    require(art, backend, precision, options)
    feeds = example_feeds(art.inputs, batch=1)
    runner = open_runner(art, backend, precision, **options)
    assert not runner.is_active
    with pytest.raises(RunnerNotActive, match="activate"):
        runner(feeds)
    with runner:
        assert runner.is_active
        runner(feeds)
    assert not runner.is_active
    with pytest.raises(RunnerNotActive):
        runner(feeds)
    runner.close()  # twice is fine
    assert runner.activate() is runner and runner.activate() is runner
    runner.close()


def test_loader_runs_only_on_activation_and_once(artifacts: dict[str, Artifact]) -> None:
    art = artifacts["cgan"]
    calls = []
    load = session_loader(art.model_path(target("ort-cpu", "fp32")), "ort-cpu")

    def counting_load() -> Any:
        calls.append(1)
        return load()

    runner = OrtRunner(counting_load, art.inputs, art.outputs, backend="ort-cpu")
    assert calls == []
    runner.activate()
    runner.activate()
    assert calls == [1]
    runner.close()


# -- auto, availability, missing backends --------------------------------------------------------------
def test_available_backends_on_this_machine() -> None:
    have = available_backends()
    assert set(have) <= set(BACKENDS) and "ort-cpu" in have and "torch" in have
    if cuda_device_count() == 0:
        assert not {"ort-cuda", "ort-trt", "trt"} & set(have)


def test_missing_backends_say_what_to_install(artifacts: dict[str, Artifact], tmp_path: Path) -> None:
    art = artifacts["cyclegan"]
    if "ort-cuda" not in available_backends():
        with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
            open_runner(art, "ort-cuda").activate()
    if cuda_device_count() == 0:
        with pytest.raises(BackendUnavailable, match="CUDA"):
            open_runner(art, "torch", device="cuda").activate()
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        from infer.runners.tensorrt_runner import engine_loader

        plan = tmp_path / "generator.fake.plan"
        plan.write_bytes(b"not an engine")
        with pytest.raises(BackendUnavailable, match="pip install tensorrt"):
            engine_loader(plan, {}, str(art.root))()
    with pytest.raises(ArtifactError, match="--trt"):
        open_runner(art, "trt")
    with pytest.raises(UsageError, match="unknown backend 'nope'; choose one of: auto, torch, ort-cpu"):
        open_runner(art, "nope")
    with pytest.raises(UsageError, match="the torch backend runs fp32, bf16, not 'int8'"):
        open_runner(art, "torch", "int8")
    with pytest.raises(UsageError, match="the ov-cpu backend runs fp32, bf16, int8, not 'fp16'"):
        open_runner(art, "ov-cpu", "fp16")


def test_ov_cpu_without_openvino_says_what_to_install(artifacts: dict[str, Artifact]) -> None:
    code = f"""import sys
sys.modules["openvino"] = None  # as if not installed: import fails, find_spec is None
from ganrt.errors import BackendUnavailable
from infer.runners import available_backends, open_runner
assert "ov-cpu" not in available_backends()
try:
    open_runner({str(artifacts["cyclegan"].root)!r}, "ov-cpu").activate()
except BackendUnavailable as e:
    print(e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install openvino" in out.stdout


def test_threads_reach_every_cpu_backend(artifacts: dict[str, Artifact]) -> None:
    art = artifacts["cyclegan"]
    have = available_backends()
    with open_runner(art, "ort-cpu", threads=1) as runner:
        assert runner._session.get_session_options().intra_op_num_threads == 1
    if "ov-cpu" in have:
        with open_runner(art, "ov-cpu", threads=1) as runner:
            assert int(runner._compiled.get_property("INFERENCE_NUM_THREADS")) == 1
    import torch

    before = torch.get_num_threads()
    try:
        with open_runner(art, "torch", threads=1):
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_importing_runners_imports_no_backend_library() -> None:
    code = ("import sys, infer.runners; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'tensorrt') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


# -- the comparator and the tolerance table ------------------------------------------------------------------
def test_compare_reports_max_mean_psnr_and_where() -> None:
    ref = np.zeros((2, 3), np.float32)
    cand = ref.copy()
    cand[1, 2] = 0.5
    c = compare(ref, cand)
    assert c.max_abs == 0.5 and c.mean_abs == pytest.approx(0.5 / 6) and c.worst_index == (1, 2)
    assert c.mismatches == 1 and c.psnr == pytest.approx(10 * np.log10(4 / (0.25 / 6)))
    assert compare(ref, ref).psnr == PSNR_IDENTICAL
    with pytest.raises(AssertionError, match=r"1/6 elements differ.*max diff 0.5 at \(1, 2\)"):
        assert_close(ref, cand, atol=1e-3)
    with pytest.raises(AssertionError, match="PSNR"):
        assert_close(ref, cand, atol=1.0, psnr_min=40)
    nan = cand.copy()
    nan[0, 0] = np.nan
    assert not Tolerance(max_abs=1.0).passes(compare(ref, nan)) and not Tolerance(psnr_min=1).passes(compare(ref, nan))
    with pytest.raises(ValueError, match="shape mismatch"):
        compare(ref, cand[:1])


def test_target_table_covers_every_backend() -> None:
    for backend in BACKENDS:
        assert [t.precision for t in TARGETS if t.backend == backend]
    for t in TARGETS:
        assert t.tolerance.max_abs is not None or t.tolerance.psnr_min is not None
        assert target(t.backend, t.precision) is t and t.label == t.key.replace("/", "-")
    assert target("ort-cpu", "fp32").tolerance.max_abs == 1e-4
    assert target("ort-trt", "fp16").model == ("onnx", "fp32")  # TensorRT's EP builds fp16 from the fp32 model
    with pytest.raises(UsageError, match="the ort-cpu backend runs fp32, fp16, int8, not 'bf16'"):
        target("ort-cpu", "bf16")
    # OpenVINO runs the same ONNX files: bf16 is a hint on the fp32 model, int8 the QDQ model.
    assert [target("ov-cpu", p).model for p in ("fp32", "bf16", "int8")] == [("onnx", "fp32")] * 2 + [("onnx", "int8")]
    with pytest.raises(UsageError, match="unknown backend 'nope'"):
        target("nope", "fp32")


# -- artifacts ----------------------------------------------------------------------------------------
def test_artifact_load_checks_the_manifest(artifacts: dict[str, Artifact], tmp_path: Path) -> None:
    art = artifacts["cyclegan"]
    assert Artifact.load(art.name, root=art.root.parent).root == art.root
    m = art.manifest
    assert art.variant == "cyclegan" and m.config["ngf"] == 8 and m.batch.to_json() == {"min": 1, "opt": 1, "max": 16}
    assert art.model_path(target("ort-cpu", "fp16")).name == "generator.fp16.onnx" and m.image.size_multiple == 4
    with pytest.raises(ArtifactError, match="no artifact"):
        Artifact.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="has no manifest.json"):
        Artifact.load(tmp_path / "empty")
    broken = shutil.copytree(art.root, tmp_path / "broken")
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt manifest"):
        Artifact.load(broken)
    (broken / "manifest.json").write_text(json.dumps({**m.to_json(), "schema": "ganrt-artifact/0"}))
    with pytest.raises(ArtifactError, match="schema"):
        Artifact.load(broken)
    m.save(broken)
    (broken / "generator.int8.onnx").unlink()
    with pytest.raises(ArtifactError, match="listed in the manifest but missing"):
        Artifact.load(broken).model_path(target("ort-cpu", "int8"))
