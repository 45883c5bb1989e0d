"""The smallest input size export finds with the real generator (export/min_size.py), and what infer does with it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from export.cli import main
from export.min_size import smallest_size
from ganrt.artifact import Artifact
from ganrt.errors import ImageTooSmall
from infer.api import load
from infer.prepost import NATIVE
from tests.tiny_generators import save_tiny_generator


def test_smallest_size_searches_each_axis_then_the_pair():
    calls: list[tuple[int, int]] = []

    def runs_at(h: int, w: int) -> bool:
        calls.append((h, w))
        return h >= 12 and w >= 20

    assert smallest_size(runs_at, (64, 64), 4) == (12, 20)
    assert len(calls) == 3 + 5 + 1  # 4, 8, 12 high; 4..20 wide; the pair
    # Axes that are not independent: both grow until the pair runs.
    assert smallest_size(lambda h, w: h >= 8 and w >= 8 and h + w >= 24, (32, 32), 4) == (12, 12)
    # Nothing smaller runs: the export size itself.
    assert smallest_size(lambda h, w: (h, w) == (32, 48), (32, 48), 16) == (32, 48)


def _runs(model: Path, h: int, w: int) -> bool:
    options = ort.SessionOptions()
    options.log_severity_level = 4
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    try:
        session.run(None, {"image": np.zeros((1, 3, h, w), np.float32)})
    except Exception:  # noqa: BLE001 - ONNX Runtime's errors are plain Exceptions
        return False
    return True


def test_export_records_the_smallest_size_the_model_runs_at(cyclegan_artifact: Path):
    art = Artifact.load(cyclegan_artifact)
    image = art.manifest.image
    # ResNet: two stride-2 stages, then reflection pads of 1 that need 2 pixels: 4 x 2 = 8.
    assert image.min_size == (8, 8) and image.size_multiple == 4
    model = art.root / "generator.onnx"
    assert _runs(model, 8, 8) and _runs(model, 8, 36)
    assert not _runs(model, 4, 32) and not _runs(model, 32, 4)
    with load(art, backend="ort-cpu") as translator:
        assert translator.processor.min_image_size == (5, 5)  # padded to 8 x 8
        tiny = np.zeros((5, 5, 3), np.uint8)
        assert translator.translate(tiny, side=NATIVE).shape == (5, 5, 3)
        with pytest.raises(ImageTooSmall, match="at least 5x5"):
            translator.translate(np.zeros((4, 64, 3), np.uint8))


def test_a_u_net_runs_from_one_size_multiple_and_fixed_size_models_have_no_minimum(tmp_path: Path, cgan_artifact):
    source = save_tiny_generator("pix2pix", tmp_path / "g" / "generator.safetensors")
    assert main([str(source), "--onnx", "--out", str(tmp_path / "art"), "-q"]) == 0
    image = Artifact.load(tmp_path / "art").manifest.image
    assert image.size_multiple == 32 and image.min_size == (32, 32)
    assert Artifact.load(cgan_artifact).manifest.image.min_size is None
