"""`auto` on a CPU, by measurement: the fastest backend x precision whose parity passes its gate, on this machine.

The probe runs every candidate this machine and artifact offer (the CPU targets of
`ganrt.targets` whose backend is installed and whose model file the artifact holds;
torch.compile is left out: 10-20 s of compilation per shape) on the same batch-1 feeds. Each
backend runs in a fresh process, as a deployment would run it, so no runtime is timed in a heap
or thread pools another left behind (issue 12 measured 25-40% slowdowns after torch eager on a
Zen 5 machine; on this Zen 4 one they stayed within the run-to-run noise). Per candidate it records the median latency of at least MIN_CALLS timed calls
(more until BUDGET_S; one only, once a candidate is PRUNE_FACTOR times slower than the fastest
so far) and its parity against the reference (torch fp32 where torch and the weights are here,
else ONNX Runtime fp32: the deployment without torch), with `ganrt.compare`, within the
target's tolerance. A candidate whose model file export measured outside its gate (the
manifest's parity report, on real held-out rows) fails too.

The measurements are cached as JSON under `cache_root()/auto/`, in a file named by a key over
the machine (CPU model and ISA flags, cores, threads, library versions) and the artifact (its
manifest and the sha256 of every model file): a change of either measures again. `choose`
reads the pick from the measurements, so a measurement file is all a decision needs.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.artifact import MANIFEST, Artifact, sha256_unless_unchanged
from ganrt.atomic import atomic_write_text
from ganrt.compare import compare_outputs, value_range_of
from ganrt.errors import BackendUnavailable
from ganrt.locations import cache_root
from ganrt.targets import TARGETS, WEIGHTS, Target, gate_of, target
from infer.runners.base import example_feeds
from infer.runners.devices import cpu_count, cpu_flags, cpu_model

log = logging.getLogger("ganrt.infer")

PROBE_VERSION = 1
MIN_CALLS = 5
BUDGET_S = 0.5
PRUNE_FACTOR = 3.0
# The order backends are probed in (it decides nothing: only how early slow candidates are cut short).
PROBE_ORDER = ("ov-cpu", "ort-cpu", "torch")
# The reference of every probe, the first of these that can run here.
REFERENCES = (("torch", "fp32"), ("ort-cpu", "fp32"), ("ov-cpu", "fp32"))
VERSIONED = ("ganrt", "numpy", "onnxruntime", "openvino", "torch")
CHILD_TIMEOUT_S = 600


@dataclass
class Measurement:
    """One candidate on this machine: batch-1 latency, parity with the reference, and why it fails if it does."""

    backend: str
    precision: str
    median_ms: float | None = None
    calls: int = 0
    first_call_ms: float | None = None
    parity: dict[str, Any] | None = None
    passed: bool = False
    note: str = ""

    @property
    def key(self) -> str:
        """"ov-cpu/int8"."""
        return f"{self.backend}/{self.precision}"


@dataclass
class Measurements:
    """Every candidate's measurement for one artifact on one machine (what the cache file holds)."""

    artifact: str
    machine: dict[str, Any]
    digest: str
    rows: list[Measurement]
    created: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    reference: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The cache file's content."""
        return {"probe": PROBE_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Measurements":
        """Inverse of `to_json` (KeyError/TypeError on a malformed file)."""
        rows = [Measurement(**r) for r in d["rows"]]
        return cls(d["artifact"], d["machine"], d["digest"], rows, d["created"], d.get("reference", ""),
                   d.get("seconds", 0.0))


def choose(measured: Measurements) -> tuple[Measurement, str]:
    """The fastest measurement whose parity passed, and a one-line reason; BackendUnavailable when none did."""
    timed = [m for m in measured.rows if m.median_ms is not None]
    passing = sorted((m for m in timed if m.passed), key=lambda m: m.median_ms or 0.0)
    if not passing:
        notes = "; ".join(f"{m.key}: {m.note}" for m in measured.rows) or "no candidate"
        raise BackendUnavailable(f"auto found no backend that runs {measured.artifact} within its gate here ({notes})")
    best = passing[0]
    others = ", ".join(f"{m.key} {m.median_ms:.3g} ms" for m in passing[1:4])
    failed = [m for m in measured.rows if not m.passed]
    why = (f"fastest of {len(passing)} candidates within their parity gate at batch 1: {best.key} "
           f"{best.median_ms:.3g} ms ({_parity_text(best)})" + (f"; next {others}" if others else "")
           + (f"; excluded: {', '.join(f'{m.key} ({m.note})' for m in failed)}" if failed else ""))
    return best, why


def _parity_text(m: Measurement) -> str:
    """"max-abs 3.6e-06, PSNR 139.8 dB; gate: max-abs <= 0.0001" (or "the reference")."""
    p = m.parity or {}
    if p.get("reference"):
        return "the reference"
    gate = p.get("gate") or {}
    limits = ([f"max-abs <= {gate['max_abs']:g}"] if "max_abs" in gate else []) + (
        [f"PSNR >= {gate['psnr_min']:g} dB"] if "psnr_min" in gate else [])
    return f"max-abs {p.get('max_abs')}, PSNR {p.get('psnr')} dB; gate: {', '.join(limits)}"


# ---- keys: the machine and the artifact ------------------------------------------------------------
def machine_description(threads: int) -> dict[str, Any]:
    """What a measurement depends on besides the artifact: CPU, ISA flags, cores, threads, library versions."""
    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": cpu_count(), "threads": threads,
            "versions": {p: version(p) for p in VERSIONED}}


