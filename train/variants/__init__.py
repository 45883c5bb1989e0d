"""The built-in variants, imported explicitly so each registers itself once."""
from train.variants import cgan, cyclegan, dcgan, distill, gan, infogan, module, pix2pix, stargan, wgan_gp  # noqa: F401
