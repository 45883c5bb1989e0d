"""PyTorch: the generator rebuilt through the registry from the artifact's config and weights."""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ganrt.errors import BackendUnavailable
from infer.runners.base import Runner

if TYPE_CHECKING:
    from torch import nn


def import_torch() -> Any:
    """The torch module, or BackendUnavailable saying what to install."""
    try:
        import torch
    except ImportError:
        raise BackendUnavailable("the torch backend needs PyTorch: pip install torch "
                                 "(scripts/setup.sh installs the CPU build)") from None
    return torch


def generator_loader(variant: str, config: dict[str, Any], weights: Path) -> Callable[[], "nn.Module"]:
    """A loader that builds `variant`'s generator from `config` and loads `weights` (eval mode, CPU)."""
    def load() -> "nn.Module":
        import_torch()
        from train.checkpoint import build_generator  # training code only where the torch backend runs

        return build_generator(variant, config, weights)

    return load


@functools.lru_cache(maxsize=None)
def bf16_supported(device_type: str) -> bool:
    """Whether bf16 autocast works here: detected (a real bf16 convolution), never assumed."""
    torch = import_torch()
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = torch.nn.functional.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3))
    except RuntimeError:
        return False
    return y.dtype == torch.bfloat16


class TorchRunner(Runner):
    """The PyTorch generator in eval mode on CPU or CUDA; options `compile` (torch.compile), `bf16` (autocast), `threads`."""

    def __init__(self, load: Callable[[], "nn.Module"], *args: Any, device: str = "cpu", compile: bool = False,
                 bf16: bool = False, threads: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("precision", "bf16" if bf16 else "fp32")
        super().__init__(load, *args, backend="torch", **kwargs)
        self.device = device
        self.compile = compile
        self.bf16 = bf16
        self.threads = threads
        self._module: Any = None
        self._torch: Any = None

    def _activate(self, module: Any) -> None:
        torch = import_torch()
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        device_type = torch.device(self.device).type
        if device_type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(f"torch on {self.device} needs a CUDA build of torch and an NVIDIA GPU; "
                                     f"this torch {torch.__version__} sees none")
        if self.bf16 and not bf16_supported(device_type):
            raise BackendUnavailable(f"bf16 autocast does not run on this {device_type} (needs oneDNN with bf16 "
                                     f"on CPUs, compute capability 8.0+ on GPUs): use bf16=False")
        if self.threads:
            torch.set_num_threads(self.threads)  # intra-op threads: process-wide in torch
        module = module.to(self.device).eval()
        self._module = torch.compile(module) if self.compile else module
        self._torch = torch

    def _infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[s.name])).to(self.device) for s in self._inputs]
        device_type = torch.device(self.device).type
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self._module(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {spec.name: t.float().cpu().numpy() for spec, t in zip(self._outputs, outs)}

    def _deactivate(self) -> None:
        self._module = None
