"""Tests for train.data: every dataset on small generated files; no network, no shared data."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganrt.errors import DataError, UsageError
from train.data import (
    EdgesToScenes,
    Gaussian1D,
    IdxImages,
    ImageFolder,
    PairedImages,
    PhotoToSketch,
    Ring2D,
    ShapesDataset,
    UnpairedImages,
    builtin,
    download_cyclegan,
    download_mnist,
    download_pix2pix,
    gaussian_stats,
    list_images,
    load_rgb,
    read_idx,
    ring_stats,
    scene_edges,
    sketch,
    to_tensor,
    to_uint8,
)
from train.data import download as download_module
from train.data.download import download
from train.data.jitter import Jitter, default_load_size

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def save_image(path: Path, pixels: np.ndarray | tuple, size: tuple[int, int] = (8, 8), mode: str = "RGB") -> Path:
    """Write a PNG/JPEG of solid colour (tuple, size = (w, h)) or of given pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(pixels, tuple):
        Image.new(mode, size, pixels).save(path)
    else:
        Image.fromarray(pixels).save(path)
    return path


def side_by_side(path: Path, left: tuple, right: tuple, half_w: int, height: int) -> Path:
    img = np.zeros((height, 2 * half_w, 3), np.uint8)
    img[:, :half_w] = left
    img[:, half_w:] = right
    return save_image(path, img)


def mean_colour(t: torch.Tensor) -> np.ndarray:
    return to_uint8(t).reshape(-1, t.shape[0]).mean(axis=0)


# ---------------------------------------------------------------- toy distributions


def test_gaussian_stats_accept_true_samples_and_reject_shifted_ones():
    data = Gaussian1D(n=5000, mean=4.0, std=1.25, seed=1)
    samples = data.samples.numpy()
    good = gaussian_stats(samples, data.mean, data.std)
    assert good["ks"] < good["ks_critical_95"]
    assert good["mean_rel_error"] < 0.01 and good["std_rel_error"] < 0.03
    shifted = gaussian_stats(samples + 0.5, 4.0, 1.25)
    assert shifted["ks"] > 0.1 > shifted["ks_critical_95"]
    wide = gaussian_stats(samples * 1.5, 4.0, 1.25)
    assert wide["std_rel_error"] > 0.4


def test_ks_statistic_exact_value_and_nonfinite_samples():
    # One sample at the mean: the empirical CDF jumps from 0 to 1 where F = 0.5.
    assert gaussian_stats(np.array([0.0, 0.0]), 0.0, 1.0)["ks"] == pytest.approx(0.5)
    phi_3 = 0.9986501019683699  # standard normal CDF at 3
    assert gaussian_stats(np.array([3.0, 3.0]), 0.0, 1.0)["ks"] == pytest.approx(phi_3)
    assert gaussian_stats(np.array([-3.0, -3.0]), 0.0, 1.0)["ks"] == pytest.approx(phi_3)
    stats = gaussian_stats(np.array([0.0, np.nan, np.inf, 1.0]), 0.0, 1.0)
    assert stats["nonfinite"] == 2 and stats["n"] == 2


def test_gaussian1d_items_and_seeds():
    a, b, c = Gaussian1D(n=10, seed=0), Gaussian1D(n=10, seed=0), Gaussian1D(n=10, seed=1)
    assert a[3].shape == (1,) and a[3].dtype == torch.float32 and len(a) == 10
    assert torch.equal(a.samples, b.samples) and not torch.equal(a.samples, c.samples)


