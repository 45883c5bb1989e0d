"""The report's PNG plots: latency vs batch size, throughput, and parity against the torch eager fp32 model."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.results import Row, inference_order
from ganrt.targets import BACKENDS, TARGETS

# Bars of the parity plot stop here: identical outputs (200 dB) would squeeze every other bar.
PSNR_DISPLAY_CAP = 150.0
# One colour a backend, in ganrt.targets' order: torch red, ONNX Runtime CPU blue, CUDA green, ...
COLORS = dict(zip(BACKENDS, ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:olive")))
FLOOR_STYLES = (":", "-.", "--", "-")


def _bar_label(r: Row) -> str:
    """'cyclegan-256 256x256 b1 ort-cpu-int8': one bar of the throughput and parity plots."""
    return f"{r.extra.get('model')} {r.extra.get('size') or ''} b{r.extra.get('batch')} {r.label}".replace("  ", " ")


def _save(fig: Any, stem: Path, suffix: str) -> Path:
    """Write `fig` beside the report as <stem>-<suffix>.png and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = stem.parent / f"{stem.name}-{suffix}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def psnr_floors() -> dict[str, float]:
    """The PSNR floor of each precision gated by one on the CPU (ganrt.targets), lowest first."""
    floors = {t.precision: t.tolerance.psnr_min for t in TARGETS if not t.gpu and t.tolerance.psnr_min is not None}
    return dict(sorted(floors.items(), key=lambda kv: kv[1]))


def _latency_vs_batch(rows: list[Row], stem: Path) -> Path | None:
    """One panel per (run, model, size, device) with more than one batch size, one line per configuration."""
    import matplotlib.pyplot as plt

    panels: dict[tuple[Any, ...], list[Row]] = {}
    for r in rows:
        panels.setdefault((r.run, r.extra.get("model"), r.extra.get("size"), r.extra.get("device")), []).append(r)
    panels = {k: v for k, v in panels.items() if len({r.extra.get("batch") for r in v}) > 1}
    if not panels:
        return None
    cols = min(3, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.9 * nrows), squeeze=False)
    for ax, ((_, model, size, device), prow) in zip(axes.flat, sorted(panels.items(), key=lambda kv: str(kv[0]))):
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
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return _save(fig, stem, "latency-vs-batch")


def _throughput(ordered: list[Row], stem: Path) -> Path:
    """One bar of images/s per row, coloured by backend."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.22 * len(ordered) + 1.2)))
    ax.barh(range(len(ordered)), [r.extra.get("images_per_s") or 0 for r in ordered],
            color=[COLORS.get(str(r.extra.get("backend")), "tab:gray") for r in ordered])
    ax.set_yticks(range(len(ordered)), [_bar_label(r) for r in ordered], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("images/s (log scale; red torch, blue ONNX Runtime CPU)")
    ax.set_title("Inference throughput")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return _save(fig, stem, "throughput")


def _parity(ordered: list[Row], stem: Path) -> Path | None:
    """One bar of PSNR per checked row (green within its gate, red outside), with the precisions' floors."""
    import matplotlib.pyplot as plt

    checked = [r for r in ordered if not r.extra.get("baseline") and (r.extra.get("parity") or {}).get("psnr") is not None]
    if not checked:
        return None
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.22 * len(checked) + 1.2)))
    psnr = [min(PSNR_DISPLAY_CAP, r.extra["parity"]["psnr"]) for r in checked]
    ok = [(r.extra.get("parity") or {}).get("pass") for r in checked]
    ax.barh(range(len(checked)), psnr, color=["tab:green" if p else "tab:red" for p in ok])
    ax.set_yticks(range(len(checked)), [_bar_label(r) for r in checked], fontsize=7)
    ax.invert_yaxis()
    for (precision, floor), style in zip(psnr_floors().items(), FLOOR_STYLES):
        ax.axvline(floor, color="k", ls=style, lw=0.8, label=f"{precision} floor {floor:g} dB")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel(f"PSNR vs torch eager fp32 (dB, capped at {PSNR_DISPLAY_CAP:g}; red = outside its gate)")
    ax.set_title("Parity against the PyTorch eager fp32 model")
    return _save(fig, stem, "parity")


def make_plots(rows: list[Row], out: Path) -> dict[str, Path]:
    """PNG plots next to `out`: latency vs batch, throughput, parity. Returns {title: path}."""
    import matplotlib

    matplotlib.use("Agg")
    inference = [r for r in rows if r.kind == "inference"]
    if not inference:
        return {}
    stem = out.with_suffix("")
    ordered = sorted(inference, key=lambda r: (str(r.extra.get("model")),) + inference_order(r))
    made = {"Latency vs batch size per backend": _latency_vs_batch(inference, stem),
            "Throughput": _throughput(ordered, stem), "Parity": _parity(ordered, stem)}
    return {title: path for title, path in made.items() if path is not None}
