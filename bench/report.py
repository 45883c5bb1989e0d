"""`python -m bench report`: pytest-benchmark JSON -> a Markdown report with PNG plots, and regression checks.

    pytest --benchmark-only --benchmark-json=.benchmarks/cpu.json
    python -m bench report .benchmarks/cpu.json --out docs/benchmarks.md
    python -m bench report new.json --compare old.json --threshold 0.1   # exit 1 on a regression

Speed-ups are ratios within one JSON file (one run): each row against the PyTorch eager fp32
row of the same model, image size, batch and device class. Several files (say a CPU run and
a GPU run) are reported side by side, each with its own machine.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OUT = Path("docs/benchmarks.md")
DEFAULT_THRESHOLD = 0.10
# Other processes taking more than this share of the CPU during a benchmark's timed rounds (or a
# 1-minute load average above QUIET_LOAD_PER_CORE x cores when the session started) make its
# timings noisy. 0.6 per core: 1.2 on the 2-core CI machine, 9.6 on a 16-core GPU host.
BUSY_SHARE = 0.10
QUIET_LOAD_PER_CORE = 0.6
# /proc/stat counts in clock ticks (10 ms): shorter timed windows cannot say who used the CPU.
MIN_WINDOW_S = 0.5
PSNR_DISPLAY_CAP = 150.0
_REPRODUCE_CPU = ("- Reproduce: `pytest --benchmark-only --benchmark-json=.benchmarks/cpu.json` then "
                  "`python -m bench report .benchmarks/cpu.json --out docs/benchmarks.md`; full matrix with "
                  "`--bench-full` (or GANRT_BENCH_FULL=1).")
_REPRODUCE_GPU = ("- Reproduce on a GPU machine: `bash scripts/gpu_bench.sh .benchmarks/gpu` (CUDA tests, the GPU rows "
                  "of the inference benchmarks, training steps, HTTP service), then "
                  "`python -m bench report .benchmarks/gpu/*.json --out docs/benchmarks-gpu.md`.")


class ReportError(Exception):
    """Bad input: a missing or malformed JSON file (exit code 2)."""


@dataclass
class Row:
    """One benchmark of one run."""

    run: int
    name: str
    fullname: str
    group: str | None
    stats: dict[str, Any]
    extra: dict[str, Any]

    @property
    def kind(self) -> str:
        """inference, training, training-reference, pipeline, service, or other (not written by ganrt)."""
        return str(self.extra.get("kind", "other"))

    @property
    def median_s(self) -> float:
        """Median seconds per round."""
        return float(self.stats["median"])

    def latency_ms(self) -> dict[str, float | None]:
        """p50/p90/p99 in ms: extra_info's percentiles, else the raw data if saved, else the median only."""
        saved = self.extra.get("latency_ms")
        if isinstance(saved, dict) and saved.get("p50") is not None:
            return {q: saved.get(q) for q in ("p50", "p90", "p99")}
        data = self.stats.get("data")
        if data:
            ms = np.asarray(data, dtype=float) * 1000
            return {f"p{q}": float(np.percentile(ms, q)) for q in (50, 90, 99)}
        return {"p50": self.median_s * 1000, "p90": None, "p99": None}

    @property
    def label(self) -> str:
        """The backend configuration's label (torch-fp32-eager, ort-cpu-int8, ...)."""
        return str(self.extra.get("config") or self.extra.get("backend") or self.name)


@dataclass
class Run:
    """One pytest-benchmark JSON file."""

    path: Path
    machine: dict[str, Any]
    commit: dict[str, Any]
    datetime: str
    rows: list[Row] = field(default_factory=list)

    @property
    def ganrt(self) -> dict[str, Any]:
        """What the bench conftest added to machine_info (CPU, peaks, versions)."""
        return self.machine.get("ganrt") or {}

    def title(self) -> str:
        """A short name for the run: its GPU or CPU, and the file."""
        g = self.ganrt
        device = (g.get("gpu") or {}).get("gpu") if g.get("gpu") else None
        what = device or g.get("cpu") or self.machine.get("processor") or "unknown machine"
        return f"{what} ({self.path.name})"


