"""Multiply-accumulates of one forward pass, counted with forward hooks on Conv, ConvTranspose and Linear.

Only these layers are counted (normalisation, activations, padding and additions are a few
per cent of a GAN generator's work and are left out, as in the published figures).

ConvTranspose convention (design.md "Known hazards": name it): `input grid` counts what a
transposed convolution really computes, every input pixel scattered through the kernel
(N * Cin * Hin * Win * Cout/groups * kH * kW); `output grid` counts it as a convolution over
the output pixels (N * Cout * Hout * Wout * Cin/groups * kH * kW), which is what the
published 56.8 G for CycleGAN ResNet-9 at 256x256 uses (the input grid gives 49.6 G).
The benchmarks report GFLOP/s = 2 * MACs(input grid) / time: work actually done.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

INPUT_GRID = "input grid"
OUTPUT_GRID = "output grid"
CONVENTION = (f"GFLOP/s = 2 x MACs / time; MACs of Conv/ConvTranspose/Linear layers only, ConvTranspose counted on "
              f"the {INPUT_GRID} (N*Cin*Hin*Win*Cout/groups*kH*kW: the work done; the published 56.8 G of CycleGAN-256 "
              f"counts it on the {OUTPUT_GRID}, 49.6 G on the input grid)")


@dataclass(frozen=True)
class MacCount:
    """MACs of one forward pass at one batch size, both ConvTranspose conventions."""

    input_grid: int
    output_grid: int
    batch: int

    def per_image(self) -> float:
        """Input-grid MACs per image (the convention the benchmarks report)."""
        return self.input_grid / self.batch

    def to_json(self) -> dict[str, Any]:
        """GMACs per image, both conventions."""
        return {"macs_per_image": self.input_grid // self.batch,
                "gmacs_per_image": float(f"{self.input_grid / self.batch / 1e9:.4g}"),
                "gmacs_per_image_output_grid": float(f"{self.output_grid / self.batch / 1e9:.4g}"),
                "convention": INPUT_GRID}


def _kernel_elems(m: nn.modules.conv._ConvNd) -> int:
    n = 1
    for k in m.kernel_size:
        n *= k
    return n


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> MacCount:
    """Run `module(*inputs)` once (no grad) and count the MACs of its weighted layers."""
    totals = {"in": 0, "out": 0}

    def hook(m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        x = args[0]
        if isinstance(m, nn.Linear):
            macs = out.numel() * m.in_features
            totals["in"] += macs
            totals["out"] += macs
        elif isinstance(m, nn.modules.conv._ConvTransposeNd):
            k = _kernel_elems(m)
            totals["in"] += x.numel() * (m.out_channels // m.groups) * k
            totals["out"] += out.numel() * (m.in_channels // m.groups) * k
        elif isinstance(m, nn.modules.conv._ConvNd):
            macs = out.numel() * (m.in_channels // m.groups) * _kernel_elems(m)
            totals["in"] += macs
            totals["out"] += macs

    weighted = (nn.Linear, nn.modules.conv._ConvNd)
    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, weighted)]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    batch = int(inputs[0].shape[0]) if inputs and inputs[0].dim() > 0 else 1
    return MacCount(totals["in"], totals["out"], batch)
