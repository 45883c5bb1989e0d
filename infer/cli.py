"""`python -m infer {sample,translate,serve,webcam,triton,backends}`: run an exported artifact.

Each command's options are a dataclass (`infer.options`); `ganrt.config` makes their flags.
Exit codes: 0 done, 2 bad usage or input (one-line message, no traceback), 1 a bug
(traceback), 130 interrupted (sample/translate).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ganrt import config
from ganrt.artifact import MANIFEST
from ganrt.atomic import atomic_write_bytes
from ganrt.errors import BadImage, InputError, UsageError
from ganrt.locations import ARTIFACTS_ROOT, shipped_artifact
from infer.options import (
    ModelOptions,
    ProbeOptions,
    SampleOptions,
    ServeOptions,
    TranslateOptions,
    TritonOptions,
    WebcamOptions,
)

log = logging.getLogger("ganrt.infer")

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}

EXAMPLES = f"""examples:
  python -m infer backends
  python -m infer probe artifacts/cyclegan
  python -m infer sample artifacts/dcgan --n 64 --grid samples.png --seed 0
  python -m infer sample artifacts/cgan --n 16 --labels 3 --grid threes.png
  python -m infer translate artifacts/cyclegan photos/ sketches/
  python -m infer serve artifacts/cyclegan --port 8000
  python -m infer triton artifacts/cyclegan --http-port 8000 --grpc-port 8001
  python -m infer webcam artifacts/cyclegan --source 0
  python -m infer webcam --source clip.mp4 --out translated.mp4 --no-window
