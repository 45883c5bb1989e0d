"""`python -m export`: turn a trained generator into a verified deployment artifact.

Exit codes: 0 done, 1 a parity gate failed (the artifact is written, marked "failed") or a
bug, 2 bad usage or input (one-line message), or --trt asked on a machine without TensorRT
or a GPU (the ONNX part is still written).
"""
from __future__ import annotations

import argparse
import datetime
import logging
import sys
from pathlib import Path

from export.options import ExportOptions
from export.parity import ParityReport
from export.pipeline import ExportResult, run_export
from export.source import run_generators
from ganrt import config as config_mod
from ganrt.artifact import GENERATOR_FILE, MANIFEST
from ganrt.errors import UsageError
from ganrt.locations import shipped_generator
from ganrt.targets import REFERENCE, gate_of
from train import registry

log = logging.getLogger("ganrt.export")

EXAMPLES = """precision outputs:
  with no --onnx/--fp16/--int8/--trt flag, fp32, fp16 and int8 ONNX models are all written
  (fp16 for GPUs, int8 the fastest on CPUs); with any of them, fp32 plus exactly what is asked.
  --trt builds the engine in fp16, or int8 (from the QDQ model) with --int8.

examples:
  python -m export                                   # latest run, or the shipped CycleGAN
  python -m export runs/cyclegan/20261125-101500     # a run (its generator.safetensors)
  python -m export model.safetensors --fp16 --out /tmp/art
  python -m export cyclegan-photo2sketch --trt       # add an engine to an artifact (GPU machine)
  python -m export --size 256,320 --batch 1:4:16 --calibration entropy
  python -m export checkpoints/horse2zebra/latest_net_G.pth          # junyanz's CycleGAN (layout from its keys)
  python -m export saved_models/facades/generator_199.pth            # PyTorch-GAN's pix2pix
  python -m export junyanz:pix2pix/facades_label2photo --mode train  # downloaded; test.py's statistics
  python -m export --module mypkg.nets:make_generator --weights g.pth --input image:3xHxW --size-multiple 4
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line: ExportOptions' flags (every one explained in --help), then --list, -q and -v."""
    p = argparse.ArgumentParser(prog="python -m export", formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Export a generator to ONNX (fp32/fp16/int8) and TensorRT, with a "
                                            "parity report, a manifest and a Triton model repository.",
                                epilog=EXAMPLES)
    config_mod.add_config_flags(p, ExportOptions)
    p.add_argument("--list", action="store_true", help="list variants, runs, the shipped generator and artifacts, "
                                                       "then exit")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings, errors and the summary")
    p.add_argument("-v", "--verbose", action="store_true", help="debug log (exporter warnings included)")
    return p


def list_sources(runs_root: Path, artifacts_root: Path) -> str:
    """Variants, finished runs (newest first), the shipped generator and artifacts."""
    lines = ["variants: " + ", ".join(registry.names())]
    runs = run_generators(runs_root)
    lines.append(f"runs under {runs_root}/ (newest first):" if runs else f"no finished runs under {runs_root}/")
    for g in runs:
        when = datetime.datetime.fromtimestamp(g.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        lines.append(f"  {g.parent}  ({when})")
    shipped = shipped_generator()
    if not shipped.is_file():
        lines.append(f"no shipped generator at {shipped}")
    else:
        default = "" if runs else " (the default source: no finished run)"
        lines.append(f"shipped generator: {shipped}{default}")
    arts = sorted(artifacts_root.glob(f"*/{MANIFEST}")) if artifacts_root.is_dir() else []
    lines.append(f"artifacts under {artifacts_root}/:" if arts else f"no artifacts under {artifacts_root}/")
    lines += [f"  {m.parent.name}" for m in arts]
    return "\n".join(lines)


def summary_table(result: ExportResult) -> str:
    """Each file with its size and parity figures, then each stage's time."""
    manifest, out = result.manifest, result.out_dir
    rows = [("file", "MB", "checked on", "worst max-abs", "worst PSNR", "gate", "result")]
    gen = out / GENERATOR_FILE
    rows.append(_row(gen.name, gen.stat().st_size, result.reports.get(REFERENCE.key)))
    for fmt, entries in manifest.models.items():
        for precision, entry in entries.items():
            rows.append(_row(entry["file"], entry["bytes"], result.reports.get(gate_of((fmt, precision)).key)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"artifact {out}  (status: {manifest.status})"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in rows]
    lines.append("stages: " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result.stages)
                 + f"; total {sum(s for _, s in result.stages):.1f}s")
    failed = [p for p, r in result.reports.items() if not r.passed]
    if failed:
        lines.append(f"FAILED parity: {', '.join(failed)} (the manifest says which cases)")
    if result.trt_missing:
        lines.append(f"TensorRT engine NOT built: this machine lacks {' and '.join(result.trt_missing)}; "
                     f"the ONNX models, manifest and Triton repository above were written")
    return "\n".join(lines)


def _row(file: str, size: int, report: ParityReport | None) -> tuple[str, ...]:
    mb = f"{size / 2**20:.2f}"
    if report is None:
        return (file, mb, "-", "-", "-", "-", "-")
    worst = report.worst
    gate = ", ".join(f"{k} {v:g}" for k, v in report.gate.to_json().items())
    return (file, mb, f"{report.backend} {report.precision}", f"{worst.max_abs:.3g}", f"{worst.psnr:.1f} dB", gate,
            "pass" if report.passed else "FAIL")


_handler: logging.Handler | None = None


def _log_to_stdout(level: int) -> None:
    # The step-by-step log is this command's output (stdout); stderr keeps only the one-line
    # error. Other libraries' loggers are left alone (their INFO chatter stays off).
    global _handler
    logger = logging.getLogger("ganrt")
    if _handler is not None:
        logger.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stdout)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    try:
        opts = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed by argparse
        return int(e.code or 0)
    _log_to_stdout(logging.DEBUG if opts.verbose else logging.WARNING if opts.quiet else logging.INFO)
    try:
        options = config_mod.from_args(ExportOptions, opts)
        if opts.list:
            print(list_sources(options.runs_root, options.artifacts_root))
            return 0
        result = run_export(options)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary_table(result))
    if result.trt_missing:
        print(f"error: --trt needs {' and '.join(result.trt_missing)}; wrote the ONNX parts to {result.out_dir}",
              file=sys.stderr)
    return result.exit_code
