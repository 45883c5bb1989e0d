"""`python -m bench report`: a real pytest-benchmark JSON in, Markdown and plots out, regressions flagged."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.__main__ import main as bench_main
from bench.plots import psnr_floors
from bench.regression import compare_runs
from bench.report import report
from bench.results import Row, inference_order, load_run
from ganrt.targets import target

# Two inference rows of one model (a baseline and a faster config), one training row, one plain benchmark.
BENCHMARKS = textwrap.dedent('''
    import pytest

    def _info(config, baseline, psnr, passed):
        return {"kind": "inference", "model": "toy-model", "summary": "a toy", "weights": "none", "size": "8x8",
                "batch": 1, "backend": config.split("-")[0], "precision": "fp32", "device": "cpu",
                "config": config, "baseline": baseline, "images_per_s": 1000.0,
                "latency_ms": {"p50": 1.0, "p90": 1.5, "p99": 2.0},
                "parity": {"max_abs": 0.0 if baseline else 1e-6, "psnr": psnr, "pass": passed,
                           "gate": {"max_abs": 1e-4}},
                "gmacs_per_image": 0.001, "gmacs_per_image_output_grid": 0.001, "gflops": 2.0,
                "pct_fp32_peak": 0.5, "pct_precision_peak": 0.5, "memory": {"peak_rss_mb": 100.0},
                "load_average": [0.3, 0.4], "timing": "around the call"}

    def test_toy_baseline(benchmark):
        benchmark.extra_info.update(_info("torch-fp32-eager", True, 200.0, True))
        benchmark(lambda: sum(range(3000)))

    def test_toy_fast(benchmark):
        benchmark.extra_info.update(_info("ort-cpu-fp32", False, 120.5, True))
        benchmark(lambda: sum(range(300)))

    def test_toy_training(benchmark):
        benchmark.extra_info.update({"kind": "training", "variant": "toyvariant", "batch": 4, "device": "cpu",
                                     "images_per_s": 40.0, "steps_per_s": 10.0, "batches_per_step": 1,
                                     "latency_ms": {"p50": 100.0, "p90": 110.0, "p99": 120.0}})
        benchmark(lambda: None)

    def test_plain(benchmark):
        benchmark(lambda: None)
''')


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real pytest-benchmark JSON file, written by a pytest run in a scratch folder."""
    root = tmp_path_factory.mktemp("toybench")
    (root / "test_toy.py").write_text(BENCHMARKS)
    (root / "pytest.ini").write_text("[pytest]\n")
    out = root / "toy.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", str(root), "-c", str(root / "pytest.ini"), "--rootdir", str(root),
                           "-p", "no:cacheprovider", "-q", "--benchmark-only", "--benchmark-min-rounds=3",
                           "--benchmark-max-time=0.02", "--benchmark-warmup=off", f"--benchmark-json={out}"],
                          check=False, capture_output=True, text=True, timeout=120, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _scaled(src: Path, dst: Path, name: str, factor: float) -> Path:
    """A copy of a JSON run where benchmark `name` takes `factor` times as long."""
    data = json.loads(src.read_text())
    for b in data["benchmarks"]:
        if b["name"] == name:
            for key in ("min", "max", "mean", "median", "q1", "q3"):
                b["stats"][key] *= factor
    dst.write_text(json.dumps(data))
    return dst


def test_report_has_the_rows_and_plots(bench_json: Path, tmp_path: Path) -> None:
    out = tmp_path / "docs" / "bench.md"
    assert report([str(bench_json), "--out", str(out)]) == 0
    md = out.read_text()
    assert "### toy-model" in md
    assert "**torch-fp32-eager**" in md and "| ort-cpu-fp32 |" in md
    assert "1 (baseline)" in md
    # The fast row's speed-up is measured in this run: baseline median / its median, well above 1.
    run = load_run(bench_json, 0)
    med = {r.name: r.median_s for r in run.rows}
    speedup = med["test_toy_baseline"] / med["test_toy_fast"]
    assert f"{speedup:.2f}x" in md
    assert "| toyvariant |" in md  # training table
    assert "test_plain" in md  # a benchmark without ganrt's extra_info still gets a row
    assert "120.5" in md  # parity PSNR
    assert "| identical |" in md  # the baseline's PSNR is the comparator's cap
    for png in ("bench-throughput.png", "bench-parity.png"):
        assert (out.parent / png).stat().st_size > 1000
        assert f"]({png})" in md


