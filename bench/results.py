"""The results model of `python -m bench report`: pytest-benchmark JSON files as runs of rows.

Speed-ups are ratios within one run: each row against the PyTorch eager fp32 row of the same
model, image size, batch and device class.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.cases import CONFIGS

# The kinds whose rows have a baseline row (torch eager fp32) in the same run.
WITH_BASELINE = ("inference", "pipeline")


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
    def key(self) -> str:
        """Unique over all runs of a report: run index and fullname."""
        return f"{self.run}:{self.fullname}"

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
        """The bench configuration's label (torch-fp32-eager, ort-cpu-int8, ...)."""
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

    @property
    def gpu(self) -> str | None:
        """The GPU the run had, if any."""
        return (self.ganrt.get("gpu") or {}).get("gpu")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ReportError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"{path} is not a pytest-benchmark JSON file: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ReportError(f"{path} is not a pytest-benchmark JSON file (no \"benchmarks\" list); write one with "
                          f"pytest --benchmark-only --benchmark-json={path}")
    return data


def load_run(path: Path, index: int) -> Run:
    """Parse one pytest-benchmark JSON file; `index` numbers the run within a report."""
    data = _read_json(path)
    run = Run(Path(path), data.get("machine_info") or {}, data.get("commit_info") or {}, str(data.get("datetime", "")))
    for b in data["benchmarks"]:
        try:
            run.rows.append(Row(index, b["name"], b.get("fullname", b["name"]), b.get("group"), b["stats"],
                                b.get("extra_info") or {}))
        except (KeyError, TypeError) as e:
            raise ReportError(f"{path}: malformed benchmark entry ({e!r})") from None
    return run


def baseline_key(row: Row) -> tuple[Any, ...]:
    """Rows with the same key are compared with one baseline: same run, model, size, batch and device."""
    e = row.extra
    if row.kind == "inference":
        return (row.run, "inference", e.get("model"), e.get("size"), e.get("batch"), e.get("device"))
    if row.kind == "pipeline":
        return (row.run, "pipeline", e.get("model"), e.get("model_input_max_side"), e.get("device"))
    return (row.run, row.kind, row.name)


def speedups(rows: Sequence[Row]) -> dict[str, float | None]:
    """Row.key -> speed-up over the eager fp32 baseline of the same run, model, size, batch and device.

    Pipeline rounds have the same frame count per model and size, so their time ratio is the FPS ratio.
    """
    base = {baseline_key(r): r.median_s for r in rows if r.extra.get("baseline") and r.kind in WITH_BASELINE}
    out: dict[str, float | None] = {}
    for r in rows:
        b = base.get(baseline_key(r)) if r.kind in WITH_BASELINE else None
        out[r.key] = None if b is None else b / r.median_s
    return out


def _size_order(size: Any) -> int:
    try:
        return int(str(size).split("x")[0])
    except ValueError:
        return 0


def inference_order(row: Row) -> tuple[Any, ...]:
    """Sort key of inference rows: run, device, size, batch, then configurations in the bench's order."""
    e = row.extra
    order = list(CONFIGS)
    position = order.index(row.label) if row.label in order else len(order)
    return (row.run, e.get("device") or "", _size_order(e.get("size")), e.get("batch") or 0, position, row.label)
