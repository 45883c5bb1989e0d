"""`python -m train`: train a registered GAN variant.

Exit codes: 0 done, 2 bad usage or input (one-line message), 1 training failed (a NaN loss,
a full disk: one line naming the last good checkpoint), 130 interrupted (Ctrl-C or SIGTERM:
stopped after the current step with a checkpoint; resume with --resume).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ganrt import config as config_mod
from ganrt.errors import UsageError
from ganrt.locations import RUNS_ROOT
from train import registry
from train.config import RUN_CONFIG, read_run_config

log = logging.getLogger("ganrt.train")

EXAMPLES = """examples:
  python -m train --list
  python -m train cyclegan                       # built-in photo->sketch set, quick preset
  python -m train dcgan --preset quick           # built-in shapes, a few minutes on a CPU
  python -m train pix2pix --data ../facades --direction BtoA --preset quick
  python -m train cgan --data ~/data/mnist --steps 3000
  python -m train --resume runs/dcgan/20261125-101500 --steps 2000
  torchrun --nproc_per_node=2 -m train dcgan --preset quick
"""


def _base_parser(add_help: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train", add_help=add_help, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a GAN variant. `python -m train VARIANT --help` lists that variant's settings.",
        epilog=EXAMPLES)
    p.add_argument("variant", nargs="?", help="variant to train (see --list)")
    p.add_argument("--list", action="store_true", help="list the variants and exit")
    p.add_argument("--preset", help="named settings: quick (a 2-core CPU in minutes), paper, ... (default: quick for a new run)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.add_argument("--runs", type=Path, default=RUNS_ROOT, metavar="DIR", help=f"where new runs go (default: {RUNS_ROOT})")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation at the end")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


def list_variants() -> str:
    """One line per variant: name, summary and presets."""
    lines = []
    for name in registry.names():
        v = registry.get(name)
        presets = f"presets: {', '.join(v.config.presets)}" if v.trainable else "export only, not trained here"
        lines.append(f"{name:10s} {v.summary}  [{presets}]")
    return "\n".join(lines)


def parse(argv: list[str]) -> tuple[argparse.Namespace, registry.Variant, Any]:
    """Parse the command line into (options, variant, resolved config)."""
    base = _base_parser(add_help=False)
    known, _ = base.parse_known_args(argv)
    saved: dict[str, Any] = {}
    # Flags of the variant are unknown here, so `--steps 2` may leave "2" as the variant.
    name = known.variant
    if name not in registry.names():
        name = next((a for a in argv if a in registry.names()), None if known.resume else name)
    if known.resume is not None:
        saved_name, saved = read_run_config(known.resume)
        if name and name != saved_name:
            raise UsageError(f"{known.resume} is a {saved_name} run, not {name}")
        name = saved_name
        try:  # the saved settings alone must be valid: they are what the checkpoints were trained with
            config_mod.from_dict(registry.get(name).config, saved)
        except UsageError as e:
            raise UsageError(f"{known.resume / RUN_CONFIG}: {e}") from None
    if known.list or not name:
        parser = _base_parser(add_help=True)
        opts = parser.parse_args(argv)
        return opts, None, None  # type: ignore[return-value]
    variant = registry.get(name)
    if not variant.trainable:
        raise UsageError(f"{name} cannot be trained here: {variant.summary}")
    parser = _base_parser(add_help=True)
    group = parser.add_argument_group(f"{name} settings", variant.config.__doc__)
    config_mod.add_config_flags(group, variant.config)  # type: ignore[arg-type]
    opts = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(opts).items() if k in {f for f in variant.config.__dataclass_fields__}}
    preset = opts.preset if opts.preset else (None if saved else "quick")
    cfg = config_mod.resolve(variant.config, preset, {**saved, **overrides})
    return opts, variant, cfg


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, variant, cfg = parse(argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    other_rank = os.environ.get("RANK", "0") != "0"  # under torchrun, rank 0 speaks for all
    logging.basicConfig(level=logging.WARNING if opts.quiet or other_rank else logging.INFO, format="%(message)s")
    if opts.list or variant is None:
        if opts.list:
            print(list_variants())
            return 0
        print("error: name a variant to train (python -m train --list shows them)", file=sys.stderr)
        return 2
    from train.interrupt import Stopped
    from train.trainer import DiskFull, TrainingDiverged, run_training

    run_dir: list[Path] = []
    try:
        changed = config_mod.diff_from_defaults(cfg)
        log.info("%s: %s", variant.name, ", ".join(f"{k}={v}" for k, v in changed.items()) or "paper defaults")
        out = run_training(variant, cfg, opts.runs, opts.resume, evaluate=not opts.no_eval,
                           on_ready=lambda d: (run_dir.append(d), log.info("run directory: %s", d)))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (TrainingDiverged, DiskFull) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Stopped as e:
        where = run_dir[0] if run_dir else "the run directory"
        print(f"\ninterrupted: stopped at step {e.step} with a checkpoint; continue with: "
              f"python -m train --resume {where}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        where = run_dir[0] if run_dir else "the run directory"
        print(f"\ninterrupted at once: nothing saved since the last checkpoint; continue from it with: "
              f"python -m train --resume {where}", file=sys.stderr)
        return 130
    log.info("done: %s (generator: %s)", out, out / "generator.safetensors")
    return 0