def test_ring_stats_full_coverage_dropped_mode_and_collapse():
    ring = Ring2D(n=4000, seed=0)
    assert ring[0].shape == (2,) and ring.centers.shape == (8, 2)
    assert np.allclose(np.linalg.norm(ring.centers, axis=1), 2.0)
    samples = ring.samples.numpy()
    full = ring_stats(samples, ring.centers, ring.std)
    assert full["modes_covered"] == 8 and full["high_quality_fraction"] > 0.97
    assert sum(full["per_mode"]) <= len(samples)

    dropped = samples[ring.mode_of != 3]
    stats = ring_stats(dropped, ring.centers, ring.std)
    assert stats["modes_covered"] == 7 and stats["covered"][3] is False and stats["per_mode"][3] == 0

    # A few stragglers near the dropped mode stay under the coverage threshold.
    stragglers = np.concatenate([dropped, np.repeat(ring.centers[3:4], 5, axis=0)])
    assert ring_stats(stragglers, ring.centers, ring.std)["modes_covered"] == 7

    collapsed = np.repeat(ring.centers[:1], 1000, axis=0)
    assert ring_stats(collapsed, ring.centers, ring.std)["modes_covered"] == 1
    off_ring = np.zeros((100, 2))
    assert ring_stats(off_ring, ring.centers, ring.std)["high_quality_fraction"] == 0.0


# ---------------------------------------------------------------- shapes


def test_shapes_dataset_items_labels_and_determinism():
    data = ShapesDataset(n=300, size=28, seed=3)
    image, label = data[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert label.dtype == torch.int64 and label.shape == ()
    assert image.min() == -1.0 and image.max() > 0.0
    assert set(data.labels.tolist()) == set(range(10)) and len(data.classes) == 10
    again, other = ShapesDataset(n=300, seed=3), ShapesDataset(n=300, seed=4)
    assert np.array_equal(data.images, again.images) and np.array_equal(data.labels, again.labels)
    assert not np.array_equal(data.images, other.images)
    assert ShapesDataset(n=5, size=40)[4][0].shape == (1, 40, 40)


def test_shapes_classes_look_like_their_names():
    data = ShapesDataset(n=400, seed=0)
    imgs, labels = data.images.astype(float), data.labels
    by = {name: imgs[labels == k] for k, name in enumerate(data.classes)}
    centre = (slice(12, 16), slice(12, 16))
    assert by["circle"][:, centre[0], centre[1]].mean() > 100 > by["ring"][:, centre[0], centre[1]].mean()
    rows_h = (by["hbar"] > 64).any(axis=2).sum(axis=1).mean()
    cols_h = (by["hbar"] > 64).any(axis=1).sum(axis=1).mean()
    assert cols_h > 2 * rows_h
    rows_v = (by["vbar"] > 64).any(axis=2).sum(axis=1).mean()
    cols_v = (by["vbar"] > 64).any(axis=1).sum(axis=1).mean()
    assert rows_v > 2 * cols_v


# ---------------------------------------------------------------- IDX


def idx_bytes(arr: np.ndarray) -> bytes:
    codes = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}
    header = bytes([0, 0, codes[arr.dtype.type], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_read_idx_round_trip(tmp_path, gz, dtype):
    arr = (np.arange(2 * 3 * 4) * 7 - 20).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = read_idx(write_idx(tmp_path / "x-idx3-ubyte", arr, gz))
    assert out.dtype == dtype and out.shape == arr.shape and np.array_equal(out, arr)


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path):
    data = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(data[:-5])
    with pytest.raises(DataError, match="short-idx3-ubyte.*truncated"):
        read_idx(short)
    cut_gz = tmp_path / "cut-idx3-ubyte.gz"
    cut_gz.write_bytes(gzip.compress(data)[:-10])
    with pytest.raises(DataError, match="cut-idx3-ubyte.gz"):
        read_idx(cut_gz)
    text = tmp_path / "notes-idx1-ubyte"
    text.write_text("hello")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(text)
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "absent")


def make_mnist(folder: Path, prefix: str = "train", n: int = 12, gz: bool = True) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(0).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0] = 0
    images[0, 0, 0] = 255
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", (np.arange(n) % 10).astype(np.uint8), gz)
    return images


def test_idx_images_items_resize_and_channels(tmp_path):
    make_mnist(tmp_path, "train", gz=True)
    make_mnist(tmp_path, "t10k", n=5, gz=False)
    data = IdxImages(tmp_path)
    image, label = data[0]
    assert len(data) == 12 and data.num_classes == 10 and data.labels[3] == 3
    assert image.shape == (1, 28, 28) and image[0, 0, 0] == 1.0 and image[0, 5, 5] == -1.0
    assert label.dtype == torch.int64 and int(data[7][1]) == 7
    assert len(IdxImages(tmp_path, split="test")) == 5
    assert IdxImages(tmp_path, size=14)[1][0].shape == (1, 14, 14)
    rgb = IdxImages(tmp_path, channels=3)[1][0]
    assert rgb.shape == (3, 28, 28) and torch.equal(rgb[0], rgb[2])


