"""Tests of train.nets: shapes, parameter counts, init, gradient flow and ONNX export parity."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from train.nets import (
    ConditionalDiscriminator28,
    ConditionalGenerator28,
    DCGAN28Discriminator,
    DCGAN28Generator,
    DCGAN64Discriminator,
    DCGAN64Generator,
    MLPDiscriminator,
    MLPGenerator,
    PatchDiscriminator,
    ProjectionDiscriminator28,
    ResnetGenerator,
    UnetGenerator,
    init_weights,
    norm_layer,
    unet_depth,
)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------- norms


@pytest.mark.parametrize(
    ("kind", "dims", "cls"),
    [
        ("batch", 2, nn.BatchNorm2d),
        ("batch", 1, nn.BatchNorm1d),
        ("instance", 2, nn.InstanceNorm2d),
        ("instance-affine", 2, nn.InstanceNorm2d),
        ("layer", 2, nn.GroupNorm),
        ("none", 2, nn.Identity),
    ],
)
def test_norm_layer_kinds(kind: str, dims: int, cls: type[nn.Module]) -> None:
    layer = norm_layer(kind, 8, dims)
    assert type(layer) is cls


def test_norm_layer_instance_is_cyclegan_default_and_layer_is_layernorm() -> None:
    inst = norm_layer("instance", 8)
    assert inst.affine is False and inst.track_running_stats is False
    layer = norm_layer("layer", 8)
    x = torch.randn(2, 8, 5, 3)
    expected = nn.functional.layer_norm(x, x.shape[1:], eps=layer.eps)
    torch.testing.assert_close(layer(x), expected)


def test_norm_layer_unknown_lists_valid_kinds() -> None:
    with pytest.raises(ValueError, match="batch, instance, instance-affine, layer, none"):
        norm_layer("group", 8)
    with pytest.raises(ValueError, match="valid kinds"):
        DCGAN64Discriminator(norm="spectral")


# --------------------------------------------------------------------------- shapes


def test_mlp_shapes() -> None:
    g = MLPGenerator(z_dim=4, out_dim=2, hidden=16, n_layers=3)
    d = MLPDiscriminator(in_dim=2, hidden=16, n_layers=3)
    x = g(torch.randn(5, 4))
    assert x.shape == (5, 2)
    assert d(x).shape == (5, 1)
    assert sum(isinstance(m, nn.Linear) for m in g.modules()) == 3
    assert isinstance(list(g.modules())[-1], nn.Linear)  # linear output: toy data are unbounded
    assert g.size_multiple == 1
    with pytest.raises(ValueError, match="n_layers"):
        MLPGenerator(4, 2, n_layers=0)


@torch.no_grad()
def test_dcgan28_default_shapes() -> None:
    g, d = DCGAN28Generator().eval(), DCGAN28Discriminator().eval()
    x = g(torch.randn(2, 100))
    assert x.shape == (2, 1, 28, 28)
    assert x.abs().max() <= 1.0
    assert d(x).shape == (2, 1)
    assert DCGAN28Discriminator(channels=3, norm="layer")(torch.randn(2, 3, 28, 28)).shape == (2, 1)


@torch.no_grad()
def test_dcgan64_default_shapes() -> None:
    g, d = DCGAN64Generator().eval(), DCGAN64Discriminator().eval()
    x = g(torch.randn(2, 100))
    assert x.shape == (2, 3, 64, 64)
    assert d(x).shape == (2, 1)
    with pytest.raises(RuntimeError):
        g(torch.randn(2, 100, 1, 1))  # z is 2-D by contract


@pytest.mark.parametrize("norm", ["batch", "layer", "instance", "none"])
@torch.no_grad()
def test_dcgan64_discriminator_norms(norm: str) -> None:
    d = DCGAN64Discriminator(ndf=8, norm=norm).eval()
    assert d(torch.randn(3, 3, 64, 64)).shape == (3, 1)


def test_wgan_gp_critic_scores_each_sample_independently() -> None:
    # The gradient penalty needs D(x_i) to depend on x_i only: true for layer norm, not batch norm.
    x = torch.randn(4, 3, 64, 64)
    y = x.clone()
    y[1:] = torch.randn(3, 3, 64, 64)
    critic = DCGAN64Discriminator(ndf=8, norm="layer").train()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    torch.testing.assert_close(critic(x)[0], critic(y)[0])
    batch_d = DCGAN64Discriminator(ndf=8, norm="batch").train()
    assert (batch_d(x)[0] - batch_d(y)[0]).abs().max() > 1e-4


@torch.no_grad()
def test_conditional28_default_shapes() -> None:
    g, d = ConditionalGenerator28().eval(), ConditionalDiscriminator28().eval()
    label = torch.tensor([0, 9, 3])
    x = g(torch.randn(3, 100), label)
    assert x.shape == (3, 1, 28, 28)
    assert d(x, label).shape == (3, 1)
    # Composed from the DCGAN28 bodies, not a copy.
    assert isinstance(g.generator, DCGAN28Generator)
    assert isinstance(d.discriminator, DCGAN28Discriminator)


@pytest.mark.parametrize(("h", "w"), [(64, 64), (128, 96), (256, 256), (100, 100)])
@torch.no_grad()
def test_resnet_generator_sizes(h: int, w: int) -> None:
    g = ResnetGenerator(ngf=8, n_blocks=2).eval()
    assert h % g.size_multiple == 0 and w % g.size_multiple == 0
    assert g(torch.randn(1, 3, h, w)).shape == (1, 3, h, w)


@torch.no_grad()
def test_resnet_generator_channels_and_batch_norm() -> None:
    g = ResnetGenerator(in_channels=1, out_channels=3, ngf=8, n_blocks=1, norm="batch", dropout=True).eval()
    assert g(torch.randn(2, 1, 32, 48)).shape == (2, 3, 32, 48)
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(c.bias is None for c in convs[:-1])  # BatchNorm absorbs them
    assert convs[-1].bias is not None
    assert any(isinstance(m, nn.Dropout) for m in g.modules())


@pytest.mark.parametrize("size", [64, 128, 256])
@torch.no_grad()
def test_unet_generator_sizes(size: int) -> None:
    g = UnetGenerator(num_downs=unet_depth(size), ngf=8).eval()
    assert g.size_multiple == size
    assert g(torch.randn(1, 3, size, size)).shape == (1, 3, size, size)


@torch.no_grad()
def test_unet_generator_non_square_and_channels() -> None:
    g = UnetGenerator(in_channels=1, out_channels=2, num_downs=5, ngf=8, norm="instance").eval()
    assert g(torch.randn(2, 1, 64, 96)).shape == (2, 2, 64, 96)


def test_unet_256_trains_at_batch_size_one() -> None:
    # The innermost 1x1 stage has no BatchNorm: with it this would raise
    # "Expected more than 1 value per channel when training".
    g = UnetGenerator(num_downs=8, ngf=4).train()
    assert g(torch.randn(1, 3, 256, 256)).shape == (1, 3, 256, 256)


def test_unet_structure_matches_pix2pix() -> None:
    g = UnetGenerator()
    enc = [next(m for m in block if isinstance(m, nn.Conv2d)).out_channels for block in g.encoder]
    assert enc == [64, 128, 256, 512, 512, 512, 512, 512]
    has_norm = [any(isinstance(m, nn.BatchNorm2d) for m in block) for block in g.encoder]
    assert has_norm == [False, True, True, True, True, True, True, False]
    # Decoder, innermost first: dropout on the three 512-channel stages after the innermost.
    has_dropout = [any(isinstance(m, nn.Dropout) for m in block) for block in g.decoder]
    assert has_dropout == [False, True, True, True, False, False, False, False]
    assert not any(isinstance(m, nn.Dropout) for m in UnetGenerator(ngf=4, dropout=False).modules())


@pytest.mark.parametrize(("size", "out"), [(256, 30), (128, 14), (64, 6)])
@torch.no_grad()
def test_patch_discriminator_sizes(size: int, out: int) -> None:
    d = PatchDiscriminator(ndf=8).eval()
    assert d(torch.randn(2, 6, size, size)).shape == (2, 1, out, out)


@torch.no_grad()
def test_default_image_nets_at_paper_sizes() -> None:
    x = torch.randn(1, 3, 256, 256)
    assert ResnetGenerator().eval()(x).shape == (1, 3, 256, 256)
    assert UnetGenerator().eval()(x).shape == (1, 3, 256, 256)
    assert PatchDiscriminator().eval()(torch.cat([x, x], 1)).shape == (1, 1, 30, 30)
    assert PatchDiscriminator(in_channels=3, norm="instance").eval()(x).shape == (1, 1, 30, 30)


def test_unet_depth() -> None:
    assert [unet_depth(s) for s in (32, 64, 128, 256, 512)] == [5, 6, 7, 8, 9]
    for bad in (100, 16, 0, -64, 255, 256.0, True):
        with pytest.raises(ValueError, match="power of two >= 32"):
            unet_depth(bad)  # type: ignore[arg-type]


def test_size_multiples() -> None:
    assert ResnetGenerator(ngf=4, n_blocks=0).size_multiple == 4
    assert UnetGenerator(num_downs=6, ngf=4).size_multiple == 64
    for g in (DCGAN28Generator(), DCGAN64Generator(ngf=4), ConditionalGenerator28()):
        assert g.size_multiple == 1


# --------------------------------------------------------------------------- parameter counts

# Derivations (weights + biases + 2 per affine norm channel):
# ResNet-9: c7s1-64 9,472 + d128 73,856 + d256 295,168 + 9 x 2 x 590,080 + u128 295,040
#   + u64 73,792 + c7s1-3 9,411 = 11,378,179 (instance norm, biased convs).
# U-Net-256: conv weights 54,404,096 + BatchNorm 9,856 + output bias 3 = 54,413,955 (junyanz
#   prints "54.414 M"). 54,414,979 would need a BatchNorm(512) (1,024 params) on the innermost
#   encoder stage, which the reference and this code leave out.
# PatchGAN 70x70, in 6: 6,208 + 131,328 + 524,800 + 2,098,176 + 8,193 = 2,768,705.
# DCGAN-64 (PyTorch example): G 3,576,704, D 2,765,568. TF tutorial 28x28: G 2,305,472
#   trainable (Keras also lists 25,472 non-trainable BN statistics: 2,330,944), D 212,865.
PAPER_COUNTS = [
    pytest.param(lambda: ResnetGenerator(), 11_378_179, id="cyclegan-resnet9"),
    pytest.param(lambda: UnetGenerator(), 54_413_955, id="pix2pix-unet256"),
    pytest.param(lambda: PatchDiscriminator(), 2_768_705, id="patchgan70-in6"),
    pytest.param(lambda: DCGAN64Generator(), 3_576_704, id="dcgan64-G"),
    pytest.param(lambda: DCGAN64Discriminator(), 2_765_568, id="dcgan64-D"),
    pytest.param(lambda: DCGAN28Generator(), 2_305_472, id="tf-dcgan28-G"),
    pytest.param(lambda: DCGAN28Discriminator(), 212_865, id="tf-dcgan28-D"),
]


@pytest.mark.parametrize(("build", "expected"), PAPER_COUNTS)
def test_paper_parameter_counts(build, expected: int) -> None:
    assert n_params(build()) == expected


# --------------------------------------------------------------------------- init


def test_init_weights_statistics() -> None:
    d = DCGAN64Discriminator(norm="layer")  # GroupNorm: affine norm layers
    g = DCGAN28Generator()  # Linear + BatchNorm1d/2d
    r = ResnetGenerator(ngf=16, n_blocks=1)  # biased convs, affine-free InstanceNorm
    bn = g.project[1]
    assert bn.weight.std() == 0  # PyTorch default: all ones, so the check below can fail
    for net in (d, g, r):
        assert init_weights(net, std=0.02) is None
    weights = torch.cat([m.weight.flatten() for net in (d, g) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))])
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)
    # Gaussian, not uniform: about 4.6% of N(0, s) lies beyond 2s, none of a matching uniform.
    assert 0.03 < (weights.abs() > 0.04).float().mean().item() < 0.06
    scales = torch.cat([m.weight for net in (d, g) for m in net.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d))])
    assert scales.mean().item() == pytest.approx(1.0, abs=2e-3)
    assert scales.std().item() == pytest.approx(0.02, rel=0.05)
    shifts = [m.bias for net in (d, g, r) for m in net.modules() if getattr(m, "bias", None) is not None]
    assert len(shifts) > 5 and all(torch.all(b == 0) for b in shifts)
    big = max((m for m in r.modules() if isinstance(m, nn.Conv2d)), key=lambda m: m.weight.numel())
    assert big.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_init_weights_custom_std_and_leaves_embeddings() -> None:
    g = ConditionalGenerator28()
    before = g.label_embedding.weight.clone()
    init_weights(g, std=0.1)
    assert g.generator.project[0].weight.std().item() == pytest.approx(0.1, rel=0.02)
    torch.testing.assert_close(g.label_embedding.weight, before)


# --------------------------------------------------------------------------- gradients

# Small widths; every generator and discriminator in every option that adds parameters.
GRAD_CASES = [
    pytest.param(lambda: MLPGenerator(4, 2, 16), lambda: (torch.randn(4, 4),), id="mlp-G"),
    pytest.param(lambda: MLPDiscriminator(2, 16), lambda: (torch.randn(4, 2),), id="mlp-D"),
    pytest.param(lambda: DCGAN28Generator(16), lambda: (torch.randn(4, 16),), id="dcgan28-G"),
    pytest.param(lambda: DCGAN28Discriminator(norm="batch"), lambda: (torch.randn(4, 1, 28, 28),), id="dcgan28-D"),
    pytest.param(lambda: DCGAN64Generator(16, ngf=8), lambda: (torch.randn(4, 16),), id="dcgan64-G"),
    pytest.param(lambda: DCGAN64Discriminator(8, norm="layer"), lambda: (torch.randn(4, 3, 64, 64),), id="dcgan64-D"),
    pytest.param(lambda: ConditionalGenerator28(16, 10, 8), lambda: (torch.randn(4, 16), torch.arange(4)), id="cgan-G"),
    pytest.param(lambda: ConditionalDiscriminator28(10, 1), lambda: (torch.randn(4, 1, 28, 28), torch.arange(4)), id="cgan-D"),
    pytest.param(lambda: ProjectionDiscriminator28(10, 1), lambda: (torch.randn(4, 1, 28, 28), torch.arange(4)), id="cgan-D-projection"),
    pytest.param(lambda: ProjectionDiscriminator28(10, 1, class_head=True), lambda: (torch.randn(4, 1, 28, 28), torch.arange(4)), id="cgan-D-acgan"),
    pytest.param(lambda: ResnetGenerator(ngf=8, n_blocks=2), lambda: (torch.randn(2, 3, 32, 32),), id="resnet-G"),
    pytest.param(lambda: ResnetGenerator(ngf=8, n_blocks=2, norm="batch", dropout=True), lambda: (torch.randn(2, 3, 32, 32),), id="resnet-G-bn"),
    pytest.param(lambda: UnetGenerator(num_downs=6, ngf=8), lambda: (torch.randn(2, 3, 64, 64),), id="unet-G"),
    pytest.param(lambda: UnetGenerator(num_downs=5, ngf=8, norm="instance"), lambda: (torch.randn(2, 3, 32, 32),), id="unet-G-in"),
    pytest.param(lambda: PatchDiscriminator(6, ndf=8), lambda: (torch.randn(2, 6, 64, 64),), id="patch-D"),
]


@pytest.mark.parametrize(("build", "inputs"), GRAD_CASES)
def test_gradient_reaches_every_parameter(build, inputs) -> None:
    net = build().train()
    out = net(*inputs())
    # A random projection, not out.sum(): a sum right after BatchNorm has zero gradient.
    (out * torch.randn_like(out)).sum().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None]
    assert not missing, f"parameters unused by forward (DDP would fail): {missing}"
    # Biases before affine-free InstanceNorm get ~0 gradient by construction; weights must not.
    dead = [name for name, p in net.named_parameters() if p.ndim > 1 and not p.grad.abs().sum() > 0]
    assert not dead, f"weights with zero gradient: {dead}"


# --------------------------------------------------------------------------- conditioning


@torch.no_grad()
def test_conditional_generator_follows_label() -> None:
    g = ConditionalGenerator28().eval()
    z = torch.randn(1, 100).repeat(3, 1)
    x = g(z, torch.tensor([0, 0, 1]))
    torch.testing.assert_close(x[0], x[1])
    assert (x[0] - x[2]).abs().max() > 1e-3


@torch.no_grad()
def test_conditional_discriminator_follows_label() -> None:
    d = ConditionalDiscriminator28().eval()
    image = torch.randn(1, 1, 28, 28).repeat(2, 1, 1, 1)
    score = d(image, torch.tensor([2, 7]))
    assert (score[0] - score[1]).abs().max() > 1e-5


@torch.no_grad()
def test_projection_discriminator_starts_unconditional_and_adds_the_class_term() -> None:
    d = ProjectionDiscriminator28().eval()
    image = torch.randn(1, 1, 28, 28).repeat(2, 1, 1, 1)
    labels = torch.tensor([2, 7])
    torch.testing.assert_close(d(image, labels), d.discriminator(image))  # zero projection at the start
    nn.init.normal_(d.class_projection.weight, 0.0, 0.02)  # as training moves it
    features = d.discriminator.features(image).flatten(1)
    expected = d.discriminator(image) + (d.class_projection.weight[labels] * features).sum(1, keepdim=True)
    torch.testing.assert_close(d(image, labels), expected)
    assert (d(image, labels)[0] - d(image, labels)[1]).abs().max() > 1e-5
    # With AC-GAN's class head: the same score, then class logits from the same features.
    with_head = ProjectionDiscriminator28(class_head=True).eval()
    with_head.discriminator.load_state_dict(d.discriminator.state_dict())
    with_head.class_projection.load_state_dict(d.class_projection.state_dict())
    out = with_head(image, labels)
    assert out.shape == (2, 11)
    torch.testing.assert_close(out[:, :1], expected)
    torch.testing.assert_close(out[:, 1:], with_head.class_head(features))


# --------------------------------------------------------------------------- ONNX export


def export_and_compare(
    net: nn.Module,
    export_args: tuple[torch.Tensor, ...],
    run_args: tuple[torch.Tensor, ...],
    input_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    path: Path,
) -> None:
    """Export with the TorchScript exporter, run in ONNX Runtime on other shapes, compare."""
    import onnx
    import onnxruntime as ort

    net.eval()
    with warnings.catch_warnings():
        # The legacy exporter is deprecated; recorded, not an error here.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            export_args,
            str(path),
            input_names=input_names,
            output_names=["output"],
            dynamic_axes={**dynamic_axes, "output": {0: "batch"}},
            dynamo=False,
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        for axis in dynamic_axes[graph_input.name]:
            assert dims[axis].dim_param, f"{graph_input.name} axis {axis} was frozen to {dims[axis].dim_value}"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {name: a.numpy() for name, a in zip(input_names, run_args)})
    with torch.no_grad():
        expected = net(*run_args).numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-4


def test_onnx_resnet_generator_dynamic_batch_and_size(tmp_path: Path) -> None:
    export_and_compare(
        ResnetGenerator(ngf=8, n_blocks=2),
        (torch.randn(1, 3, 64, 64),),
        (torch.randn(3, 3, 72, 56),),
        ["image"],
        {"image": {0: "batch", 2: "height", 3: "width"}},
        tmp_path / "resnet.onnx",
    )


def test_onnx_unet_generator_eval_dynamic_batch_and_size(tmp_path: Path) -> None:
    export_and_compare(
        UnetGenerator(num_downs=6, ngf=8),
        (torch.randn(1, 3, 64, 64),),
        (torch.randn(2, 3, 128, 64),),
        ["image"],
        {"image": {0: "batch", 2: "height", 3: "width"}},
        tmp_path / "unet.onnx",
    )


def test_onnx_dcgan28_generator_dynamic_batch(tmp_path: Path) -> None:
    export_and_compare(
        DCGAN28Generator(),
        (torch.randn(1, 100),),
        (torch.randn(5, 100),),
        ["z"],
        {"z": {0: "batch"}},
        tmp_path / "dcgan28.onnx",
    )


def test_onnx_conditional_generator_int64_label(tmp_path: Path) -> None:
    export_and_compare(
        ConditionalGenerator28(),
        (torch.randn(2, 100), torch.tensor([1, 2])),
        (torch.randn(5, 100), torch.tensor([0, 3, 9, 9, 4])),
        ["z", "label"],
        {"z": {0: "batch"}, "label": {0: "batch"}},
        tmp_path / "cgan28.onnx",
    )


def test_onnx_dcgan64_generator_dynamic_batch(tmp_path: Path) -> None:
    export_and_compare(
        DCGAN64Generator(ngf=8),
        (torch.randn(1, 100),),
        (torch.randn(4, 100),),
        ["z"],
        {"z": {0: "batch"}},
        tmp_path / "dcgan64.onnx",
    )
