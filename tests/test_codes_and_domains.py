"""Models with continuous codes (InfoGAN's kind) and multi-domain translators (StarGAN's kind) through
infer: the Python API, the HTTP service, the CLI and the webcam loop, on real exported ONNX models.

The models are users' own generators (`python -m export --module`), so these tests need no trained
variant: a sampler G(z, category, codes) and a translator G(image, domain) whose outputs move
with every input, so that a code or domain that does not reach the model fails a test.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from export.cli import main as export_main
from ganrt.errors import InputError, UnknownLabel, UnsupportedOperation
from infer.api import load
from infer.options import ServiceOptions
from infer.prepost import NATIVE
from infer.server.app import create_app
from infer.webcam import DomainSwitch, run_pipeline
from tests.test_server import LiveServer

REPO = Path(__file__).resolve().parents[1]
SAMPLER = "tests.test_codes_and_domains:coded_sampler"
TRANSLATOR = "tests.test_codes_and_domains:domain_translator"
DOMAINS = 3


class CodedSampler(nn.Module):
    """z (8) + category (4 classes) + 2 codes in [-1, 1] -> a 1x8x8 image; every input moves the output."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("eye", torch.eye(4))
        self.fc = nn.Linear(8 + 4 + 2, 64)

    def forward(self, z: torch.Tensor, category: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(torch.cat([z, self.eye[category], 3 * codes], 1))).view(-1, 1, 8, 8)


