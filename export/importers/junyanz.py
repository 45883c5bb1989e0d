"""junyanz/pytorch-CycleGAN-and-pix2pix generators (`latest_net_G.pth`, and the published pretrained ones).

Layer orders as that project's models/networks.py builds them (read on GitHub, not copied):

- `ResnetGenerator` (resnet_6blocks, resnet_9blocks): `model` is one Sequential of
  ReflectionPad2d(3), Conv 7x7 [1], norm [2], ReLU, then two stride-2 Conv 3x3 + norm + ReLU
  ([4, 5], [7, 8]), n `ResnetBlock`s at 10.. whose `conv_block` is pad, Conv [1], norm [2], ReLU,
  (Dropout(0.5) with use_dropout, shifting what follows by one), pad, Conv [5|6], norm [6|7];
  then two ConvTranspose 3x3 stride 2 + norm + ReLU ([10+n, 11+n], [13+n, 14+n]), pad,
  Conv 7x7 [17+n], Tanh. Conv biases only with instance norm (`use_bias`).
- `UnetGenerator` (unet_128: 7 downsamplings, unet_256: 8): nested `UnetSkipConnectionBlock`s,
  each a Sequential `model`: the outermost is downconv [0], the submodule [1], ReLU, upconv [3],
  Tanh; a middle block LeakyReLU, downconv [1], downnorm [2], submodule [3], ReLU, upconv [5],
  upnorm [6] (Dropout after it with use_dropout: no weights, no shift); the innermost LeakyReLU,
  downconv [1], ReLU, upconv [3], upnorm [4]. Keys nest as model.model.1.model.3.model...

Norms (get_norm_layer): batch = BatchNorm2d(affine, running statistics), instance =
InstanceNorm2d without parameters or statistics; files saved before PyTorch 0.4 still carry
InstanceNorm running_mean/var, which its loader (`__patch_instance_norm_state_dict`) deletes:
so does the placement here. Images are normalised to [-1, 1] (transforms.Normalize(0.5, 0.5)).
"""
from __future__ import annotations

from export.importers.layouts import Layout, Plan, State, consecutive, indices, norm_kind, register, require, tensor
from export.importers.placement import Layer, PlacementError

PROJECT = "junyanz/pytorch-CycleGAN-and-pix2pix"
LICENCE = "BSD (the code of junyanz/pytorch-CycleGAN-and-pix2pix); the weights' own terms are not stated"
RESNET, UNET = "junyanz-resnet", "junyanz-unet"


def _same_channels(c_in: int, c_out: int, layout: str) -> int:
    if c_in != c_out:
        raise PlacementError(f"{layout}: {c_in} input and {c_out} output channels; ganrt's translators map C "
                             f"channels to C")
    return c_in


def resnet_plan(state: State) -> Plan:
    """Read a ResnetGenerator: width, blocks, norm and dropout from its keys and shapes."""
    require(state, r"^model\.\d+\.conv_block\.\d+\.weight$", RESNET)
    first = tensor(state, "model.1.weight", 4, RESNET)
    blocks = indices(state, r"^model\.(\d+)\.conv_block\.")
    n_blocks = consecutive(blocks, 10, "residual blocks", RESNET)
    ngf = first.shape[0]
    norm = norm_kind(state, "model.2")
    # Dropout sits between the block's two convs, so the second conv is at 6 instead of 5.
    dropout = "model.10.conv_block.6.weight" in state
    second = 6 if dropout else 5
    up = 10 + n_blocks
    last = tensor(state, f"model.{up + 7}.weight", 4, RESNET)
    channels = _same_channels(first.shape[1], last.shape[0], RESNET)
    layers = [Layer("model.1", "conv"), Layer("model.2", "norm"), Layer("model.4", "conv"), Layer("model.5", "norm"),
              Layer("model.7", "conv"), Layer("model.8", "norm")]
    for b in range(10, up):
        block = f"model.{b}.conv_block"
        layers += [Layer(f"{block}.1", "conv"), Layer(f"{block}.2", "norm"),
                   Layer(f"{block}.{second}", "conv"), Layer(f"{block}.{second + 1}", "norm")]
    layers += [Layer(f"model.{up}", "convT"), Layer(f"model.{up + 1}", "norm"),
               Layer(f"model.{up + 3}", "convT"), Layer(f"model.{up + 4}", "norm"), Layer(f"model.{up + 7}", "conv")]
    config = {"channels": channels, "ngf": ngf, "n_blocks": n_blocks, "norm": norm, "dropout": dropout,
              "upsample": "transpose", "edge_padding": 3}
    detected = {"netG": f"resnet_{n_blocks}blocks", "ngf": ngf, "channels": channels, "norm": norm, "dropout": dropout}
    return Plan("cyclegan", config, layers, detected)


def unet_plan(state: State) -> Plan:
    """Read a UnetGenerator: depth from the nesting, width, norm from its keys and shapes."""
    require(state, r"^model\.model\.0\.weight$", UNET)
    first = tensor(state, "model.model.0.weight", 4, UNET)
    last = tensor(state, "model.model.3.weight", 4, UNET)
    # Middle blocks nest their submodule at 3; the innermost has its upconv there instead.
    levels = ["model.model.1.model"]
    while any(k.startswith(f"{levels[-1]}.3.model.") for k in state):
        levels.append(f"{levels[-1]}.3.model")
    for level in levels:
        tensor(state, f"{level}.1.weight", 4, UNET)
    num_downs = len(levels) + 1
    if num_downs < 5:
        raise PlacementError(f"{UNET}: {num_downs} downsamplings; the U-Net needs at least 5")
    innermost = levels[-1]
    norm = norm_kind(state, f"{levels[0]}.2") if len(levels) > 1 else norm_kind(state, f"{innermost}.4")
    channels = _same_channels(first.shape[1], last.shape[1], UNET)
    # Forward order: every downconv (with its norm) from the outside in, then every upconv on the way out.
    layers = [Layer("model.model.0", "conv")]
    for level in levels[:-1]:
        layers += [Layer(f"{level}.1", "conv"), Layer(f"{level}.2", "norm")]
    layers += [Layer(f"{innermost}.1", "conv"), Layer(f"{innermost}.3", "convT"), Layer(f"{innermost}.4", "norm")]
    for level in reversed(levels[:-1]):
        layers += [Layer(f"{level}.5", "convT"), Layer(f"{level}.6", "norm")]
    layers.append(Layer("model.model.3", "convT"))
    config = {"channels": channels, "ngf": first.shape[0], "size": 2**num_downs, "norm": norm,
              "block_order": "pre-activation", "final_layer": "transpose"}
    detected = {"netG": f"unet_{2**num_downs}", "ngf": first.shape[0], "channels": channels, "norm": norm,
                "dropout": "not in the file"}
    return Plan("pix2pix", config, layers, detected)


register(Layout(RESNET, PROJECT, "ResnetGenerator (resnet_6blocks / resnet_9blocks; CycleGAN's default)", LICENCE,
                resnet_plan))
register(Layout(UNET, PROJECT, "UnetGenerator (unet_128 / unet_256; pix2pix's default)", LICENCE, unet_plan))