ARTIFACT defaults to the newest directory under {ARTIFACTS_ROOT}/, else the CycleGAN (photo -> sketch)
shipped with ganrt."""


def default_artifact(root: Path = ARTIFACTS_ROOT) -> Path:
    """The most recently written artifact under `root` (by its manifest's time), else the shipped one."""
    manifests = sorted(root.glob(f"*/{MANIFEST}"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if manifests:
        return manifests[-1].parent
    shipped = shipped_artifact()
    if not (shipped / MANIFEST).is_file():
        raise UsageError(f"no artifact given, none under {root}/ and none shipped at {shipped}: export one with "
                         "`python -m export`, or pass ARTIFACT")
    log.info("no artifact given and none under %s/: using the one shipped with ganrt (%s)", root, shipped)
    return shipped


def _load(artifact: Path | None, options: ModelOptions) -> Any:
    from infer.api import load

    path = artifact if artifact is not None else default_artifact()
    model = load(path, backend=options.backend, precision=options.precision, threads=options.threads)
    log.info("%s: %s (%s) on %s", path, model.name, model.variant, model.backend)
    return model


def cmd_sample(args: argparse.Namespace, opts: SampleOptions) -> int:
    """sample: n images -> a grid (and optionally npz)."""
    from infer.codecs import encode_png
    from infer.samples import Samples

    with _load(args.artifact, opts) as model:
        if model.kind != "noise":
            raise UsageError(f"{model.name} is an image-to-image model ({model.variant}): "
                             "use `python -m infer translate` instead")
        labels: Any = opts.labels[0] if opts.labels is not None and len(opts.labels) == 1 else opts.labels
        if opts.sweep is not None:
            if opts.labels is not None or opts.codes is not None:
                raise UsageError("--sweep draws every class and sets the codes itself: leave out --labels and --codes")
            feeds, seed = model.processor.sweep_feeds(opts.sweep, opts.steps, opts.seed), opts.seed or 0
        else:
            feeds, seed = model.processor.noise_feeds(opts.n, labels, opts.seed, opts.codes)
        samples = Samples.from_outputs(model.processor, feeds, seed, model.run(feeds))
        ncol = opts.ncol or (opts.steps if opts.sweep is not None else None)
        atomic_write_bytes(opts.grid, encode_png(samples.picture(ncol=ncol)))
        if opts.npz:
            atomic_write_bytes(opts.npz, samples.to_npz())
    print(f"wrote {opts.grid} ({len(samples.values)} {'points' if samples.points else 'samples'}, seed {seed})"
          + (f" and {opts.npz}" if opts.npz else ""))
    return 0


def _images_in(in_dir: Path, out_dir: Path) -> tuple[list[Path], list[Path]]:
    """(image files under `in_dir`, none under `out_dir`; image names that cannot be read: broken links).

    Everything else is skipped with a warning that says why: not an image by its extension, a
    directory or another non-file named like an image."""
    if not in_dir.is_dir():
        raise UsageError(f"input folder {in_dir} does not exist")
    if out_dir.resolve() == in_dir.resolve():
        raise UsageError("OUT_DIR must differ from IN_DIR (outputs would overwrite inputs)")
    images, broken = [], []
    for p in sorted(in_dir.rglob("*")):
        if out_dir.resolve() in p.resolve().parents:
            continue
        named_like_one = p.suffix.lower() in IMAGE_EXTS
        if p.is_file() and named_like_one:
            images.append(p)
        elif p.is_file():
            log.warning("skipping %s: not an image (by its extension)", p)
        elif p.is_symlink() and not p.exists():
            if named_like_one:
                broken.append(p)
            else:
                log.warning("skipping %s: a broken link", p)
        elif named_like_one:
            kind = "a directory (its contents are translated)" if p.is_dir() else "not a regular file"
            log.warning("skipping %s: %s, not an image file", p, kind)
    for p in broken:
        log.error("cannot read %s: a broken link", p)
    if not images and not broken:
        raise UsageError(f"no images in {in_dir} (looked for {', '.join(sorted(IMAGE_EXTS))})")
    return images, broken


def _output_paths(images: list[Path], in_dir: Path, out_dir: Path) -> dict[Path, Path]:
    """OUT_DIR/<relative path>.png for each image; images that would share one (a.jpg, a.png) keep their
    extension in it instead (a.jpg.png, a.png.png), so that no output overwrites another."""
    plain = {p: (out_dir / p.relative_to(in_dir)).with_suffix(".png") for p in images}
    counts = Counter(plain.values())
    outputs = {p: out.with_name(p.name + ".png") if counts[out] > 1 else out for p, out in plain.items()}
    for out, n in counts.items():
        if n > 1:
            log.warning("%d images would write %s: each keeps its extension (%s)", n, out,
                        ", ".join(outputs[p].name for p, o in plain.items() if o == out))
    taken = [out for out, n in Counter(outputs.values()).items() if n > 1]
    if taken:
        raise UsageError(f"several inputs map to {taken[0]} even with their extensions kept: rename one of them")
    return outputs


def _read_image(path: Path, pairs: str | None = None) -> np.ndarray:
    """An image file as uint8 RGB; with `pairs` (AtoB, BtoA), the left or right half of a side-by-side A|B pair."""
    from infer.codecs import decode_image

    image = decode_image(path.read_bytes())
    if pairs is None:
        return image
    half = image.shape[1] // 2
    if half < 1:
        raise BadImage(f"{image.shape[1]} pixel(s) wide: too narrow to be a side-by-side A|B pair")
    return np.ascontiguousarray(image[:, :half] if pairs == "AtoB" else image[:, image.shape[1] - half:])


def _translate_batch(model: Any, batch: list[tuple[Path, Path]], opts: TranslateOptions) -> list[Path]:
    """Translate (input, output) pairs in one model call; returns the inputs that could not be read or fitted."""
    from infer.codecs import encode_png

    ready: list[tuple[Path, np.ndarray]] = []
    failed = []
    for path, out in batch:
        try:
            image = _read_image(path, opts.pairs)
            model.processor.plan(image.shape[:2], side=opts.size)  # too small for the model: this image only
            ready.append((out, image))
        except (InputError, OSError) as e:
            log.error("cannot translate %s: %s", path, e)
            failed.append(path)
    if ready:
        for (out, _), image in zip(ready, model.translate([im for _, im in ready], side=opts.size,
                                                          domain=opts.domain)):
            atomic_write_bytes(out, encode_png(image))
    return failed


def cmd_translate(args: argparse.Namespace, opts: TranslateOptions) -> int:
    """translate: every image of IN_DIR -> OUT_DIR/<same relative path>.png."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    if len(args.paths) not in (2, 3):
        raise UsageError("translate needs [ARTIFACT] IN_DIR OUT_DIR")
    artifact = Path(args.paths[0]) if len(args.paths) == 3 else None
    in_dir, out_dir = (Path(p) for p in args.paths[-2:])
    images, broken = _images_in(in_dir, out_dir)
    todo = list(_output_paths(images, in_dir, out_dir).items())
    failed: list[Path] = []
    with _load(artifact, opts) as model:
        if model.kind != "translate":
            raise UsageError(f"{model.name} samples from noise ({model.variant}): use `python -m infer sample` instead")
        model.processor.domains(1, opts.domain)  # a missing or unknown domain fails before any image is read
        side = model.processor.long_side(opts.size)
        log.info("translating at %s", f"{side} pixels on the longer side" if side else "each image's own size")
        with logging_redirect_tqdm(), tqdm(total=len(todo), unit="img", desc="translate") as bar:
            for start in range(0, len(todo), opts.batch_size):
                batch = todo[start:start + opts.batch_size]
                failed += _translate_batch(model, batch, opts)
                bar.update(len(batch))
    failed += broken
    print(f"translated {len(todo) + len(broken) - len(failed)} image(s) into {out_dir}"
          + (f"; {len(failed)} failed: " + ", ".join(str(p) for p in failed) if failed else ""))
    return 2 if failed else 0


def cmd_serve(args: argparse.Namespace, opts: ServeOptions) -> int:
    """serve: the HTTP service until Ctrl-C."""
    from infer.server.app import serve

    # A request for max-n samples must fit in the queue.
    opts = dataclasses.replace(opts, queue_size=max(opts.queue_size, opts.max_n))
    with _load(args.artifact, opts) as model:
        if opts.warmup:
            model.warmup()
        serve(model, opts, log_level="warning" if args.quiet else "info")
    return 0


def cmd_webcam(args: argparse.Namespace, opts: WebcamOptions) -> int:
    """webcam: live translation of a camera or video."""
    from infer.webcam import parse_source, run_pipeline

    parse_source(opts.source)  # a bad source fails before the model loads
    with _load(args.artifact, opts) as model:
        stats = run_pipeline(model, opts.source, out=opts.out, window=opts.window, size=opts.size,
                             realtime=True if opts.realtime else None, max_frames=opts.max_frames,
                             domain=opts.domain)
    print(json.dumps(stats.summary()) if opts.json else stats.report())
    if opts.out is not None and stats.written:
        print(f"wrote {opts.out} ({stats.written} frames)")
    if stats.ended_early:
        of = f" of {stats.declared}" if stats.declared else ""
        print(f"error: {opts.source} ended early: {stats.captured}{of} frames read, {stats.unreadable} could not "
              "be read", file=sys.stderr)
        return 2
    return 0


def cmd_triton(args: argparse.Namespace, opts: TritonOptions) -> int:
    """triton: a Triton Inference Server on the artifact's repository until Ctrl-C."""
    from ganrt.artifact import Artifact
    from infer.server.app import is_loopback
    from infer.tritonserver import TritonInstall, TritonServer, repository_of

    install = TritonInstall.find(opts.triton_env)  # a missing Triton fails before anything starts
    # Triton runs in its own session, so a SIGTERM to us (a service manager, `timeout`) would orphan
    # it: take SIGTERM as Ctrl-C, which stops it.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    artifact = Artifact.load(args.artifact if args.artifact is not None else default_artifact())
    if not is_loopback(opts.host):
        log.warning("listening on %s: reachable from other machines, and there is no authentication", opts.host)
    with repository_of(artifact) as (repository, model), \
            TritonServer([repository], [model], host=opts.host, http_port=opts.http_port, grpc_port=opts.grpc_port,
                         metrics_port=opts.metrics_port, install=install) as server:
        print(f"Triton serves {model} (the Python backend running {artifact.name}'s fp32 ONNX model): "
              f"HTTP {server.url}/v2/models/{model}/infer, gRPC {server.grpc_url}, metrics "
              f"http://{opts.host}:{opts.metrics_port}/metrics; Ctrl-C stops it", flush=True)
        try:
            code = server.wait()
        except KeyboardInterrupt:
            code = server.stop()
            print("Triton stopped" + ("" if code == 0 else f" (exit code {code})"), flush=True)
            return 0 if code == 0 else 1
    raise UsageError(f"tritonserver exited by itself with code {code} (its log is above)")


def cmd_backends(args: argparse.Namespace, opts: None) -> int:
    """backends: what can run here."""
    from infer.runners import available_backends

    for name in available_backends():
        print(name)
    if args.artifact is not None:
        from infer.api import load

        with load(args.artifact, backend="auto") as model:
            print(f"auto -> {model.backend} for {model.name}")
    return 0


def cmd_probe(args: argparse.Namespace, opts: ProbeOptions) -> int:
    """probe: measure every backend x precision here (latency at batch 1, parity), cache it, say what auto picks."""
    from ganrt.artifact import Artifact
    from infer.runners import available_backends
    from infer.runners.devices import cpu_count
    from infer.runners.probe import choose, probe

    art = Artifact.load(args.artifact if args.artifact is not None else default_artifact())
    measured = probe(art, available_backends(), opts.threads or cpu_count(), opts.precision)
    best, why = choose(measured)
    if opts.json:
        print(json.dumps({**measured.to_json(), "pick": best.key, "why": why}, indent=1))
        return 0
    print(f"{art.name} on {measured.machine['cpu']}, {measured.machine['threads']} threads, batch 1 "
          f"(reference {measured.reference}; {measured.seconds:.1f} s):")
    for m in sorted(measured.rows, key=lambda m: (m.median_ms is None, m.median_ms or 0.0)):
        speed = f"{m.median_ms:10.3f} ms" if m.median_ms is not None else f"{'-':>13}"
        psnr = (m.parity or {}).get("psnr")
        parity = f"PSNR {psnr:6.1f} dB" if psnr is not None else " " * 14
        print(f"  {m.key:14} {speed}  {parity}  {'pass' if m.passed else 'no  '}  {m.note}".rstrip())
    print(f"auto -> {best.key}: {why}")
    return 0


def _artifact_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", nargs="?", type=Path, metavar="ARTIFACT",
                   help=f"artifact directory (or its name under {ARTIFACTS_ROOT}/); default: the newest one, "
                        "else the one shipped with ganrt")


def _translate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="[ARTIFACT] IN_DIR OUT_DIR",
                   help="optional artifact (default: the newest, else the shipped one), the input folder, "
                        "the output folder")


def _backends_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", nargs="?", type=Path, metavar="ARTIFACT", help="optional: show what auto picks for it")


@dataclass(frozen=True)
class Command:
    """One subcommand: what it runs, its options dataclass, its positional arguments and its help."""

    run: Callable[[argparse.Namespace, Any], int]
    options: type | None
    positionals: Callable[[argparse.ArgumentParser], None]
    help: str
    description: str
    usage: str | None = None


COMMANDS = {
    "sample": Command(cmd_sample, SampleOptions, _artifact_arg, "sample images from a noise-to-image model into a grid",
                      "Sample n images (noise-to-image models) and write them as one grid image."),
    "translate": Command(
        cmd_translate, TranslateOptions, _translate_args, "translate every image in a folder",
        "Translate each image of IN_DIR (recursively) into OUT_DIR as PNG, keeping relative paths and image sizes "
        "(a.jpg and a.png in one folder become a.jpg.png and a.png.png). The model runs at the size it was trained "
        "at (from its manifest): each image's longer side is scaled to it and the result scaled back; --size native "
        "runs each image at its own size. Non-images are skipped with a warning; an image that cannot be read, or "
        "is too small for the model, is reported by name and the rest continue (exit code 2 at the end if any "
        "failed).",
        usage="python -m infer translate [-h] [--backend B] [--precision P] [--batch-size N] "
              "[--size N|trained|native] [--pairs AtoB|BtoA] [ARTIFACT] IN_DIR OUT_DIR"),
    "serve": Command(cmd_serve, ServeOptions, _artifact_arg, "serve the model over HTTP (FastAPI + uvicorn)",
                     "HTTP service: POST /v1/generate, POST /v1/translate, GET /health, GET /metrics, OpenAPI at "
                     "/docs. Requests are grouped by a dynamic batcher."),
    "webcam": Command(cmd_webcam, WebcamOptions, _artifact_arg, "translate a camera or video live, side by side",
                      "Capture in one thread, translate in another: original | translated with FPS and latency "
                      "overlaid. A camera drops stale frames (always the newest frame, latency never builds up); a "
                      "video file is processed frame by frame with no drops, so --out has as many frames as the "
                      "input. q/Esc or Ctrl-C stops."),
    "probe": Command(cmd_probe, ProbeOptions, _artifact_arg, "measure every backend x precision here; what auto picks",
                     "Time each backend x precision this machine and artifact offer at batch 1 (each backend in a "
                     "fresh process) and compare it with the reference within its parity gate; cache the "
                     "measurements (what `--backend auto` reads) and print them with auto's pick."),
    "triton": Command(cmd_triton, TritonOptions, _artifact_arg, "serve the artifact on a real Triton Inference Server",
                      "Start Triton (the nvidia-pytriton wheel's server, in a Triton environment: see --triton-env) "
                      "on the artifact's triton/ repository, serving its Python-backend model (ONNX Runtime, dynamic "
                      "batching) over HTTP and gRPC. An artifact without that model gets a repository written to a "
                      "temp folder. Ctrl-C stops it."),
    "backends": Command(cmd_backends, None, _backends_args, "list the backends available on this machine",
                        "List the inference backends that can run here (and, given an artifact, which one auto "
                        "picks for it)."),
}


def build_parser() -> argparse.ArgumentParser:
    """The full command line, every flag with its help."""
    parser = argparse.ArgumentParser(
        prog="python -m infer", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Run an exported GAN artifact: sample images, translate a folder, serve over HTTP, "
                    "or translate a webcam/video live.")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description, usage=command.usage)
        command.positionals(p)
        if command.options is not None:
            config.add_config_flags(p, command.options)
    return parser


def _options(command: Command, args: argparse.Namespace) -> Any:
    """The command's options dataclass from the parsed flags (defaults for the flags not given)."""
    if command.options is None:
        return None
    names = {f.name for f in dataclasses.fields(command.options)}
    return config.resolve(command.options, None, {k: v for k, v in vars(args).items() if k in names})


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, and turn errors into exit codes."""
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    command = COMMANDS[args.command]
    try:
        return command.run(args, _options(command, args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
