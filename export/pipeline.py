"""The export, stage by stage: source -> fp32/fp16/int8 ONNX -> TensorRT -> parity -> Triton -> manifest.

Everything is driven by the registry's input/output specs; no stage knows a variant by name.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from export import fp16 as fp16_mod
from export import int8 as int8_mod
from export import tensorrt_build, triton
from export.feeds import (
    Case,
    at_size,
    batch_of,
    has_dynamic_size,
    image_inputs,
    parity_cases,
    rows,
    sample,
    second_size,
    take,
)
from export.importers import ImportOptions, imported_source
from export.model_card import write_model_card
from export.onnx_fp32 import DEFAULT_OPSET, MIN_OPSET, export_fp32, onnx_output_specs, simplify
from export.parity import CaseSet, ParityReport, measure, ort_cpu_runner
from export.provenance import model_entry, tool_versions
from export.source import DEFAULT_GENERATOR, Source, resolve_source
from ganrt import config as config_mod
from ganrt.artifact import GENERATOR_FILE, MANIFEST, ONNX_FILES, Artifact, BatchRange, ImageFormat, Manifest
from ganrt.atomic import atomic_write
from ganrt.errors import BackendUnavailable, UsageError
from ganrt.signature import TensorSpec
from ganrt.targets import ONNX, REFERENCE, TENSORRT, Target, target
from infer.runners import open_runner
from infer.runners.torch_runner import TorchRunner
from train import checkpoint as ckpt

log = logging.getLogger("ganrt.export")

TIMING_CACHE = "timing.cache"
# Real rows drawn from the variant: calibration first, validation (and parity) last; a fifth
# (at most VALIDATION_ROWS) goes to validation.
CALIBRATION_ROWS = 256
VALIDATION_ROWS = 64
# Calibration statistics pool over pixels, and its cost grows with them: images are capped by a
# pixel budget (all 320 rows at 64x64 or less, 160 at 128x128, 40 at 256x256, at least 16).
CALIBRATION_PIXELS = 40 * 256 * 256
MIN_REAL_ROWS = 16


@dataclass
class ExportOptions:
    """What `python -m export` was asked for (see its --help)."""

    source: str | None = None
    onnx: bool = False
    fp16: bool = False
    int8: bool = False
    trt: bool = False
    opset: int = DEFAULT_OPSET
    batch: tuple[int, int, int] = (1, 1, 16)
    size: tuple[int, int] | None = None
    out: Path | None = None
    name: str | None = None
    calibration: str = "auto"
    runs_root: Path = Path("runs")
    artifacts_root: Path = Path("artifacts")
    default_generator: Path = DEFAULT_GENERATOR
    # Generators trained elsewhere (.pth files, pretrained names, --module): export/importers.
    imports: ImportOptions = field(default_factory=ImportOptions)

    def onnx_precisions(self) -> list[str]:
        """fp32 always; fp16/int8 when asked; all three when no output flag is given at all."""
        if not (self.onnx or self.fp16 or self.int8 or self.trt):
            return ["fp32", "fp16", "int8"]
        return ["fp32"] + ["fp16"] * self.fp16 + ["int8"] * self.int8

    def trt_precision(self) -> str:
        """Engine precision: int8 with --int8 (from the QDQ model), else fp16."""
        return "int8" if self.int8 else "fp16"


@dataclass
class ExportResult:
    """What an export wrote and measured."""

    out_dir: Path
    manifest: Manifest
    reports: dict[str, ParityReport]
    stages: list[tuple[str, float]]
    trt_missing: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when a parity gate failed, 2 when --trt could not run here, else 0."""
        if self.manifest.status != "ok":
            return 1
        return 2 if self.trt_missing else 0


