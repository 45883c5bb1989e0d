"""Faults during training: signals mid-step, kill -9 and SIGTERM at random moments, a full disk.

Every interrupted run is resumed and compared with one uninterrupted run of the same
settings, tensor by tensor: the faults may cost time, never a different result. The small
training run is a DCGAN-64 with 4-channel nets (BatchNorm buffers included) on built-in shapes.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganrt import config as config_mod
from train import registry
from train.trainer import Trainer, run_training

ROOT = Path(__file__).resolve().parents[1]
STEPS = 24
SETTINGS = {"size": 64, "channels": 1, "ngf": 4, "ndf": 4, "z_dim": 8, "batch_size": 4, "steps": STEPS,
            "checkpoint_every": 3, "sample_every": 8, "log_every": 1}
FLAGS = ["dcgan", *(a for k, v in SETTINGS.items() for a in (f"--{k.replace('_', '-')}", str(v))), "--no-eval", "-q"]
# One thread per run: the same arithmetic in every process, and no fight over the 2 cores.
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}$")  # ganrt.atomic's temp files
TRIALS = 6


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "train", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc.returncode, err


def train_cli(*args: str) -> tuple[int, str]:
    return finish(start(*args))


def only_run(runs: Path) -> Path:
    found = list(runs.glob("dcgan/*"))
    assert len(found) == 1, found
    return found[0]


def tensors(run: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The final checkpoint (every network) and the deployed generator."""
    return {"checkpoint": load_file(str(run / "checkpoints" / f"step_{STEPS:07d}.safetensors")),
            "generator": load_file(str(run / "generator.safetensors"))}


def assert_identical(run: Path, reference: "Reference") -> None:
    for name, ref in tensors(run).items():
        other = reference.tensors[name]
        assert ref.keys() == other.keys(), name
        different = [k for k in ref if not torch.equal(ref[k], other[k])]
        assert not different, f"{name}: {len(different)} tensors differ, e.g. {different[0]}"


def assert_tidy(run: Path) -> None:
    """No temp files, every checkpoint whole (weights and state), metrics logged once per step."""
    temps = [p for p in run.rglob(".*") if TEMP_NAME.match(p.name)]
    assert not temps, temps
    ckpts = run / "checkpoints"
    weights = {p.name.split(".")[0] for p in ckpts.glob("step_*.safetensors")}
    states = {p.name.split(".")[0] for p in ckpts.glob("step_*.state.pt")}
    assert weights == states, (weights ^ states)


def logged_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("error:")]


