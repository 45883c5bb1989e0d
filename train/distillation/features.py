"""Feature distillation: which teacher activations a student's are matched with, and hooks that read them.

GAN Compression (Li et al. 2020, arXiv:2003.08936, eq. 3) adds sum_t ||G_t(x) - f_t(G'_t(x))||^2 over a few
intermediate layers t, where f_t is a learned 1x1 conv mapping the student's channels to the teacher's.
Its ResNet teacher's layers are the encoder's output and the outputs of residual blocks 3, 6 and 9 of 9
(`model.9`, `model.12`, `model.15`, `model.18` in the authors' code): all at a quarter of the input size,
where the student's residual blocks work too. Here:
- a ResnetGenerator teacher (CycleGAN): the encoder's output and the blocks 1/3, 2/3 and all the way
  through, each matched with the student's activation after the same fraction of its own blocks;
- a UnetGenerator teacher (pix2pix): its two quarter-size activations, the encoder's second stage
  (before the bottleneck) and the decoder stage that comes back to a quarter size, matched with the
  student's encoder output and its last residual block's output.
Other teachers' insides are unknown here: no feature term.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from train.nets import ResidualBlock, ResnetGenerator, UnetGenerator

FRACTIONS = (1, 2, 3)  # thirds of the residual blocks done


@dataclass(frozen=True)
class FeaturePairs:
    """Teacher layers (qualified module names) matched, in order, with student taps (residual blocks done)."""

    teacher_layers: tuple[str, ...]
    teacher_channels: tuple[int, ...]
    student_taps: tuple[int, ...]


def _resnet_pairs(teacher: ResnetGenerator, student_blocks: int) -> FeaturePairs:
    layers = list(teacher.model)
    # The encoder ends with the ReLU two modules after its last stride-2 conv (conv, norm, ReLU).
    last_down = max(i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d) and m.stride == (2, 2))
    width = layers[last_down].out_channels  # every quarter-size activation has it (the blocks keep it)
    blocks = [i for i, m in enumerate(layers) if isinstance(m, ResidualBlock)]
    pairs = {0: f"model.{last_down + 2}"}
    for k in FRACTIONS:
        t, s = round(k * len(blocks) / 3), round(k * student_blocks / 3)
        layer = f"model.{blocks[t - 1]}" if t >= 1 else None
        if s >= 1 and layer and s not in pairs and layer not in pairs.values():  # each layer and tap once
            pairs[s] = layer
    taps = tuple(pairs)
    return FeaturePairs(tuple(pairs[s] for s in taps), (width,) * len(taps), taps)


def _unet_pairs(teacher: UnetGenerator, student_blocks: int) -> FeaturePairs:
    n = teacher.num_downs
    # encoder.1 outputs widths[1] x H/4 x W/4; decoder.(n-3) (for encoder stage 2, innermost first) brings
    # the decoder back to widths[1] x H/4 x W/4.
    down = next(m for m in teacher.encoder[1] if isinstance(m, nn.Conv2d))
    up = next(m for m in teacher.decoder[n - 3] if isinstance(m, nn.ConvTranspose2d))
    return FeaturePairs(("encoder.1", f"decoder.{n - 3}"), (down.out_channels, up.out_channels), (0, student_blocks))


def feature_pairs(teacher: nn.Module, student_blocks: int) -> FeaturePairs | None:
    """The layers to match for a teacher whose structure is known (ResNet, U-Net of depth >= 3), else None."""
    if isinstance(teacher, ResnetGenerator):
        return _resnet_pairs(teacher, student_blocks)
    if isinstance(teacher, UnetGenerator) and teacher.num_downs >= 3:
        return _unet_pairs(teacher, student_blocks)
    return None


class Adapters(nn.Module):
    """The learned 1x1 convs f_t that map the student's activations to the teacher's channels."""

    def __init__(self, student_channels: int, teacher_channels: Sequence[int]) -> None:
        super().__init__()
        self.maps = nn.ModuleList(nn.Conv2d(student_channels, c, 1) for c in teacher_channels)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """f_t(features[t]) for each t."""
        return [f(x) for f, x in zip(self.maps, features)]


class Activations:
    """Forward hooks that keep the outputs of `modules` from the latest forward pass, in order."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.outputs: list[Tensor | None] = [None] * len(modules)
        for i, m in enumerate(modules):
            m.register_forward_hook(self._keeper(i))

    def _keeper(self, i: int):  # noqa: ANN202 - a hook
        def keep(module: nn.Module, args: tuple, output: Tensor) -> None:
            self.outputs[i] = output
        return keep

    def take(self) -> list[Tensor]:
        """The kept outputs (each module must have run), forgetting them."""
        if any(o is None for o in self.outputs):
            raise RuntimeError("a hooked module did not run in the forward pass")
        outputs, self.outputs = self.outputs, [None] * len(self.outputs)
        return outputs  # type: ignore[return-value]
