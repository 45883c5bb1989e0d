"""The one comparator (Polygraphy style) and the one tolerance table, shared by export, infer and bench.

Parity is always "the same feeds through two runners", compared here: max-abs and mean-abs
error, PSNR over the output's value range, and allclose-style mismatch counts. Export's
gates, the runner contract tests and the benchmarks all read `TOLERANCES`.
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


# The one tolerance table, keyed by (backend, precision). The reference is always the torch
# generator in fp32, eval mode. Figures measured on this 2-core CPU (ORT 1.32), real held-out
# feeds, worst case over batch 1/3 and two image sizes:
# - fp32 on the CPU: max-abs 1e-8 (tiny nets) to 1.4e-5 (paper-size CycleGAN-256); design.md
#   section 7 asks ~1e-4. A wrong op or a train/eval mode mismatch is off by 1e-2 or more.
# - fp16 ONNX (fp32 I/O): 78-94 dB for the six variants after short training runs, 73 dB
#   (CycleGAN quick) and 68 dB (CycleGAN-256) with random weights. Floor 40 dB: the artifact
#   contract's figure, 28 dB under the worst measurement. (The CPU EP runs InstanceNorm in fp32
#   even in the fp16 model; GPUs are where fp16 InstanceNorm bites, design.md "Known hazards".)
# - int8 static QDQ: 38-56 dB after short training runs (CycleGAN lowest), 32.5 dB for a
#   random-weight CycleGAN quick, 25.8 dB for a random-weight CycleGAN-256 (9 residual blocks
#   of ngf 64 accumulate the error; it fails this gate). Floor 30 dB: Polygraphy's image
#   default, a floor, not a goal (design.md "Known hazards").
# - GPU rows are not measured here (no GPU). CUDA and TensorRT use TF32 for fp32 convolutions
#   by default (10-bit mantissa, ~1e-3 relative), so their fp32 row is a PSNR floor, not
#   1e-4 abs; fp16/int8 share the CPU floors.
# - torch bf16 autocast: 48-49 dB for CycleGAN-256 (design.md section 8); floor 35 dB (bf16
#   has an 8-bit mantissa, coarser than fp16's 11 bits).
FP16_PSNR_FLOOR = 40.0
INT8_PSNR_FLOOR = 30.0
GPU_FP32_PSNR_FLOOR = 50.0
TOLERANCES: dict[tuple[str, str], Tolerance] = {
    ("torch", "fp32"): Tolerance(max_abs=1e-4),
    ("torch", "bf16"): Tolerance(psnr_min=35.0),
    ("ort-cpu", "fp32"): Tolerance(max_abs=1e-4),
    ("ort-cpu", "fp16"): Tolerance(psnr_min=FP16_PSNR_FLOOR),
    ("ort-cpu", "int8"): Tolerance(psnr_min=INT8_PSNR_FLOOR),
    ("ort-cuda", "fp32"): Tolerance(psnr_min=GPU_FP32_PSNR_FLOOR),
    ("ort-cuda", "fp16"): Tolerance(psnr_min=FP16_PSNR_FLOOR),
    ("ort-cuda", "int8"): Tolerance(psnr_min=INT8_PSNR_FLOOR),
    ("ort-trt", "fp32"): Tolerance(psnr_min=GPU_FP32_PSNR_FLOOR),
    ("ort-trt", "fp16"): Tolerance(psnr_min=FP16_PSNR_FLOOR),
    ("ort-trt", "int8"): Tolerance(psnr_min=INT8_PSNR_FLOOR),
    ("trt", "fp32"): Tolerance(psnr_min=GPU_FP32_PSNR_FLOOR),
    ("trt", "fp16"): Tolerance(psnr_min=FP16_PSNR_FLOOR),
    ("trt", "int8"): Tolerance(psnr_min=INT8_PSNR_FLOOR),
}


def tolerance(backend: str, precision: str) -> Tolerance:
    """The gate for a (backend, precision) pair; unknown pairs are a programming error."""
    try:
        return TOLERANCES[(backend, precision)]
    except KeyError:
        known = ", ".join(f"{b}/{p}" for b, p in TOLERANCES)
        raise KeyError(f"no tolerance for {backend}/{precision}; known: {known}") from None


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
