"""`auto` on a CPU picks by measurement: the probe, its measurement file and its key, and the pick with its reason."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from export.options import ExportOptions
from export.pipeline import run_export
from ganrt.artifact import Artifact
from ganrt.errors import BackendUnavailable
from infer.runners import available_backends, open_runner, probe
from infer.runners.devices import cuda_device_count
from infer.runners.probe import Measurement, Measurements, cache_entry, choose, measured_choice
from tests.tiny_generators import save_tiny_generator

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(cuda_device_count() > 0, reason="on a GPU machine auto keeps its GPU preference order")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """A tiny CycleGAN with fp32, fp16 and int8 ONNX models and its generator weights."""
    root = tmp_path_factory.mktemp("probe")
    source = save_tiny_generator("cyclegan", root / "generator.safetensors")
    result = run_export(ExportOptions(source=str(source), out=root / "art", calibration="minmax"))
    assert result.exit_code == 0
    return Artifact.load(root / "art")


def measurements(art: Artifact, threads: int, rows: list[Measurement]) -> Path:
    """Write a measurement file for `art` on this machine, as a probe would."""
    entry = cache_entry(art, threads)
    measured = Measurements(art.name, entry.machine, entry.digest, rows, reference="torch/fp32")
    entry.path.parent.mkdir(parents=True, exist_ok=True)
    entry.path.write_text(json.dumps(measured.to_json()))
    return entry.path


def test_auto_picks_the_fastest_measurement_within_its_gate_and_says_why(artifact: Artifact,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    parity = {"max_abs": 0.0, "psnr": 200.0, "gate": {"max_abs": 1e-4}, "reference": False}
    path = measurements(artifact, 2, [
        Measurement("torch", "fp32", 3.0, 5, parity={**parity, "reference": True}, passed=True),
        Measurement("ort-cpu", "fp32", 2.0, 5, parity=parity, passed=True),
        Measurement("ort-cpu", "fp16", 2.5, 5, parity=parity, passed=True),
        # Faster, but outside its gate: never picked.
        Measurement("ort-cpu", "int8", 1.0, 5, parity={**parity, "psnr": 20.0}, note="parity outside its gate"),
        Measurement("torch", "bf16", note="unavailable: no bf16 here"),
    ])
    with caplog.at_level(logging.INFO, logger="ganrt.infer"):
        runner = open_runner(artifact, "auto", threads=2)
    assert (runner.backend, runner.precision) == ("ort-cpu", "fp32")
    assert "has not been measured" not in caplog.text  # the file was read, nothing probed
    line = next(r.getMessage() for r in caplog.records if "backend auto ->" in r.getMessage())
    assert line.startswith(f"backend auto -> ort-cpu fp32 for {artifact.name}: fastest of 3 candidates")
    assert "ort-cpu/fp32 2 ms" in line and "next ort-cpu/fp16 2.5 ms, torch/fp32 3 ms" in line
    assert "excluded: ort-cpu/int8 (parity outside its gate), torch/bf16 (unavailable: no bf16 here)" in line
    assert str(path) in line
    with pytest.raises(BackendUnavailable, match="no backend that runs"):
        choose(Measurements("x", {}, "", [Measurement("ort-cpu", "int8", 1.0, note="parity outside its gate")]))


def test_the_cache_key_follows_the_artifact_and_the_machine(artifact: Artifact, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    here = cache_entry(artifact, 2)
    assert cache_entry(artifact, 2) == here
    assert cache_entry(artifact, 1).path != here.path  # threads are part of the machine description
    assert cache_entry(artifact, 2, "int8").path != here.path
    copy = Artifact.load(shutil.copytree(artifact.root, tmp_path / "copy"))
    assert cache_entry(copy, 2).path == here.path  # same files, same key, wherever they are
    with (copy.root / "generator.int8.onnx").open("ab") as f:
        f.write(b"\0")  # a model file changed under an unchanged manifest
    changed_model = cache_entry(Artifact.load(copy.root), 2)
    assert changed_model.path != here.path
    manifest = json.loads((copy.root / "manifest.json").read_text())
    manifest["created"] = "2030-01-01T00:00:00Z"
    (copy.root / "manifest.json").write_text(json.dumps(manifest))
    assert cache_entry(Artifact.load(copy.root), 2).path not in (here.path, changed_model.path)
    monkeypatch.setattr(probe, "cpu_model", lambda: "Another CPU (family 6, model 143)")
    other_cpu = cache_entry(artifact, 2)
    assert other_cpu.path != here.path and other_cpu.machine["cpu"].startswith("Another CPU")
    monkeypatch.setattr(probe, "cpu_flags", lambda: ["avx2", "fma"])
    assert cache_entry(artifact, 2).path != other_cpu.path
    # A file measured on another machine is not trusted, even under this machine's name.
    written = measurements(artifact, 2, [Measurement("ort-cpu", "fp32", 1.0, passed=True)])
    assert cache_entry(artifact, 2).read() is not None
    monkeypatch.setattr(probe, "cpu_count", lambda: 64)
    elsewhere = cache_entry(artifact, 2)
    shutil.copy(written, elsewhere.path)
    assert elsewhere.read() is None


def test_probe_measures_every_candidate_caches_it_and_auto_reads_it(artifact: Artifact,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "infer", "probe", str(artifact.root), "--threads", "1", "--json"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    rows = {r["backend"] + "/" + r["precision"]: r for r in report["rows"]}
    have = available_backends()
    expected = {"torch/fp32", "torch/bf16", "ort-cpu/fp32", "ort-cpu/fp16", "ort-cpu/int8"}
    if "ov-cpu" in have:
        expected |= {"ov-cpu/fp32", "ov-cpu/bf16", "ov-cpu/int8"}
    assert set(rows) == expected and report["reference"] == "torch/fp32"
    assert rows["torch/fp32"]["parity"]["reference"] and rows["torch/fp32"]["passed"]
    for key in ("ort-cpu/fp32", "ov-cpu/fp32"):
        if key in rows:  # fp32 agrees with the reference within 1e-4 and was timed
            assert rows[key]["passed"] and rows[key]["parity"]["max_abs"] <= 1e-4 and rows[key]["calls"] >= 1
    timed = [r for r in rows.values() if r["median_ms"] is not None and r["passed"]]
    fastest = min(timed, key=lambda r: r["median_ms"])
    assert report["pick"] == f"{fastest['backend']}/{fastest['precision']}"
    # auto reads what the probe cached: nothing is probed again, and it picks the same.
    with caplog.at_level(logging.INFO, logger="ganrt.infer"):
        best, why, path = measured_choice(artifact, have, threads=1)
    assert best.key == report["pick"] and why == report["why"] and path.is_file()
    assert "has not been measured" not in caplog.text


def test_first_auto_use_probes_and_says_so(artifact: Artifact, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    copy = Artifact.load(shutil.copytree(artifact.root, tmp_path / "fresh"))
    manifest = json.loads((copy.root / "manifest.json").read_text())
    manifest["name"] = "fresh-copy"  # another artifact: no measurements yet
    (copy.root / "manifest.json").write_text(json.dumps(manifest))
    copy = Artifact.load(copy.root)
    with caplog.at_level(logging.INFO, logger="ganrt.infer"):
        best, _, path = measured_choice(copy, ["ort-cpu"], threads=1, precision="fp32")
    assert "fresh-copy has not been measured on this machine yet: probing" in caplog.text
    assert best.key == "ort-cpu/fp32" and json.loads(path.read_text())["reference"] == "ort-cpu/fp32"
