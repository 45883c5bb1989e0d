"""Turn a paired A|B dataset (pix2pix layout) into CycleGAN's unpaired trainA/ trainB/ testA/ testB/.

    python -m train.data.split_pairs ../shared/data/facades data/facades-unpaired

Every side-by-side image of train/ is cut into its halves; the A halves go to trainA/ and
the B halves to trainB/, each side renamed a<k>/b<k> through its own random permutation, so that no
file name (and no order) links a photo to its own label map. val/ (or test/) halves go to
testA/ and testB/ under their original names: those pairs stay aligned, and evaluation uses
them as ground truth (`UnpairedImages.eval_pairs`). PNG output, lossless.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ganrt.errors import DataError
from train.data.images import list_images, load_rgb
from train.data.paired import DIRECTIONS, check_direction, split_side_by_side

HELD_OUT = ("test", "val")  # the first that exists becomes testA/testB


def _save(img: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(img).save(tmp, format="PNG")
    tmp.replace(path)


def split_pairs(src: str | Path, dst: str | Path, direction: str = "AtoB", seed: int = 0,
                progress: bool = True) -> dict[str, int]:
    """Write dst/{trainA,trainB,testA,testB}; returns the number of files written per folder."""
    src, dst = Path(src), Path(dst)
    check_direction(direction)
    train = src / "train"
    if not train.is_dir():
        raise DataError(f"no train/ folder in {src} (expected the pix2pix A|B layout: train/, val/ or test/)")
    if dst.exists() and any(dst.iterdir()):
        raise DataError(f"{dst} is not empty: choose a new folder")
    held_out = next((src / s for s in HELD_OUT if (src / s).is_dir()), None)
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    for folder, test in ((train, False), (held_out, True)):
        if folder is None:
            continue
        files = list_images(folder)
        if not files:
            raise DataError(f"no images in {folder}")
        digits = len(str(len(files)))
        names_a = [f"a{i:0{digits}d}" for i in rng.permutation(len(files))]
        names_b = [f"b{i:0{digits}d}" for i in rng.permutation(len(files))]
        prefix = "test" if test else "train"
        for k, path in enumerate(tqdm(files, desc=f"{folder.name} -> {prefix}A/B", disable=not progress)):
            a, b = split_side_by_side(load_rgb(path), path)
            if direction == "BtoA":
                a, b = b, a
            _save(a, dst / f"{prefix}A" / f"{path.stem if test else names_a[k]}.png")
            _save(b, dst / f"{prefix}B" / f"{path.stem if test else names_b[k]}.png")
        counts[f"{prefix}A"] = counts[f"{prefix}B"] = len(files)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.data.split_pairs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="paired dataset: train/ (and val/ or test/) of side-by-side A|B images")
    parser.add_argument("dst", help="new folder for trainA/ trainB/ testA/ testB/")
    parser.add_argument("--direction", choices=DIRECTIONS, default="AtoB",
                        help="BtoA puts the right halves in A (default: AtoB, left halves in A)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the two renaming permutations")
    args = parser.parse_args(argv)
    try:
        counts = split_pairs(args.src, args.dst, args.direction, args.seed)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(", ".join(f"{k}: {v}" for k, v in counts.items()), f"-> {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
