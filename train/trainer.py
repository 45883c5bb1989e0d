"""The training loop shared by every variant: data, devices, DDP, checkpoints, samples, logs.

The variant's `TrainStep` holds the GAN-specific updates; this file holds everything
around them, written once.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ganrt import config as config_mod
from ganrt.atomic import remove_temp_files
from ganrt.errors import DataError, UsageError
from ganrt.locations import RUNS_ROOT
from train import checkpoint as ckpt
from train.config import save_run_config
from train.interrupt import Stopped, StopRequests
from train.metrics import METRICS_FILE, MetricsLog, cut_after
from train.nets.init import init_weights
from train.registry import Variant
from train.samples import grid, points_image, save_gif, save_png, to_uint8

log = logging.getLogger("ganrt.train")

KEEP_CHECKPOINTS = 3
SAMPLE_COUNT = 64
GRID_PAIRS = 16  # translators' sample grids: input|output pairs, 8 per row


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class DiskFull(RuntimeError):
    """A write found no space left; the message names the last good checkpoint."""


@dataclass
class Dist:
    """Where this process sits in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def pick_device(name: str, dist_info: Dist) -> torch.device:
    """`auto` is CUDA when present (one GPU per torchrun process), else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name} asked for, but this PyTorch sees no CUDA GPU")
        if name == "cuda":
            name = f"cuda:{dist_info.local_rank}"
    elif name != "cpu":
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    return torch.device(name)


def init_distributed() -> Dist:
    """Join the torchrun process group when launched by torchrun (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    info = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend)
    return info


def to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors in (nested) tuples/lists/dicts to `device`."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def batch_stream(dataset: Dataset, batch_size: int, seed: int, start_batch: int, dist_info: Dist,
                 device: torch.device, num_workers: int) -> Iterator[Any]:
    """Endless shuffled batches whose order depends only on (seed, batch index), so resume is exact."""
    n = len(dataset)  # type: ignore[arg-type]
    per_epoch = n // (batch_size * dist_info.world)
    if per_epoch == 0:
        raise DataError(f"the dataset has {n} items, fewer than one batch of {batch_size} per process")
    epoch, offset = divmod(start_batch, per_epoch)
    while True:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        mine = order[dist_info.rank::dist_info.world][: per_epoch * batch_size].view(per_epoch, batch_size)
        if hasattr(dataset, "set_epoch"):  # datasets with random jitter draw it per epoch
            dataset.set_epoch(epoch)
        # A private generator: creating a loader iterator draws a worker seed, and drawing it
        # from the global RNG would shift the model's random stream on resume.
        loader = DataLoader(dataset, batch_sampler=mine[offset:].tolist(), num_workers=num_workers,
                            pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(seed + epoch))
        for batch in loader:
            yield to_device(batch, device)
        epoch, offset = epoch + 1, 0


