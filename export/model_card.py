"""The artifact's README.md, a model card in the ONNX model zoo's style, rendered from its manifest.

What the model does, its inputs with their pre-processing, its outputs with their post-processing,
the sizes it accepts, the parity measured at export, and where it came from (file, sha256, layout,
licence where known). Everything comes from the manifest, so the card cannot disagree with it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ganrt.artifact import Manifest
from ganrt.atomic import atomic_write_text
from ganrt.signature import TensorSpec
from train import registry

MODEL_CARD = "README.md"

MODES = {
    "eval": "eval mode: batch norms use their running statistics, dropout is off (the default)",
    "train": "train mode: every batch norm normalises each image by that image's own statistics, as junyanz's "
             "test.py computes without --eval (batch size 1); dropout stays off, since an exported graph is "
             "deterministic",
}


def _shape(spec: TensorSpec) -> str:
    names = {0: "N", 2: "H", 3: "W"} if spec.kind == "image" else {0: "N"}
    return " x ".join(str(d) if d is not None else names.get(i, "?") for i, d in enumerate(spec.shape))


def _meaning(spec: TensorSpec) -> str:
    if spec.kind == "image":
        lo, hi = spec.range or (-1.0, 1.0)
        return f"{spec.shape[1]}-channel image, NCHW float, values in [{lo:g}, {hi:g}]"
    if spec.kind == "label":
        names = f" ({', '.join(spec.class_names)})" if spec.class_names else ""
        return f"class index in [0, {(spec.num_classes or 1) - 1}]{names}"
    if spec.kind == "noise":
        return "noise z ~ N(0, 1)"
    if spec.kind == "code":
        lo, hi = spec.range or (-1.0, 1.0)
        return f"{spec.shape[1]} continuous codes, each in [{lo:g}, {hi:g}] (drawn uniformly unless set)"
    return "points"


def _tensor_table(specs: list[TensorSpec]) -> list[str]:
    rows = ["| name | shape | type | meaning |", "|---|---|---|---|"]
    return rows + [f"| `{s.name}` | {_shape(s)} | {s.dtype} | {_meaning(s)} |" for s in specs]


def _what(m: Manifest) -> str:
    imported = m.source.get("import")
    try:
        summary = registry.get(m.variant).summary
    except Exception:  # a manifest from a newer ganrt: its variant is not known here
        summary = m.variant
    if not imported:
        return f"A {m.variant} generator trained with ganrt: {summary}."
    if imported["layout"] == "module":
        return f"A user's own PyTorch generator ({imported['class']}, built by `{imported['project']}`)."
    return (f"A {imported['class']} from {imported['project']}, imported by ganrt as a {m.variant} generator "
            f"({summary}).")


def _pixels_to_model(lo: float, hi: float) -> str:
    if (lo, hi) == (-1.0, 1.0):
        return "x / 127.5 - 1"
    if (lo, hi) == (0.0, 1.0):
        return "x / 255"
    return f"{lo:g} + x / 255 * {hi - lo:g}"


def _model_to_pixels(lo: float, hi: float) -> str:
    if (lo, hi) == (-1.0, 1.0):
        return "clip((y + 1) * 127.5, 0, 255)"
    return f"clip((y - {lo:g}) * 255 / {hi - lo:g}, 0, 255)"


def _processing(m: Manifest) -> list[str]:
    if m.image is None:
        return []
    image = m.image.to_json()
    lines = ["## Pre- and post-processing", ""]
    for spec in m.inputs:
        if spec.kind == "image":
            lo, hi = spec.range or (-1.0, 1.0)
            lines.append(f"- `{spec.name}`: uint8 {image['channel_order']} pixels x (HWC) -> "
                         f"`{_pixels_to_model(lo, hi)}`, transposed to CHW, stacked to NCHW float32.")
    for spec in m.outputs:
        if spec.kind == "image":
            lo, hi = spec.range or (-1.0, 1.0)
            lines.append(f"- `{spec.name}`: y -> `{_model_to_pixels(lo, hi)}`, rounded to uint8, transposed to HWC.")
    lines += [f"- Sizes: {image['size_note']}; exported and checked at {image['default_size'][0]}x"
              f"{image['default_size'][1]} and one other size (the parity table).", ""]
    return lines


def _parity(m: Manifest) -> list[str]:
    rows = ["## Parity (measured at export, against the PyTorch generator in fp32)", "",
            "| target | gate | worst max-abs | worst PSNR (dB) | cases | result |", "|---|---|---|---|---|---|"]
    for key, report in m.parity.items():
        worst = report.get("worst", {})
        gate = ", ".join(f"{k} {v:g}" for k, v in report.get("gate", {}).items())
        cases = ", ".join(f"b{c['batch']}" + (f" {c['size'][0]}x{c['size'][1]}" if c.get("size") else "")
                          for c in report.get("cases", []))
        rows.append(f"| {key} | {gate} | {worst.get('max_abs')} | {worst.get('psnr')} | {cases} | "
                    f"{'pass' if report.get('pass') else 'FAIL'} |")
    return rows + [""]


def _provenance(m: Manifest) -> list[str]:
    src = m.source
    imported: dict[str, Any] = src.get("import", {})
    lines = ["## Provenance", "", f"- Source file: `{src.get('from', src.get('file'))}`",
             f"- Source sha256: `{src.get('sha256')}`"]
    download = imported.get("download")
    if download:
        lines.append(f"- Downloaded from {download['url']} on {download['downloaded']} (the site publishes no "
                     f"checksum: the sha256 above was recorded then and is checked on re-use)")
    if imported:
        lines += [f"- Layout: {imported['layout']}: {imported['class']} of {imported['project']}",
                  f"- Licence: {imported['licence']}", f"- Exported in {MODES.get(imported['mode'], imported['mode'])}"]
        detected = imported.get("detected")
        if detected:
            lines.append("- Read off the file's keys and shapes: " + ", ".join(f"{k} {v}" for k, v in detected.items()))
    else:
        lines.append(f"- Trained with ganrt (step {src.get('step')}); licence: ganrt's (Apache-2.0) for the code")
    lines.append("- Tools: " + ", ".join(f"{k} {v}" for k, v in m.versions.items() if v))
    return lines + [""]


def render(m: Manifest) -> str:
    """The model card of the artifact that `m` describes."""
    models = [f"| `{entry['file']}` | {fmt} | {precision} | {entry['bytes'] / 2**20:.2f} MB |"
              for fmt, entries in m.models.items() for precision, entry in entries.items()]
    translate = m.image is not None and any(s.kind == "image" for s in m.inputs)
    usage = (f"    python -m infer translate {m.name} photos/ out/" if translate
             else f"    python -m infer sample {m.name} --n 16 --grid samples.png")
    lines = [f"# {m.name}", "", _what(m), "", f"Status: **{m.status}** (exported {m.created}).", "",
             "## Files", "", "| file | format | precision | size |", "|---|---|---|---|", *models, "",
             "## Inputs", "", *_tensor_table(m.inputs), "", "## Outputs", "", *_tensor_table(m.outputs), "",
             *_processing(m), *_parity(m), *_provenance(m), "## Use", "", usage, "",
             "The manifest (`manifest.json`, format in ganrt's docs/artifact.md) holds every figure above."]
    return "\n".join(lines) + "\n"


def write_model_card(directory: Path, m: Manifest) -> Path:
    """Atomically write directory/README.md from the manifest."""
    path = Path(directory) / MODEL_CARD
    atomic_write_text(path, render(m))
    return path
