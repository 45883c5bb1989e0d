"""The base of every variant's training step: optimiser updates with optional AMP, and state.

A variant's step subclass builds its optimisers in `__init__` and writes its D and G
updates in `__call__`, top to bottom, with the objective above each update.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

log = logging.getLogger("ganrt.train")


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype for `device`: bf16 where supported (no loss scaling), else fp16 on CUDA."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if not _cpu_has_fast_bf16():
        log.warning("bf16 autocast on a CPU without AVX512-BF16/AMX is emulated and slower than fp32: "
                    "drop --cpu-amp")
    return torch.bfloat16


def _cpu_has_fast_bf16() -> bool:
    try:  # oneDNN's own check (AVX512-BF16 or AMX); a private op, so absent means "unknown"
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


class TrainStep:
    """One training iteration of a variant; owns optimisers, schedulers and extra state."""

    def __init__(self, cfg: Any, nets: dict[str, nn.Module], device: torch.device, amp: bool) -> None:
        self.cfg = cfg
        self.nets = nets
        self.device = device
        self.amp_dtype = autocast_dtype(device, amp)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self._scalers: dict[str, torch.amp.GradScaler] = {}

    def adam(self, name: str, params: Iterator[nn.Parameter], lr: float, betas: tuple[float, float]) -> None:
        """Register an Adam optimiser (and its loss scaler when fp16 AMP is on)."""
        self.optimizers[name] = torch.optim.Adam(params, lr=lr, betas=betas)
        self._scalers[name] = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision around forward passes when AMP is active."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def update(self, name: str, loss: Tensor) -> None:
        """Zero, back-propagate and step optimiser `name` on `loss`."""
        opt, scaler = self.optimizers[name], self._scalers[name]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def __call__(self, next_batch: Callable[[], Any]) -> dict[str, Tensor]:
        """Run one iteration, drawing real batches from `next_batch`; return detached losses.

        A step draws as many batches as its updates need (WGAN-GP's critic takes n_critic).
        """
        raise NotImplementedError

    def end_of_step(self) -> None:
        """Advance learning-rate schedules (once per generator update)."""
        for sched in self.schedulers.values():
            sched.step()

    def extra_state(self) -> dict[str, Any]:
        """Variant state beyond optimisers (e.g. CycleGAN's image pools)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of `extra_state`."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, loadable with torch.load(weights_only=True)."""
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scalers": {k: s.state_dict() for k, s in self._scalers.items()},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict`."""
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        for k, s in self._scalers.items():
            if state["scalers"].get(k):
                s.load_state_dict(state["scalers"][k])
        self.load_extra_state(state.get("extra", {}))
