"""Datasets for ganrt: toy distributions, built-in generated images, and the formats users already have."""

from train.data.builtin import EdgesToScenes, PhotoToSketch, scene_edges, sketch
from train.data.celeba import CelebAAttributes, is_celeba
from train.data.folders import ImageFolder
from train.data.idx import IdxImages, read_idx
from train.data.images import list_images, load_rgb, to_tensor, to_uint8
from train.data.paired import PairedImages
from train.data.shapes import ShapesDataset
from train.data.styles import PhotoStyles
from train.data.toy import Gaussian1D, Ring2D, gaussian_stats, ring_stats
from train.data.unpaired import UnpairedImages

__all__ = [
    "CelebAAttributes",
    "EdgesToScenes",
    "Gaussian1D",
    "IdxImages",
    "ImageFolder",
    "PairedImages",
    "PhotoStyles",
    "PhotoToSketch",
    "Ring2D",
    "ShapesDataset",
    "UnpairedImages",
    "download_celeba",
    "download_cyclegan",
    "download_mnist",
    "download_pix2pix",
    "gaussian_stats",
    "is_celeba",
    "list_images",
    "load_rgb",
    "read_idx",
    "ring_stats",
    "scene_edges",
    "sketch",
    "to_tensor",
    "to_uint8",
]

# The download helpers load on first use (PEP 562): importing train.data.download here
# would make `python -m train.data.download` warn that the module was imported twice. The
# plain `download` function stays in its module, where a re-export would hide the
# submodule of the same name behind a function.
_DOWNLOAD_HELPERS = ("download_celeba", "download_cyclegan", "download_mnist", "download_pix2pix")


def __getattr__(name: str) -> object:
    if name in _DOWNLOAD_HELPERS:
        from train.data import download

        return getattr(download, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
