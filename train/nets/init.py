"""Weight initialisation of DCGAN, pix2pix and CycleGAN, applied by the trainer after building."""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd

_WEIGHTED = (_ConvNd, nn.Linear)
# _NormBase covers BatchNorm*d and InstanceNorm*d (affine only when asked).
_NORMS = (_NormBase, nn.GroupNorm, nn.LayerNorm)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Draw conv/linear weights from N(0, std) and affine norm scales from N(1, std); zero biases."""

    def init_one(m: nn.Module) -> None:
        if isinstance(m, _WEIGHTED):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORMS):
            # Scale around 1, not 0: a zero scale would switch the layer off (Radford et al. 2016).
            if getattr(m, "weight", None) is not None:
                nn.init.normal_(m.weight, 1.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        # Embeddings keep PyTorch's N(0, 1): the references do not re-initialise them.

    module.apply(init_one)
