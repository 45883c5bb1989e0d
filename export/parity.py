"""Parity at export time: the same feeds through the torch runner (reference) and a candidate runner.

Its stage measures the artifact as consumers will run it: the manifest read back, the torch
runner rebuilding the generator from the artifact's own weights, each ONNX model on ort-cpu.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from export.feeds import Case, case_feeds, parity_cases
from ganrt.artifact import Artifact
from ganrt.compare import Comparison, Tolerance, compare_outputs, value_range_of, worst_of
from ganrt.signature import TensorSpec
from ganrt.targets import REFERENCE, target
from infer.runners import open_runner
from infer.runners.base import Runner
from infer.runners.onnxrt import OrtRunner, session_loader

if TYPE_CHECKING:
    from export.context import ExportContext

log = logging.getLogger("ganrt.export")


def ort_cpu_runner(model: Path, inputs: list[TensorSpec], outputs: list[TensorSpec], precision: str,
                   size_multiple: int) -> OrtRunner:
    """An inactive ort-cpu runner for a model file (candidates that are not in an artifact yet)."""
    return OrtRunner(session_loader(model, "ort-cpu"), inputs, outputs, backend="ort-cpu", precision=precision,
                     size_multiple=size_multiple)


@dataclass
class CaseSet:
    """Parity cases with their feeds and the reference outputs, computed once and shared by every candidate."""

    cases: list[Case]
    feeds: list[dict[str, np.ndarray]]
    references: list[dict[str, np.ndarray]]
    # PSNR peak per output: its declared range (2 for tanh images), else the peak-to-peak of the
    # reference over many rows (toy points) — never of one small case, whose spread means little.
    ranges: dict[str, float]

    @classmethod
    def build(cls, cases: list[Case], base: dict[str, np.ndarray], inputs: list[TensorSpec], outputs: list[TensorSpec],
              reference: Runner, ranges: dict[str, float] | None = None) -> "CaseSet":
        """Make every case's feeds from real rows and run them through the (active) reference runner."""
        feeds = [case_feeds(base, inputs, c) for c in cases]
        references = [reference.infer(f) for f in feeds]
        if ranges is None:
            ranges = {s.name: value_range_of(s.range, np.concatenate([r[s.name].ravel() for r in references]))
                      for s in outputs}
        return cls(cases, feeds, references, ranges)


@dataclass
class ParityReport:
    """One precision's parity: every case against the reference, and its gate."""

    precision: str
    backend: str
    gate: Tolerance
    results: list[tuple[Case, Comparison]]
    ranges: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether every case is within the gate."""
        return all(self.gate.passes(c) for _, c in self.results)

    @property
    def worst(self) -> Comparison:
        """Worst figures over all cases."""
        return worst_of([c for _, c in self.results])

    def to_json(self) -> dict[str, Any]:
        """The manifest's parity entry for this precision."""
        return {"backend": self.backend, "reference": "torch fp32, eval mode", "pass": self.passed,
                "gate": self.gate.to_json(), "psnr_peak": {k: float(f"{v:.4g}") for k, v in self.ranges.items()},
                "worst": self.worst.to_json(),
                "cases": [{**case.to_json(), **c.to_json(), "pass": self.gate.passes(c)} for case, c in self.results]}


def measure(candidate: Runner, case_set: CaseSet, gate: Tolerance) -> ParityReport:
    """Run every case through an active candidate runner and compare with the references."""
    results = [(case, compare_outputs(ref, candidate.infer(feeds), case_set.ranges))
               for case, feeds, ref in zip(case_set.cases, case_set.feeds, case_set.references)]
    return ParityReport(candidate.precision, candidate.backend, gate, results, case_set.ranges)


def stage(ctx: ExportContext) -> None:
    """The reference and every ONNX model through infer's runners, at two batch sizes and two image sizes."""
    ctx.manifest.save(ctx.out)
    art = Artifact.load(ctx.out)
    cases = ctx.cases(parity_cases(ctx.inputs, ctx.size, ctx.size_multiple))
    for tgt in [REFERENCE] + [target("ort-cpu", p) for p in ctx.opts.onnx_precisions()]:
        with open_runner(art, tgt.backend, tgt.precision) as runner:
            report = measure(runner, cases, tgt.tolerance)
        ctx.reports[tgt.key] = report
        log.info("      %-8s %-5s worst max-abs %.3g, PSNR %.1f dB: %s", tgt.backend, tgt.precision,
                 report.worst.max_abs, report.worst.psnr,
                 "pass" if report.passed else f"FAIL (gate {report.gate.to_json()})")
