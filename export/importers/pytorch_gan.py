"""eriklindernoren/PyTorch-GAN generators (`saved_models/<dataset>/G_AB_<epoch>.pth`, `generator_<epoch>.pth`).

Layer orders as that project builds them (read on GitHub, not copied):

- implementations/cyclegan/models.py `GeneratorResNet`: `model` is one Sequential of
  ReflectionPad2d(channels) (the padding is the channel count: 3 for RGB), Conv 7x7 [1],
  InstanceNorm, ReLU, two stride-2 Conv 3x3 + InstanceNorm + ReLU ([4], [7]), n `ResidualBlock`s
  at 10.. whose `block` is pad, Conv [1], InstanceNorm, ReLU, pad, Conv [5], InstanceNorm; then two
  Upsample(x2, nearest) + Conv 3x3 (padding 1) + InstanceNorm + ReLU ([11+n], [15+n]),
  ReflectionPad2d(channels), Conv 7x7 [19+n], Tanh. Width 64, every conv with a bias.
- implementations/pix2pix/models.py `GeneratorUNet`: `down1..down8` (`UNetDown`: Conv 4x4 stride
  2 without bias [0], InstanceNorm except down1 and down8, LeakyReLU(0.2), Dropout(0.5) on
  down4..8), `up1..up7` (`UNetUp`: ConvTranspose 4x4 stride 2 without bias [0], InstanceNorm,
  ReLU, Dropout(0.5) on up1..4, then the skip concatenated after its output), and `final`:
  Upsample(x2), ZeroPad2d((1, 0, 1, 0)), Conv 4x4 padding 1 [2], Tanh.

InstanceNorm2d there has no parameters and no statistics. Images are normalised to [-1, 1]
(transforms.Normalize((0.5,) * 3, (0.5,) * 3) in cyclegan.py and pix2pix.py).
"""
from __future__ import annotations

from export.importers.layouts import Layout, Plan, State, consecutive, indices, norm_kind, register, require, tensor
from export.importers.placement import Layer, PlacementError

PROJECT = "eriklindernoren/PyTorch-GAN"
LICENCE = "MIT (the code of eriklindernoren/PyTorch-GAN); the weights' own terms are not stated"
RESNET, UNET = "pytorch-gan-resnet", "pytorch-gan-unet"


def resnet_plan(state: State) -> Plan:
    """Read a GeneratorResNet: width, blocks and channels (which set the edge padding) from its keys and shapes."""
    require(state, r"^model\.\d+\.block\.\d+\.weight$", RESNET)
    first = tensor(state, "model.1.weight", 4, RESNET)
    n_blocks = consecutive(indices(state, r"^model\.(\d+)\.block\."), 10, "residual blocks", RESNET)
    up = 10 + n_blocks
    channels = first.shape[1]
    last = tensor(state, f"model.{up + 9}.weight", 4, RESNET)
    if last.shape[0] != channels:
        raise PlacementError(f"{RESNET}: {channels} input and {last.shape[0]} output channels; GeneratorResNet "
                             f"maps C channels to C")
    norm = norm_kind(state, "model.2")
    layers = [Layer("model.1", "conv"), Layer("model.2", "norm"), Layer("model.4", "conv"), Layer("model.5", "norm"),
              Layer("model.7", "conv"), Layer("model.8", "norm")]
    for b in range(10, up):
        layers += [Layer(f"model.{b}.block.1", "conv"), Layer(f"model.{b}.block.2", "norm"),
                   Layer(f"model.{b}.block.5", "conv"), Layer(f"model.{b}.block.6", "norm")]
    layers += [Layer(f"model.{up + 1}", "conv"), Layer(f"model.{up + 2}", "norm"),
               Layer(f"model.{up + 5}", "conv"), Layer(f"model.{up + 6}", "norm"), Layer(f"model.{up + 9}", "conv")]
    config = {"channels": channels, "ngf": first.shape[0], "n_blocks": n_blocks, "norm": norm, "dropout": False,
              "upsample": "resize", "edge_padding": channels}
    detected = {"n_residual_blocks": n_blocks, "ngf": first.shape[0], "channels": channels, "norm": norm,
                "decoder": "nearest upsample + 3x3 conv", "edge_padding": channels}
    return Plan("cyclegan", config, layers, detected)


def unet_plan(state: State) -> Plan:
    """Read a GeneratorUNet: depth from down1..downN, width and channels from its shapes."""
    require(state, r"^down1\.model\.0\.weight$", UNET)
    first = tensor(state, "down1.model.0.weight", 4, UNET)
    final = tensor(state, "final.2.weight", 4, UNET)
    depth = consecutive(indices(state, r"^down(\d+)\."), 1, "down blocks", UNET)
    ups = consecutive(indices(state, r"^up(\d+)\."), 1, "up blocks", UNET)
    if ups != depth - 1 or depth < 5:
        raise PlacementError(f"{UNET}: down1..down{depth} and up1..up{ups}; GeneratorUNet has N >= 5 downs and N-1 ups")
    channels = first.shape[1]
    if final.shape[0] != channels:
        raise PlacementError(f"{UNET}: {channels} input and {final.shape[0]} output channels; ganrt's translators map "
                             f"C channels to C")
    norm = norm_kind(state, "down2.model.1")
    layers = [Layer("down1.model.0", "conv")]
    for k in range(2, depth):
        layers += [Layer(f"down{k}.model.0", "conv"), Layer(f"down{k}.model.1", "norm")]
    layers.append(Layer(f"down{depth}.model.0", "conv"))
    for k in range(1, depth):
        layers += [Layer(f"up{k}.model.0", "convT"), Layer(f"up{k}.model.1", "norm")]
    layers.append(Layer("final.2", "conv"))
    config = {"channels": channels, "ngf": first.shape[0], "size": 2**depth, "norm": norm, "dropout": True,
              "block_order": "post-activation", "final_layer": "resize"}
    detected = {"downs": depth, "ngf": first.shape[0], "channels": channels, "norm": norm,
                "output layer": "nearest upsample + 4x4 conv"}
    return Plan("pix2pix", config, layers, detected)


register(Layout(RESNET, PROJECT, "GeneratorResNet (implementations/cyclegan)", LICENCE, resnet_plan))
register(Layout(UNET, PROJECT, "GeneratorUNet (implementations/pix2pix)", LICENCE, unet_plan))