@dataclass
class Reference:
    """The uninterrupted run every faulty one must reproduce."""

    run: Path
    tensors: dict[str, dict[str, torch.Tensor]]
    after_first_step: float  # seconds the run took after its first step


    def size(self, *parts: str) -> int:
        """Bytes a file of this run takes on a tmpfs (whole 4 KiB pages)."""
        return -(-(self.run.joinpath(*parts).stat().st_size) // 4096) * 4096


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    proc, run = _run_until_training(tmp_path_factory.mktemp("reference"))
    t0 = time.monotonic()
    code, err = finish(proc)
    assert code == 0, err
    assert logged_steps(run) == list(range(1, STEPS + 1))
    return Reference(run, tensors(run), time.monotonic() - t0)


# -- a signal in the middle of a step ---------------------------------------------------------
def test_sigterm_inside_a_step_stops_after_it_and_resumes_exactly(tmp_path):
    from train.interrupt import Stopped

    variant = registry.get("dcgan")
    cfg = config_mod.resolve(variant.config, "quick", {**SETTINGS, "steps": 6, "checkpoint_every": 1000,
                                                       "sample_every": 1000})
    straight = run_training(variant, cfg, runs_root=tmp_path / "straight", evaluate=False)
    trainer = Trainer(variant, cfg, tmp_path / "run")
    update, calls = trainer.step_fn.update, []

    def update_then_signal(name: str, loss: torch.Tensor) -> None:
        update(name, loss)
        calls.append(name)
        if len(calls) == 5:  # step 3's D update is done, its G update is not
            os.kill(os.getpid(), signal.SIGTERM)

    trainer.step_fn.update = update_then_signal
    with pytest.raises(Stopped) as stopped:
        trainer.fit()
    assert stopped.value.step == 3 and len(calls) == 6  # step 3 finished before stopping
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.safetensors")) == [
        "step_0000000.safetensors", "step_0000003.safetensors"]
    run_training(variant, cfg, resume=tmp_path / "run", evaluate=False)
    a, b = load_file(str(straight / "generator.safetensors")), load_file(str(tmp_path / "run" / "generator.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


# -- what a kill leaves behind is cleaned on resume ------------------------------------------------
def test_resume_removes_half_written_files_and_relogs_lost_steps_once(tmp_path):
    variant = registry.get("dcgan")
    cfg = config_mod.resolve(variant.config, "quick", {**SETTINGS, "steps": 6, "checkpoint_every": 2})
    straight = run_training(variant, cfg, runs_root=tmp_path / "straight", evaluate=False)
    run = tmp_path / "run"
    Trainer(variant, cfg, run).fit(until=3)  # checkpoints at steps 0, 2 and 3; metrics of steps 1-3
    ckpts = run / "checkpoints"
    # As if killed at step 4: between step 3's renames (its weights without their state), in
    # the middle of writes (temp files), and half-way through a metrics line.
    (ckpts / "step_0000003.state.pt").unlink()
    debris = [ckpts / ".step_0000004.safetensors.k2j4x_9q", run / ".config.json.abcdefgh",
              run / "samples" / ".step_0000004.png.00000000"]
    for path in debris:
        path.write_bytes(b"")
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "d_lo')
    (run / ".keep.me").write_text("not a temp file")  # a user's dotfile: left alone
    run_training(variant, cfg, resume=run, evaluate=False)
    assert not any(p.exists() for p in debris)
    assert (run / ".keep.me").exists()
    assert_tidy(run)
    assert logged_steps(run) == [1, 2, 3, 4, 5, 6]  # resumed at step 2: steps 3-6 logged once
    a, b = load_file(str(straight / "generator.safetensors")), load_file(str(run / "generator.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


# -- kill -9 and SIGTERM at random moments --------------------------------------------------
def _run_until_training(runs: Path, timeout: float = 60) -> tuple[subprocess.Popen, Path]:
    """Start a run; return once its step-0 checkpoint is complete and its first step logged.

    The signals then land in the steady loop (steps, checkpoints, samples), not in start-up.
    """
    proc = start(*FLAGS, "--runs", str(runs))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(runs.glob("dcgan/*/checkpoints/step_0000000.state.pt"))
        run = found[0].parents[1] if found else None
        if run and (run / "checkpoints" / "step_0000000.safetensors").exists() \
                and (run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").stat().st_size:
            return proc, run
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"the run did not write its first checkpoint: {proc.communicate()[1][-2000:]}")


def _trial(runs: Path, sig: int, delay: float, reference: Reference) -> tuple[str, bool]:
    """Signal a run `delay` seconds after its first step, resume it, check it; (outcome, left temp files)."""
    proc, run = _run_until_training(runs)
    time.sleep(delay)
    os.kill(proc.pid, sig)
    code, err = finish(proc)
    if code == 130:
        assert "Traceback" not in err and len([x for x in err.splitlines() if x.startswith("interrupted")]) == 1, err
    outcome = {0: "finished first", 130: "stopped at a step boundary", -signal.SIGKILL: "killed",
               -signal.SIGTERM: "ended at exit, after training"}.get(code)
    assert outcome is not None, (code, err[-2000:])
    debris = any(TEMP_NAME.match(p.name) for p in run.rglob(".*"))
    code, err = train_cli("--resume", str(run), "-q", "--no-eval")
    assert code == 0, err[-3000:]
    assert_identical(run, reference)
    assert_tidy(run)
    assert logged_steps(run) == list(range(1, STEPS + 1))
    return outcome, debris


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_random_kills_resume_to_the_same_weights(sig, reference, tmp_path):
    rng = random.Random(20261202 + sig)
    delays = [rng.uniform(0, reference.after_first_step) for _ in range(TRIALS)]
    # Two trials at a time, one thread each: the machine's two cores.
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda i: _trial(tmp_path / f"trial{i}", sig, delays[i], reference), range(TRIALS)))
    outcomes = Counter(outcome for outcome, _ in results)
    print(f"\n{signal.Signals(sig).name}: {TRIALS} trials, all resumed bit-identical: {dict(outcomes)}; "
          f"{sum(debris for _, debris in results)} left temp files, cleaned on resume")
    assert outcomes["finished first"] < TRIALS  # the signals really landed inside training


# -- a full disk -------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """(a tmpfs mounted for this test, resize(bytes)): needs root and mount rights, else the test is skipped."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command here: the disk-full tests mount a small tmpfs")
    point = tmp_path / "disk"
    point.mkdir()

    def mount(opts: str) -> subprocess.CompletedProcess:
        return subprocess.run(["mount", *opts.split(), str(point)], capture_output=True, text=True)

    def resize(size: int) -> None:
        r = mount(f"-o remount,size={size}")
        assert r.returncode == 0, r.stderr

    r = mount("-t tmpfs -o size=4k tmpfs")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(r.stderr or r.stdout).strip() or 'mount failed'}): "
                    "the disk-full tests need root and mount rights")
    yield point, resize
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.mark.slow
def test_disk_full_mid_run_is_one_line_and_resumes_from_the_last_good_checkpoint(small_disk, reference):
    disk, resize = small_disk
    step0 = sum(reference.size(*f) for f in [("config.json",), ("samples", "step_0000000.png"),
                                             ("checkpoints", "step_0000000.safetensors"),
                                             ("checkpoints", "step_0000000.state.pt")])
    weights = reference.size("checkpoints", f"step_{STEPS:07d}.safetensors")
    state = reference.size("checkpoints", f"step_{STEPS:07d}.state.pt")
    resize(step0 + 2 * (weights + state) + weights + 64 * 1024)  # step 0, two more checkpoints, half a third
    code, err = train_cli(*FLAGS, "--runs", str(disk))
    assert code == 1, err[-3000:]
    lines = error_lines(err)
    assert len(lines) == 1 and "disk full" in lines[0] and "last good checkpoint is step" in lines[0], err[-3000:]
    run = only_run(disk)
    assert_tidy(run)
    step = int(re.search(r"last good checkpoint is step (\d+)", lines[0]).group(1))
    kept = [int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("*.safetensors")]
    assert step > 0 and step == max(kept), (step, kept)
    resize(64 * 2**20)  # space is back
    code, err = train_cli("--resume", str(run), "-q", "--no-eval")
    assert code == 0, err[-3000:]
    assert_identical(run, reference)
    assert logged_steps(run) == list(range(1, STEPS + 1))


@pytest.mark.slow
def test_disk_too_small_for_one_checkpoint_leaves_no_half_of_one(small_disk, reference):
    disk, resize = small_disk
    # The step-0 sample fits, and so would the small step-0 state, but not the weights.
    resize(reference.size("config.json") + reference.size("samples", "step_0000000.png")
           + reference.size("checkpoints", "step_0000000.state.pt") + 16 * 1024)
    code, err = train_cli(*FLAGS, "--runs", str(disk))
    assert code == 1, err[-3000:]
    lines = error_lines(err)
    assert len(lines) == 1 and "disk full" in lines[0] and "no checkpoint was saved" in lines[0], err[-3000:]
    run = only_run(disk)
    assert_tidy(run)
    assert not list((run / "checkpoints").iterdir())
