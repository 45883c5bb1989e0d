"""The report's sections: the machine of each run, then one a kind of benchmark (inference, pipeline, service, training)."""
from __future__ import annotations

from typing import Any

from bench.markdown import NONE, fmt, ms, parity_cells, ratio, speedup, table
from bench.results import Row, Run, baseline_key, inference_order

# Other processes taking more than this share of the CPU during a benchmark's timed rounds (or a
# 1-minute load average above QUIET_LOAD_PER_CORE x cores when the session started) make its
# timings noisy. 0.6 per core: 1.2 on the 2-core CI machine, 9.6 on a 16-core GPU host.
BUSY_SHARE = 0.10
QUIET_LOAD_PER_CORE = 0.6
# /proc/stat counts in clock ticks (10 ms): shorter timed windows cannot say who used the CPU.
MIN_WINDOW_S = 0.5

def _run_lines(index: int, run: Run) -> list[str]:
    """When, which commit, which CPU, GPU and versions."""
    g, commit = run.ganrt, run.commit
    versions = g.get("versions") or {}
    when = f"- **Run {index + 1}**: `{run.path}`, {run.datetime[:19].replace('T', ' ')} UTC"
    if commit:
        when += f", commit {str(commit.get('id', ''))[:10]}{' (dirty tree)' if commit.get('dirty') else ''}"
    cpu = (f"- CPU: {g.get('cpu') or run.machine.get('processor')}, {g.get('cores')} cores"
           + (f" ({', '.join(g.get('cpu_flags') or [])})" if g.get("cpu_flags") else "")
           + (f", {g.get('memory_gb')} GB RAM" if g.get("memory_gb") else ""))
    return [when, cpu, f"- GPU: {(g.get('gpu') or {}).get('gpu', 'none')}",
            "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "ort_providers" and v is not None)]


def _peak_lines(run: Run) -> list[str]:
    """The practical peaks measured in the run's session, the figures % of peak divides by."""
    peaks = run.ganrt.get("peaks") or {}
    cpu_p, gpu_p = peaks.get("cpu") or {}, peaks.get("gpu") or {}
    lines = []
    if cpu_p:
        lines.append(
            f"- Measured CPU peaks (this session, the best probe of each precision): fp32 {fmt(cpu_p.get('fp32'))} "
            f"GFLOP/s (oneDNN conv {fmt(cpu_p.get('fp32_conv_gflops'))}, ORT MatMul "
            f"{fmt(cpu_p.get('fp32_ort_matmul_gflops'))}, OpenVINO conv {fmt(cpu_p.get('fp32_ov_conv_gflops'))}; "
            f"torch matmul {fmt(cpu_p.get('fp32_torch_matmul_gflops'))}, not used: MKL on AMD), bf16 "
            f"{fmt(cpu_p.get('bf16'))} GFLOP/s (torch autocast conv {fmt(cpu_p.get('bf16_conv_gflops'))}, OpenVINO "
            f"conv {fmt(cpu_p.get('bf16_ov_conv_gflops'))}), int8 {fmt(cpu_p.get('int8'))} GOP/s (`torch._int_mm` "
            f"{fmt(cpu_p.get('int8_int_mm_gops'))}, OpenVINO conv {fmt(cpu_p.get('int8_ov_conv_gops'))})"
            + (" (quick probe)" if peaks.get("quick_probe") else ""))
    if gpu_p:
        lines.append("- Measured GPU peaks: " + ", ".join(f"{k} {fmt(v)}" for k, v in gpu_p.items()
                                                          if k.endswith(("gflops", "gops"))))
    return lines


def _quiet_lines(run: Run, rows: list[Row]) -> list[str]:
    """Whether other processes took the CPU during the timed rounds (a warning naming the benchmarks hit)."""
    g = run.ganrt
    timed = [(r, r.extra.get("contention") or {}) for r in rows]
    timed = [(r, c) for r, c in timed if c.get("others_cpu_share") is not None and (c.get("window_s") or 0) >= MIN_WINDOW_S]
    if not timed:
        loads = [x for r in rows for x in (r.extra.get("load_average") or []) if x is not None]
        return [f"- 1-minute load average during the run: {min(loads):.2f}-{max(loads):.2f} "
                "(includes the benchmarks' own threads)"] if loads else []
    shares = [c["others_cpu_share"] for _, c in timed]
    steal = max(c.get("steal_share") or 0 for _, c in timed)
    start = g.get("load_average_start")
    busy = [r.name for r, c in timed if c["others_cpu_share"] > BUSY_SHARE]
    quiet = not busy and (start is None or start <= QUIET_LOAD_PER_CORE * (g.get("cores") or 1)) and steal <= BUSY_SHARE
    text = (f"other processes took {min(shares):.0%}-{max(shares):.0%} of the CPU during the timed rounds "
            f"(of the {len(shares)} benchmarks timed for {MIN_WINDOW_S:g} s or more) "
            f"(hypervisor steal up to {steal:.0%}); 1-minute load average {start} when the "
            f"session started (the load average during the run counts the benchmarks' own threads)")
    if quiet:
        return [f"- Machine quiet: {text}"]
    return [f"- **WARNING: machine not quiet: {text}. Affected: {', '.join(busy[:8]) or 'all (busy at start)'}"
            f"{' ...' if len(busy) > 8 else ''}. Timings are pessimistic and noisy.**"]


def machine_section(runs: list[Run]) -> list[str]:
    """Each run's machine, measured peaks and quietness."""
    out = ["## Machine", ""]
    for index, run in enumerate(runs):
        out += _run_lines(index, run) + _peak_lines(run) + _quiet_lines(run, run.rows)
        if run.ganrt.get("full_matrix"):
            out.append("- Full matrix (--bench-full)")
        out.append("")
    return out


INFERENCE_INTRO = (
    "Latency per call (`runner.infer(numpy feeds)`, timed from outside the runner); images/s = batch / p50; "
    "speed-up = the eager fp32 row's p50 / this row's p50, same run, model, size and batch. Parity: max-abs "
    "and PSNR against the PyTorch eager fp32 model on the same feeds, checked against the tolerance table "
    "(`ganrt.targets`, the export gates). GFLOP/s = 2 x MACs / p50 (ConvTranspose on the input "
    "grid); % of peak against the fp32 peak measured in the same session, and against the row's own "
    "precision's peak (the best bf16 or int8 probe).")
INFERENCE_HEADER = ["size", "batch", "config", "p50 ms", "p90 ms", "p99 ms", "images/s", "speed-up", "max-abs",
                    "PSNR dB", "parity gate", "GFLOP/s", "% fp32 peak", "% own peak", "peak RSS MB (+ growth)"]


def _macs_text(e: dict[str, Any]) -> str:
    gmacs, gmacs_out = e.get("gmacs_per_image"), e.get("gmacs_per_image_output_grid")
    if gmacs is None:
        return ""
    if gmacs_out is not None and gmacs_out != gmacs:
        return f"{gmacs:.4g} GMACs/image (input-grid ConvTranspose; {gmacs_out:.4g} on the output grid)"
    return f"{gmacs:.4g} GMACs/image"


def _memory_cell(e: dict[str, Any]) -> str:
    """CUDA max allocated on GPUs, else peak RSS and its growth over the start."""
    mem = e.get("memory") or {}
    if e.get("device") == "gpu" and mem.get("cuda_max_allocated_mb") is not None:
        return f"{fmt(mem['cuda_max_allocated_mb'])} (CUDA)"
    if mem.get("peak_rss_mb") is not None and mem.get("rss_start_mb") is not None:
        return f"{fmt(mem['peak_rss_mb'])} (+{fmt(max(0.0, mem['peak_rss_mb'] - mem['rss_start_mb']))})"
    return fmt(mem.get("peak_rss_mb"))


def _inference_row(r: Row, ups: dict[str, float | None], multi_run: bool) -> list[Any]:
    e = r.extra
    lat = r.latency_ms()
    max_abs, psnr, verdict = parity_cells(e)
    row = [e.get("size") or NONE, e.get("batch"), f"**{r.label}**" if e.get("baseline") else r.label,
           ms(lat["p50"]), ms(lat["p90"]), ms(lat["p99"]), fmt(e.get("images_per_s")), speedup(r, ups),
           max_abs, psnr, verdict, fmt(e.get("gflops")), fmt(e.get("pct_fp32_peak")), fmt(e.get("pct_precision_peak")),
           _memory_cell(e)]
    return [r.run + 1, *row] if multi_run else row


def inference_section(rows: list[Row], ups: dict[str, float | None], multi_run: bool) -> list[str]:
    """One table a model: latency, throughput, speed-up, parity, % of peak and memory of every configuration."""
    out = ["## Inference", "", INFERENCE_INTRO, ""]
    models: dict[str, list[Row]] = {}
    for r in rows:
        models.setdefault(str(r.extra.get("model")), []).append(r)
    header = (["run"] if multi_run else []) + INFERENCE_HEADER
    align = ("r" if multi_run else "") + "rrl" + "r" * 7 + "l" + "r" * 4
    for model, mrows in models.items():
        e0 = mrows[0].extra
        out += [f"### {model}", "", f"{e0.get('summary', '')}. Weights: {e0.get('weights', 'unknown')}. {_macs_text(e0)}",
                ""]
        out += [table(header, [_inference_row(r, ups, multi_run) for r in sorted(mrows, key=inference_order)], align), ""]
    return out


def summary_section(rows: list[Row], ups: dict[str, float | None]) -> list[str]:
    """Per (run, model, size, batch): the baseline and the fastest configuration within its gate."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for r in rows:
        groups.setdefault(baseline_key(r), []).append(r)
    lines = []
    for grows in groups.values():
        base = next((r for r in grows if r.extra.get("baseline")), None)
        ok = [r for r in grows if (r.extra.get("parity") or {}).get("pass")]
        if base is None or not ok:
            continue
        best = min(ok, key=lambda r: r.median_s)
        e = best.extra
        lines.append([e.get("model"), e.get("size") or NONE, e.get("batch"), e.get("device"),
                      ms(base.latency_ms()["p50"]), best.label, ms(best.latency_ms()["p50"]), ratio(ups.get(best.key)),
                      parity_cells(e)[1], fmt(e.get("pct_fp32_peak"))])
    if not lines:
        return []
    return ["## Summary: fastest configuration within its parity gate", "",
            table(["model", "size", "batch", "device", "eager fp32 p50 ms", "fastest", "p50 ms", "speed-up",
                   "PSNR dB", "% fp32 peak"], lines, "llrlrlrrrr"), ""]


def pipeline_section(rows: list[Row], ups: dict[str, float | None]) -> list[str]:
    """FPS, frame latency and age of the webcam path on a generated video, per model, input size and configuration."""
    lines = []
    for r in sorted(rows, key=lambda r: (r.run, str(r.extra.get("model")), r.extra.get("model_input_max_side") or 0,
                                         not r.extra.get("baseline"), r.label)):
        e = r.extra
        lat, age = e.get("frame_latency_ms") or {}, e.get("age_ms") or {}
        _, psnr, verdict = parity_cells(e)
        lines.append([e.get("model"), e.get("model_input_max_side"), r.label, e.get("frames"), fmt(e.get("fps")),
                      speedup(r, ups), ms(lat.get("p50")), ms(lat.get("p99")), ms(age.get("p50")), ms(age.get("p99")),
                      psnr, verdict])
    video = rows[0].extra.get("video", "")
    return ["## Video pipeline (webcam path on a file)", "",
            (f"`infer.webcam.run_pipeline` over a generated {video} video: decode, translate (pre/post-processing "
             "included), side-by-side compose and overlay, every frame (file mode drops none). FPS = frames / wall "
             "time of the run; latency = translate + compose per frame; age = frame read to result. Parity on the "
             "uint8 output frame against the same step with the torch eager fp32 model."), "",
            table(["model", "input side", "config", "frames", "FPS", "speed-up", "latency p50 ms", "p99 ms",
                   "age p50 ms", "age p99 ms", "PSNR dB", "parity"], lines, "lrlrrrrrrrrl"), ""]


def service_section(rows: list[Row]) -> list[str]:
    """Requests/s, latency and server batch of the HTTP service at each concurrency level."""
    lines = []
    for r in sorted(rows, key=lambda r: (r.run, str(r.extra.get("backend")), r.extra.get("concurrency") or 0)):
        e = r.extra
        lat = e.get("latency_ms") or {}
        lines.append([f"{e.get('backend')} {e.get('precision')}", e.get("concurrency"), e.get("requests"), e.get("ok"),
                      e.get("busy_503"), e.get("errors"), fmt(e.get("requests_per_s")), ms(lat.get("p50")), ms(lat.get("p99")), fmt(e.get("mean_batch")),
                      fmt((e.get("server") or {}).get("peak_rss_mb"))])
    e0 = rows[0].extra
    return ["## HTTP service under a bounded loopback load", "",
            (f"`python -m infer serve` ({e0.get('artifact')}, dynamic batching with "
             f"max delay {(e0.get('server') or {}).get('max_delay_ms')} ms) in its own process; `infer.loadtest` "
             f"sends a fixed number of {e0.get('endpoint')} requests ({e0.get('image')}) per level from this many "
             "concurrent clients on the same machine. Latency is client-side, send to full response."), "",
            table(["backend", "concurrency", "requests", "ok", "503 busy", "errors", "requests/s", "p50 ms", "p99 ms",
                   "mean server batch", "server peak RSS MB"], lines), ""]


def overhead_section(rows: list[Row]) -> list[str]:
    """ganrt's runner against the runtime's own call on the same model file, same process, interleaved."""
    lines = []
    for r in sorted(rows, key=lambda r: (r.run, str(r.extra.get("model")), str(r.extra.get("size")), r.label)):
        e = r.extra
        lines.append([e.get("model"), e.get("size"), r.label, ms(e.get("bare_ms")), ms(e.get("ganrt_ms")),
                      f"{e.get('overhead_pct'):+.1f}%" if e.get("overhead_pct") is not None else NONE,
                      fmt(e.get("within_target"))])
    target = rows[0].extra.get("target_pct")
    return ["## ganrt over the bare runtime call", "", str(rows[0].extra.get("timing", "")) + f"; target <= {target}%.",
            "", table(["model", "size", "config", "bare p50 ms", "ganrt p50 ms", "overhead", "within target"], lines),
            ""]


def auto_section(rows: list[Row]) -> list[str]:
    """What `auto` picked by measurement, against the fastest row within its gate in the same run."""
    lines = []
    for r in sorted(rows, key=lambda r: (r.run, str(r.extra.get("model")), str(r.extra.get("size")))):
        e = r.extra
        lines.append([e.get("model"), e.get("size"), e.get("pick"), ms(e.get("pick_ms")), e.get("fastest"),
                      ms(e.get("fastest_ms")), fmt(e.get("pick_vs_fastest")), fmt(e.get("within_10pct")),
                      fmt(e.get("probe_seconds"))])
    return ["## auto's pick at batch 1", "", ("`auto` probes every backend x precision at batch 1 at the artifact's "
            "default size (each backend in a fresh process), then picks the fastest within its parity gate; here "
            "it probed with an empty cache, and its pick is compared with the fastest row within its gate of this "
            "run's inference tables (target: within 10%)."), "",
            table(["model", "size", "auto picked", "its p50 ms", "fastest", "p50 ms", "ratio", "within 10%",
                   "probe s"], lines), ""]


def _train_precision(amp: Any) -> str:
    """The autocast dtype a training row ran with (older JSON stored only a flag)."""
    if isinstance(amp, str):
        return amp
    return "autocast" if amp else "fp32"


def training_section(rows: list[Row]) -> list[str]:
    """Step time and images/s of one training step of each variant and preset."""
    lines = []
    for r in sorted(rows, key=lambda r: (r.run, str(r.extra.get("variant")), str(r.extra.get("preset")))):
        e = r.extra
        lat = r.latency_ms()
        params = e.get("parameters") or {}
        lines.append([e.get("variant"), e.get("preset") or NONE, e.get("device"), _train_precision(e.get("amp")),
                      e.get("batch"), e.get("size") or NONE, e.get("batches_per_step"), ms(lat["p50"]), ms(lat["p90"]),
                      fmt(e.get("images_per_s")), fmt(e.get("steps_per_s")),
                      f"{sum(params.values()) / 1e6:.2f}" if params else NONE,
                      fmt((e.get("memory") or {}).get("peak_rss_mb"))])
    return ["## Training throughput", "",
            ("One training step (D and G updates of the variant's own `TrainStep`) with batches prefetched: data "
             "loading excluded. images/s counts every real image a step consumes."), "",
            table(["variant", "preset", "device", "precision", "batch", "size", "batches/step", "ms/step p50", "p90",
                   "images/s", "steps/s", "params M (all nets)", "peak RSS MB"], lines), ""]


def reference_training_section(rows: list[Row]) -> list[str]:
    """The CycleGAN step at the reference script's settings, fp32 and bf16, against the quoted figure."""
    fp32 = {r.run: r.median_s for r in rows if r.extra.get("precision") == "fp32"}
    lines = []
    for r in sorted(rows, key=lambda r: (r.run, r.extra.get("precision") != "fp32")):
        e = r.extra
        lat = r.latency_ms()
        losses = e.get("first_step_losses") or {}
        lines.append([r.run + 1, e.get("precision"), e.get("device"), ms(lat["p50"]), ms(lat["p90"]),
                      ratio(fp32[r.run] / r.median_s) if r.run in fp32 else NONE,
                      f"{e.get('reference_s_per_iter')} s: {e.get('speedup_vs_reference')}x",
                      ", ".join(f"{k} {v:.4f}" for k, v in losses.items())])
    return ["## CycleGAN step at the reference settings", "",
            ("128x128, 6 residual blocks, ngf/ndf 64, batch 1, identity loss on: the settings at which the translation "
             "issue quotes about 1.6 s per iteration for a widely used single-script PyTorch CycleGAN on this 2-core "
             "CPU (a figure quoted, not measured in this run). Speed-up vs fp32 is measured within one run. First-step "
             "losses: the step's loss terms from the same initial weights and batch."), "",
            table(["run", "precision", "device", "ms/step p50", "p90", "speed-up vs fp32", "vs quoted reference",
                   "first-step losses"], lines), ""]


def other_section(rows: list[Row]) -> list[str]:
    """Benchmarks without ganrt's extra_info: their median time."""
    lines = [[r.fullname, ms(r.median_s * 1000), r.stats.get("rounds")] for r in rows]
    return ["## Other benchmarks", "", table(["benchmark", "median ms", "rounds"], lines), ""]
