"""What the export stages share, made by its first stage: the loaded generator, real feeds, the reference, the artifact.

The first stage loads the source, settles the image size, draws real rows (calibration first,
validation last), empties the artifact folder, starts the manifest and activates the
reference every parity figure is measured against: the loaded generator itself, eval mode, fp32.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from export.feeds import Case, at_size, batch_of, has_dynamic_size, image_inputs, rows, sample, take
from export.importers.resolve import imported_source
from export.model_card import write_model_card
from export.onnx_fp32 import onnx_output_specs
from export.options import ExportOptions
from export.parity import CaseSet, ParityReport, measure, ort_cpu_runner
from export.provenance import model_entry, tool_versions
from export.source import Source, resolve_source
from ganrt import config as config_mod
from ganrt.artifact import GENERATOR_FILE, MANIFEST, ONNX_FILES, BatchRange, ImageFormat, Manifest, name_from
from ganrt.atomic import atomic_write
from ganrt.errors import UsageError
from ganrt.signature import TensorSpec
from ganrt.targets import ONNX, target
from infer.runners.torch_runner import TorchRunner
from train import checkpoint as ckpt

log = logging.getLogger("ganrt.export")

# Real rows drawn from the variant: calibration first, validation (and parity) last; a fifth
# (at most VALIDATION_ROWS) goes to validation.
CALIBRATION_ROWS = 256
VALIDATION_ROWS = 64
# Calibration statistics pool over pixels, and its cost grows with them: images are capped by a
# pixel budget (all 320 rows at 64x64 or less, 160 at 128x128, 40 at 256x256, at least 16).
CALIBRATION_PIXELS = 40 * 256 * 256
MIN_REAL_ROWS = 16


@dataclass
class ExportContext:
    """One export's shared state; each stage adds its model and manifest entry, and its parity report."""

    opts: ExportOptions
    source: Source
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    # The export/profile image size (None: no image input) and the multiple every size must be.
    size: tuple[int, int] | None
    size_multiple: int
    calibration: dict[str, np.ndarray]
    validation: dict[str, np.ndarray]
    out: Path
    manifest: Manifest
    reference: TorchRunner
    # The validation rows at the export size: fp16 candidates and calibration methods are picked on these.
    validation_set: CaseSet
    reports: dict[str, ParityReport] = field(default_factory=dict)
    fp32_model: onnx.ModelProto | None = None
    trt_missing: list[str] = field(default_factory=list)

    def cases(self, cases: list[Case]) -> CaseSet:
        """Parity cases on the validation rows with the reference's outputs (PSNR peaks of the validation set)."""
        return CaseSet.build(cases, self.validation, self.inputs, self.outputs, self.reference,
                             self.validation_set.ranges)

    def measure_onnx(self, model: Path, precision: str, cases: CaseSet | None = None) -> ParityReport:
        """An ONNX file on ort-cpu against its precision's gate, on `cases` (default: the validation set)."""
        with ort_cpu_runner(model, self.inputs, self.outputs, precision, self.size_multiple) as runner:
            return measure(runner, cases or self.validation_set, target("ort-cpu", precision).tolerance)

    def keep_onnx(self, candidate: Path, precision: str, **entry: Any) -> Path:
        """Make `candidate` the artifact's ONNX model at `precision` and record it in the manifest."""
        final = self.out / ONNX_FILES[precision]
        candidate.replace(final)
        self.manifest.set_model(ONNX, precision, model_entry(final, **entry))
        return final

    def write_manifest(self) -> None:
        """The final manifest: every parity report, and the status the gates give."""
        self.manifest.status = "ok" if all(r.passed for r in self.reports.values()) else "failed"
        self.manifest.parity = {k: r.to_json() for k, r in self.reports.items()}
        self.manifest.save(self.out)
        write_model_card(self.out, self.manifest)


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


def _prepare_dir(out: Path, source: Source) -> None:
    # The directory must end up matching its manifest: drop models and the manifest of an
    # earlier export (kept: the TensorRT timing cache, and the source if it lives here).
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("generator*.onnx"), *out.glob("generator*.xml"), *out.glob("generator*.bin"),
                *out.glob("*.plan"), out / MANIFEST]:
        old.unlink(missing_ok=True)
    shutil.rmtree(out / "triton", ignore_errors=True)
    target_file = out / GENERATOR_FILE
    if source.is_generator_file:
        if not (target_file.exists() and target_file.resolve() == source.weights.resolve()):
            atomic_write(target_file, lambda p: shutil.copyfile(source.weights, p))
    else:
        ckpt.save_generator(target_file, source.generator, source.variant.name, config_mod.to_dict(source.config),
                            source.step)


def load_context(opts: ExportOptions) -> ExportContext:
    """The first stage: load the source, draw its real rows, start the artifact and activate the reference."""
    src = imported_source(opts) or resolve_source(opts.source, opts.runs_root, opts.artifacts_root)
    log.info("      %s", src.describe())
    variant, cfg = src.variant, src.config
    inputs = variant.inputs(cfg)
    outputs = onnx_output_specs(inputs, [variant.output(cfg)])
    size_multiple = int(getattr(src.generator, "size_multiple", 1))
    size = resolve_size(opts.size, inputs, sample(variant, cfg, 1, seed=0), src)
    real = sample(variant, cfg, real_rows_for(size), seed=0)
    n = rows(real)
    n_val = min(VALIDATION_ROWS, max(1, n // 5))
    # Names come from folders and files too: made valid (the manifest's rule) when not given.
    name = opts.name or name_from(opts.out.name if opts.out else src.default_name) or variant.name
    out = opts.out or opts.artifacts_root / name
    _prepare_dir(out, src)
    image = ImageFormat.describe(inputs + outputs, size, size_multiple, has_dynamic_size(inputs))
    manifest = Manifest(name=name, variant=variant.name, config=config_mod.to_dict(cfg), inputs=inputs,
                        outputs=outputs, batch=BatchRange(*opts.batch), image=image, versions=tool_versions(),
                        source={"file": GENERATOR_FILE, "sha256": src.sha256, "step": src.step,
                                "from": str(src.weights), **src.provenance})
    generator = src.generator.eval()
    reference = TorchRunner(lambda: generator, inputs, outputs, size_multiple=size_multiple).activate()
    validation = take(real, n - n_val, n)
    validation_set = CaseSet.build([Case(rows(validation), size)], validation, inputs, outputs, reference)
    return ExportContext(opts, src, inputs, outputs, size, size_multiple, take(real, 0, n - n_val), validation, out,
                         manifest, reference, validation_set)