def test_compare_flags_a_2x_regression_not_a_1_percent_change(bench_json: Path, tmp_path: Path, capsys) -> None:
    slower = _scaled(bench_json, tmp_path / "slower.json", "test_toy_fast", 2.0)
    noise = _scaled(bench_json, tmp_path / "noise.json", "test_toy_fast", 1.01)
    out = tmp_path / "r.md"
    assert report([str(noise), "--compare", str(bench_json), "--out", str(out), "--no-plots"]) == 0
    assert "REGRESSION" not in out.read_text()
    assert report([str(slower), "--compare", str(bench_json), "--out", str(out), "--no-plots", "--threshold", "0.1"]) == 1
    md = out.read_text()
    regression_lines = [line for line in md.splitlines() if "REGRESSION" in line]
    assert len(regression_lines) == 1 and "test_toy_fast" in regression_lines[0] and "+100.0%" in regression_lines[0]
    assert "REGRESSION" in capsys.readouterr().out
    changes, only_old, only_new = compare_runs(load_run(slower, 0).rows, load_run(bench_json, 1).rows, 0.1)
    assert [c.name for c in changes if c.regressed] == [r.fullname for r in load_run(slower, 0).rows
                                                        if r.name == "test_toy_fast"]
    assert not only_old and not only_new


def test_compare_flags_lost_parity(bench_json: Path, tmp_path: Path) -> None:
    data = json.loads(bench_json.read_text())
    broken = copy.deepcopy(data)
    for b in broken["benchmarks"]:
        if b["name"] == "test_toy_fast":
            b["extra_info"]["parity"]["pass"] = False
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    assert report([str(path), "--compare", str(bench_json), "--out", str(tmp_path / "r.md"), "--no-plots"]) == 1
    assert "parity lost" in (tmp_path / "r.md").read_text()


def test_bad_input_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert report([str(tmp_path / "missing.json"), "--out", str(tmp_path / "r.md")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert report([str(tmp_path / "bad.json"), "--out", str(tmp_path / "r.md")]) == 2
    assert bench_main(["frobnicate"]) == 2
    assert not (tmp_path / "r.md").exists()


def test_parity_plot_floors_are_the_tolerance_tables() -> None:
    assert psnr_floors() == {"int8": target("ort-cpu", "int8").tolerance.psnr_min,
                             "bf16": target("torch", "bf16").tolerance.psnr_min,
                             "fp16": target("ort-cpu", "fp16").tolerance.psnr_min}
    assert list(psnr_floors().values()) == sorted(psnr_floors().values())


def _inference_row(label: str, device: str = "gpu") -> Row:
    return Row(0, label, label, None, {"median": 1.0}, {"kind": "inference", "config": label, "device": device,
                                                        "size": "256x256", "batch": 1})


def test_inference_rows_follow_the_bench_configuration_order() -> None:
    labels = ["trt-fp16", "ort-cuda-fp32", "not-a-bench-config", "torch-cuda-bf16-compile", "torch-cuda-fp32-eager"]
    ordered = sorted((_inference_row(label) for label in labels), key=inference_order)
    assert [r.label for r in ordered] == ["torch-cuda-fp32-eager", "torch-cuda-bf16-compile", "ort-cuda-fp32",
                                          "trt-fp16", "not-a-bench-config"]
    cpu_first = sorted([_inference_row("ort-cpu-fp32", "gpu"), _inference_row("ort-cpu-int8", "cpu")], key=inference_order)
    assert [r.extra["device"] for r in cpu_first] == ["cpu", "gpu"]