def load_run(path: Path, index: int) -> Run:
    """Parse one pytest-benchmark JSON file."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ReportError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"{path} is not a pytest-benchmark JSON file: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ReportError(f"{path} is not a pytest-benchmark JSON file (no \"benchmarks\" list); write one with "
                          f"pytest --benchmark-only --benchmark-json={path}")
    run = Run(Path(path), data.get("machine_info") or {}, data.get("commit_info") or {}, str(data.get("datetime", "")))
    for b in data["benchmarks"]:
        try:
            run.rows.append(Row(index, b["name"], b.get("fullname", b["name"]), b.get("group"), b["stats"],
                                b.get("extra_info") or {}))
        except (KeyError, TypeError) as e:
            raise ReportError(f"{path}: malformed benchmark entry ({e!r})") from None
    return run


# ---- figures --------------------------------------------------------------------------------------

def _baseline_key(row: Row) -> tuple[Any, ...]:
    e = row.extra
    if row.kind == "inference":
        return (row.run, "inference", e.get("model"), e.get("size"), e.get("batch"), e.get("device"))
    if row.kind == "pipeline":
        return (row.run, "pipeline", e.get("model"), e.get("model_input_max_side"), e.get("device"))
    return (row.run, row.kind, row.name)


def speedups(rows: Sequence[Row]) -> dict[str, float | None]:
    """fullname -> speed-up over the eager fp32 baseline of the same run, model, size, batch and device."""
    base: dict[tuple[Any, ...], float] = {}
    for r in rows:
        if r.extra.get("baseline") and r.kind in ("inference", "pipeline"):
            base[_baseline_key(r)] = r.median_s
    out: dict[str, float | None] = {}
    for r in rows:
        b = base.get(_baseline_key(r)) if r.kind in ("inference", "pipeline") else None
        if b is None:
            out[f"{r.run}:{r.fullname}"] = None
        elif r.kind == "pipeline":
            # Pipeline rounds have the same frame count per model/size: the time ratio is the FPS ratio.
            out[f"{r.run}:{r.fullname}"] = b / r.median_s
        else:
            out[f"{r.run}:{r.fullname}"] = b / r.median_s
    return out


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        if abs(x) >= 100:
            return f"{x:.0f}"
        if abs(x) >= 0.01:
            return f"{x:.{digits}g}"
        return f"{x:.2e}"
    return str(x)


def _ms(x: Any) -> str:
    if x is None:
        return "–"
    x = float(x)
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:,.0f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _parity_cells(e: dict[str, Any]) -> tuple[str, str, str]:
    p = e.get("parity") or {}
    psnr = p.get("psnr")
    psnr_text = "identical" if psnr is not None and psnr >= 199 else f"{psnr:.1f}" if psnr is not None else "–"
    gate = p.get("gate") or {}
    gate_text = " & ".join(f"max-abs ≤ {v:g}" if k == "max_abs" else f"PSNR ≥ {v:g}" for k, v in gate.items()) or "–"
    verdict = "pass" if p.get("pass") else "**FAIL**" if p.get("pass") is False else "–"
    also = "; export's gate failed too" if p.get("pass") is False and (e.get("artifact") or {}).get("export_pass") is False else ""
    return _fmt(p.get("max_abs")), psnr_text, f"{verdict} ({gate_text}{also})" if gate else verdict


def _size_sort(size: Any) -> int:
    try:
        return int(str(size).split("x")[0])
    except ValueError:
        return 0


def _bar_label(r: Row) -> str:
    """'cyclegan-256 256x256 b1 ort-cpu-int8': one bar of the throughput and parity plots."""
    return f"{r.extra.get('model')} {r.extra.get('size') or ''} b{r.extra.get('batch')} {r.label}".replace("  ", " ")


def _save_plot(fig: Any, stem: Path, suffix: str) -> Path:
    """Write `fig` beside the report as <stem>-<suffix>.png and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = stem.parent / f"{stem.name}-{suffix}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _inference_sort_key(r: Row) -> tuple[Any, ...]:
    e = r.extra
    order = ["torch-fp32-eager", "torch-fp32-compile", "torch-bf16-eager", "torch-bf16-compile", "ort-cpu-fp32",
             "ort-cpu-fp16", "ort-cpu-int8"]
    label = r.label
    return (r.run, e.get("device") or "", _size_sort(e.get("size")), e.get("batch") or 0,
            order.index(label) if label in order else len(order), label)


