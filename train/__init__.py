"""ganrt training: GAN variants, their data, losses and the shared training loop."""
