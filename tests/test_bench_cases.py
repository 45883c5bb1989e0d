"""The bench's configurations (a target and the bench's own options), its parity records and its export cache key."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench.artifacts import EXPORT_BATCH, export_key
from bench.cases import CPU_CONFIGS, GPU_CONFIGS, by_label, default_cases
from bench.parity import parity_record, picture_gate
from export.options import ExportOptions
from ganrt.compare import compare
from ganrt.targets import REFERENCE, TARGETS, target


def test_labels_are_the_ones_old_json_files_carry() -> None:
    assert [c.label for c in CPU_CONFIGS] == ["torch-fp32-eager", "torch-fp32-compile", "torch-bf16-eager",
                                              "torch-bf16-compile", "ort-cpu-fp32", "ort-cpu-fp16", "ort-cpu-int8",
                                              "ov-cpu-fp32", "ov-cpu-bf16", "ov-cpu-int8"]
    assert [c.label for c in GPU_CONFIGS] == ["torch-cuda-fp32-eager", "torch-cuda-bf16-eager", "torch-cuda-bf16-compile",
                                              "ort-cuda-fp32", "ort-cuda-fp16", "ort-cuda-int8", "ort-trt-fp32",
                                              "ort-trt-fp16", "ort-trt-int8", "trt-fp16"]


def test_a_configuration_is_a_target_of_the_table() -> None:
    for c in CPU_CONFIGS + GPU_CONFIGS:
        assert c.target in TARGETS
        assert c.label == c.target.label or c.backend == "torch"
        assert c.gpu == (c.cuda or c.target.gpu)
    assert by_label("ort-cpu-int8").target == target("ort-cpu", "int8")
    assert not by_label("torch-fp32-eager").gpu and by_label("torch-cuda-fp32-eager").gpu
    assert [c.label for c in CPU_CONFIGS + GPU_CONFIGS if c.is_baseline] == ["torch-fp32-eager", "torch-cuda-fp32-eager"]
    with pytest.raises(ValueError, match="known: torch-fp32-eager, "):
        by_label("ort-cpu-fp64")


def test_torch_on_cuda_is_gated_like_ort_cuda_in_fp32_only() -> None:
    assert by_label("torch-cuda-fp32-eager").tolerance == target("ort-cuda", "fp32").tolerance
    assert by_label("torch-cuda-bf16-eager").tolerance == target("torch", "bf16").tolerance
    assert by_label("torch-fp32-eager").tolerance == REFERENCE.tolerance
    assert by_label("torch-fp32-compile").runner_options() == {"compile": True, "device": "cpu"}
    assert by_label("torch-cuda-bf16-compile").runner_options() == {"compile": True, "device": "cuda"}
    assert by_label("ort-cpu-fp32").runner_options() == {}


def test_every_default_case_has_a_unique_id() -> None:
    ids = [case.id for case in default_cases()]
    assert len(ids) == len(set(ids))
    assert "cyclegan-256-256px-b1-ort-cpu-int8" in ids and "dcgan-64-b32-trt-fp16" in ids
    # Every CPU backend x precision that can be fastest, at batch 1 of the four models auto is checked on.
    for group in ("cyclegan-256-256px", "cyclegan-shipped-64px", "cyclegan-shipped-256px", "pix2pix-256-256px"):
        assert {f"{group}-b1-ov-cpu-{p}" for p in ("fp32", "bf16", "int8")} <= set(ids)


def test_picture_gate_allows_one_grey_level_in_fp32_and_keeps_psnr_floors() -> None:
    reference = np.full((8, 8, 3), 100.0)
    off_by_one, off_by_two = reference + 1, reference.copy()
    off_by_two[0, 0, 0] += 2
    fp32 = picture_gate(target("ort-cpu", "fp32").tolerance)
    assert parity_record(compare(reference, off_by_one, value_range=255.0), fp32, "ref")["pass"]
    record = parity_record(compare(reference, off_by_two, value_range=255.0), fp32, "ref", on="uint8")
    assert not record["pass"] and record["gate"] == {"max_abs": 1.0} and record["on"] == "uint8"
    int8 = picture_gate(target("ort-cpu", "int8").tolerance)
    assert int8.to_json() == {"psnr_min": target("ort-cpu", "int8").tolerance.psnr_min}
    assert parity_record(compare(reference, off_by_two, value_range=255.0), int8, "ref")["pass"]


def _options(cls: type = ExportOptions, **changes: object) -> ExportOptions:
    return cls(**{"source": "generator.safetensors", "name": "m", "batch": EXPORT_BATCH, **changes})


def test_export_key_follows_exports_own_options_and_defaults() -> None:
    key = export_key(_options())
    # Where export writes, and the source's path (its sha256 is hashed apart), leave the key alone.
    assert export_key(dataclasses.replace(_options(source="elsewhere.safetensors"), out=_options().runs_root)) == key
    assert export_key(_options(trt=True)) != key
    # A new default in export (or a new option) changes the key without touching the bench.
    later = dataclasses.make_dataclass("LaterOptions", [("opset", int, dataclasses.field(default=99))],
                                       bases=(ExportOptions,))
    assert export_key(_options(later)) != key
    extended = dataclasses.make_dataclass("ExtendedOptions", [("prune", bool, dataclasses.field(default=True))],
                                          bases=(ExportOptions,))
    assert export_key(_options(extended))["prune"] is True


def test_times_from_a_worker_process_become_the_benchmarks_statistics(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "test_recorded.py").write_text(
        "from bench.measure import record_seconds\n\n"
        "def test_recorded(benchmark):\n"
        "    timing = record_seconds(benchmark, [0.3, 0.1, 0.2], {'others_cpu_share': 0.0})\n"
        "    assert timing.measured and timing.median == 0.2\n")
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-only",
                           f"--benchmark-json={out}", "test_recorded.py"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(repo)}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stats = json.loads(out.read_text())["benchmarks"][0]["stats"]
    assert stats["median"] == 0.2 and stats["rounds"] == 3 and stats["min"] == 0.1
