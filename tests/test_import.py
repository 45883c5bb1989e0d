"""Importing generators trained elsewhere: junyanz's and PyTorch-GAN's layouts, any module, safe loading.

Each layout's file comes from a reference network written here from the published layer order
(junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py; eriklindernoren/PyTorch-GAN
implementations/{cyclegan,pix2pix}/models.py): module trees whose attribute names and Sequential
indices give exactly the published key names, small widths, random weights, saved with torch.save.
The import must reproduce the reference's outputs, then export with parity and run through
`python -m infer translate`.
"""
from __future__ import annotations

import functools
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from export.cli import main as export_main
from export.importers.pretrained import fetch
from export.importers.pretrained import main as pretrained_main
from export.importers.resolve import import_file
from export.options import ExportOptions
from export.pipeline import run_export as run_export_api
from ganrt.errors import CheckpointError, UsageError
from train import registry
from train.cli import main as train_main

REPO = Path(__file__).resolve().parents[1]
IMPORT_TOLERANCE = 1e-5


# -- reference networks, written from the published layer orders ---------------------------------
def _norm(kind: str) -> type[nn.Module] | functools.partial:
    # junyanz get_norm_layer: batch = BatchNorm2d(affine, running stats); instance = no parameters, no stats.
    return nn.BatchNorm2d if kind == "batch" else functools.partial(nn.InstanceNorm2d, affine=False,
                                                                    track_running_stats=False)


class JunyanzResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str, dropout: bool, bias: bool) -> None:
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(norm)(dim), nn.ReLU(True)]
        layers += [nn.Dropout(0.5)] if dropout else []
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(norm)(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class JunyanzResnet(nn.Module):
    def __init__(self, channels: int, ngf: int, n_blocks: int, norm: str, dropout: bool) -> None:
        super().__init__()
        bias = norm == "instance"  # use_bias
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7, bias=bias), _norm(norm)(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2**i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                       _norm(norm)(ngf * mult * 2), nn.ReLU(True)]
        layers += [JunyanzResnetBlock(ngf * 4, norm, dropout, bias) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1,
                                          bias=bias), _norm(norm)(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class JunyanzSkipBlock(nn.Module):
    def __init__(self, outer: int, inner: int, input_nc: int | None = None, submodule: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, norm: str = "batch", dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        input_nc = outer if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner, 4, stride=2, padding=1, bias=bias)
        # In place, as published: the skip then carries LeakyReLU(x), which the parent's ReLU makes moot.
        downrelu, uprelu = nn.LeakyReLU(0.2, True), nn.ReLU(True)
        if outermost:
            model = [downconv, submodule, uprelu, nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1),
                     nn.Tanh()]
        elif innermost:
            model = [downrelu, downconv, uprelu, nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias),
                     _norm(norm)(outer)]
        else:
            model = [downrelu, downconv, _norm(norm)(inner), submodule, uprelu,
                     nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=bias), _norm(norm)(outer)]
            model += [nn.Dropout(0.5)] if dropout else []
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class JunyanzUnet(nn.Module):
    def __init__(self, channels: int, num_downs: int, ngf: int, norm: str, dropout: bool) -> None:
        super().__init__()
        block = JunyanzSkipBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = JunyanzSkipBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        block = JunyanzSkipBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = JunyanzSkipBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = JunyanzSkipBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = JunyanzSkipBlock(channels, ngf, input_nc=channels, submodule=block, outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PyTorchGanResidualBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features),
                                   nn.ReLU(inplace=True), nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3),
                                   nn.InstanceNorm2d(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class PyTorchGanResnet(nn.Module):
    def __init__(self, channels: int, width: int, n_blocks: int) -> None:
        super().__init__()
        layers = [nn.ReflectionPad2d(channels), nn.Conv2d(channels, width, 7), nn.InstanceNorm2d(width),
                  nn.ReLU(inplace=True)]
        features = width
        for _ in range(2):
            layers += [nn.Conv2d(features, features * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(features * 2),
                       nn.ReLU(inplace=True)]
            features *= 2
        layers += [PyTorchGanResidualBlock(features) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(features, features // 2, 3, stride=1, padding=1),
                       nn.InstanceNorm2d(features // 2), nn.ReLU(inplace=True)]
            features //= 2
        layers += [nn.ReflectionPad2d(channels), nn.Conv2d(features, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PyTorchGanDown(nn.Module):
    def __init__(self, c_in: int, c_out: int, normalize: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        layers = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)]
        layers += [nn.InstanceNorm2d(c_out)] if normalize else []
        layers += [nn.LeakyReLU(0.2)] + ([nn.Dropout(dropout)] if dropout else [])
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PyTorchGanUp(nn.Module):
    def __init__(self, c_in: int, c_out: int, dropout: float = 0.0) -> None:
        super().__init__()
        layers = [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True)]
        layers += [nn.Dropout(dropout)] if dropout else []
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.model(x), skip), 1)


class PyTorchGanUnet(nn.Module):
    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        w = [width * m for m in (1, 2, 4, 8, 8, 8, 8, 8)]  # 64, 128, 256, 512 x 5 at the published width
        self.down1 = PyTorchGanDown(channels, w[0], normalize=False)
        self.down2, self.down3 = PyTorchGanDown(w[0], w[1]), PyTorchGanDown(w[1], w[2])
        self.down4 = PyTorchGanDown(w[2], w[3], dropout=0.5)
        self.down5, self.down6, self.down7 = (PyTorchGanDown(w[3], w[3], dropout=0.5) for _ in range(3))
        self.down8 = PyTorchGanDown(w[3], w[3], normalize=False, dropout=0.5)
        self.up1 = PyTorchGanUp(w[3], w[3], dropout=0.5)
        self.up2, self.up3, self.up4 = (PyTorchGanUp(2 * w[3], w[3], dropout=0.5) for _ in range(3))
        self.up5, self.up6, self.up7 = PyTorchGanUp(2 * w[3], w[2]), PyTorchGanUp(2 * w[2], w[1]), \
            PyTorchGanUp(2 * w[1], w[0])
        self.final = nn.Sequential(nn.Upsample(scale_factor=2), nn.ZeroPad2d((1, 0, 1, 0)),
                                   nn.Conv2d(2 * w[0], channels, 4, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        downs = [x]
        for k in range(1, 9):
            downs.append(getattr(self, f"down{k}")(downs[-1]))
        u = self.up1(downs[8], downs[7])
        for k in range(2, 8):
            u = getattr(self, f"up{k}")(u, downs[8 - k])
        return self.final(u)


def randomize(net: nn.Module, seed: int) -> nn.Module:
    """Random weights everywhere, running statistics included (eval mode must use them)."""
    torch.manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.normal_(1.0, 0.2)
            m.bias.data.normal_(0.0, 0.2)
            m.running_mean.normal_(0.0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


# -- the five layouts ------------------------------------------------------------------------------
# name -> (reference builder, export size, keys the published layout has, detected facts)
LAYOUTS = {
    "junyanz-resnet": (lambda: JunyanzResnet(3, 4, 9, "instance", False), 32,
                       ["model.1.weight", "model.10.conv_block.5.weight", "model.19.weight", "model.22.weight",
                        "model.26.weight"], {"netG": "resnet_9blocks", "norm": "instance", "dropout": False}),
    "junyanz-resnet-batch-dropout": (lambda: JunyanzResnet(3, 4, 6, "batch", True), 32,
                                     ["model.2.running_mean", "model.10.conv_block.6.weight", "model.16.weight",
                                      "model.23.weight"], {"netG": "resnet_6blocks", "norm": "batch", "dropout": True}),
    "junyanz-unet": (lambda: JunyanzUnet(3, 7, 4, "batch", True), 128,
                     ["model.model.0.weight", "model.model.1.model.2.running_var",
                      "model.model.1.model.3.model.3.model.3.model.3.model.3.model.1.weight", "model.model.3.bias"],
                     {"netG": "unet_128", "norm": "batch"}),
    "pytorch-gan-resnet": (lambda: PyTorchGanResnet(3, 4, 9), 32,
                           ["model.1.weight", "model.10.block.5.weight", "model.20.weight", "model.24.weight",
                            "model.28.weight"], {"n_residual_blocks": 9, "edge_padding": 3}),
    "pytorch-gan-unet": (lambda: PyTorchGanUnet(3, 2), 256,
                         ["down1.model.0.weight", "down8.model.0.weight", "up7.model.0.weight", "final.2.bias"],
                         {"downs": 8, "norm": "instance"}),
}


def save_reference(name: str, path: Path, seed: int = 0) -> nn.Module:
    """Build the reference network of `name` with random weights and torch.save its state_dict."""
    build, _, keys, _ = LAYOUTS[name]
    torch.manual_seed(seed)
    net = randomize(build(), seed)
    state = net.state_dict()
    assert all(k in state for k in keys), [k for k in keys if k not in state]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return net


def reference_inputs(size: int, seed: int = 1) -> torch.Tensor:
    # Two random images in [-1, 1] at the export size.
    torch.manual_seed(seed)
    return torch.rand(2, 3, size, size) * 2 - 1


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_import_reproduces_the_reference_network(name: str, tmp_path: Path) -> None:
    reference = save_reference(name, tmp_path / "net_G.pth")
    _, size, _, facts = LAYOUTS[name]
    source = import_file(tmp_path / "net_G.pth", ExportOptions(size=(size, size)))
    assert source.provenance["import"]["layout"] == name.removesuffix("-batch-dropout")
    assert facts.items() <= source.provenance["import"]["detected"].items()
    x = reference_inputs(size)
    with torch.no_grad():
        err = (reference(x) - source.generator(x)).abs().max().item()
    assert err <= IMPORT_TOLERANCE, err


def make_images(folder: Path, sizes: list[tuple[int, int]]) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def run_infer(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infer", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=300)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_imported_file_exports_with_parity_and_translates(name: str, tmp_path: Path) -> None:
    save_reference(name, tmp_path / "checkpoints" / "net_G.pth")
    size = LAYOUTS[name][1]
    out = tmp_path / "artifact"
    code = export_main([str(tmp_path / "checkpoints" / "net_G.pth"), "--size", str(size), "--onnx", "--out", str(out),
                        "-q"])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    assert manifest["parity"]["torch/fp32"]["worst"]["max_abs"] == 0
    assert manifest["parity"]["ort-cpu/fp32"]["worst"]["max_abs"] <= 1e-4
    imported = manifest["source"]["import"]
    assert imported["layout"] == name.removesuffix("-batch-dropout") and imported["mode"] == "eval"
    assert manifest["source"]["sha256"] == __import__("hashlib").sha256(
        (tmp_path / "checkpoints" / "net_G.pth").read_bytes()).hexdigest()
    card = (out / "README.md").read_text()
    assert manifest["source"]["sha256"] in card and imported["layout"] in card and "x / 127.5 - 1" in card
    assert "| ort-cpu/fp32 |" in card
    # The saved generator is an ordinary ganrt generator file: re-exporting it needs no import.
    assert export_main([str(out / "generator.safetensors"), "--size", str(size), "--onnx", "--out",
                        str(tmp_path / "again"), "-q"]) == 0
    make_images(tmp_path / "in", [(size, size), (size - 3, size + 5)])
    proc = run_infer("translate", str(out), str(tmp_path / "in"), str(tmp_path / "out"), "--backend", "ort-cpu",
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "out" / "1.png").size == (size + 5, size - 3)


def test_train_mode_normalises_each_image_by_its_own_statistics(tmp_path: Path) -> None:
    reference = save_reference("junyanz-unet", tmp_path / "net_G.pth")
    source = import_file(tmp_path / "net_G.pth", ExportOptions(mode="train"))
    assert source.config.norm == "instance-affine" and source.provenance["import"]["mode"] == "train"
    # junyanz's test.py without --eval: batch norms in train mode, one image at a time (dropout off here).
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train()
    x = reference_inputs(128)
    with torch.no_grad():
        expected = torch.cat([reference(x[i:i + 1]) for i in range(len(x))])
        err = (expected - source.generator(x)).abs().max().item()
        eval_gap = (expected - import_file(tmp_path / "net_G.pth", ExportOptions()).generator(x)).abs().max()
    assert err <= IMPORT_TOLERANCE, err
    assert eval_gap > 1e-2  # the two modes really differ for this file


def test_train_mode_and_image_range_are_recorded_in_the_manifest(tmp_path: Path) -> None:
    save_reference("junyanz-resnet-batch-dropout", tmp_path / "g.pth")
    out = tmp_path / "art"
    assert export_main([str(tmp_path / "g.pth"), "--size", "32", "--onnx", "--mode", "train", "--image-range", "0",
                        "1", "--out", str(out), "-q"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["import"]["mode"] == "train" and manifest["config"]["norm"] == "instance-affine"
    assert manifest["inputs"][0]["range"] == [0.0, 1.0] and manifest["outputs"][0]["range"] == [-1.0, 1.0]
    assert "train mode" in (out / "README.md").read_text()


def test_legacy_instance_norm_statistics_are_dropped(tmp_path: Path) -> None:
    reference = save_reference("junyanz-resnet", tmp_path / "g.pth")
    state = torch.load(tmp_path / "g.pth", weights_only=True)
    # Files saved before PyTorch 0.4 carry InstanceNorm buffers, which junyanz's loader deletes.
    for prefix in ("model.2", "model.5", "model.10.conv_block.2"):
        state.update({f"{prefix}.running_mean": torch.zeros(4), f"{prefix}.running_var": torch.ones(4),
                      f"{prefix}.num_batches_tracked": torch.tensor(0)})
    torch.save(state, tmp_path / "legacy.pth")
    source = import_file(tmp_path / "legacy.pth", ExportOptions(size=(32, 32)))
    assert source.provenance["import"]["dropped_statistics"] == 9
    x = reference_inputs(32)
    with torch.no_grad():
        assert (reference(x) - source.generator(x)).abs().max().item() <= IMPORT_TOLERANCE


# -- files that must be refused ---------------------------------------------------------------------
def run_export(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "export", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


class WritesAFileWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_a_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    with (tmp_path / "evil.pth").open("wb") as f:
        pickle.dump({"model.1.weight": WritesAFileWhenUnpickled(marker)}, f, protocol=2)
    error = one_line_error(run_export(str(tmp_path / "evil.pth"), "--out", str(tmp_path / "art"), cwd=tmp_path))
    assert "refused" in error and "arbitrary code" in error
    assert not marker.exists()
    assert not (tmp_path / "art" / "manifest.json").exists()


def test_truncated_wrong_shape_and_unknown_files_exit_2_with_their_message(tmp_path: Path) -> None:
    save_reference("junyanz-resnet", tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    assert "truncated" in one_line_error(run_export(str(tmp_path / "truncated.pth"), cwd=tmp_path))

    state = torch.load(tmp_path / "good.pth", weights_only=True)
    state["model.13.conv_block.5.weight"] = torch.zeros(16, 16, 1, 1)
    torch.save(state, tmp_path / "wrong.pth")
    error = one_line_error(run_export(str(tmp_path / "wrong.pth"), cwd=tmp_path))
    assert "junyanz-resnet" in error and "model.13.conv_block.5.weight is (16, 16, 1, 1), not (16, 16, 3, 3)" in error

    torch.save({"encoder.stem.weight": torch.zeros(8, 3, 3, 3), "encoder.stem.bias": torch.zeros(8),
                "head.weight": torch.zeros(3, 8, 1, 1)}, tmp_path / "unknown.pth")
    error = one_line_error(run_export(str(tmp_path / "unknown.pth"), cwd=tmp_path))
    assert "not a generator layout ganrt knows" in error and "encoder.stem.weight, encoder.stem.bias" in error

    error = one_line_error(run_export(str(tmp_path / "unknown.pth"), "--layout", "pytorch-gan-unet", cwd=tmp_path))
    assert "--layout pytorch-gan-unet" in error and "encoder.stem.weight" in error


def test_overrides_that_contradict_the_file_or_the_source_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    save_reference("junyanz-resnet", tmp_path / "g.pth")
    assert export_main([str(tmp_path / "g.pth"), "--norm", "batch", "--out", str(tmp_path / "a")]) == 2
    assert "lacks model.2.weight" in capsys.readouterr().err
    assert export_main([str(tmp_path / "g.pth"), "--image-range", "1", "0", "--out", str(tmp_path / "a")]) == 2
    assert "LO < HI" in capsys.readouterr().err
    generator_file = tmp_path / "ganrt.safetensors"
    from tests.tiny_generators import save_tiny_generator

    save_tiny_generator("cyclegan", generator_file)
    assert export_main([str(generator_file), "--layout", "junyanz-resnet", "--out", str(tmp_path / "b")]) == 2
    assert "apply to .pth generators" in capsys.readouterr().err
    assert export_main([str(generator_file), "--input", "image:3xHxW", "--out", str(tmp_path / "b")]) == 2
    assert "go with --module" in capsys.readouterr().err


# -- any PyTorch generator ----------------------------------------------------------------------------
class TinyTranslator(nn.Module):
    """A user's generator: one stride-2 stage and a nearest upsample (sizes must be even)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(8, 3, 3, padding=1), nn.Tanh())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.up(torch.relu(self.down(image)))


class BranchingTranslator(TinyTranslator):
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.mean() > 0:  # data-dependent control flow: a trace keeps one branch
            return super().forward(image)
        return -image


def tiny_translator() -> nn.Module:
    return TinyTranslator()


def branching_translator() -> nn.Module:
    return BranchingTranslator()


FACTORY = "tests.test_import:tiny_translator"


def test_any_module_exports_with_its_stated_signature(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_file(TinyTranslator().state_dict(), str(tmp_path / "tiny.safetensors"))
    out = tmp_path / "art"
    assert export_main(["--module", FACTORY, "--weights", str(tmp_path / "tiny.safetensors"), "--input",
                        "image:3xHxW", "--size-multiple", "2", "--size", "32", "--onnx", "--out", str(out), "-q"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["variant"] == "module" and manifest["config"]["factory"] == FACTORY
    assert manifest["inputs"][0]["shape"] == [None, 3, None, None] and manifest["image"]["size_multiple"] == 2
    assert manifest["parity"]["ort-cpu/fp32"]["worst"]["max_abs"] <= 1e-4
    assert "tiny_translator" in (out / "README.md").read_text()
    # The Python API: the same options as the command line.
    api = run_export_api(ExportOptions(onnx=True, size=(32, 32), out=tmp_path / "api", module=FACTORY,
                                       weights=tmp_path / "tiny.safetensors", input=("image:3xHxW",), size_multiple=2))
    assert api.exit_code == 0 and api.manifest.config["factory"] == FACTORY
    make_images(tmp_path / "in", [(30, 40)])
    proc = run_infer("translate", str(out), str(tmp_path / "in"), str(tmp_path / "out"), "--backend", "ort-cpu",
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # The torch backend would import the factory the manifest names: only when the user trusts it.
    proc = run_infer("translate", str(out), str(tmp_path / "in"), str(tmp_path / "torch"), "--backend", "torch",
                     cwd=tmp_path)
    assert proc.returncode == 2 and "GANRT_TRUSTED_FACTORIES" in proc.stderr, proc.stderr
    proc = run_infer("translate", str(out), str(tmp_path / "in"), str(tmp_path / "torch"), "--backend", "torch",
                     cwd=tmp_path, GANRT_TRUSTED_FACTORIES=FACTORY)
    assert proc.returncode == 0, proc.stderr


def test_module_with_data_dependent_control_flow_or_bad_weights_is_refused(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    torch.manual_seed(0)
    save_file(TinyTranslator().state_dict(), str(tmp_path / "tiny.safetensors"))
    common = ["--weights", str(tmp_path / "tiny.safetensors"), "--input", "image:3xHxW", "--size", "32",
              "--out", str(tmp_path / "art")]
    assert export_main(["--module", "tests.test_import:branching_translator", *common]) == 2
    assert "branches on tensor values" in capsys.readouterr().err
    torch.save({"down.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "partial.pth")
    assert export_main(["--module", FACTORY, "--weights", str(tmp_path / "partial.pth"), "--input", "image:3xHxW",
                        "--out", str(tmp_path / "art")]) == 2
    assert "does not match the model" in capsys.readouterr().err
    assert export_main(["--module", FACTORY, *common[:2], "--input", "image:3xH", "--out", str(tmp_path / "art")]) == 2
    assert "CxHxW" in capsys.readouterr().err
    assert export_main(["--module", "tests.test_import:no_such", *common]) == 2
    assert "no callable 'no_such'" in capsys.readouterr().err


# -- pretrained names (no network: the cache and its checksums) ----------------------------------------
def test_pretrained_names_and_cached_checksums(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert pretrained_main(["--list"]) == 0
    names = capsys.readouterr().out.split()
    assert "cyclegan/horse2zebra" in names and "pix2pix/facades_label2photo" in names and len(names) == 23
    with pytest.raises(UsageError, match="unknown pretrained generator.*junyanz:cyclegan/horse2zebra"):
        fetch("junyanz:cyclegan/horse2giraffe", tmp_path)
    cached = tmp_path / "junyanz" / "cyclegan" / "horse2zebra.pth"
    save_reference("junyanz-resnet", cached)
    digest = __import__("hashlib").sha256(cached.read_bytes()).hexdigest()
    record = {"url": "https://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/horse2zebra.pth",
              "sha256": digest, "bytes": "0", "downloaded": "2026-12-01T00:00:00Z"}
    cached.with_suffix(".json").write_text(json.dumps(record))
    assert fetch("junyanz:cyclegan/horse2zebra", tmp_path) == (cached, record)
    cached.write_bytes(cached.read_bytes() + b"tampered")
    with pytest.raises(CheckpointError, match="changed since it was downloaded"):
        fetch("junyanz:cyclegan/horse2zebra", tmp_path)


# -- the architecture options in training ---------------------------------------------------------------
def test_cyclegan_trains_with_the_resize_convolution_decoder(tmp_path: Path) -> None:
    code = train_main(["cyclegan", "--upsample", "resize", "--steps", "1", "--size", "32", "--ngf", "8", "--ndf", "8",
                       "--n-blocks", "1", "--batch-size", "1", "--eval-samples", "4", "--runs", str(tmp_path),
                       "--no-eval", "-q"])
    assert code == 0
    config = json.loads(next(tmp_path.glob("cyclegan/*/config.json")).read_text())["config"]
    assert config["upsample"] == "resize"
    spec = registry.get("cyclegan")
    from ganrt import config as config_mod

    generator = spec.generator(config_mod.from_dict(spec.config, config))
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in generator.modules())


def test_module_variant_and_other_input_ranges_are_not_trainable(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert train_main(["module", "--runs", str(tmp_path)]) == 2
    assert "cannot be trained here" in capsys.readouterr().err
    assert train_main(["pix2pix", "--input-range", "0", "1", "--steps", "1", "--size", "32", "--runs", str(tmp_path),
                       "-q"]) == 2
    assert "training data is [-1, 1]" in capsys.readouterr().err
