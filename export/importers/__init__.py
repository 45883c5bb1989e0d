"""Generators trained elsewhere, as export sources: `python -m export FILE.pth`, `junyanz:...`, `--module`.

A `.pth` state_dict is read with `torch.load(weights_only=True)`, its layout detected from its
keys and shapes (`layouts`: junyanz's ResnetGenerator and UnetGenerator, PyTorch-GAN's
GeneratorResNet and GeneratorUNet), and its tensors placed onto the ganrt generator that the
layout's variant config builds (`placement`: every key consumed, every shape checked). The
result is an ordinary ganrt generator: export saves it as `generator.safetensors` with its
variant and config, so parity, infer and bench treat it like one trained here. Any other
PyTorch generator comes in through `--module` (`module`), with the signature its user states.

Modes (`--mode`): junyanz's test.py runs pix2pix with batch statistics and dropout on unless
`--eval`. An exported graph is deterministic and handles batches, so `train` means: each batch
norm normalises each image by that image's own statistics (what test.py computes at its batch
size of 1, now independent of the batch), and dropout stays off (its per-layer expectation).
`eval` (the default) uses the running statistics. The manifest records the mode.
"""
