"""Training throughput: one full training step (D and G updates) of every variant at its quick preset.

The step is the variant's own `TrainStep` built by the real `Trainer` (weight init, optimisers,
AMP policy on CUDA); batches are drawn from the variant's built-in dataset beforehand and
cycled, so the timing is the step itself, not data loading or the built-in sets' first-epoch
rendering. images/s counts every real image a step consumes (WGAN-GP's critic draws n_critic
batches per generator update).
"""
from __future__ import annotations

import itertools
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
TIMING_NOTE = ("wall clock around one call of the variant's TrainStep (forward, backward and optimizer steps of D and G, "
               "loss values read back), batches prefetched on the device: data loading excluded")


@pytest.mark.parametrize("variant_name", registry.names())
def test_training_step(benchmark: Any, variant_name: str, measuring: bool, tmp_path: Path) -> None:
    import torch

    from train import config as config_mod
    from train.trainer import Trainer, batch_stream

    load_start = machine.load_average()
    variant = registry.get(variant_name)
    cfg = config_mod.resolve(variant.config, PRESET, None if measuring else {"batch_size": CHECK_BATCH})
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

    def step() -> None:
        losses = trainer.step_fn(next_batch)
        torch.stack(list(losses.values())).float().tolist()  # the loop reads the losses back every step
        trainer.step_fn.end_of_step()

    for _ in range(2 if measuring else 0):  # allocator and oneDNN/cuDNN kernel selection
        step()
    drawn = 0
    with MemoryWatch(cuda=cuda) as memory:
        timing = time_calls(benchmark, step, sync=sync)
    calls = len(timing.seconds) + (1 if timing.measured else 0)  # time_calls probes once before the rounds
    draws_per_step = drawn / calls
    median = timing.median
    benchmark.group = "training step (quick preset)"
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in trainer.nets.items()}
    benchmark.extra_info.update({
        "kind": "training", "variant": variant_name, "model": f"{variant_name} ({PRESET})", "preset": PRESET,
        "batch": cfg.batch_size, "size": f"{cfg.size}x{cfg.size}" if hasattr(cfg, "size") and variant_name != "gan" else None,
        "device": trainer.device.type, "amp": trainer.step_fn.amp_dtype is not None,
        "batches_per_step": round(draws_per_step, 2),
        "images_per_s": round(draws_per_step * cfg.batch_size / median, 2),
        "steps_per_s": round(1 / median, 3),
        "latency_ms": timing.latency_ms(),
        "parameters": params,
        "memory": memory.to_json(),
        "timing": TIMING_NOTE, "measured": timing.measured,
        "versions": {k: v for k, v in machine.versions().items() if k in ("torch", "torch_threads", "torch_cuda")},
        "machine": machine_summary(), "load_average": [load_start, machine.load_average()], "contention": timing.contention,
    })
    assert draws_per_step >= 1
