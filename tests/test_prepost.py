"""Manifest-driven pre/post-processing (infer/prepost.py), image codecs, pictures and samples: pure
numpy/OpenCV, no model."""
from __future__ import annotations

import io
import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image

from ganrt.artifact import SCHEMA, Manifest
from ganrt.errors import BadImage, ImageTooLarge, InputError, UnknownLabel, UnsupportedOperation
from infer.codecs import decode_image, encode_png, images_to_zip
from infer.pictures import make_grid
from infer.prepost import Processor
from infer.samples import Samples


def _manifest(kind: str, **image) -> Manifest:
    img = {"layout": "NCHW", "channel_order": "RGB", "value_range": [-1, 1], "size_multiple": 4,
           "default_size": [32, 32], "dynamic_size": True, **image}
    if kind == "translate":
        inputs = [{"name": "image", "shape": [None, 3, None, None], "dtype": "float32", "range": [-1, 1], "kind": "image"}]
        outputs = [{"name": "out", "shape": [None, 3, None, None], "dtype": "float32", "range": [-1, 1], "kind": "image"}]
    elif kind == "points":
        inputs = [{"name": "z", "shape": [None, 2], "dtype": "float32", "kind": "noise"}]
        outputs = [{"name": "points", "shape": [None, 2], "dtype": "float32", "kind": "points"}]
        img = None
    else:
        inputs = [{"name": "z", "shape": [None, 8], "dtype": "float32", "kind": "noise"},
                  {"name": "label", "shape": [None], "dtype": "int64", "kind": "label", "num_classes": 3,
                   "class_names": ["circle", "square", "triangle"]}]
        outputs = [{"name": "image", "shape": [None, 1, 28, 28], "dtype": "float32", "range": [-1, 1], "kind": "image"}]
        img = {**img, "dynamic_size": False, "default_size": [28, 28], "size_multiple": 1}
    return Manifest.from_json({"schema": SCHEMA, "name": "t", "variant": "v", "config": {}, "inputs": inputs,
                               "outputs": outputs, "image": img, "batch": {"min": 1, "opt": 1, "max": 8}, "models": {}})


def test_image_roundtrip_pads_to_multiple_and_restores_size():
    p = Processor(_manifest("translate"))
    img = np.random.default_rng(0).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    feeds, plans = p.images_to_feeds([img])
    x = feeds["image"]
    assert x.shape == (1, 3, 40, 52) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1
    # (x / 255 - 0.5) / 0.5, exactly, in RGB order.
    np.testing.assert_allclose(x[0, :, :37, :50], img.transpose(2, 0, 1) / 127.5 - 1, atol=1e-6)
    back = p.restore(p.to_uint8(x)[0], plans[0])  # identity model
    np.testing.assert_array_equal(back, img)


def test_bgr_in_bgr_out_and_grey_input():
    p = Processor(_manifest("translate"))
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255  # red
    x_rgb, _ = p.images_to_feeds([rgb])
    x_bgr, _ = p.images_to_feeds([rgb[..., ::-1].copy()], channel_order="BGR")
    np.testing.assert_array_equal(x_rgb["image"], x_bgr["image"])
    assert x_rgb["image"][0, 0].mean() == 1 and x_rgb["image"][0, 2].mean() == -1
    out_bgr = p.to_uint8(x_rgb["image"], channel_order="BGR")
    assert out_bgr[0, 0, 0].tolist() == [0, 0, 255]
    grey, _ = p.images_to_feeds([np.full((8, 8), 128, np.uint8)])
    assert grey["image"].shape == (1, 3, 8, 8)
    with pytest.raises(InputError):
        p.images_to_feeds([rgb], channel_order="RGBA")