def new_run_dir(root: Path, variant: str) -> Path:
    """runs/<variant>/<timestamp>, unique even when two runs start in the same second."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / variant / stamp
    i = 1
    while path.exists():
        path, i = root / variant / f"{stamp}-{i}", i + 1
    return path


def _unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


class Trainer:
    """Trains one variant with one config into one run directory."""

    def __init__(self, variant: Variant, cfg: Any, run_dir: Path, resume: bool = False) -> None:
        self.variant, self.cfg, self.run_dir = variant, cfg, run_dir
        self.dist = init_distributed()
        self.device = pick_device(cfg.device, self.dist)
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.dataset = variant.dataset(cfg)
        raw = variant.networks(cfg)
        for net in raw.values():
            init_weights(net)
            net.to(self.device)
        self.nets: dict[str, nn.Module] = raw
        if self.dist.world > 1:
            # BatchNorm buffers are each rank's own statistics; only gradients are averaged.
            self.nets = {k: nn.parallel.DistributedDataParallel(
                n, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                forward_sync_buffers=False) for k, n in raw.items()}
        self.step_fn = variant.step(cfg, self.nets, self.device, cfg.amp if self.device.type == "cuda" else cfg.cpu_amp)
        self.step = 0
        self.images_seen = 0
        self.saved_step = -1  # the step of the newest checkpoint on disk
        self.ckpt_dir = run_dir / "checkpoints"
        self.samples_dir = run_dir / "samples"
        if resume:
            self._restore()
        # Different noise per rank, but reproducible; after restore so RNG state wins.
        if not resume:
            torch.manual_seed(cfg.seed + 7919 * self.dist.rank)
        translator = variant.inputs(cfg)[0].kind == "image"
        self.sample_feeds = variant.sample_feeds(cfg, GRID_PAIRS if translator else SAMPLE_COUNT,
                                                 torch.Generator().manual_seed(cfg.seed + 1))
        self.sample_feeds = to_device(self.sample_feeds, self.device)
        self._reference_points = None

    # -- persistence -------------------------------------------------------------
    def _meta(self) -> dict[str, str]:
        return {"variant": self.variant.name, "config": json.dumps(config_mod.to_dict(self.cfg))}

    def save_checkpoint(self) -> None:
        """Checkpoint every network, the optimisers, the RNG and the data position (rank 0)."""
        self.saved_step = self.step
        if not self.dist.main:
            return
        state = {
            "step": self.step,
            "images_seen": self.images_seen,
            "train": self.step_fn.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        ckpt.save_checkpoint(self.ckpt_dir, self.step, {k: _unwrap(n) for k, n in self.nets.items()}, state, self._meta())
        ckpt.prune_checkpoints(self.ckpt_dir, KEEP_CHECKPOINTS)

    def _remove_interrupted_writes(self) -> None:
        """Delete the temp files and half checkpoints that a kill during a write left (rank 0)."""
        removed = ckpt.remove_incomplete(self.ckpt_dir)
        for folder in (self.run_dir, self.samples_dir):
            if folder.is_dir():
                removed += remove_temp_files(folder)
        if removed:
            log.info("removed %d file(s) left by interrupted writes: %s", len(removed),
                     ", ".join(p.name for p in removed))

    def _restore(self) -> None:
        if self.dist.main:
            self._remove_interrupted_writes()
        found = ckpt.list_checkpoints(self.ckpt_dir)
        if not found:
            raise UsageError(f"nothing to resume in {self.run_dir}: no complete checkpoint in {self.ckpt_dir}")
        step, weights = found[-1]
        tensors, meta = ckpt.read_weights(weights)
        if meta.get("variant") != self.variant.name:
            raise ckpt.CheckpointError(f"{weights} was trained as {meta.get('variant')!r}, not {self.variant.name!r}")
        for name, net in self.nets.items():
            ckpt.load_into(_unwrap(net), tensors, f"{name}.", weights)
        state = ckpt.load_state(weights)
        self.step_fn.load_state_dict(state["train"])
        self.step, self.images_seen = state["step"], state["images_seen"]
        self.saved_step = self.step
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        if self.dist.main:  # the steps after the checkpoint run again: drop their old log lines
            cut_after(self.run_dir / METRICS_FILE, self.step)
        log.info("resumed %s at step %d", self.run_dir, step)

    # -- pictures ------------------------------------------------------------------
    @torch.no_grad()
    def save_samples(self) -> Path | None:
        """Render the generator's output on the fixed feeds into samples/step_N.png."""
        if not self.dist.main:
            return None
        gen = _unwrap(self.nets[self.variant.generator_key])
        was_training = gen.training
        gen.eval()
        specs = self.variant.inputs(self.cfg)
        try:
            if self.variant.sample_grid is not None:  # the variant lays out its own grid
                image = self.variant.sample_grid(
                    self.cfg, lambda f: gen(*(f[s.name].to(self.device) for s in specs)).float().cpu())
            else:
                image = self._default_grid(gen, [self.sample_feeds[s.name] for s in specs])
        finally:
            gen.train(was_training)
        path = self.samples_dir / f"step_{self.step:07d}.png"
        save_png(path, image)
        return path

    def _default_grid(self, gen: nn.Module, feeds: list[torch.Tensor]) -> np.ndarray:
        out = gen(*feeds).float()
        if self.variant.output(self.cfg).kind == "points":
            if self._reference_points is None:
                idx = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(0))[:2000]
                self._reference_points = torch.stack([self.dataset[int(i)] for i in idx]).numpy()
            return points_image(out.cpu().numpy(), self._reference_points)
        if feeds[0].dim() == 4:  # translator: input and output side by side
            pairs = torch.stack([feeds[0], out], 1).flatten(0, 1)
            return grid(to_uint8(pairs), cols=8)
        return grid(to_uint8(out))

    # -- the loop ------------------------------------------------------------------
    def fit(self, until: int | None = None) -> None:
        """Train to `cfg.steps` (or pause at step `until`, checkpointed).

        Ctrl-C or SIGTERM stops at the next step boundary with a checkpoint (raises `Stopped`);
        a NaN loss stops without saving (`TrainingDiverged`).
        """
        cfg = self.cfg
        end = min(cfg.steps, until) if until is not None else cfg.steps
        with StopRequests() as stop:
            if self.dist.main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                save_run_config(self.run_dir, self.variant.name, config_mod.to_dict(cfg))
            if self.step == 0:
                self.save_samples()
                self.save_checkpoint()  # step 0: the baseline the final evaluation compares with
            self._train_until(end, stop)
            if not stop.requested and self.step == cfg.steps:
                self.finish()
            if stop.requested or self.step < end:
                if self.saved_step != self.step:
                    self.save_checkpoint()
                raise Stopped(self.step)

    def _stop_agreed(self, stop: StopRequests) -> bool:
        """Whether to stop before the next step; under torchrun a signal to any rank stops all at the same step."""
        if self.dist.world == 1:
            return stop.requested
        flag = torch.tensor([float(stop.requested)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _train_until(self, end: int, stop: StopRequests) -> None:
        """Whole steps up to `end`, with logs, samples and checkpoints; returns early when a stop is agreed."""
        cfg = self.cfg
        start_batch = self.images_seen // cfg.batch_size
        batches = batch_stream(self.dataset, cfg.batch_size, cfg.seed, start_batch, self.dist, self.device,
                               cfg.num_workers)
        drawn = start_batch

        def next_batch() -> Any:
            nonlocal drawn
            drawn += 1
            return next(batches)

        writer = self._tensorboard()
        metrics = MetricsLog(self.run_dir / METRICS_FILE) if self.dist.main else None
        bar = tqdm(total=cfg.steps, initial=self.step, desc=self.variant.name, unit="step",
                   disable=not self.dist.main, dynamic_ncols=True)
        t0, drawn0 = time.perf_counter(), start_batch
        for net in self.nets.values():
            net.train()
        try:
            while self.step < end and not self._stop_agreed(stop):
                losses = self.step_fn(next_batch)
                values = dict(zip(losses, torch.stack(list(losses.values())).float().tolist()))
                bad = [k for k, v in values.items() if not math.isfinite(v)]
                if bad:
                    raise TrainingDiverged(
                        f"{', '.join(bad)} became {values[bad[0]]} at step {self.step + 1}; stopped. The last "
                        f"good checkpoint is in {self.ckpt_dir}; try a lower learning rate or --no-amp")
                self.step_fn.end_of_step()
                self.step += 1
                self.images_seen = drawn * cfg.batch_size
                elapsed = time.perf_counter() - t0
                ips = (drawn - drawn0) * cfg.batch_size * self.dist.world / max(elapsed, 1e-9)
                bar.update(1)
                bar.set_postfix({**{k: f"{v:.3f}" for k, v in values.items()}, "img/s": f"{ips:.0f}"}, refresh=False)
                if metrics and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                    metrics.append({"step": self.step, **values, "images_per_s": round(ips, 2),
                                    "time": round(time.time(), 3)})
                    if writer:
                        for k, v in values.items():
                            writer.add_scalar(f"loss/{k}", v, self.step)
                        writer.add_scalar("images_per_s", ips, self.step)
                if self.step % cfg.sample_every == 0 or self.step == cfg.steps:
                    self.save_samples()
                if self.step % cfg.checkpoint_every == 0 or self.step == end:
                    self.save_checkpoint()
        finally:
            bar.close()
            if metrics:
                metrics.close()
            if writer:
                writer.close()

    def finish(self) -> None:
        """Write generator.safetensors and progress.gif (rank 0)."""
        if not self.dist.main:
            return
        gen = _unwrap(self.nets[self.variant.generator_key])
        ckpt.save_generator(self.run_dir / "generator.safetensors", gen, self.variant.name,
                            config_mod.to_dict(self.cfg), self.step)
        save_gif(self.run_dir / "progress.gif", sorted(self.samples_dir.glob("step_*.png")))

    def _tensorboard(self) -> Any:
        if not (self.cfg.tensorboard and self.dist.main):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UsageError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        return SummaryWriter(str(self.run_dir / "tensorboard"))


def run_training(variant: Variant, cfg: Any, runs_root: Path = RUNS_ROOT, resume: Path | None = None,
                 evaluate: bool = True, on_ready: Callable[[Path], None] | None = None) -> Path:
    """Train (or resume) a run and evaluate it; returns the run directory."""
    if not variant.trainable:
        raise UsageError(f"{variant.name} cannot be trained here: {variant.summary}")
    if resume is not None:
        run_dir = resume
    else:
        run_dir = new_run_dir(runs_root, variant.name)
        d = Dist(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
        if d.world > 1:  # every rank must agree on one directory: rank 0's timestamp
            run_dir = _broadcast_path(run_dir)
    try:
        trainer = Trainer(variant, cfg, run_dir, resume=resume is not None)
        if on_ready:
            on_ready(run_dir)
        trainer.fit()
        if evaluate and trainer.dist.main:
            from train.eval import evaluate_run

            evaluate_run(run_dir)
    except OSError as e:
        if not ckpt.is_disk_full(e):
            raise
        raise DiskFull(disk_full_message(run_dir)) from None
    if trainer.dist.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return run_dir


def disk_full_message(run_dir: Path) -> str:
    """One line for a run that ran out of disk: what happened, the last good checkpoint, what to do."""
    found = ckpt.list_checkpoints(run_dir / "checkpoints")
    if not found:
        return f"disk full: no space left for {run_dir}, and no checkpoint was saved; free some space and start again"
    step, weights = found[-1]
    return (f"disk full: no space left for {run_dir}; the last good checkpoint is step {step} ({weights}); "
            f"free some space, then continue with --resume {run_dir}")


def _broadcast_path(path: Path) -> Path:
    init_distributed()
    box = [str(path)]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])
