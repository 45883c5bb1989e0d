"""Parity as the benchmarks record it: the gate on decoded pictures, and the `extra_info["parity"]` entry."""
from __future__ import annotations

from typing import Any

from ganrt.compare import Comparison, Tolerance


def picture_gate(tolerance: Tolerance) -> Tolerance:
    """The gate on uint8 pictures (peak 255): fp32 agrees to one grey level (rounding), others keep their PSNR floor."""
    return Tolerance(max_abs=1.0) if tolerance.max_abs is not None else Tolerance(psnr_min=tolerance.psnr_min)


def parity_record(comparison: Comparison, gate: Tolerance, reference: str, **details: Any) -> dict[str, Any]:
    """The figures, the gate, whether they pass it, and what was compared with (`details`: what else to say)."""
    return {**comparison.to_json(), "gate": gate.to_json(), "pass": gate.passes(comparison), "reference": reference,
            **details}
