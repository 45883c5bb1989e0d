"""Network architectures: builders only (no device placement, no init; see ``init_weights``)."""

from .compact import CompactGenerator, SeparableResidualBlock
from .dcgan import (
    ConditionalDiscriminator28,
    ConditionalGenerator28,
    DCGAN28Discriminator,
    DCGAN28Generator,
    DCGAN64Discriminator,
    DCGAN64Generator,
    ProjectionDiscriminator28,
)
from .infogan import InfoGANDiscriminator28, InfoGANGenerator28
from .init import init_weights
from .mlp import MLPDiscriminator, MLPGenerator
from .norms import NORM_KINDS, check_norm, conv_bias, norm_layer
from .patchgan import PatchDiscriminator
from .resnet import UPSAMPLE_KINDS, ResidualBlock, ResnetGenerator
from .stargan import StarDiscriminator, StarGenerator, StarResidualBlock
from .unet import BLOCK_ORDERS, UnetGenerator, unet_depth

__all__ = [
    "BLOCK_ORDERS",
    "NORM_KINDS",
    "UPSAMPLE_KINDS",
    "CompactGenerator",
    "ConditionalDiscriminator28",
    "ConditionalGenerator28",
    "DCGAN28Discriminator",
    "DCGAN28Generator",
    "DCGAN64Discriminator",
    "DCGAN64Generator",
    "InfoGANDiscriminator28",
    "InfoGANGenerator28",
    "MLPDiscriminator",
    "MLPGenerator",
    "PatchDiscriminator",
    "ProjectionDiscriminator28",
    "ResidualBlock",
    "ResnetGenerator",
    "SeparableResidualBlock",
    "StarDiscriminator",
    "StarGenerator",
    "StarResidualBlock",
    "UnetGenerator",
    "check_norm",
    "conv_bias",
    "init_weights",
    "norm_layer",
    "unet_depth",
]