def _inference_section(rows: list[Row], ups: dict[str, float | None], multi_run: bool) -> list[str]:
    out = ["## Inference", "",
           ("Latency per call (`runner.infer(numpy feeds)`, timed from outside the runner); images/s = batch / p50; "
           "speed-up = the eager fp32 row's p50 / this row's p50, same run, model, size and batch. Parity: max-abs "
           "and PSNR against the PyTorch eager fp32 model on the same feeds, checked against the tolerance table "
           "(`ganrt.targets`, the export gates). GFLOP/s = 2 x MACs / p50 (ConvTranspose on the input "
           "grid); % of peak against the fp32 peak measured in the same session, and against the row's own "
           "precision's peak (bf16 conv, int8 `torch._int_mm`)."), ""]
    models: dict[str, list[Row]] = {}
    for r in rows:
        models.setdefault(str(r.extra.get("model")), []).append(r)
    header = ["size", "batch", "config", "p50 ms", "p90 ms", "p99 ms", "images/s", "speed-up", "max-abs", "PSNR dB",
              "parity gate", "GFLOP/s", "% fp32 peak", "% own peak", "peak RSS MB (+ growth)"]
    if multi_run:
        header.insert(0, "run")
    for model, mrows in models.items():
        e0 = mrows[0].extra
        gmacs = e0.get("gmacs_per_image")
        gmacs_out = e0.get("gmacs_per_image_output_grid")
        macs_text = (f"{gmacs:.4g} GMACs/image (input-grid ConvTranspose; {gmacs_out:.4g} on the output grid)"
                     if gmacs is not None and gmacs_out is not None and gmacs_out != gmacs else
                     f"{gmacs:.4g} GMACs/image" if gmacs is not None else "")
        out += [f"### {model}", "", f"{e0.get('summary', '')}. Weights: {e0.get('weights', 'unknown')}. {macs_text}", ""]
        table = []
        for r in sorted(mrows, key=_inference_sort_key):
            e = r.extra
            lat = r.latency_ms()
            up = ups.get(f"{r.run}:{r.fullname}")
            max_abs, psnr, verdict = _parity_cells(e)
            mem = e.get("memory") or {}
            if e.get("device") == "gpu" and mem.get("cuda_max_allocated_mb") is not None:
                peak = f"{_fmt(mem['cuda_max_allocated_mb'])} (CUDA)"
            elif mem.get("peak_rss_mb") is not None and mem.get("rss_start_mb") is not None:
                peak = f"{_fmt(mem['peak_rss_mb'])} (+{_fmt(max(0.0, mem['peak_rss_mb'] - mem['rss_start_mb']))})"
            else:
                peak = _fmt(mem.get("peak_rss_mb"))
            row = [e.get("size") or "–", e.get("batch"), f"**{r.label}**" if e.get("baseline") else r.label,
                   _ms(lat["p50"]), _ms(lat["p90"]), _ms(lat["p99"]), _fmt(e.get("images_per_s")),
                   "1 (baseline)" if e.get("baseline") else (f"{up:.2f}x" if up else "–"), max_abs, psnr, verdict,
                   _fmt(e.get("gflops")), _fmt(e.get("pct_fp32_peak")), _fmt(e.get("pct_precision_peak")), peak]
            if multi_run:
                row.insert(0, r.run + 1)
            table.append(row)
        out += [_table(header, table, ("r" if multi_run else "") + "rrl" + "r" * 7 + "l" + "r" * 4), ""]
    return out


