"""Markdown pieces of the benchmark report: tables, and cells for numbers, latencies, speed-ups and parity."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bench.results import Row
from ganrt.compare import PSNR_IDENTICAL

NONE = "–"


def fmt(x: Any, digits: int = 3) -> str:
    """A number at a precision that suits its size (thousands separated, tiny ones in e-notation)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return NONE
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


def ms(x: Any) -> str:
    """Milliseconds with three to four significant digits."""
    if x is None:
        return NONE
    x = float(x)
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:,.0f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown table; `align` has one letter a column, l or r (default: the first left, the rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def speedup(row: Row, ups: dict[str, float | None]) -> str:
    """The speed-up column: "1 (baseline)" on the baseline row, else the ratio to it."""
    if row.extra.get("baseline"):
        return "1 (baseline)"
    return ratio(ups.get(row.key))


def ratio(up: float | None) -> str:
    """A speed-up ratio: 1.85x."""
    return f"{up:.2f}x" if up else NONE


def psnr(p: dict[str, Any]) -> str:
    """A parity entry's PSNR in dB; "identical" within 1 dB of the comparator's cap for identical arrays."""
    value = p.get("psnr")
    if value is None:
        return NONE
    return "identical" if value >= PSNR_IDENTICAL - 1 else f"{value:.1f}"


def parity_cells(e: dict[str, Any]) -> tuple[str, str, str]:
    """(max-abs, PSNR, verdict with its gate) of a row's extra_info: "pass (max-abs ≤ 0.0001)"."""
    p = e.get("parity") or {}
    verdict = "pass" if p.get("pass") else "**FAIL**" if p.get("pass") is False else NONE
    limits = p.get("gate") or {}
    if limits:
        text = " & ".join(f"max-abs ≤ {v:g}" if k == "max_abs" else f"PSNR ≥ {v:g}" for k, v in limits.items())
        also = "; export's gate failed too" if p.get("pass") is False and (e.get("artifact") or {}).get(
            "export_pass") is False else ""
        verdict = f"{verdict} ({text}{also})"
    return fmt(p.get("max_abs")), psnr(p), verdict