def test_idx_images_missing_files_are_named(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.*python -m train\.data\.download"):
        IdxImages(tmp_path)
    with pytest.raises(DataError, match="not found"):
        IdxImages(tmp_path / "nowhere")
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8), True)
    with pytest.raises(DataError, match="12 images but .* 3 labels"):
        IdxImages(tmp_path)


# ---------------------------------------------------------------- download


def test_download_file_url_verifies_checksums(tmp_path):
    payload = np.random.default_rng(1).bytes(300_000)
    src = tmp_path / "src" / "blob.bin"
    src.parent.mkdir()
    src.write_bytes(payload)
    md5, sha = hashlib.md5(payload).hexdigest(), hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "out" / "blob.bin"
    assert download(src.as_uri(), dest, md5=md5, sha256=sha, size=len(payload), progress=False) == dest
    assert dest.read_bytes() == payload
    src.unlink()  # a verified copy is not fetched again
    assert download(src.as_uri(), dest, md5=md5, progress=False).read_bytes() == payload


def test_download_bad_checksum_size_and_missing_url_leave_nothing(tmp_path):
    src = tmp_path / "blob.bin"
    src.write_bytes(b"abc" * 1000)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"md5 mismatch for .*bad\.bin.*expected 0{32}, got [0-9a-f]{32}"):
        download(src.as_uri(), out / "bad.bin", md5="0" * 32, progress=False)
    with pytest.raises(DataError, match="3000 bytes, expected 10"):
        download(src.as_uri(), out / "short.bin", size=10, progress=False)
    with pytest.raises(DataError, match=r"could not download .*absent\.bin.*offline.*by hand"):
        download((tmp_path / "absent.bin").as_uri(), out / "absent.bin", progress=False)
    assert list(out.iterdir()) == []  # no partial or temp files left