def _key_table(rows: list[Row], ups: dict[str, float | None]) -> list[str]:
    """Per (run, model, size, batch): the baseline and the fastest configuration within its gate."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for r in rows:
        groups.setdefault(_baseline_key(r), []).append(r)
    table = []
    for grows in groups.values():
        base = next((r for r in grows if r.extra.get("baseline")), None)
        ok = [r for r in grows if (r.extra.get("parity") or {}).get("pass")]
        if base is None or not ok:
            continue
        best = min(ok, key=lambda r: r.median_s)
        e = best.extra
        up = ups.get(f"{best.run}:{best.fullname}")
        table.append([e.get("model"), e.get("size") or "–", e.get("batch"), e.get("device"), _ms(base.latency_ms()["p50"]),
                      best.label, _ms(best.latency_ms()["p50"]), f"{up:.2f}x" if up else "–",
                      _parity_cells(e)[1], _fmt(e.get("pct_fp32_peak"))])
    if not table:
        return []
    return ["## Summary: fastest configuration within its parity gate", "",
            _table(["model", "size", "batch", "device", "eager fp32 p50 ms", "fastest", "p50 ms", "speed-up",
                    "PSNR dB", "% fp32 peak"], table, "llrlrlrrrr"), ""]


def _pipeline_section(rows: list[Row], ups: dict[str, float | None]) -> list[str]:
    table = []
    for r in sorted(rows, key=lambda r: (r.run, str(r.extra.get("model")), r.extra.get("model_input_max_side") or 0,
                                         not r.extra.get("baseline"), r.label)):
        e = r.extra
        lat, age = e.get("frame_latency_ms") or {}, e.get("age_ms") or {}
        up = ups.get(f"{r.run}:{r.fullname}")
        table.append([e.get("model"), e.get("model_input_max_side"), r.label, e.get("frames"), _fmt(e.get("fps")),
                      "1 (baseline)" if e.get("baseline") else (f"{up:.2f}x" if up else "–"), _ms(lat.get("p50")),
                      _ms(lat.get("p99")), _ms(age.get("p50")), _ms(age.get("p99")), _parity_cells(e)[1],
                      _parity_cells(e)[2]])
    video = rows[0].extra.get("video", "")
    return ["## Video pipeline (webcam path on a file)", "",
            (f"`infer.webcam.run_pipeline` over a generated {video} video: decode, translate (pre/post-processing "
            "included), side-by-side compose and overlay, every frame (file mode drops none). FPS = frames / wall "
            "time of the run; latency = translate + compose per frame; age = frame read to result. Parity on the "
            "uint8 output frame against the same step with the torch eager fp32 model."), "",
            _table(["model", "input side", "config", "frames", "FPS", "speed-up", "latency p50 ms", "p99 ms",
                    "age p50 ms", "age p99 ms", "PSNR dB", "parity"], table, "lrlrrrrrrrrl"), ""]


def _service_section(rows: list[Row]) -> list[str]:
    table = []
    for r in sorted(rows, key=lambda r: (r.run, r.extra.get("concurrency") or 0)):
        e = r.extra
        lat = e.get("latency_ms") or {}
        table.append([e.get("concurrency"), e.get("requests"), e.get("ok"), e.get("busy_503"), e.get("errors"),
                      _fmt(e.get("requests_per_s")), _ms(lat.get("p50")), _ms(lat.get("p99")), _fmt(e.get("mean_batch")),
                      _fmt((e.get("server") or {}).get("peak_rss_mb"))])
    e0 = rows[0].extra
    return ["## HTTP service under a bounded loopback load", "",
            (f"`python -m infer serve` ({e0.get('artifact')}, backend {e0.get('backend')}, dynamic batching with "
            f"max delay {(e0.get('server') or {}).get('max_delay_ms')} ms) in its own process; `infer.loadtest` "
            f"sends a fixed number of {e0.get('endpoint')} requests ({e0.get('image')}) per level from this many "
            "concurrent clients on the same machine. Latency is client-side, send to full response."), "",
            _table(["concurrency", "requests", "ok", "503 busy", "errors", "requests/s", "p50 ms", "p99 ms",
                    "mean server batch", "server peak RSS MB"], table), ""]


def _train_precision(amp: Any) -> str:
    """The autocast dtype a training row ran with (older JSON stored only a flag)."""
    if isinstance(amp, str):
        return amp
    return "autocast" if amp else "fp32"


def _training_section(rows: list[Row]) -> list[str]:
    table = []
    for r in sorted(rows, key=lambda r: (r.run, str(r.extra.get("variant")), str(r.extra.get("preset")))):
        e = r.extra
        lat = r.latency_ms()
        params = e.get("parameters") or {}
        table.append([e.get("variant"), e.get("preset") or "–", e.get("device"), _train_precision(e.get("amp")), e.get("batch"),
                      e.get("size") or "–", e.get("batches_per_step"),
                      _ms(lat["p50"]), _ms(lat["p90"]), _fmt(e.get("images_per_s")), _fmt(e.get("steps_per_s")),
                      f"{sum(params.values()) / 1e6:.2f}" if params else "–",
                      _fmt((e.get("memory") or {}).get("peak_rss_mb"))])
    return ["## Training throughput", "",
            ("One training step (D and G updates of the variant's own `TrainStep`) with batches prefetched: data "
            "loading excluded. images/s counts every real image a step consumes."), "",
            _table(["variant", "preset", "device", "precision", "batch", "size", "batches/step", "ms/step p50", "p90", "images/s",
                    "steps/s", "params M (all nets)", "peak RSS MB"], table), ""]


def _reference_training_section(rows: list[Row]) -> list[str]:
    fp32 = {r.run: r.median_s for r in rows if r.extra.get("precision") == "fp32"}
    table = []
    for r in sorted(rows, key=lambda r: (r.run, r.extra.get("precision") != "fp32")):
        e = r.extra
        lat = r.latency_ms()
        losses = e.get("first_step_losses") or {}
        table.append([r.run + 1, e.get("precision"), e.get("device"), _ms(lat["p50"]), _ms(lat["p90"]),
                      f"{fp32[r.run] / r.median_s:.2f}x" if r.run in fp32 else "–",
                      f"{e.get('reference_s_per_iter')} s: {e.get('speedup_vs_reference')}x",
                      ", ".join(f"{k} {v:.4f}" for k, v in losses.items())])
    return ["## CycleGAN step at the reference settings", "",
            ("128x128, 6 residual blocks, ngf/ndf 64, batch 1, identity loss on: the settings at which the translation "
             "issue quotes about 1.6 s per iteration for a widely used single-script PyTorch CycleGAN on this 2-core "
             "CPU (a figure quoted, not measured in this run). Speed-up vs fp32 is measured within one run. First-step "
             "losses: the step's loss terms from the same initial weights and batch."), "",
            _table(["run", "precision", "device", "ms/step p50", "p90", "speed-up vs fp32", "vs quoted reference",
                    "first-step losses"], table), ""]


def _other_section(rows: list[Row]) -> list[str]:
    table = [[r.fullname, _ms(r.median_s * 1000), r.stats.get("rounds")] for r in rows]
    return ["## Other benchmarks", "", _table(["benchmark", "median ms", "rounds"], table), ""]


def _machine_section(runs: list[Run], rows: list[Row]) -> list[str]:
    out = ["## Machine", ""]
    for run in runs:
        g = run.ganrt
        peaks = (g.get("peaks") or {})
        cpu_p, gpu_p = peaks.get("cpu") or {}, peaks.get("gpu") or {}
        versions = g.get("versions") or {}
        loads = [x for r in rows if r.run == runs.index(run) for x in (r.extra.get("load_average") or []) if x is not None]
        commit = run.commit
        lines = [
            f"- **Run {runs.index(run) + 1}**: `{run.path}`, {run.datetime[:19].replace('T', ' ')} UTC"
            + (f", commit {str(commit.get('id', ''))[:10]}{' (dirty tree)' if commit.get('dirty') else ''}" if commit else ""),
            f"- CPU: {g.get('cpu') or run.machine.get('processor')}, {g.get('cores')} cores"
            + (f" ({', '.join(g.get('cpu_flags') or [])})" if g.get('cpu_flags') else "")
            + (f", {g.get('memory_gb')} GB RAM" if g.get("memory_gb") else ""),
            f"- GPU: {(g.get('gpu') or {}).get('gpu', 'none')}",
            "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if k not in ("ort_providers",) and v is not None),
        ]
        if cpu_p:
            lines.append(
                f"- Measured CPU peaks (this session): fp32 {_fmt(cpu_p.get('fp32'))} GFLOP/s (oneDNN conv "
                f"{_fmt(cpu_p.get('fp32_conv_gflops'))}, ORT MatMul {_fmt(cpu_p.get('fp32_ort_matmul_gflops'))}; torch "
                f"matmul {_fmt(cpu_p.get('fp32_torch_matmul_gflops'))}, not used: MKL on AMD), bf16 conv "
                f"{_fmt(cpu_p.get('bf16'))} GFLOP/s, int8 `torch._int_mm` {_fmt(cpu_p.get('int8'))} GOP/s"
                + (" (quick probe)" if peaks.get("quick_probe") else ""))
        if gpu_p:
            lines.append("- Measured GPU peaks: " + ", ".join(f"{k} {_fmt(v)}" for k, v in gpu_p.items()
                                                              if k.endswith(("gflops", "gops"))))
        mine = [(r, r.extra.get("contention") or {}) for r in rows if r.run == runs.index(run)]
        mine = [(r, c) for r, c in mine if c.get("others_cpu_share") is not None and (c.get("window_s") or 0) >= MIN_WINDOW_S]
        shares = [c["others_cpu_share"] for _, c in mine]
        steals = [c.get("steal_share") or 0 for _, c in mine]
        start = g.get("load_average_start")
        busy = [r.name for r, c in mine if c["others_cpu_share"] > BUSY_SHARE]
        if shares:
            quiet = not busy and (start is None or start <= QUIET_LOAD_PER_CORE * (g.get('cores') or 1)) and max(steals or [0]) <= BUSY_SHARE
            text = (f"other processes took {min(shares):.0%}-{max(shares):.0%} of the CPU during the timed rounds "
                    f"(of the {len(shares)} benchmarks timed for {MIN_WINDOW_S:g} s or more) "
                    f"(hypervisor steal up to {max(steals or [0]):.0%}); 1-minute load average {start} when the "
                    f"session started (the load average during the run counts the benchmarks' own threads)")
            lines.append(f"- Machine {'quiet' if quiet else 'NOT quiet'}: {text}" if quiet else
                         f"- **WARNING: machine not quiet: {text}. Affected: "
                         f"{', '.join(busy[:8]) or 'all (busy at start)'}{' ...' if len(busy) > 8 else ''}. "
                         f"Timings are pessimistic and noisy.**")
        elif loads:
            lines.append(f"- 1-minute load average during the run: {min(loads):.2f}-{max(loads):.2f} "
                         "(includes the benchmarks' own threads)")
        if g.get("full_matrix"):
            lines.append("- Full matrix (--bench-full)")
        out += lines + [""]
    return out


# ---- plots ----------------------------------------------------------------------------------------

def make_plots(rows: list[Row], out: Path) -> dict[str, Path]:
    """PNG plots next to `out`: latency vs batch, throughput, parity. Returns {title: path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inf = [r for r in rows if r.kind == "inference"]
    stem = out.with_suffix("")
    made: dict[str, Path] = {}
    if not inf:
        return made
    # (1) latency vs batch size, one panel per model/size with more than one batch, one line per config
    panels: dict[tuple[Any, ...], list[Row]] = {}
    for r in inf:
        panels.setdefault((r.run, r.extra.get("model"), r.extra.get("size"), r.extra.get("device")), []).append(r)
    panels = {k: v for k, v in panels.items() if len({r.extra.get("batch") for r in v}) > 1}
    if panels:
        n = len(panels)
        cols = min(3, n)
        nrows = math.ceil(n / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.9 * nrows), squeeze=False)
        for ax, ((run, model, size, device), prow) in zip(axes.flat, sorted(panels.items(), key=lambda kv: str(kv[0]))):
            lines: dict[str, list[Row]] = {}
            for r in prow:
                lines.setdefault(r.label, []).append(r)
            for label, lrows in sorted(lines.items()):
                lrows.sort(key=lambda r: r.extra.get("batch") or 0)
                ax.plot([r.extra.get("batch") for r in lrows], [r.latency_ms()["p50"] for r in lrows], "o-", label=label)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("batch size")
            ax.set_ylabel("p50 latency per call (ms)")
            ax.set_title(f"{model}{' ' + size if size else ''} ({device})", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        made["Latency vs batch size per backend"] = _save_plot(fig, stem, "latency-vs-batch")
    # (2) throughput and (3) parity: one bar per row, grouped by model/size/batch
    ordered = sorted(inf, key=lambda r: (str(r.extra.get("model")),) + _inference_sort_key(r))
    labels = [_bar_label(r) for r in ordered]
    colors = {"torch": "tab:red", "ort-cpu": "tab:blue", "ort-cuda": "tab:green", "ort-trt": "tab:purple", "trt": "tab:olive"}
    bar_colors = [colors.get(str(r.extra.get("backend")), "tab:gray") for r in ordered]
    height = max(3.0, 0.22 * len(ordered) + 1.2)
    fig, ax = plt.subplots(figsize=(9, height))
    ax.barh(range(len(ordered)), [r.extra.get("images_per_s") or 0 for r in ordered], color=bar_colors)
    ax.set_yticks(range(len(ordered)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("images/s (log scale; red torch, blue ONNX Runtime CPU)")
    ax.set_title("Inference throughput")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    made["Throughput"] = _save_plot(fig, stem, "throughput")
    checked = [r for r in ordered if not r.extra.get("baseline") and (r.extra.get("parity") or {}).get("psnr") is not None]
    if checked:
        fig, ax = plt.subplots(figsize=(9, max(3.0, 0.22 * len(checked) + 1.2)))
        psnr = [min(PSNR_DISPLAY_CAP, r.extra["parity"]["psnr"]) for r in checked]
        ok = [(r.extra.get("parity") or {}).get("pass") for r in checked]
        ax.barh(range(len(checked)), psnr, color=["tab:green" if p else "tab:red" for p in ok])
        ax.set_yticks(range(len(checked)), [_bar_label(r) for r in checked], fontsize=7)
        ax.invert_yaxis()
        for floor, what, style in ((30, "int8 floor 30 dB", ":"), (35, "bf16 floor 35 dB", "-."), (40, "fp16 floor 40 dB", "--")):
            ax.axvline(floor, color="k", ls=style, lw=0.8, label=what)
        ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel(f"PSNR vs torch eager fp32 (dB, capped at {PSNR_DISPLAY_CAP:g}; red = outside its gate)")
        ax.set_title("Parity against the PyTorch eager fp32 model")
        made["Parity"] = _save_plot(fig, stem, "parity")
    return made


# ---- regressions ----------------------------------------------------------------------------------

@dataclass
class Change:
    """One benchmark present in both runs."""

    name: str
    old_s: float
    new_s: float
    regressed: bool
    improved: bool
    parity_lost: bool

    @property
    def ratio(self) -> float:
        """new / old median time (above 1: slower)."""
        return self.new_s / self.old_s if self.old_s > 0 else math.inf


def compare_runs(new: Sequence[Row], old: Sequence[Row], threshold: float) -> tuple[list[Change], list[str], list[str]]:
    """(changes, only in old, only in new); a regression is a median time above old * (1 + threshold), or a lost parity pass."""
    old_by = {r.fullname: r for r in old}
    new_by = {r.fullname: r for r in new}
    changes = []
    for name, n in new_by.items():
        o = old_by.get(name)
        if o is None:
            continue
        ratio = n.median_s / o.median_s if o.median_s > 0 else math.inf
        parity_lost = bool((o.extra.get("parity") or {}).get("pass")) and (n.extra.get("parity") or {}).get("pass") is False
        changes.append(Change(name, o.median_s, n.median_s, ratio > 1 + threshold or parity_lost,
                              ratio < 1 / (1 + threshold), parity_lost))
    return (sorted(changes, key=lambda c: -c.ratio), sorted(set(old_by) - set(new_by)), sorted(set(new_by) - set(old_by)))


def comparison_markdown(changes: list[Change], only_old: list[str], only_new: list[str], threshold: float,
                        old_path: Path) -> list[str]:
    """The comparison section: regressions first."""
    regressed = [c for c in changes if c.regressed]
    out = [f"## Comparison with `{old_path}`", "",
           (f"Median time per round, new vs old; a regression is more than {threshold:.0%} slower, or a parity gate "
           f"that passed and now fails. {len(regressed)} regression(s), "
           f"{sum(c.improved for c in changes)} improvement(s), {len(changes)} benchmarks compared."), ""]
    rows = [[f"`{c.name}`", _ms(c.old_s * 1000), _ms(c.new_s * 1000), f"{(c.ratio - 1) * 100:+.1f}%",
             "**REGRESSION (parity lost)**" if c.parity_lost else "**REGRESSION**" if c.regressed else
             "improved" if c.improved else "same"] for c in changes]
    out += [_table(["benchmark", "old ms", "new ms", "change", "status"], rows, "lrrrl"), ""]
    if only_old:
        out += ["Only in the old run: " + ", ".join(f"`{n}`" for n in only_old), ""]
    if only_new:
        out += ["Only in the new run: " + ", ".join(f"`{n}`" for n in only_new), ""]
    return out


# ---- the report -----------------------------------------------------------------------------------

def render(runs: list[Run], plots: dict[str, Path], out: Path, comparison: list[str] | None = None,
           command: str = "") -> str:
    """The Markdown report."""
    rows = [r for run in runs for r in run.rows]
    ups = speedups(rows)
    multi = len(runs) > 1
    md = ["# ganrt benchmarks", "",
          (f"Generated by `{command or 'python -m bench report'}` from the pytest-benchmark output of "
          f"`pytest --benchmark-only --benchmark-json=FILE` (how to reproduce: last section)."), ""]
    md += _machine_section(runs, rows)
    if comparison:
        md += comparison
    by_kind: dict[str, list[Row]] = {}
    for r in rows:
        by_kind.setdefault(r.kind, []).append(r)
    if "inference" in by_kind:
        md += _key_table(by_kind["inference"], ups)
        md += _inference_section(by_kind["inference"], ups, multi)
    if "pipeline" in by_kind:
        md += _pipeline_section(by_kind["pipeline"], ups)
    if "service" in by_kind:
        md += _service_section(by_kind["service"])
    if "training" in by_kind:
        md += _training_section(by_kind["training"])
    if "training-reference" in by_kind:
        md += _reference_training_section(by_kind["training-reference"])
    if "other" in by_kind:
        md += _other_section(by_kind["other"])
    if plots:
        md += ["## Plots", ""]
        for title, path in plots.items():
            md += [f"### {title}", "", f"![{title}]({path.name})", ""]
    notes = sorted({str(r.extra.get("timing")) for r in rows if r.extra.get("timing")})
    convention = next((r.extra.get("flops_convention") for r in rows if r.extra.get("flops_convention")), None)
    md += ["## How these were measured", ""]
    md += [f"- Timing ({'; '.join(sorted({r.kind for r in rows if r.extra.get('timing') == n}))}): {n}" for n in notes]
    if convention:
        md.append(f"- FLOPs: {convention}")
    md += [("- Baseline: PyTorch eager fp32, default settings (what a user without ganrt runs), benchmarked in the "
           "same session as every other row; speed-ups are ratios within one run."),
           ("- Parity reference: the PyTorch eager fp32 generator (eval mode) from the same artifact, same feeds "
           "(training-split images for translators, noise seed 1 for samplers: not export's calibration rows)."),
           ("- Peak memory: the process's peak RSS (VmHWM, reset before each benchmark through /proc/self/clear_refs) "
           "from opening the runner to closing it, and in brackets its growth over the RSS before (session or "
           "engine, weights, activations); on GPUs torch's max allocated (ONNX Runtime and TensorRT allocate "
           "outside torch)."),
           _REPRODUCE_GPU if any((run.ganrt.get("gpu") or {}).get("gpu") for run in runs) else _REPRODUCE_CPU, ""]
    return "\n".join(md)


def _default_json() -> Path:
    root = Path(".benchmarks")
    found = [p for p in root.rglob("*.json") if "artifacts" not in p.parts] if root.is_dir() else []
    if not found:
        raise ReportError("no JSON given and none under .benchmarks/: run pytest --benchmark-only "
                          "--benchmark-json=.benchmarks/cpu.json first")
    return max(found, key=lambda p: p.stat().st_mtime)


def build_parser() -> argparse.ArgumentParser:
    """`python -m bench report` arguments."""
    p = argparse.ArgumentParser(prog="python -m bench report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", nargs="*", type=Path,
                   help="pytest-benchmark JSON files (default: the newest .json under .benchmarks/)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"Markdown report to write; PNG plots go next to it (default: {DEFAULT_OUT})")
    p.add_argument("--compare", type=Path, metavar="OLD.json",
                   help="flag regressions against this earlier run (exit code 1 if any)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"relative slow-down that counts as a regression (default: {DEFAULT_THRESHOLD})")
    p.add_argument("--no-plots", action="store_true", help="write the Markdown only")
    return p


def report(argv: Sequence[str] | None = None) -> int:
    """Run `python -m bench report`; returns the exit code (0 ok, 1 regressions, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        if args.threshold < 0:
            raise ReportError(f"--threshold must be >= 0, got {args.threshold}")
        paths = args.json or [_default_json()]
        runs = [load_run(p, i) for i, p in enumerate(paths)]
        if not any(run.rows for run in runs):
            raise ReportError(f"no benchmarks in {', '.join(map(str, paths))} (was the run --benchmark-only?)")
        comparison = None
        regressions = 0
        if args.compare:
            old = load_run(args.compare, -1)
            new_rows = [r for run in runs for r in run.rows]
            changes, only_old, only_new = compare_runs(new_rows, old.rows, args.threshold)
            comparison = comparison_markdown(changes, only_old, only_new, args.threshold, args.compare)
            regressions = sum(c.regressed for c in changes)
            print("\n".join(comparison))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        rows = [r for run in runs for r in run.rows]
        plots = {} if args.no_plots else make_plots(rows, args.out)
        command = "python -m bench report " + " ".join(str(p) for p in paths) + f" --out {args.out}"
        args.out.write_text(render(runs, plots, args.out, comparison, command))
    except ReportError as e:
        print(f"python -m bench report: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}" + "".join(f", {p}" for p in plots.values()))
    if regressions:
        print(f"{regressions} regression(s) above {args.threshold:.0%}: see the table above", file=sys.stderr)
        return 1
    return 0
