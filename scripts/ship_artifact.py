"""Regenerate the artifact shipped inside the package from the shipped generator:

    .venv/bin/python scripts/ship_artifact.py

It runs `python -m export` on ganrt/models/cyclegan-photo2sketch/generator.safetensors with
the fp32 and int8 ONNX models (what a CPU runs: int8 is the fastest there, fp32 the exact one;
fp16 and TensorRT engines are for GPUs, where `python -m export` writes them), then keeps what
inference needs: manifest.json, the ONNX models, and the model card (README.md) of that manifest.
The Triton repository (copies of the same models) and the copy of the generator's weights are
left out, so the shipped artifact has no torch backend (export the generator to get one).
tests/test_shipped_artifact.py fails when the artifact is stale: rerun this after changing the
generator, the artifact format or the model card.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from export.model_card import write_model_card  # noqa: E402 - after the checkout is on the path
from ganrt.artifact import Manifest  # noqa: E402
from ganrt.locations import SHIPPED_MODEL, shipped_artifact, shipped_generator  # noqa: E402


def main() -> int:
    """Export into a temporary folder, then replace the shipped artifact with its trimmed copy."""
    dest = shipped_artifact()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / SHIPPED_MODEL
        subprocess.run([sys.executable, "-m", "export", str(shipped_generator().relative_to(REPO)), "--int8",
                        "--name", SHIPPED_MODEL, "--out", str(out), "-q"], cwd=REPO, check=True)
        manifest = Manifest.load(out)
        manifest.triton = None
        manifest.source.pop("file", None)  # the weights stay in one place: shipped_generator()
        staging = dest.with_name(dest.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for entries in manifest.models.values():
            for entry in entries.values():
                shutil.copy2(out / entry["file"], staging / entry["file"])
        manifest.save(staging)
        write_model_card(staging, manifest)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    size = sum(p.stat().st_size for p in dest.iterdir()) / 1e6
    print(f"wrote {dest.relative_to(REPO)}: {', '.join(sorted(p.name for p in dest.iterdir()))} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