class StageLog:
    """Numbered, timed stages in the log."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.times: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        log.info("[%d/%d] %s", self.names.index(name) + 1, len(self.names), name)
        start = time.perf_counter()
        yield
        self.times.append((name, time.perf_counter() - start))
        log.info("      %s: %.1f s", name, self.times[-1][1])


def real_rows_for(size: tuple[int, int] | None) -> int:
    """How many real rows export draws for calibration + validation at this image size (None: no images)."""
    total = CALIBRATION_ROWS + VALIDATION_ROWS
    if size is None:
        return total
    return min(total, max(MIN_REAL_ROWS, CALIBRATION_PIXELS // (size[0] * size[1])))


def resolve_size(requested: tuple[int, int] | None, inputs: list[TensorSpec], held_out: dict[str, np.ndarray],
                 source: Source) -> tuple[int, int] | None:
    """The export/profile image size: --size, else the held-out images' size; validated against the generator."""
    images = image_inputs(inputs)
    if not images:
        if requested is not None:
            raise UsageError(f"--size applies to image inputs; {source.variant.name} takes "
                             f"{', '.join(s.name for s in inputs)} and its output size is fixed by its config")
        return None
    default = tuple(int(d) for d in held_out[images[0].name].shape[2:])
    size = requested or default
    multiple = int(getattr(source.generator, "size_multiple", 1))
    h, w = size
    if h <= 0 or w <= 0 or h % multiple or w % multiple:
        raise UsageError(f"--size {h},{w} is impossible for this {source.variant.name} generator: height and width "
                         f"must be positive multiples of {multiple}")
    if not has_dynamic_size(inputs) and size != default:
        raise UsageError(f"--size {h},{w}: this model takes only {default[0]}x{default[1]} images")
    # Too small for the network (e.g. reflection padding wider than a downsampled map) shows up as
    # an error in a real forward pass: ask the generator itself.
    probe = at_size(batch_of(held_out, 1), inputs, size)
    try:
        with torch.no_grad():
            source.generator(*(torch.from_numpy(probe[s.name]) for s in inputs))
    except (RuntimeError, ValueError) as e:
        raise UsageError(f"--size {h},{w} is too small for this {source.variant.name} generator: "
                         f"{str(e).splitlines()[0]}") from None
    return size


def check_options(opts: ExportOptions) -> None:
    """Checks that need no model: --batch MIN:OPT:MAX ordering and the opset floor."""
    lo, opt, hi = opts.batch
    if not 1 <= lo <= opt <= hi:
        raise UsageError(f"--batch {lo}:{opt}:{hi}: need 1 <= MIN <= OPT <= MAX")
    if opts.opset < MIN_OPSET:
        raise UsageError(f"--opset {opts.opset}: the int8 model's per-channel quantization needs opset "
                         f"{MIN_OPSET} or later")


def _prepare_dir(out: Path, source: Source) -> None:
    # The directory must end up matching its manifest: drop models and the manifest of an
    # earlier export (kept: the TensorRT timing cache, and the source if it lives here).
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("generator*.onnx"), *out.glob("*.plan"), out / MANIFEST]:
        old.unlink(missing_ok=True)
    shutil.rmtree(out / "triton", ignore_errors=True)
    target = out / GENERATOR_FILE
    if source.is_generator_file:
        if not (target.exists() and target.resolve() == source.weights.resolve()):
            atomic_write(target, lambda p: shutil.copyfile(source.weights, p))
    else:
        ckpt.save_generator(target, source.generator, source.variant.name, config_mod.to_dict(source.config), source.step)


def _replace(src: Path, dst: Path) -> Path:
    src.replace(dst)
    return dst


