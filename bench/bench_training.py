"""Training throughput: one full training step (D and G updates) of every variant at its quick preset
(every preset with --bench-full).

The step is the variant's own `TrainStep` built by the real `Trainer` (weight init, optimisers,
AMP policy on CUDA); batches are drawn from the variant's built-in dataset beforehand and
cycled, so the timing is the step itself, not data loading or the built-in sets' first-epoch
rendering. images/s counts every real image a step consumes (WGAN-GP's critic draws n_critic
batches per generator update).

Also CycleGAN at the settings of the widely used single-script PyTorch CycleGAN that the
translation issue compares against (128x128, 6 residual blocks, ngf/ndf 64, batch 1, identity
loss on; about 1.6 s per iteration on the 2-core CPU, as quoted there): the same step in fp32
and with bf16 autocast (--cpu-amp), with the first step's losses from the same weights and batch.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest

from bench import machine
from bench.measure import MemoryWatch, machine_summary, time_calls
from train import registry

PRESET = "quick"
PREFETCH_BATCHES = 8
# Plain `pytest` (one step as a correctness check) runs the quick preset at this batch size.
CHECK_BATCH = 2
REFERENCE_S_PER_ITER = 1.6  # the translation issue's figure for the reference script on the 2-core CPU
TIMING_NOTE = ("wall clock around one call of the variant's TrainStep (forward, backward and optimizer steps of D and G, "
               "loss values read back), batches prefetched on the device: data loading excluded")


def _measure_step(benchmark: Any, variant_name: str, cfg: Any, measuring: bool, tmp_path: Path) -> dict[str, Any]:
    """Time the variant's TrainStep on prefetched batches; the extra_info every training row carries."""
    import torch

    from train.trainer import Trainer, batch_stream

    load_start = machine.load_average()
    variant = registry.get(variant_name)
    trainer = Trainer(variant, cfg, tmp_path / "run")  # builds nets, init, optimisers; writes nothing yet
    stream = batch_stream(trainer.dataset, cfg.batch_size, cfg.seed, 0, trainer.dist, trainer.device, 0)
    pool = [next(stream) for _ in range(PREFETCH_BATCHES if measuring else 1)]
    cycle = itertools.cycle(pool)
    drawn = 0

    def next_batch() -> Any:
        nonlocal drawn
        drawn += 1
        return next(cycle)

    for net in trainer.nets.values():
        net.train()
    cuda = trainer.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else None
    first_losses: dict[str, float] = {}

    def step() -> None:
        losses = trainer.step_fn(next_batch)
        values = torch.stack(list(losses.values())).float().tolist()  # the loop reads the losses back every step
        if not first_losses:
            first_losses.update(zip(losses, values))
        trainer.step_fn.end_of_step()

    for _ in range(2 if measuring else 0):  # allocator and oneDNN/cuDNN kernel selection
        step()
    drawn = 0
    with MemoryWatch(cuda=cuda) as memory:
        timing = time_calls(benchmark, step, sync=sync)
    calls = len(timing.seconds) + (1 if timing.measured else 0)  # time_calls probes once before the rounds
    draws_per_step = drawn / calls
    median = timing.median
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in trainer.nets.items()}
    assert draws_per_step >= 1
    assert all(math.isfinite(v) for v in first_losses.values()), first_losses
    return {
        "kind": "training", "variant": variant_name,
        "batch": cfg.batch_size, "size": f"{cfg.size}x{cfg.size}" if hasattr(cfg, "size") and variant_name != "gan" else None,
        "device": trainer.device.type, "amp": str(trainer.step_fn.amp_dtype).replace("torch.", "") if trainer.step_fn.amp_dtype else None,
        "batches_per_step": round(draws_per_step, 2),
        "images_per_s": round(draws_per_step * cfg.batch_size / median, 2),
        "steps_per_s": round(1 / median, 3),
        "first_step_losses": {k: round(v, 5) for k, v in first_losses.items()},
        "latency_ms": timing.latency_ms(),
        "parameters": params,
        "memory": memory.to_json(),
        "timing": TIMING_NOTE, "measured": timing.measured,
        "versions": {k: v for k, v in machine.versions().items() if k in ("torch", "torch_threads", "torch_cuda")},
        "machine": machine_summary(), "load_average": [load_start, machine.load_average()], "contention": timing.contention,
    }


@pytest.mark.parametrize(("variant_name", "preset"),
                         [(name, preset) for name in registry.names() for preset in registry.get(name).config.presets])
def test_training_step(benchmark: Any, variant_name: str, preset: str, measuring: bool, full_matrix: bool,
                       tmp_path: Path) -> None:
    from ganrt import config as config_mod

    if preset != PRESET and not (measuring and full_matrix):
        pytest.skip(f"the {preset} preset is measured with --bench-full (the default runs the {PRESET} preset)")
    variant = registry.get(variant_name)
    cfg = config_mod.resolve(variant.config, preset, None if measuring else {"batch_size": CHECK_BATCH})
    benchmark.group = f"training step ({preset} preset)"
    benchmark.extra_info.update({**_measure_step(benchmark, variant_name, cfg, measuring, tmp_path),
                                 "model": f"{variant_name} ({preset})", "preset": preset})


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cyclegan_step_at_reference_settings(benchmark: Any, precision: str, measuring: bool, tmp_path: Path) -> None:
    from ganrt import config as config_mod

    if not measuring:
        pytest.skip("a 128x128 CycleGAN step takes seconds on a CPU: measured under --benchmark-only")
    variant = registry.get("cyclegan")
    bf16 = precision == "bf16"
    cfg = config_mod.resolve(variant.config, "paper128", {"batch_size": 1, "amp": bf16, "cpu_amp": bf16})
    benchmark.group = "cyclegan step at the reference settings"
    extra = _measure_step(benchmark, "cyclegan", cfg, measuring, tmp_path)
    extra.update({"kind": "training-reference", "model": "cyclegan (paper128, batch 1)", "preset": "paper128",
                  "precision": precision, "reference_s_per_iter": REFERENCE_S_PER_ITER,
                  "speedup_vs_reference": round(REFERENCE_S_PER_ITER * extra["steps_per_s"], 3)})
    benchmark.extra_info.update(extra)
