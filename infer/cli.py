"""`python -m infer {sample,translate,serve,webcam,backends}`: run an exported artifact.

Exit codes: 0 done, 2 bad usage or input (one-line message, no traceback), 1 a bug
(traceback), 130 interrupted (sample/translate).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ganrt.errors import UsageError

log = logging.getLogger("ganrt.infer")

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
BACKENDS = ("auto", "torch", "ort-cpu", "ort-cuda", "ort-trt", "trt")
PRECISIONS = ("fp32", "fp16", "int8", "bf16")
PRECISION_HELP = ("model precision: fp32, fp16, int8 (ONNX backends; the artifact must hold that model), bf16 "
                  "(torch); default: fp32, or a TensorRT engine's own precision")

EXAMPLES = """examples:
  python -m infer backends
  python -m infer sample artifacts/dcgan --n 64 --grid samples.png --seed 0
  python -m infer sample artifacts/cgan --n 16 --labels 3 --grid threes.png
  python -m infer translate artifacts/cyclegan photos/ sketches/
  python -m infer serve artifacts/cyclegan --port 8000
  python -m infer webcam artifacts/cyclegan --source 0
  python -m infer webcam --source clip.mp4 --out translated.mp4 --no-window
ARTIFACT defaults to the newest directory under artifacts/."""


def newest_artifact(root: Path = Path("artifacts")) -> Path:
    """The most recently written artifact under `root` (by its manifest's modification time)."""
    manifests = sorted(root.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not manifests:
        raise UsageError(f"no artifact given and none under {root}/: export one with `python -m export`, "
                         "or pass ARTIFACT")
    return manifests[-1].parent


def _number(cast: type, minimum: float, what: str) -> Callable[[str], Any]:
    """An argparse type: `cast(text)`, at least `minimum`, else an error saying `what` was expected."""
    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


_positive = _number(int, 1, "a positive integer")
_non_negative = _number(float, 0, "a number >= 0")


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", nargs="?", type=Path, metavar="ARTIFACT",
                   help="artifact directory (or its name under artifacts/); default: the newest one")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="runtime to run the model on; auto picks the fastest available here (default: auto)")
    p.add_argument("--precision", choices=PRECISIONS, help=PRECISION_HELP)