def test_download_mnist_tries_mirrors_in_order(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    make_mnist(mirror, "train")
    make_mnist(mirror, "t10k", n=4)
    for name in download_module.MNIST_MD5:
        monkeypatch.setitem(download_module.MNIST_MD5, name, hashlib.md5((mirror / name).read_bytes()).hexdigest())
    dead = (tmp_path / "dead").as_uri() + "/"
    root = download_mnist(tmp_path / "mnist", mirrors=[dead, mirror.as_uri() + "/"], progress=False)
    assert len(IdxImages(root, split="test")) == 4
    with pytest.raises(DataError, match="by hand"):
        download_mnist(tmp_path / "other", mirrors=[dead], progress=False)
    with pytest.raises(DataError, match="fashion-mnist"):
        download_mnist(tmp_path, which="kmnist")


def test_fetch_archive_zip_and_tar_and_unsafe_members(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    png = io.BytesIO()
    Image.new("RGB", (4, 4), RED).save(png, format="PNG")
    with zipfile.ZipFile(mirror / "toy.zip", "w") as zf:
        for part in ("trainA", "trainB", "testA", "testB"):
            zf.writestr(f"toy/{part}/0.png", png.getvalue())
    sha = hashlib.sha256((mirror / "toy.zip").read_bytes()).hexdigest()
    root = tmp_path / "data"
    download_module.fetch_archive([mirror.as_uri() + "/"], "toy.zip", root, sha256=sha, progress=False)
    assert len(UnpairedImages(root / "toy", size=4)) == 1 and not (root / "toy.zip").exists()

    with tarfile.open(mirror / "p.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("p/train/0.png")
        info.size = len(png.getvalue())
        tf.addfile(info, io.BytesIO(png.getvalue()))
    size = (mirror / "p.tar.gz").stat().st_size
    download_module.fetch_archive([mirror.as_uri() + "/"], "p.tar.gz", root, size=size, progress=False)
    assert (root / "p" / "train" / "0.png").is_file()

    with zipfile.ZipFile(mirror / "evil.zip", "w") as zf:
        zf.writestr("../escaped.txt", "x")
    with pytest.raises(DataError, match="outside"):
        download_module.fetch_archive([mirror.as_uri() + "/"], "evil.zip", root, progress=False)
    assert not (tmp_path / "escaped.txt").exists()


def test_download_dataset_names_are_checked(tmp_path, capsys):
    with pytest.raises(DataError, match="horse2zebra"):
        download_cyclegan("horse2giraffe", tmp_path)
    with pytest.raises(DataError, match="facades"):
        download_pix2pix("cityscapes", tmp_path)
    for part in ("trainA", "trainB", "testA", "testB"):
        (tmp_path / "horse2zebra" / part).mkdir(parents=True)
    assert download_cyclegan("horse2zebra", tmp_path) == tmp_path / "horse2zebra"  # present: no network
    assert download_module.main(["nonsense", str(tmp_path)]) == 2
    assert "unknown dataset" in capsys.readouterr().err


# ---------------------------------------------------------------- image files


def test_load_rgb_converts_modes(tmp_path):
    gray = load_rgb(save_image(tmp_path / "g.png", (77,), mode="L"))
    assert gray.shape == (8, 8, 3) and gray.dtype == np.uint8 and (gray == 77).all()
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    out = load_rgb(save_image(tmp_path / "t.png", rgba))
    assert tuple(out[0, 0]) == (10, 20, 30) and tuple(out[3, 3]) == (255, 255, 255)
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    pal.save(tmp_path / "p.png")
    assert tuple(load_rgb(tmp_path / "p.png")[2, 2]) == (200, 100, 50)
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "w.png")
    assert (load_rgb(tmp_path / "w.png") == 255).all()


def test_load_rgb_names_corrupt_files(tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    with pytest.raises(DataError, match="fake.png"):
        load_rgb(fake)
    jpeg = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(jpeg.getvalue()[:300])
    with pytest.raises(DataError, match="cut.jpg"):
        load_rgb(tmp_path / "cut.jpg")
    with pytest.raises(DataError, match="absent.png"):
        load_rgb(tmp_path / "absent.png")


def test_list_images_filters_and_sorts(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.JPEG", "d.webp", "e.tif"):
        save_image(tmp_path / name, RED)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "._a.jpg").write_bytes(b"\0")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.JPEG", "d.webp", "e.tif"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in .*empty"):
        list_images(tmp_path / "empty")
    with pytest.raises(DataError, match="missing"):
        list_images(tmp_path / "missing")


def test_to_tensor_range_layout_and_inverse():
    img = np.array([[[0, 255, 128]]], np.uint8)
    t = to_tensor(img)
    assert t.shape == (3, 1, 1) and t.dtype == torch.float32
    assert t.flatten().tolist() == pytest.approx([-1.0, 1.0, (128 / 255 - 0.5) / 0.5], abs=1e-6)
    assert np.array_equal(to_uint8(t), img)
    assert to_tensor(np.zeros((5, 6), np.uint8)).shape == (1, 5, 6)


# ---------------------------------------------------------------- ImageFolder


def test_image_folder_classes_labels_and_channels(tmp_path):
    save_image(tmp_path / "cat" / "a.png", RED)
    save_image(tmp_path / "cat" / "b.png", RED, size=(20, 10))
    save_image(tmp_path / "dog" / "c.jpg", BLUE)
    (tmp_path / "dog" / "readme.txt").write_text("x")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    data = ImageFolder(tmp_path, size=16)
    assert data.classes == ("cat", "dog") and data.num_classes == 2 and data.labels.tolist() == [0, 0, 1]
    image, label = data[1]
    assert image.shape == (3, 16, 16) and label.dtype == torch.int64 and int(label) == 0
    assert mean_colour(image)[0] > 250 and int(data[2][1]) == 1 and mean_colour(data[2][0])[2] > 200
    assert ImageFolder(tmp_path, size=8, channels=1)[0][0].shape == (1, 8, 8)


def test_image_folder_errors_name_the_problem(tmp_path):
    save_image(tmp_path / "cat" / "a.png", RED)
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG garbage")
    data = ImageFolder(tmp_path, size=8)
    with pytest.raises(DataError, match="broken.png"):
        data[1]
    (tmp_path / "dog").mkdir()
    with pytest.raises(DataError, match="no images in class folder .*dog"):
        ImageFolder(tmp_path, size=8)
    with pytest.raises(DataError, match="no class sub-folders"):
        ImageFolder(tmp_path / "cat", size=8)
    with pytest.raises(DataError, match="not found"):
        ImageFolder(tmp_path / "nope", size=8)


# ---------------------------------------------------------------- paired (pix2pix)


def test_paired_side_by_side_split_direction_and_uneven_heights(tmp_path):
    side_by_side(tmp_path / "train" / "0.png", RED, BLUE, 32, 32)
    side_by_side(tmp_path / "train" / "1.jpg", RED, BLUE, 32, 19)  # shorter, JPEG
    (tmp_path / "train" / "notes.txt").write_text("not an image")
    data = PairedImages(tmp_path, size=16, jitter=False)
    assert len(data) == 2 and data.layout == "side_by_side" and [p.name for p in data.files] == ["0.png", "1.jpg"]
    for item in (data[0], data[1]):
        assert item["A"].shape == item["B"].shape == (3, 16, 16)
        assert mean_colour(item["A"])[0] > 240 and mean_colour(item["B"])[2] > 240
    swapped = PairedImages(tmp_path, direction="BtoA", size=16, jitter=False)[0]
    assert mean_colour(swapped["A"])[2] > 240 and mean_colour(swapped["B"])[0] > 240


def test_paired_bad_inputs(tmp_path):
    save_image(tmp_path / "train" / "odd.png", RED, size=(33, 16))
    data = PairedImages(tmp_path, size=8)
    with pytest.raises(DataError, match="odd.png.*odd"):
        data[0]
    with pytest.raises(DataError, match="direction"):
        PairedImages(tmp_path, direction="AtoC")
    with pytest.raises(DataError, match="no paired data for split 'val'"):
        PairedImages(tmp_path, split="val")
    with pytest.raises(DataError, match="not found"):
        PairedImages(tmp_path / "absent")
    assert isinstance(DataError("x"), UsageError)


def test_paired_jitter_is_shared_and_reproducible(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        left = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        save_image(tmp_path / "train" / f"{i}.png", np.concatenate([left, 255 - left], axis=1))
    data = PairedImages(tmp_path, size=16, jitter=True, seed=5)
    assert data.load_size == default_load_size(16) == 18
    item = data[0]
    # B is the negative of A before jitter; the same crop and flip keep it so.
    assert (item["A"] + item["B"]).abs().max() < 0.05
    assert torch.equal(PairedImages(tmp_path, size=16, seed=5)[0]["A"], item["A"])
    firsts = [data[i]["A"] for i in range(4)]
    data.set_epoch(1)
    assert any(not torch.equal(a, data[i]["A"]) for i, a in enumerate(firsts))
    for i in range(4):
        moved = data[i]
        assert (moved["A"] + moved["B"]).abs().max() < 0.05


def test_jitter_draw_stays_inside_and_flips():
    rng = np.random.default_rng(0)
    draws = [Jitter.draw(rng, 20, 16) for _ in range(200)]
    assert all(0 <= d.top <= 4 and 0 <= d.left <= 4 for d in draws)
    assert {d.flip for d in draws} == {True, False} and {d.top for d in draws} == set(range(5))
    img = np.arange(16, dtype=np.uint8).reshape(4, 4)
    assert np.array_equal(Jitter(0, 0, True).apply(img, 4, 4), img[:, ::-1])


def test_paired_a_b_folders_with_and_without_split(tmp_path):
    save_image(tmp_path / "train" / "A" / "1.png", RED, size=(12, 12))
    save_image(tmp_path / "train" / "A" / "2.png", RED, size=(12, 12))
    save_image(tmp_path / "train" / "B" / "1.jpg", BLUE, size=(30, 20))
    save_image(tmp_path / "train" / "B" / "2.png", BLUE, size=(8, 8))
    data = PairedImages(tmp_path, size=16, jitter=False)
    assert data.layout == "folders" and len(data) == 2
    item = data[0]
    assert item["A"].shape == item["B"].shape == (3, 16, 16)
    assert mean_colour(item["A"])[0] > 240 and mean_colour(item["B"])[2] > 240

    flat = tmp_path / "flat"
    save_image(flat / "A" / "x.png", GREEN)
    save_image(flat / "B" / "x.png", RED)
    assert mean_colour(PairedImages(flat, size=8, jitter=False)[0]["B"])[0] > 240

    save_image(tmp_path / "train" / "A" / "3.png", RED)
    save_image(tmp_path / "train" / "B" / "9.png", BLUE)
    with pytest.raises(DataError, match=r"3\.png.*9\.png"):
        PairedImages(tmp_path, size=16)


# ---------------------------------------------------------------- unpaired (CycleGAN)


def make_unpaired(root: Path, split: str = "train", n_a: int = 3, n_b: int = 5) -> None:
    for i in range(n_a):
        save_image(root / f"{split}A" / f"a{i}.png", (40 * i, 0, 0))
    for i in range(n_b):
        save_image(root / f"{split}B" / f"b{i}.png", (0, 0, 40 * i))


def test_unpaired_lengths_cycling_and_random_b(tmp_path):
    make_unpaired(tmp_path)
    data = UnpairedImages(tmp_path, size=8, jitter=False, seed=0)
    assert len(data) == 5 and len(data.files_a) == 3
    assert torch.equal(data[3]["A"], data[0]["A"]) and not torch.equal(data[1]["A"], data[0]["A"])
    chosen_for_0 = set()
    for epoch in range(8):
        data.set_epoch(epoch)
        chosen_for_0.add(round(mean_colour(data[0]["B"])[2] / 40))
    assert len(chosen_for_0) >= 3  # item 0's B is redrawn each epoch, not tied to the index
    data.set_epoch(0)
    again = UnpairedImages(tmp_path, size=8, jitter=False, seed=0)
    assert all(torch.equal(data[i]["B"], again[i]["B"]) for i in range(5))
    jittered = UnpairedImages(tmp_path, size=8, seed=0)[0]
    assert jittered["A"].shape == jittered["B"].shape == (3, 8, 8)


def test_unpaired_missing_domains_and_aligned_pairs(tmp_path):
    make_unpaired(tmp_path)
    (tmp_path / "testA").mkdir()
    save_image(tmp_path / "testB" / "x.png", BLUE)
    with pytest.raises(DataError, match="no images in .*testA"):
        UnpairedImages(tmp_path, split="test")
    save_image(tmp_path / "testA" / "x.png", RED)
    save_image(tmp_path / "testA" / "y.png", RED)
    save_image(tmp_path / "testB" / "z.png", BLUE)
    pairs = UnpairedImages(tmp_path, split="test", size=8).aligned_pairs()
    assert [(a.name, b.name) for a, b in pairs] == [("x.png", "x.png")] and pairs[0][0].parent.name == "testA"
    assert UnpairedImages(tmp_path, size=8).aligned_pairs() == []
    with pytest.raises(DataError, match="valA"):
        UnpairedImages(tmp_path, split="val")


def test_split_pairs_makes_an_unpaired_layout_with_aligned_test_files(tmp_path):
    from train.data.split_pairs import main, split_pairs

    shades = [(40 * k, 0, 0) for k in range(5)]
    for k, shade in enumerate(shades):  # left k-th shade of red, right the same shade in blue
        side_by_side(tmp_path / "src" / "train" / f"img{k}.png", shade, shade[::-1], 8, 8)
    for k in (0, 1):
        side_by_side(tmp_path / "src" / "val" / f"v{k}.png", shades[k], shades[k][::-1], 8, 8)
    counts = split_pairs(tmp_path / "src", tmp_path / "out", progress=False)
    assert counts == {"trainA": 5, "trainB": 5, "testA": 2, "testB": 2}
    out = tmp_path / "out"
    train_a, train_b = sorted((out / "trainA").iterdir()), sorted((out / "trainB").iterdir())
    assert {p.name[0] for p in train_a} == {"a"} and {p.name[0] for p in train_b} == {"b"}
    reds = sorted(int(np.asarray(Image.open(p))[0, 0, 0]) for p in train_a)
    assert reds == [s[0] for s in shades]  # every left half, each once
    # No file name links a photo to its partner: trainA and trainB share no stems.
    assert UnpairedImages(out, size=8).aligned_pairs() == []
    a, b = UnpairedImages(out, split="test", size=8, jitter=False).eval_pairs()
    assert b is not None and a.shape == b.shape == (2, 3, 8, 8)
    assert torch.equal(a.flip(1), b)  # v0/v1: blue side is the red side with channels reversed
    assert UnpairedImages(out, size=8).eval_pairs(3)[1] is None  # train: no ground truth
    swapped = split_pairs(tmp_path / "src", tmp_path / "swapped", direction="BtoA", progress=False)
    assert swapped["testA"] == 2
    assert np.asarray(Image.open(tmp_path / "swapped" / "testA" / "v1.png"))[0, 0, 2] == 40
    with pytest.raises(DataError, match="not empty"):
        split_pairs(tmp_path / "src", out)
    assert main([str(tmp_path / "nothing"), str(tmp_path / "new")]) == 2


# ---------------------------------------------------------------- built-in translation datasets


def test_edges_to_scenes_items_and_ground_truth():
    data = EdgesToScenes(n=6, size=64, seed=0)
    item = data[2]
    assert item["A"].shape == item["B"].shape == (3, 64, 64)
    assert item["B"].min() >= -1 and item["B"].max() <= 1
    assert set(item["A"].unique().tolist()) == {-1.0, 1.0}
    for i in range(len(data)):
        a, b = to_uint8(data[i]["A"]), to_uint8(data[i]["B"])
        assert np.array_equal(scene_edges(b), a)  # A is exactly Canny(B)
        colours = {tuple(c) for c in b.reshape(-1, 3)}
        background = {tuple(c) for c in builtin.background(64).reshape(-1, 3)}
        assert colours - background <= set(builtin.SHAPE_COLOURS.values())
        assert colours - background  # at least one shape
        inside = np.zeros((64, 64), bool)
        inside[3:-3, 3:-3] = True
        assert np.array_equal(b[~inside], builtin.background(64)[~inside])  # shapes keep off the border


def test_edges_to_scenes_determinism_splits_and_eval_pairs():
    train, again = EdgesToScenes(n=4, size=48), EdgesToScenes(n=4, size=48)
    assert np.array_equal(train.scenes, again.scenes)
    assert not np.array_equal(train.scenes, EdgesToScenes(n=4, size=48, split="test").scenes)
    assert not np.array_equal(train.scenes, EdgesToScenes(n=4, size=48, seed=1).scenes)
    assert np.array_equal(EdgesToScenes(n=2, size=48).scenes, train.scenes[:2])  # item i ignores n
    a, b = train.eval_pairs(3)
    assert a.shape == (3, 3, 48, 48) and torch.equal(a[1], train[1]["A"]) and torch.equal(b[1], train[1]["B"])
    with pytest.raises(DataError, match="split"):
        EdgesToScenes(split="val")


def test_photo_to_sketch_domains_and_eval_pairs():
    assert not set(builtin.TRAIN_PHOTOS) & set(builtin.TEST_PHOTOS)
    train = PhotoToSketch(n=3, size=32)
    item = train[0]
    assert item["A"].shape == item["B"].shape == (3, 32, 32)
    assert item["A"].min() >= -1 and item["A"].max() <= 1
    assert torch.equal(PhotoToSketch(n=3, size=32)[0]["B"], item["B"])
    assert not np.array_equal(sketch(to_uint8(item["A"])), to_uint8(item["B"]))  # unaligned in training
    test = PhotoToSketch(n=4, size=32, split="test")
    a, b = test.eval_pairs(3)
    assert a.shape == b.shape == (3, 3, 32, 32) and torch.equal(a[2], test[2]["A"])
    for i in range(3):
        photo = to_uint8(a[i])
        assert np.array_equal(to_uint8(b[i]), sketch(photo)) and np.array_equal(sketch(photo), sketch(photo.copy()))
        assert not np.array_equal(photo, to_uint8(b[i]))
