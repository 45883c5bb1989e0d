"""Settings read from anywhere (flags, config.json, a generator's metadata, a manifest) are checked
against their field's type and bounds before anything is built: exit 2 naming the field."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ganrt import config as config_mod
from ganrt.artifact import Manifest
from ganrt.errors import UsageError
from ganrt.signature import TensorSpec
from infer.runners import open_runner
from train import registry
from train.cli import main as train_main
from train.eval import load_run

ROOT = Path(__file__).resolve().parents[1]

BAD_SETTINGS = [
    ("cyclegan", "ngf", 1e6, "expected an integer"),
    ("cyclegan", "ngf", 10**6, "outside its bounds (1 to 256)"),
    ("cyclegan", "ngf", -1, "outside its bounds"),
    ("cyclegan", "ngf", "64", "expected an integer"),
    ("cyclegan", "ngf", True, "expected an integer"),
    ("cyclegan", "ngf", None, "expected an integer"),
    ("cyclegan", "size", 66, "not a multiple of 4"),
    ("cyclegan", "size", -256, "outside its bounds"),
    ("cyclegan", "n_blocks", 10**4, "outside its bounds"),
    ("cyclegan", "lambda_cycle", float("nan"), "finite"),
    ("cyclegan", "lambda_cycle", float("inf"), "finite"),
    ("cyclegan", "lambda_cycle", "10", "expected a number"),
    ("cyclegan", "jitter", 1, "expected true or false"),
    ("cyclegan", "beta1", 1.0, "outside its bounds"),
    ("cyclegan", "seed", 2**40, "outside its bounds"),
    ("cyclegan", "checkpoint_every", 0, "outside its bounds"),
    ("cyclegan", "device", 0, "expected a string"),
    ("cyclegan", "data", 5, "expected a string"),
    ("pix2pix", "direction", "sideways", "not one of"),
    ("pix2pix", "size", 48, "not one of"),
    ("pix2pix", "ndf", 0, "outside its bounds"),
    ("dcgan", "z_dim", 0, "outside its bounds"),
    ("dcgan", "size", 32, "not one of"),
    ("gan", "hidden", 10**7, "outside its bounds"),
    ("gan", "layers", 2.5, "expected an integer"),
    ("wgan-gp", "n_critic", 0, "outside its bounds"),
    ("cgan", "num_classes", "ten", "expected an integer"),
    ("cgan", "batch_size", 10**6, "outside its bounds"),
]


@pytest.mark.parametrize("variant,field,value,words", BAD_SETTINGS,
                         ids=[f"{v}.{f}={x!r}" for v, f, x, _ in BAD_SETTINGS])
def test_a_setting_of_the_wrong_type_or_out_of_bounds_names_the_field(variant, field, value, words):
    with pytest.raises(UsageError) as e:
        config_mod.from_dict(registry.get(variant).config, {field: value})
    assert f"setting {field!r}" in str(e.value) and words in str(e.value), str(e.value)


def test_good_values_pass_and_ints_widen_to_floats():
    cfg = config_mod.from_dict(registry.get("cyclegan").config, {"lambda_cycle": 10, "data": None, "ngf": 256})
    assert cfg.lambda_cycle == 10.0 and isinstance(cfg.lambda_cycle, float) and cfg.ngf == 256
    with pytest.raises(UsageError, match="expected an object"):
        config_mod.from_dict(registry.get("cyclegan").config, ["ngf", 8])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["cgan", "cyclegan", "dcgan", "gan", "pix2pix", "wgan-gp"])
def test_every_variant_bounds_all_its_numbers_and_its_presets_fit(name):
    cls = registry.get(name).config
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if hints[f.name] in (int, float):
            bounded = "choices" in f.metadata or ("min" in f.metadata and "max" in f.metadata)
            assert bounded, f"{name}.{f.name} has no bounds"
    for preset in [None, *cls.presets]:
        cfg = config_mod.resolve(cls, preset)
        assert config_mod.from_dict(cls, config_mod.to_dict(cfg)) == cfg  # every value checked, all pass


# -- each way a config comes in ------------------------------------------------------------------------
def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("flags,named", [(["--ngf", "1000000"], "'ngf'"), (["--size", "-64"], "'size'"),
                                         (["--lr-g", "nan"], "'lr_g'"), (["--steps", "0"], "'steps'")])
def test_flags_out_of_bounds_exit_2_naming_the_field(capsys, tmp_path, flags, named):
    assert train_main(["cyclegan", *flags, "--runs", str(tmp_path)]) == 2
    assert named in one_error_line(capsys.readouterr().err)
    assert not list(tmp_path.iterdir())  # refused before a run directory was made


BAD_RUN_CONFIGS = [
    (b"{not json", "not readable JSON"),
    (b"\xff\xfe\x00", "not readable JSON"),
    (b"[]", "expected an object"),
    (b'{"variant": "cyclegan"}', "lacks 'config'"),
    (b'{"config": {}}', "lacks 'variant'"),
    (b'{"variant": 5, "config": {}}', "'variant' should be"),
    (b'{"variant": "cyclegan", "config": [1]}', "'config' should be"),
    (b'{"variant": "stylegan", "config": {}}', "unknown variant 'stylegan'"),
    (b'{"variant": "cyclegan", "config": {"ngf": 1e6}}', "setting 'ngf'"),
    (b'{"variant": "cyclegan", "config": {"ngf": "wide"}}', "setting 'ngf'"),
    (b'{"variant": "cyclegan", "config": {"steps": null}}', "setting 'steps'"),
    (b'{"variant": "cyclegan", "config": {"size": 30}}', "setting 'size'"),
    (b'{"variant": "cyclegan", "config": {"warp": 9}}', "unknown setting(s)"),
]


@pytest.mark.parametrize("content,words", BAD_RUN_CONFIGS, ids=[c.decode(errors="replace") for c, _ in BAD_RUN_CONFIGS])
def test_resume_of_a_bad_config_json_exits_2_naming_the_problem(capsys, tmp_path, content, words):
    (tmp_path / "config.json").write_bytes(content)
    assert train_main(["--resume", str(tmp_path), "--no-eval"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert words in line, line
    with pytest.raises(UsageError, match="config.json|unknown variant"):  # evaluation and export read it the same way
        load_run(tmp_path)


def _generator_file(path: Path, variant: str, config: dict) -> Path:
    save_file({"w": torch.zeros(1)}, str(path), metadata={"format": "ganrt-generator/1", "variant": variant,
                                                            "config": json.dumps(config), "step": "0"})
    return path


@pytest.mark.parametrize("config,named", [({"ngf": 1e6}, "'ngf'"), ({"n_blocks": -3}, "'n_blocks'"),
                                          ({"size": "big"}, "'size'")])
def test_export_of_a_generator_with_absurd_metadata_exits_2_naming_the_field(tmp_path, config, named):
    source = _generator_file(tmp_path / "generator.safetensors", "cyclegan", config)
    r = subprocess.run([sys.executable, "-m", "export", str(source), "--onnx", "--out", str(tmp_path / "art")],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2, r.stderr[-2000:]
    assert named in one_error_line(r.stderr)


def test_the_torch_runner_refuses_a_manifest_config_out_of_bounds(tmp_path):
    image = TensorSpec("image", (None, 3, None, None), range=(-1.0, 1.0))
    Manifest(name="absurd", variant="cyclegan", config={"ngf": -5, "n_blocks": 2}, inputs=[image],
             outputs=[dataclasses.replace(image, name="image_out")], status="ok").save(tmp_path)
    _generator_file(tmp_path / "generator.safetensors", "cyclegan", {"ngf": -5})
    with pytest.raises(UsageError, match="setting 'ngf'"):
        with open_runner(tmp_path, "torch"):
            pass