def build_parser() -> argparse.ArgumentParser:
    """The full command line, every flag with its help."""
    parser = argparse.ArgumentParser(
        prog="python -m infer", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Run an exported GAN artifact: sample images, translate a folder, serve over HTTP, "
                    "or translate a webcam/video live.")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("sample", help="sample images from a noise-to-image model into a grid",
                       description="Sample n images (noise-to-image models) and write them as one grid image.")
    _add_model_flags(p)
    p.add_argument("--n", type=_positive, default=64, help="number of samples (default: 64)")
    p.add_argument("--grid", type=Path, default=Path("samples.png"),
                   help="grid image to write, ceil(sqrt(n)) columns (default: samples.png); toy models "
                        "that output points get a scatter plot")
    p.add_argument("--npz", type=Path, help="also write the raw uint8 images (or points) and labels as .npz")
    p.add_argument("--labels", nargs="+", metavar="LABEL",
                   help="class(es) for a conditional model: one for all samples, or n of them "
                        "(indices or class names); default: cycle through the classes")
    p.add_argument("--seed", type=int, help="noise seed: the same seed gives the same images (default: random)")
    p.add_argument("--ncol", type=_positive, help="grid columns (default: ceil(sqrt(n)))")

    p = sub.add_parser("translate", help="translate every image in a folder",
                       usage="python -m infer translate [-h] [--backend B] [--precision P] [--batch-size N] "
                             "[--size N] [ARTIFACT] IN_DIR OUT_DIR",
                       description="Translate each image of IN_DIR (recursively) into OUT_DIR as PNG, keeping "
                                   "relative paths and image sizes. Non-images are skipped with a warning; an "
                                   "unreadable image is reported by name and the rest continue (exit code 2 "
                                   "at the end if any failed).")
    p.add_argument("paths", nargs="+", metavar="[ARTIFACT] IN_DIR OUT_DIR",
                   help="optional artifact (default: the newest), the input folder, the output folder")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="runtime to run the model on; auto picks the fastest available here (default: auto)")
    p.add_argument("--precision", choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument("--batch-size", type=_positive, default=1,
                   help="images per model call (same-size images are batched; default: 1, batching brings "
                        "nothing per image on a small CPU)")
    p.add_argument("--size", type=int, default=0,
                   help="run the model with the longer side scaled to this many pixels (aspect kept, result "
                        "resized back); default 0: each image at its own size")
    p.add_argument("--bgr", action="store_true", help=argparse.SUPPRESS)

    p = sub.add_parser("serve", help="serve the model over HTTP (FastAPI + uvicorn)",
                       description="HTTP service: POST /v1/generate, POST /v1/translate, GET /health, GET "
                                   "/metrics, OpenAPI at /docs. Requests are grouped by a dynamic batcher.")
    _add_model_flags(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; there is no authentication)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    p.add_argument("--max-batch", type=_positive,
                   help="most items per model call (default and ceiling: the artifact's batch.max)")
    p.add_argument("--max-delay-ms", type=_non_negative, default=5.0,
                   help="longest a request waits for others to share its batch (default: 5)")
    p.add_argument("--queue-size", type=_positive, default=64,
                   help="most items waiting for the model; beyond it requests get 503 + Retry-After (default: 64)")
    p.add_argument("--max-n", type=_positive, default=64, help="largest n for /v1/generate (default: 64)")
    p.add_argument("--max-body-mb", type=_non_negative, default=10.0,
                   help="largest request body in MB, enforced while reading (default: 10)")
    p.add_argument("--max-side", type=int, default=1024,
                   help="translate: images with a longer side above this run scaled down to it and are "
                        "resized back (default: 1024; 0 = no limit)")
    p.add_argument("--limit-concurrency", type=_positive, default=256,
                   help="most open connections/requests before uvicorn answers 503 (default: 256)")
    p.add_argument("--no-warmup", action="store_true", help="skip the warm-up inference before listening")

    p = sub.add_parser("webcam", help="translate a camera or video live, side by side",
                       description="Capture in one thread, translate in another: original | translated with FPS "
                                   "and latency overlaid. A camera drops stale frames (always the newest frame, "
                                   "latency never builds up); a video file is processed frame by frame with no "
                                   "drops, so --out has as many frames as the input. q/Esc or Ctrl-C stops.")
    _add_model_flags(p)
    p.add_argument("--source", default="0", help="camera index (0, 1, ...), stream URL, or video file (default: 0)")
    p.add_argument("--out", type=Path, help="write the side-by-side video here (.mp4, mp4v codec)")
    p.add_argument("--no-window", action="store_true",
                   help="do not open a window (headless machines; needed with opencv-python-headless)")
    p.add_argument("--size", type=int,
                   help="longer side of the model input in pixels, aspect kept (default: the size the model "
                        "was trained at; 0: the frame's own size)")
    p.add_argument("--realtime", action="store_true",
                   help="treat a video file like a camera: paced at its frame rate, stale frames dropped")
    p.add_argument("--max-frames", type=_positive, help="stop after this many frames")
    p.add_argument("--json", action="store_true", help="print the final stats as JSON")

    p = sub.add_parser("backends", help="list the backends available on this machine",
                       description="List the inference backends that can run here (and, given an artifact, "
                                   "which one auto picks for it).")
    p.add_argument("artifact", nargs="?", type=Path, metavar="ARTIFACT", help="optional: show what auto picks for it")
    return parser


def _artifact(path: Path | None) -> Path:
    return path if path is not None else newest_artifact()


def _load(args: argparse.Namespace, artifact: Path | None) -> Any:
    from infer.api import load

    path = _artifact(artifact)
    model = load(path, backend=args.backend, precision=args.precision)
    log.info("%s: %s (%s) on %s", path, model.name, model.variant, model.backend)
    return model


def cmd_sample(args: argparse.Namespace) -> int:
    """sample: n images -> a grid (and optionally npz)."""
    import numpy as np

    from infer.prepost import arrays_to_npz, encode_png, make_grid, points_to_image

    with _load(args, args.artifact) as model:
        if model.kind != "noise":
            raise UsageError(f"{model.name} is an image-to-image model ({model.variant}): "
                             "use `python -m infer translate` instead")
        labels: Any = args.labels
        if labels is not None and len(labels) == 1:
            labels = labels[0]
        feeds, seed = model.processor.noise_feeds(args.n, labels, args.seed)
        result = model.processor.outputs_to_user(model.run(feeds))
        points = model.processor.output.kind == "points"
        image = points_to_image(result) if points else make_grid(result, ncol=args.ncol)
        args.grid.parent.mkdir(parents=True, exist_ok=True)
        args.grid.write_bytes(encode_png(image))
        if args.npz:
            arrays = {"points" if points else "images": result, "seed": np.int64(seed)}
            if model.processor.label_input is not None:
                arrays["labels"] = feeds[model.processor.label_input.name]
            args.npz.parent.mkdir(parents=True, exist_ok=True)
            args.npz.write_bytes(arrays_to_npz(**arrays))
    print(f"wrote {args.grid} ({args.n} {'points' if points else 'samples'}, seed {seed})"
          + (f" and {args.npz}" if args.npz else ""))
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    """translate: every image of IN_DIR -> OUT_DIR/<same relative path>.png."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ganrt.errors import InputError
    from infer.prepost import decode_image, encode_png

    if len(args.paths) not in (2, 3):
        raise UsageError("translate needs [ARTIFACT] IN_DIR OUT_DIR")
    artifact = Path(args.paths[0]) if len(args.paths) == 3 else None
    in_dir, out_dir = (Path(p) for p in args.paths[-2:])
    if not in_dir.is_dir():
        raise UsageError(f"input folder {in_dir} does not exist")
    if out_dir.resolve() == in_dir.resolve():
        raise UsageError("OUT_DIR must differ from IN_DIR (outputs would overwrite inputs)")
    files = sorted(p for p in in_dir.rglob("*") if p.is_file() and out_dir.resolve() not in p.resolve().parents)
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTS]
    for p in files:
        if p.suffix.lower() not in IMAGE_EXTS:
            log.warning("skipping %s: not an image (by its extension)", p)
    if not images:
        raise UsageError(f"no images in {in_dir} (looked for {', '.join(sorted(IMAGE_EXTS))})")
    failed: list[Path] = []
    done = 0
    with _load(args, artifact) as model:
        if model.kind != "translate":
            raise UsageError(f"{model.name} samples from noise ({model.variant}): use `python -m infer sample` instead")
        with logging_redirect_tqdm(), tqdm(total=len(images), unit="img", desc="translate") as bar:
            for start in range(0, len(images), args.batch_size):
                chunk, arrays = [], []
                for path in images[start:start + args.batch_size]:
                    try:
                        arrays.append(decode_image(path.read_bytes()))
                        chunk.append(path)
                    except (InputError, OSError) as e:
                        log.error("cannot read %s: %s", path, e)
                        failed.append(path)
                        bar.update(1)
                if not chunk:
                    continue
                outputs = model.translate(arrays, max_side=args.size or None)
                for path, image in zip(chunk, outputs):
                    target = (out_dir / path.relative_to(in_dir)).with_suffix(".png")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(encode_png(image))
                    done += 1
                bar.update(len(chunk))
    print(f"translated {done} image(s) into {out_dir}" + (f"; {len(failed)} failed: "
                                                          + ", ".join(str(p) for p in failed) if failed else ""))
    return 2 if failed else 0


def cmd_serve(args: argparse.Namespace) -> int:
    """serve: the HTTP service until Ctrl-C."""
    from infer.server import serve

    with _load(args, args.artifact) as model:
        if not args.no_warmup:
            model.warmup()
        serve(model, host=args.host, port=args.port, log_level="warning" if args.quiet else "info",
              limit_concurrency=args.limit_concurrency, max_batch=args.max_batch, max_delay_ms=args.max_delay_ms,
              queue_size=max(args.queue_size, args.max_n), max_body_bytes=int(args.max_body_mb * 1024 * 1024),
              max_n=args.max_n, max_side=args.max_side or None)
    return 0


def cmd_webcam(args: argparse.Namespace) -> int:
    """webcam: live translation of a camera or video."""
    from infer.webcam import parse_source, run_pipeline

    parse_source(args.source)  # a bad source fails before the model loads
    with _load(args, args.artifact) as model:
        stats = run_pipeline(model, args.source, out=args.out, window=not args.no_window, size=args.size,
                             realtime=True if args.realtime else None, max_frames=args.max_frames)
    print(json.dumps(stats.summary()) if args.json else stats.report())
    if args.out is not None and stats.written:
        print(f"wrote {args.out} ({stats.written} frames)")
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    """backends: what can run here."""
    from infer.runners import available_backends

    backends = available_backends()
    for name in backends:
        print(name)
    if args.artifact is not None:
        from infer.api import load

        with load(args.artifact, backend="auto") as model:
            print(f"auto -> {model.backend} for {model.name}")
    return 0


COMMANDS = {"sample": cmd_sample, "translate": cmd_translate, "serve": cmd_serve, "webcam": cmd_webcam,
            "backends": cmd_backends}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, and turn errors into exit codes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