class Exporter:
    """One export run (the stages share the loaded generator, feeds and reference outputs)."""

    def __init__(self, opts: ExportOptions) -> None:
        self.opts = opts
        planned = ["load source", "fp32 ONNX"] + [f"{p} ONNX" for p in opts.onnx_precisions()[1:]]
        planned += ["TensorRT engine"] * opts.trt + ["parity", "Triton repository", "manifest"]
        self.stage = StageLog(planned)
        self.reports: dict[str, ParityReport] = {}
        self.trt_missing: list[str] = []

    def run(self) -> ExportResult:
        """Run every stage; returns what was written and measured."""
        opts = self.opts
        check_options(opts)
        with self.stage("load source"):
            self._load()
        with self.stage("fp32 ONNX"):
            self._fp32()
        if "fp16" in opts.onnx_precisions():
            with self.stage("fp16 ONNX"):
                self._fp16()
        if "int8" in opts.onnx_precisions():
            with self.stage("int8 ONNX"):
                self._int8()
        if opts.trt:
            with self.stage("TensorRT engine"):
                self._tensorrt()
        with self.stage("parity"):
            self._parity()
        with self.stage("Triton repository"):
            self._triton()
        with self.stage("manifest"):
            failed = [k for k, r in self.reports.items() if not r.passed]
            self.manifest.status = "failed" if failed else "ok"
            self.manifest.parity = {k: r.to_json() for k, r in self.reports.items()}
            self.manifest.save(self.out)
            write_model_card(self.out, self.manifest)
        self.reference.close()
        return ExportResult(self.out, self.manifest, self.reports, self.stage.times, self.trt_missing)

    # -- stages -------------------------------------------------------------------------
    def _load(self) -> None:
        opts = self.opts
        self.src = src = (imported_source(opts.source, opts.imports, opts.size)
                          or resolve_source(opts.source, opts.runs_root, opts.artifacts_root, opts.default_generator))
        log.info("      %s", src.describe())
        variant, cfg = src.variant, src.config
        self.inputs = variant.inputs(cfg)
        self.outputs = onnx_output_specs(self.inputs, [variant.output(cfg)])
        self.size_multiple = int(getattr(src.generator, "size_multiple", 1))
        self.size = resolve_size(opts.size, self.inputs, sample(variant, cfg, 1, seed=0), src)
        real = sample(variant, cfg, real_rows_for(self.size), seed=0)
        n = rows(real)
        n_val = min(VALIDATION_ROWS, max(1, n // 5))
        self.calibration, self.validation = take(real, 0, n - n_val), take(real, n - n_val, n)
        name = opts.name or (opts.out.name if opts.out else src.default_name)
        self.out = out = opts.out or opts.artifacts_root / name
        _prepare_dir(out, src)
        source_info = {"file": GENERATOR_FILE, "sha256": src.sha256, "step": src.step, "from": str(src.weights),
                       **src.provenance}
        image = ImageFormat.describe(self.inputs + self.outputs, self.size, self.size_multiple,
                                     has_dynamic_size(self.inputs))
        self.manifest = Manifest(name=name, variant=variant.name, config=config_mod.to_dict(cfg),
                                 inputs=self.inputs, outputs=self.outputs, batch=BatchRange(*opts.batch), image=image,
                                 source=source_info, versions=tool_versions())
        # The reference for every parity figure: the loaded generator itself, eval mode, fp32.
        generator = src.generator.eval()
        self.reference = TorchRunner(lambda: generator, self.inputs, self.outputs,
                                     size_multiple=self.size_multiple).activate()
        # Validation rows at the export size: fp16 candidates and calibration methods are picked on these.
        self.validation_set = CaseSet.build([Case(rows(self.validation), self.size)], self.validation,
                                            self.inputs, self.outputs, self.reference)
        self.ranges = self.validation_set.ranges

    def _fp32(self) -> None:
        opts, out = self.opts, self.out
        example = at_size(batch_of(self.validation, 2), self.inputs, self.size)
        raw_path = out / "generator.unsimplified.onnx"
        raw = export_fp32(self.src.generator, self.inputs, self.outputs, example, raw_path, opts.opset)
        # Slimming must not bake a batch (or image) size in: check batch 1 and 5, and another size.
        other = second_size(self.size, self.size_multiple) if self.size and has_dynamic_size(self.inputs) else self.size
        checks = CaseSet.build([Case(1, self.size), Case(5, self.size), Case(5, other)], self.validation,
                               self.inputs, self.outputs, self.reference, self.ranges)
        gate = target("ort-cpu", "fp32").tolerance
        final = out / ONNX_FILES["fp32"]
        simplified, note = False, ""
        try:
            slim = simplify(raw)
        except Exception as e:  # onnxslim is an optimisation: its failure must not stop the export
            note = f"onnxslim failed ({e}); kept the unsimplified model"
        else:
            slim_path = out / "generator.slim.onnx"
            onnx.save(slim, str(slim_path))
            with ort_cpu_runner(slim_path, self.inputs, self.outputs, "fp32", self.size_multiple) as runner:
                report = measure(runner, checks, gate)
            if report.passed:
                _replace(slim_path, final)
                simplified = True
                log.info("      simplified %d -> %d nodes; batch 1/5 and %s parity max-abs %.2g", len(raw.graph.node),
                         len(slim.graph.node), "two sizes" if other != self.size else "one size", report.worst.max_abs)
            else:
                slim_path.unlink()
                note = (f"the simplified model missed parity (max-abs {report.worst.max_abs:.3g} at "
                        f"{[c.label() for c, r in report.results if not gate.passes(r)]}); kept the unsimplified model")
        if note:
            log.warning("      %s", note)
        if not simplified:
            _replace(raw_path, final)
        raw_path.unlink(missing_ok=True)
        kept = onnx.load(str(final), load_external_data=False)
        self.manifest.set_model(ONNX, "fp32", model_entry(
            final, opset=opts.opset, simplified=simplified, nodes=len(kept.graph.node),
            **({"note": note} if note else {})))
        self.fp32_model = kept

    def _fp16(self) -> None:
        out = self.out
        gate = target("ort-cpu", "fp16").tolerance
        measured: dict[str, float] = {}
        paths: dict[str, Path] = {}
        for name, keep_fp32 in fp16_mod.candidates(self.fp32_model).items():
            path = out / f"generator.fp16.{name}.onnx"
            onnx.save(fp16_mod.to_fp16(self.fp32_model, keep_fp32), str(path))
            with ort_cpu_runner(path, self.inputs, self.outputs, "fp16", self.size_multiple) as runner:
                measured[name] = measure(runner, self.validation_set, gate).worst.psnr
            paths[name] = path
            log.info("      candidate %s (fp32 kept: %s): PSNR %.1f dB", name, ", ".join(keep_fp32) or "none",
                     measured[name])
        # All-fp16 has no casts (fastest on a GPU): keep it whenever it passes the gate.
        chosen = "all-fp16" if measured["all-fp16"] >= (gate.psnr_min or 0) else max(measured, key=measured.get)
        final = _replace(paths.pop(chosen), out / ONNX_FILES["fp16"])
        for other in paths.values():
            other.unlink()
        keep = fp16_mod.candidates(self.fp32_model)[chosen]
        self.manifest.set_model(ONNX, "fp16", model_entry(
            final, variant=chosen, fp32_ops=list(keep), io="float32",
            candidates_psnr={k: round(v, 2) for k, v in measured.items()}))

    def _int8(self) -> None:
        opts, out = self.opts, self.out
        gate = target("ort-cpu", "int8").tolerance
        calibration = at_size(self.calibration, self.inputs, self.size)
        one = take(calibration, 0, 1)
        per_row = int8_mod.activation_bytes_per_row(self.src.generator, one, [s.name for s in self.inputs])
        chunk = int8_mod.chunk_rows(per_row)
        log.info("      calibrating on %d real rows (%.0f MB of activations each, %d per chunk), validating on %d",
                 rows(calibration), per_row / 2**20, chunk, rows(self.validation))
        pre = out / "generator.int8.pre.onnx"
        preprocessed = int8_mod.preprocess(out / ONNX_FILES["fp32"], pre)
        model = pre if preprocessed else out / ONNX_FILES["fp32"]
        methods = int8_mod.CALIBRATION_METHODS if opts.calibration == "auto" else (opts.calibration,)
        search: dict[str, dict[str, float]] = {}
        for method in methods:
            path, cache = out / f"generator.int8.{method}.onnx", out / f"calibration.{method}.json"
            start = time.perf_counter()
            int8_mod.calibrate(model, method, calibration, chunk, cache)
            int8_mod.quantize(model, path, method, cache)
            seconds = time.perf_counter() - start
            cache.unlink()
            with ort_cpu_runner(path, self.inputs, self.outputs, "int8", self.size_multiple) as runner:
                worst = measure(runner, self.validation_set, gate).worst
            search[method] = {"psnr": round(worst.psnr, 2), "max_abs": float(f"{worst.max_abs:.3g}"),
                              "seconds": round(seconds, 1)}
            log.info("      %s calibration: PSNR %.1f dB (%.1f s)", method, worst.psnr, seconds)
        best = max(search, key=lambda m: search[m]["psnr"])
        final = _replace(out / f"generator.int8.{best}.onnx", out / ONNX_FILES["int8"])
        for method in search:
            (out / f"generator.int8.{method}.onnx").unlink(missing_ok=True)
        pre.unlink(missing_ok=True)
        self.manifest.set_model(ONNX, "int8", model_entry(
            final, format="QDQ", weights="int8 per-channel", activations="int8", io="float32", calibration=best,
            calibration_search=search, calibration_rows=rows(calibration), validation_rows=rows(self.validation),
            preprocessed=preprocessed))

    def _tensorrt(self) -> None:
        self.trt_missing = tensorrt_build.missing_requirements()
        if self.trt_missing:
            log.error("      cannot build a TensorRT engine here: missing %s", " and ".join(self.trt_missing))
            return
        precision = self.opts.trt_precision()
        # fp16 engines come from the fp32 model (TensorRT picks fp16 kernels itself), int8 from the QDQ model.
        onnx_model = self.out / ONNX_FILES["int8" if precision == "int8" else "fp32"]
        shapes = self._profile_shapes()
        plan = self.out / tensorrt_build.plan_name()
        lo, _, hi = self.opts.batch
        cases = [c for c in parity_cases(self.inputs, self.size, self.size_multiple) if lo <= c.batch <= hi
                 and c.size == self.size]
        case_set = CaseSet.build(cases, self.validation, self.inputs, self.outputs, self.reference, self.ranges)
        engine_target = target("trt", precision)
        has_norms = "norm-fp32" in fp16_mod.candidates(self.fp32_model)
        for fp32_norm in (False, True):
            entry = tensorrt_build.build_engine(onnx_model, plan, self.out / TIMING_CACHE, precision=precision,
                                                shapes=shapes, fp32_norm=fp32_norm)
            report = self._measure_engine(plan, entry, case_set, engine_target)
            # A gate miss in fp16 is InstanceNorm's classic failure: retry with norm layers pinned to fp32.
            if report is None or report.passed or fp32_norm or not has_norms:
                break
            log.warning("      engine PSNR %.1f dB < %s: rebuilding with normalization layers in fp32",
                        report.worst.psnr, engine_target.tolerance.to_json())
        self.manifest.set_model(TENSORRT, precision, {**model_entry(plan), **entry})
        if report is not None:
            self.reports[engine_target.key] = report

    def _measure_engine(self, plan: Path, entry: dict[str, Any], case_set: CaseSet,
                        engine_target: Target) -> ParityReport | None:
        from infer.runners.tensorrt_runner import TrtRunner, engine_loader

        runner = TrtRunner(engine_loader(plan, entry, str(self.out)), self.inputs, self.outputs,
                           precision=entry["precision"], size_multiple=self.size_multiple)
        try:
            with runner:
                return measure(runner, case_set, engine_target.tolerance)
        except BackendUnavailable as e:
            log.warning("      engine built but not measured: %s", e)
            entry["parity_note"] = f"not measured: {e}"
            return None

    def _profile_shapes(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        lo, opt, hi = self.opts.batch
        shapes = {}
        for spec in self.inputs:
            dims = [list(spec.shape) for _ in range(3)]
            for k, b in enumerate((lo, opt, hi)):
                dims[k][0] = b
                if spec in image_inputs(self.inputs) and self.size:
                    dims[k][2], dims[k][3] = self.size
            shapes[spec.name] = tuple(tuple(int(d) for d in ds) for ds in dims)
        return shapes

    def _parity(self) -> None:
        # Write the manifest so far and read it back as consumers will: the torch runner rebuilds
        # the generator from the artifact's own files, the ort-cpu runner opens each model.
        self.manifest.save(self.out)
        art = Artifact.load(self.out)
        case_set = CaseSet.build(parity_cases(self.inputs, self.size, self.size_multiple), self.validation,
                                 self.inputs, self.outputs, self.reference, self.ranges)
        candidates = [REFERENCE] + [target("ort-cpu", p) for p in self.opts.onnx_precisions()]
        for tgt in candidates:
            with open_runner(art, tgt.backend, tgt.precision) as runner:
                report = measure(runner, case_set, tgt.tolerance)
            self.reports[tgt.key] = report
            log.info("      %-8s %-5s worst max-abs %.3g, PSNR %.1f dB: %s", tgt.backend, tgt.precision,
                     report.worst.max_abs, report.worst.psnr,
                     "pass" if report.passed else f"FAIL (gate {report.gate.to_json()})")

    def _triton(self) -> None:
        # Triton model names: <name>_<precision> for ONNX models, <name>_trt for the engine.
        models = {("trt" if fmt == TENSORRT else precision): self.out / entry["file"]
                  for fmt, entries in self.manifest.models.items() for precision, entry in entries.items()}
        name = self.manifest.name
        triton.write_repository(self.out / "triton", name, models, self.inputs, self.outputs, self.opts.batch[2])
        self.manifest.triton = {"repository": "triton", "models": [f"{name}_{p}" for p in models]}


def run_export(opts: ExportOptions) -> ExportResult:
    """Export per `opts`; UsageError for bad input (exit 2), a failed gate shows in the result (exit 1)."""
    return Exporter(opts).run()
