"""The one comparator (Polygraphy style), shared by export's gates, the runner tests and bench.

Parity is always "the same feeds through two runners", compared here: max-abs and mean-abs
error, PSNR over the output's value range, and allclose-style mismatch counts. The gate of
each backend x precision is in `ganrt.targets`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# PSNR of identical arrays: reported as this finite cap so manifests stay valid JSON.
PSNR_IDENTICAL = 200.0


@dataclass(frozen=True)
class Comparison:
    """How far a candidate output is from its reference."""

    max_abs: float
    mean_abs: float
    psnr: float
    # allclose-style: elements with |c - r| > atol + rtol * |r|.
    mismatches: int
    size: int
    # Index (as a tuple) of the largest absolute difference.
    worst_index: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        """Rounded figures for manifests and reports (null where not finite: NaN or inf in the candidate)."""
        def finite(x: float, digits: str) -> float | None:
            return float(format(x, digits)) if math.isfinite(x) else None

        return {"max_abs": finite(self.max_abs, ".3g"), "mean_abs": finite(self.mean_abs, ".3g"),
                "psnr": finite(self.psnr, ".2f")}


@dataclass(frozen=True)
class Tolerance:
    """A parity gate: a max-abs ceiling, a PSNR floor, or both."""

    max_abs: float | None = None
    psnr_min: float | None = None

    def passes(self, c: Comparison) -> bool:
        """Whether `c` is within this tolerance."""
        if self.max_abs is not None and not c.max_abs <= self.max_abs:
            return False
        return self.psnr_min is None or c.psnr >= self.psnr_min

    def to_json(self) -> dict[str, float]:
        """The gate as written in a manifest's parity report."""
        gate: dict[str, float] = {}
        if self.max_abs is not None:
            gate["max_abs"] = self.max_abs
        if self.psnr_min is not None:
            gate["psnr_min"] = self.psnr_min
        return gate


def compare(reference: np.ndarray, candidate: np.ndarray, *, value_range: float = 2.0,
            atol: float = 1e-4, rtol: float = 0.0) -> Comparison:
    """Compare `candidate` with `reference`; PSNR uses `value_range` as the peak (2 for [-1, 1])."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape} vs candidate {cand.shape}")
    if ref.size == 0:
        raise ValueError("cannot compare empty arrays")
    if value_range <= 0:
        raise ValueError(f"value_range must be positive, got {value_range}")
    diff = np.abs(cand - ref)
    # NaN anywhere must fail every gate: make it the worst possible difference.
    diff = np.where(np.isnan(diff), np.inf, diff)
    mse = float(np.mean(diff**2))
    if mse == 0:
        psnr = PSNR_IDENTICAL
    elif math.isfinite(mse):
        psnr = min(PSNR_IDENTICAL, 10 * math.log10(value_range**2 / mse))
    else:
        psnr = -math.inf
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    mismatches = int(np.count_nonzero(diff > atol + rtol * np.abs(ref)))
    return Comparison(max_abs=float(diff.max()), mean_abs=float(diff.mean()), psnr=psnr,
                      mismatches=mismatches, size=int(diff.size), worst_index=tuple(int(i) for i in worst))


def assert_close(reference: np.ndarray, candidate: np.ndarray, *, atol: float = 1e-4, rtol: float = 0.0,
                 psnr_min: float | None = None, value_range: float = 2.0, name: str = "output") -> Comparison:
    """numpy.allclose semantics, plus an optional PSNR floor; the error says how many, how far and where."""
    c = compare(reference, candidate, value_range=value_range, atol=atol, rtol=rtol)
    problems = []
    if c.mismatches:
        ref_v = float(np.asarray(reference)[c.worst_index])
        cand_v = float(np.asarray(candidate)[c.worst_index])
        problems.append(f"{c.mismatches}/{c.size} elements differ by more than atol={atol:g} + rtol={rtol:g}*|ref|; "
                        f"max diff {c.max_abs:.3g} at {c.worst_index} (reference {ref_v:.6g}, candidate {cand_v:.6g})")
    if psnr_min is not None and c.psnr < psnr_min:
        problems.append(f"PSNR {c.psnr:.2f} dB < {psnr_min:g} dB")
    if problems:
        raise AssertionError(f"{name}: " + "; ".join(problems))
    return c


def assert_within(reference: np.ndarray, candidate: np.ndarray, tol: Tolerance, *, value_range: float = 2.0,
                  name: str = "output") -> Comparison:
    """`assert_close` against a gate from the tolerance table."""
    atol = tol.max_abs if tol.max_abs is not None else math.inf
    return assert_close(reference, candidate, atol=atol, psnr_min=tol.psnr_min, value_range=value_range, name=name)


def value_range_of(spec_range: tuple[float, float] | None, reference: np.ndarray) -> float:
    """PSNR peak for an output: its declared range (2 for tanh images), else the reference's peak-to-peak."""
    if spec_range is not None:
        return float(spec_range[1] - spec_range[0])
    span = float(np.ptp(reference))
    return span if span > 0 else 1.0


def worst_of(comparisons: list[Comparison]) -> Comparison:
    """The worst figures over several comparisons (several outputs, or several cases)."""
    worst = max(comparisons, key=lambda c: c.max_abs)
    return Comparison(max_abs=worst.max_abs, mean_abs=max(c.mean_abs for c in comparisons),
                      psnr=min(c.psnr for c in comparisons), mismatches=sum(c.mismatches for c in comparisons),
                      size=sum(c.size for c in comparisons), worst_index=worst.worst_index)


def compare_outputs(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
                    ranges: dict[str, float]) -> Comparison:
    """Worst comparison over a model's outputs, PSNR peaks from `ranges` (output name -> value range)."""
    return worst_of([compare(reference[name], candidate[name], value_range=span) for name, span in ranges.items()])