class DomainTranslator(nn.Module):
    """An RGB image and a target domain (3) -> an RGB image: the domain's one-hot tiled over the image, then a conv."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("eye", torch.eye(DOMAINS))
        self.conv = nn.Conv2d(3 + DOMAINS, 3, 3, padding=1)

    def forward(self, image: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        planes = self.eye[domain][:, :, None, None].expand(-1, -1, image.shape[2], image.shape[3])
        return torch.tanh(self.conv(torch.cat([image, 2 * planes], 1)))


def coded_sampler() -> nn.Module:
    return CodedSampler()


def domain_translator() -> nn.Module:
    return DomainTranslator()


def _export(tmp: Path, factory: str, model: nn.Module, *spec: str) -> Path:
    torch.manual_seed(0)
    save_file(model.state_dict(), str(tmp / "weights.safetensors"))
    out = tmp / "artifact"
    assert export_main(["--module", factory, "--weights", str(tmp / "weights.safetensors"), *spec, "--out", str(out),
                        "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def sampler_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("coded"), SAMPLER, CodedSampler(), "--input", "z:noise:8",
                   "category:label:4", "codes:code:2", "--output", "image:1x8x8")


@pytest.fixture(scope="module")
def translator_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("domains"), TRANSLATOR, DomainTranslator(), "--input", "image:3xHxW",
                   f"domain:label:{DOMAINS}", "--output", "image:3xHxW", "--size", "16")


@pytest.fixture(scope="module")
def sampler(sampler_artifact: Path):
    with load(sampler_artifact, backend="ort-cpu") as model:
        yield model


@pytest.fixture(scope="module")
def translator(translator_artifact: Path):
    with load(translator_artifact, backend="ort-cpu") as model:
        yield model


def _photo(h: int = 20, w: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# -- the manifest and every precision -------------------------------------------------------
def test_codes_are_in_the_manifest_and_every_precision_passes_parity(sampler_artifact: Path) -> None:
    manifest = json.loads((sampler_artifact / "manifest.json").read_text())
    codes = next(s for s in manifest["inputs"] if s["name"] == "codes")
    assert codes["kind"] == "code" and codes["shape"] == [None, 2] and codes["range"] == [-1.0, 1.0]
    assert {"ort-cpu/fp32", "ort-cpu/int8"} <= set(manifest["parity"])
    assert "2 continuous codes, each in [-1, 1]" in (sampler_artifact / "README.md").read_text()


# -- codes: the Python API ---------------------------------------------------------------------
def test_codes_reach_the_model_and_default_to_draws_from_the_seed(sampler) -> None:
    a = sampler.sample(4, labels=1, seed=3, codes=[0.9, -0.9])
    b = sampler.sample(4, labels=1, seed=3, codes=[-0.9, 0.9])
    assert a.shape == (4, 8, 8, 1) and not np.array_equal(a, b)
    assert np.array_equal(sampler.sample(4, labels=1, seed=3), sampler.sample(4, labels=1, seed=3))
    feeds, _ = sampler.processor.noise_feeds(5, None, 7)
    assert feeds["codes"].shape == (5, 2) and -1 <= feeds["codes"].min() and feeds["codes"].max() <= 1
    # One row per sample is taken as given; z is the same with or without codes (drawn first).
    rows = np.linspace(-1, 1, 10, dtype=np.float32).reshape(5, 2)
    given, _ = sampler.processor.noise_feeds(5, None, 7, rows)
    assert np.array_equal(given["codes"], rows) and np.array_equal(given["z"], feeds["z"])


@pytest.mark.parametrize("codes, says", [([1.5, 0.0], "out of range"), ([0.0], "takes 2 continuous codes"),
                                          ([[0.0, 0.0]] * 3, "takes 2 continuous codes"), (["a", "b"], "numbers"),
                                          ([float("nan"), 0.0], "out of range"), ([True, False], "numbers")])
def test_bad_codes_are_input_errors_that_say_why(sampler, codes, says: str) -> None:
    with pytest.raises(InputError, match=says):
        sampler.sample(4, codes=codes)


def test_a_model_without_codes_refuses_them(translator) -> None:
    with pytest.raises(InputError, match="no continuous codes"):
        translator.processor.codes(1, [0.5], np.random.default_rng(0))


def test_sweep_is_a_row_per_class_and_a_column_per_code_value(sampler) -> None:
    feeds = sampler.processor.sweep_feeds(1, steps=5, seed=0)
    assert feeds["category"].tolist() == [c for c in range(4) for _ in range(5)]
    assert np.allclose(feeds["codes"][:5, 1], np.linspace(-1, 1, 5)) and np.all(feeds["codes"][:, 0] == 0)
    assert np.all(feeds["z"] == feeds["z"][0])
    images = sampler.sweep(1, steps=5, seed=0)
    assert images.shape == (20, 8, 8, 1)
    assert not np.array_equal(images[0], images[4]), "the swept code does not change the image"
    with pytest.raises(InputError, match="sweep one of 0..1"):
        sampler.sweep(2)


def test_a_model_without_codes_has_nothing_to_sweep(translator) -> None:
    with pytest.raises(UnsupportedOperation, match="no continuous codes to sweep"):
        translator.processor.sweep_feeds(0)


# -- domains: the Python API -------------------------------------------------------------------
def test_the_domain_reaches_the_model_and_is_required(translator) -> None:
    photo = _photo()
    outs = [translator.translate(photo, domain=d) for d in range(DOMAINS)]
    assert outs[0].shape == photo.shape
    assert not np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[1], outs[2])
    assert np.array_equal(translator.translate(photo, domain="2"), outs[2])  # an index written as text
    # A list of images with one domain each: the same as one at a time.
    both = translator.translate([photo, photo], domain=[0, 2])
    assert np.array_equal(both[0], outs[0]) and np.array_equal(both[1], outs[2])
    with pytest.raises(InputError, match="name the target domain"):
        translator.translate(photo)
    with pytest.raises(UnknownLabel, match="unknown domain 3: this model has 3 domains"):
        translator.translate(photo, domain=3)


def test_a_single_domain_model_refuses_a_domain(cyclegan_artifact: Path) -> None:
    with load(cyclegan_artifact, backend="ort-cpu") as model:
        with pytest.raises(InputError, match="takes no domain"):
            model.translate(np.zeros((32, 32, 3), np.uint8), domain=0)


# -- over HTTP ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def servers(sampler, translator):
    with LiveServer(create_app(sampler, ServiceOptions(max_n=16))) as gen, \
            LiveServer(create_app(translator, ServiceOptions(max_body_mb=1))) as tr:
        yield gen.url, tr.url


def _npz(r: httpx.Response) -> dict[str, np.ndarray]:
    import io
    assert r.status_code == 200, r.text
    return dict(np.load(io.BytesIO(r.content)))


def test_http_generate_takes_codes_and_refuses_bad_ones_with_422(servers) -> None:
    gen, _ = servers
    body = _npz(httpx.post(f"{gen}/v1/generate", json={"n": 3, "seed": 1, "codes": [0.5, -0.25], "format": "npz"}))
    assert body["images"].shape == (3, 8, 8, 1) and np.allclose(body["codes"], [[0.5, -0.25]] * 3)
    rows = [[0.1, 0.2], [0.3, 0.4]]
    assert np.allclose(_npz(httpx.post(f"{gen}/v1/generate", json={"n": 2, "codes": rows, "format": "npz"}))["codes"],
                       rows)
    for codes in ([2.0, 0.0], [0.0], [[0.0, 0.0]] * 3, "0.5"):
        r = httpx.post(f"{gen}/v1/generate", json={"n": 2, "codes": codes})
        assert r.status_code == 422, (codes, r.status_code, r.text)
    assert "out of range" in httpx.post(f"{gen}/v1/generate", json={"n": 2, "codes": [2.0, 0.0]}).json()["detail"]
    assert httpx.get(f"{gen}/health").status_code == 200


def test_http_translate_takes_the_domain_as_query_or_form_field(servers, translator) -> None:
    _, tr = servers
    photo = _photo()
    png = cv2.imencode(".png", photo[:, :, ::-1])[1].tobytes()
    want = translator.translate(photo, domain=1)
    for r in (httpx.post(f"{tr}/v1/translate?domain=1", content=png, headers={"content-type": "image/png"}),
              httpx.post(f"{tr}/v1/translate", files={"image": ("a.png", png, "image/png")}, data={"domain": "1"})):
        assert r.status_code == 200, r.text
        got = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        assert np.array_equal(got, want)
    unknown = httpx.post(f"{tr}/v1/translate?domain=7", content=png, headers={"content-type": "image/png"})
    assert unknown.status_code == 422 and unknown.json()["type"] == "unknown_label"
    missing = httpx.post(f"{tr}/v1/translate", content=png, headers={"content-type": "image/png"})
    assert missing.status_code == 422 and "name the target domain" in missing.json()["detail"]
    schema = httpx.get(f"{tr}/openapi.json").json()["paths"]["/v1/translate"]["post"]
    assert [p["name"] for p in schema["parameters"]] == ["domain"]


# -- the command line -----------------------------------------------------------------------------
def run_infer(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infer", *args], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=300)


def test_cli_sample_codes_and_sweep(sampler_artifact: Path, tmp_path: Path) -> None:
    ok = run_infer("sample", str(sampler_artifact), "--n", "4", "--codes", "0.5", "-0.5", "--npz", "s.npz",
                   "--backend", "ort-cpu", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert np.allclose(np.load(tmp_path / "s.npz")["codes"], [[0.5, -0.5]] * 4)
    sweep = run_infer("sample", str(sampler_artifact), "--sweep", "0", "--steps", "6", "--grid", "sweep.png",
                      "--backend", "ort-cpu", cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr
    grid = cv2.imread(str(tmp_path / "sweep.png"))
    assert grid.shape[:2] == (4 * 8 + 5 * 2, 6 * 8 + 7 * 2)  # 4 rows (classes) x 6 columns, 2 px padding
    for bad, says in ((["--codes", "3", "0"], "out of range"), (["--codes", "0.1"], "takes 2 continuous codes"),
                      (["--sweep", "5"], "sweep one of 0..1")):
        r = run_infer("sample", str(sampler_artifact), *bad, "--backend", "ort-cpu", cwd=tmp_path)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_cli_translate_domain(translator_artifact: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), _photo())
    ok = run_infer("translate", str(translator_artifact), "in", "out", "--domain", "2", "--backend", "ort-cpu",
                   cwd=tmp_path)
    assert ok.returncode == 0 and (tmp_path / "out" / "a.png").is_file(), ok.stderr
    for bad, says in ((["--domain", "9"], "unknown domain 9: this model has 3 domains"), ([], "name the target domain")):
        r = run_infer("translate", str(translator_artifact), "in", "out2", *bad, "--backend", "ort-cpu", cwd=tmp_path)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not (tmp_path / "out2").exists()


# -- the webcam loop ------------------------------------------------------------------------------
def test_webcam_translates_into_the_chosen_domain_and_keys_switch_it(translator, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (128, 64))
    for i in range(5):
        writer.write(_photo(64, 128, seed=i))
    writer.release()
    frames: list[np.ndarray] = []
    stats = run_pipeline(translator, str(video), domain=2, size=NATIVE, on_frame=frames.append)
    assert stats.processed == 5 and len(frames) == 5
    ok, first = cv2.VideoCapture(str(video)).read()
    assert ok
    # Right of the overlay's text, the translated half is the model's output for domain 2, not for 0.
    shown = frames[0][:, 128 + 40:]
    assert np.array_equal(shown, translator.translate(first, channel_order="BGR", side=NATIVE, domain=2)[:, 40:])
    assert not np.array_equal(shown, translator.translate(first, channel_order="BGR", side=NATIVE, domain=0)[:, 40:])
    switch = DomainSwitch(translator.processor, "1")
    assert switch.index == 1 and switch.name == "1"
    switch.key(ord("3"))
    assert switch.index == 2
    switch.key(9)  # Tab: the next, wrapping
    assert switch.index == 0
    switch.key(ord("9"))  # no ninth domain: unchanged
    assert switch.index == 0
    with pytest.raises(UnknownLabel):
        DomainSwitch(translator.processor, 5)


def test_a_single_domain_model_has_no_domain_to_switch(cyclegan_artifact: Path) -> None:
    with load(cyclegan_artifact, backend="ort-cpu") as model:
        switch = DomainSwitch(model.processor)
        switch.key(9)
        assert switch.index is None and switch.name is None


# -- the registered variants, trained and exported ----------------------------------------------
def test_a_trained_infogan_artifact_takes_codes_and_sweeps_from_the_cli(infogan_artifact: Path, tmp_path: Path) -> None:
    manifest = json.loads((infogan_artifact / "manifest.json").read_text())
    assert [(s["name"], s["kind"]) for s in manifest["inputs"]] == [("z", "noise"), ("category", "label"),
                                                                    ("codes", "code")]
    sweep = run_infer("sample", str(infogan_artifact), "--sweep", "1", "--steps", "4", "--grid", "g.png",
                      "--npz", "g.npz", "--backend", "ort-cpu", cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr
    bundle = np.load(tmp_path / "g.npz")
    assert bundle["images"].shape == (40, 28, 28, 1) and bundle["labels"].tolist()[:5] == [0, 0, 0, 0, 1]
    assert np.allclose(bundle["codes"][:4, 1], np.linspace(-1, 1, 4))
    bad = run_infer("sample", str(infogan_artifact), "--codes", "0.5", "--backend", "ort-cpu", cwd=tmp_path)
    assert bad.returncode == 2 and "takes 2 continuous codes" in bad.stderr, bad.stderr


def test_a_trained_stargan_artifact_translates_into_named_domains(stargan_artifact: Path, tmp_path: Path) -> None:
    manifest = json.loads((stargan_artifact / "manifest.json").read_text())
    domain = next(s for s in manifest["inputs"] if s["kind"] == "label")
    names = domain["class_names"]
    assert len(names) == domain["num_classes"] >= 2 and "sepia" in names
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), _photo(40, 48))
    for name in names[:2]:
        r = run_infer("translate", str(stargan_artifact), "in", name, "--domain", name, "--backend", "ort-cpu",
                      cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    first, second = (cv2.imread(str(tmp_path / n / "a.png")) for n in names[:2])
    assert first.shape == (40, 48, 3) and not np.array_equal(first, second)
    bad = run_infer("translate", str(stargan_artifact), "in", "out", "--domain", "vangogh", "--backend", "ort-cpu",
                    cwd=tmp_path)
    assert bad.returncode == 2 and "unknown domain 'vangogh'" in bad.stderr and names[0] in bad.stderr, bad.stderr