def artifact_digest(art: Artifact) -> str:
    """sha256 over the manifest and the sha256 of every model file it lists that is present."""
    h = hashlib.sha256((art.root / MANIFEST).read_bytes())
    files = {entry[k] for entries in art.manifest.models.values() for entry in entries.values()
             for k in ("file", "weights") if isinstance(entry.get(k), str)}
    paths = sorted(p for p in [art.generator_path, *(art.path_of(f) for f in files)] if p.is_file())
    for path in paths:
        h.update(f"{path.name}:{sha256_unless_unchanged(path)}".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """Where one artifact's measurements on this machine live, and what their key covers."""

    path: Path
    machine: dict[str, Any]
    digest: str

    def read(self) -> Measurements | None:
        """The cached measurements, or None when absent, unreadable or measured for another machine or artifact."""
        if not self.path.is_file():
            return None
        try:
            measured = Measurements.from_json(json.loads(self.path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("auto: ignoring the unreadable measurement file %s (%s)", self.path, e)
            return None
        return measured if measured.machine == self.machine and measured.digest == self.digest else None


def cache_entry(art: Artifact, threads: int, precision: str | None = None) -> CacheEntry:
    """The measurement file of this artifact on this machine at this thread count (and precision, if fixed)."""
    machine = machine_description(threads)
    digest = artifact_digest(art)
    key = hashlib.sha256(json.dumps({"probe": PROBE_VERSION, "machine": machine, "artifact": digest,
                                     "precision": precision}, sort_keys=True).encode()).hexdigest()
    return CacheEntry(cache_root() / "auto" / f"{art.name}-{key[:16]}.json", machine, digest)


def measured_choice(art: Artifact, available: list[str], threads: int, precision: str | None = None
                    ) -> tuple[Measurement, str, Path]:
    """(auto's pick, why, the measurement file): read from the cache, or probed now (and logged) on first use."""
    entry = cache_entry(art, threads, precision)
    measured = entry.read()
    if measured is None:
        log.info("auto: %s has not been measured on this machine yet: probing each backend x precision at batch 1, "
                 "each backend in a fresh process (`python -m infer probe %s` does this ahead of time)",
                 art.name, art.root)
        measured = probe(art, available, threads, precision, entry)
    best, why = choose(measured)
    return best, why, entry.path


# ---- measuring --------------------------------------------------------------------------------------
def candidates(art: Artifact, available: list[str], precision: str | None = None) -> list[Target]:
    """The CPU targets to probe: backend installed, model file in the artifact, `precision` if given."""
    found = [t for t in TARGETS if not t.gpu and t.backend in available and art.has(t)
             and (precision is None or t.precision == precision)]
    return sorted(found, key=lambda t: PROBE_ORDER.index(t.backend) if t.backend in PROBE_ORDER else len(PROBE_ORDER))


def probe(art: Artifact, available: list[str], threads: int, precision: str | None = None,
          entry: CacheEntry | None = None) -> Measurements:
    """Measure every candidate (each backend in a fresh process), compare with the reference, write the cache file."""
    entry = entry or cache_entry(art, threads, precision)
    start = time.perf_counter()
    todo = candidates(art, available, precision)
    reference = next((target(*r) for r in REFERENCES if r[0] in available and art.has(target(*r))), None)
    if reference is None:
        raise BackendUnavailable("no backend can run here: pip install onnxruntime (or torch)")
    if reference not in todo:
        todo.append(reference)
    image = art.manifest.image
    size = image.default_size if image and any(s.kind == "image" for s in art.inputs) else None
    feeds = example_feeds(art.inputs, batch=1, size=size, seed=0)
    rows: dict[str, Measurement] = {}
    outputs: dict[str, dict[str, np.ndarray]] = {}
    for backend in dict.fromkeys(t.backend for t in todo):
        best = min((m.median_ms for m in rows.values() if m.median_ms is not None), default=None)
        for row, out in _measure_in_child(art, [t for t in todo if t.backend == backend], feeds, threads, best):
            rows[row.key], outputs[row.key] = row, out
    # PSNR peaks: the declared output range, else the spread export measured over many real rows.
    peaks = (art.manifest.parity.get(gate_of(reference.model).key) or {}).get("psnr_peak") or {}
    ranges = {s.name: float(peaks.get(s.name) or value_range_of(s.range, outputs.get(reference.key, {}).get(
        s.name, np.ones(1)))) for s in art.outputs}
    for t in todo:
        _judge(rows[t.key], t, art, outputs.get(t.key), outputs.get(reference.key), ranges, t == reference)
    measured = Measurements(art.name, entry.machine, entry.digest,
                            [rows[t.key] for t in todo if precision is None or t.precision == precision],
                            reference=reference.key, seconds=round(time.perf_counter() - start, 2))
    atomic_write_text(entry.path, json.dumps(measured.to_json(), indent=1))
    return measured


def _judge(row: Measurement, tgt: Target, art: Artifact, got: dict[str, np.ndarray] | None,
           expected: dict[str, np.ndarray] | None, ranges: dict[str, float], is_reference: bool) -> None:
    """Fill in a measurement's parity and verdict."""
    if got is None or expected is None:
        row.note = row.note or "no reference output to compare with"
        return
    comparison = compare_outputs(expected, got, ranges)
    row.parity = {**comparison.to_json(), "gate": tgt.tolerance.to_json(), "reference": is_reference}
    row.passed = tgt.tolerance.passes(comparison)
    if not row.passed:
        row.note = f"parity outside its gate: {_parity_text(row)}"
    export_report = next((art.manifest.parity.get(k) for k in (tgt.key, gate_of(tgt.model).key)
                          if isinstance(art.manifest.parity.get(k), dict)), None)
    if row.passed and tgt.model[0] != WEIGHTS and export_report and export_report.get("pass") is False:
        row.passed = False
        row.note = (f"export measured its model file outside the gate on real rows "
                    f"(worst {export_report.get('worst')}, gate {export_report.get('gate')})")


def _measure_in_child(art: Artifact, targets: list[Target], feeds: dict[str, np.ndarray], threads: int,
                      best_ms: float | None) -> list[tuple[Measurement, dict[str, np.ndarray] | None]]:
    """Run one backend's candidates in a fresh Python process: `python -m infer.runners.probe`."""
    with tempfile.TemporaryDirectory(prefix="ganrt-probe-") as tmp:
        np.savez(Path(tmp) / "feeds.npz", **feeds)
        job = {"artifact": str(art.root), "targets": [t.key for t in targets], "threads": threads,
               "best_ms": best_ms, "dir": tmp}
        package_parent = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH"))
                                                           if p)}
        try:
            proc = subprocess.run([sys.executable, "-m", "infer.runners.probe"], input=json.dumps(job), text=True,
                                  capture_output=True, env=env, timeout=CHILD_TIMEOUT_S)
            reason = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        except subprocess.TimeoutExpired:
            proc, reason = None, f"no answer in {CHILD_TIMEOUT_S} s"
        if proc is None or proc.returncode != 0:
            return [(Measurement(t.backend, t.precision, note=f"failed: {reason}"), None) for t in targets]
        results = []
        for row in json.loads((Path(tmp) / "results.json").read_text()):
            out = Path(tmp) / f"{row['backend']}-{row['precision']}.npz"
            outputs = dict(np.load(out)) if out.is_file() else None
            results.append((Measurement(**row), outputs))
        return results


def _time_candidate(tgt: Target, art: Artifact, feeds: dict[str, np.ndarray], threads: int, best_ms: float | None,
                    out_dir: Path) -> tuple[Measurement, float | None]:
    """In the child: open, run once (the output kept for parity), time batch-1 calls, close."""
    from infer.runners import open_runner

    row = Measurement(tgt.backend, tgt.precision)
    try:
        with open_runner(art, tgt.backend, tgt.precision, threads=threads) as runner:
            t0 = time.perf_counter()
            outputs = runner.infer(feeds)
            row.first_call_ms = round((time.perf_counter() - t0) * 1000, 3)
            np.savez(out_dir / f"{tgt.backend}-{tgt.precision}.npz", **outputs)
            runner.infer(feeds)
            times: list[float] = []
            deadline = time.perf_counter() + BUDGET_S
            while len(times) < MIN_CALLS or time.perf_counter() < deadline:
                t0 = time.perf_counter()
                runner.infer(feeds)
                times.append(time.perf_counter() - t0)
                if best_ms is not None and times[0] * 1000 > PRUNE_FACTOR * best_ms:
                    break  # no contest: one call says enough
    except BackendUnavailable as e:
        row.note = f"unavailable: {e}"
        return row, best_ms
    row.median_ms = round(float(np.median(times)) * 1000, 4)
    row.calls = len(times)
    return row, row.median_ms if best_ms is None else min(best_ms, row.median_ms)


def _child() -> int:
    """The child's side of `_measure_in_child`: a job as JSON on stdin, the measurements in DIR/results.json."""
    job = json.loads(sys.stdin.read())
    art = Artifact.load(job["artifact"])
    out_dir = Path(job["dir"])
    feeds = dict(np.load(out_dir / "feeds.npz"))
    best_ms = job["best_ms"]
    rows = []
    for key in job["targets"]:
        row, best_ms = _time_candidate(target(*key.split("/")), art, feeds, job["threads"], best_ms, out_dir)
        rows.append(dataclasses.asdict(row))
    (out_dir / "results.json").write_text(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(_child())