def test_plans_size_max_side_and_fixed_size():
    p = Processor(_manifest("translate"))
    assert p.plan((480, 640), max_side=64).model_hw == (48, 64)
    assert p.plan((480, 640), size=30).model_hw == (32, 32)
    fixed = Processor(_manifest("translate", dynamic_size=False, default_size=[32, 32]))
    plan = fixed.plan((100, 60))
    assert plan.model_hw == (32, 32)
    out = fixed.restore(np.zeros((32, 32, 3), np.uint8), plan)
    assert out.shape == (100, 60, 3)
    with pytest.raises(BadImage):
        p.images_to_feeds([np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(UnsupportedOperation):
        p.noise_feeds(2)


def test_noise_feeds_reproducible_and_labels_checked():
    p = Processor(_manifest("noise"))
    a, seed = p.noise_feeds(5, seed=7)
    b, _ = p.noise_feeds(5, seed=7)
    c, other = p.noise_feeds(5)
    assert seed == 7 and isinstance(other, int)
    np.testing.assert_array_equal(a["z"], b["z"])
    assert a["z"].shape == (5, 8) and a["z"].dtype == np.float32
    assert not np.array_equal(a["z"], c["z"])
    # The first k of a seed are the same whatever n: a batch split cannot change samples.
    np.testing.assert_array_equal(p.noise_feeds(2, seed=7)[0]["z"], a["z"][:2])
    np.testing.assert_array_equal(a["label"], [0, 1, 2, 0, 1])
    assert p.labels(3, "square").tolist() == [1, 1, 1]
    assert p.labels(2, [2, "circle"]).tolist() == [2, 0]
    assert p.labels(2, ["1", 0]).tolist() == [1, 0]
    for bad in (3, -1, "hexagon", [0, 5], 1.5):
        with pytest.raises(UnknownLabel):
            p.labels(2, bad if isinstance(bad, list) else [bad, 0])
    with pytest.raises(InputError, match="exactly n"):
        p.labels(3, [0, 1])
    assert issubclass(UnknownLabel, ValueError)
    with pytest.raises(InputError, match="not conditional"):
        Processor(_manifest("points")).labels(2, 1)


def test_outputs_to_user_images_and_points():
    p = Processor(_manifest("noise"))
    y = np.stack([np.full((1, 28, 28), v, np.float32) for v in (-2.0, -1.0, 0.0, 1.0, 3.0)])
    imgs = p.outputs_to_user({"image": y})
    assert imgs.shape == (5, 28, 28, 1) and imgs.dtype == np.uint8
    assert imgs[:, 0, 0, 0].tolist() == [0, 0, 128, 255, 255]  # clipped, rounded
    pts = Processor(_manifest("points")).outputs_to_user({"points": np.ones((4, 2), np.float64)})
    assert pts.dtype == np.float32 and pts.shape == (4, 2)


def test_decode_encode_grid_zip():
    img = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    png = encode_png(img)
    np.testing.assert_array_equal(decode_image(png), img)
    np.testing.assert_array_equal(decode_image(png, channel_order="BGR"), img[..., ::-1])
    ok, jpg = cv2.imencode(".jpg", img)
    assert decode_image(jpg.tobytes()).shape == (20, 30, 3)
    grey = io.BytesIO()
    Image.fromarray(img[..., 0]).save(grey, format="PNG")
    assert decode_image(grey.getvalue()).shape == (20, 30)
    for bad in (b"", b"not an image", png[:40]):
        with pytest.raises(BadImage):
            decode_image(bad)
    with pytest.raises(ImageTooLarge):
        decode_image(png, max_pixels=100)
    grid = make_grid(np.stack([img] * 5), padding=2)
    assert grid.shape == (2 * 22 + 2, 3 * 32 + 2, 3)
    np.testing.assert_array_equal(grid[2:22, 2:32], img)
    with zipfile.ZipFile(io.BytesIO(images_to_zip([img, img]))) as zf:
        assert zf.namelist() == ["000000.png", "000001.png"]


def test_samples_npz_and_picture_for_images_and_points():
    p = Processor(_manifest("noise"))
    feeds, seed = p.noise_feeds(5, labels="triangle", seed=11)
    y = np.zeros((5, 1, 28, 28), np.float32)
    samples = Samples.from_outputs(p, feeds, seed, {"image": y})
    assert not samples.points and samples.values.shape == (5, 28, 28, 1)
    with np.load(io.BytesIO(samples.to_npz())) as data:
        assert sorted(data.files) == ["images", "labels", "seed"]
        assert data["labels"].tolist() == [2] * 5 and int(data["seed"]) == 11
        np.testing.assert_array_equal(data["images"], samples.values)
    assert samples.picture().shape == (2 * 30 + 2, 3 * 30 + 2, 1)
    assert samples.picture(ncol=5).shape == (30 + 2, 5 * 30 + 2, 1)

    toy = Processor(_manifest("points"))
    feeds, seed = toy.noise_feeds(4, seed=0)
    points = Samples.from_outputs(toy, feeds, seed, {"points": np.arange(8, dtype=np.float32).reshape(4, 2)})
    assert points.points and points.labels is None
    with np.load(io.BytesIO(points.to_npz())) as data:
        assert sorted(data.files) == ["points", "seed"]
    scatter = points.picture()
    assert scatter.shape == (512, 512, 3) and (scatter != 255).any()  # dots on a white canvas
