"""junyanz's published pretrained generators by name: `python -m export junyanz:cyclegan/horse2zebra`.

Names and URLs are those of the project's scripts/download_cyclegan_model.sh and
scripts/download_pix2pix_model.sh (efrosgans.eecs.berkeley.edu/{cyclegan/pretrained_models,
pix2pix/models-pytorch}/NAME.pth). The scripts use http; the host also serves https, tried first.
The site publishes no checksums, so the sha256 of what was downloaded is recorded beside it (and
in every artifact made from it) and checked each time the cached file is used again.

    python -m export.importers.pretrained --list
    python -m export.importers.pretrained cyclegan/horse2zebra     # download only: prints path and sha256
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
from pathlib import Path

from ganrt.artifact import sha256_of
from ganrt.atomic import atomic_write_text
from ganrt.errors import CheckpointError, DataError, UsageError
from train.data.download import download

log = logging.getLogger("ganrt.export")

PREFIX = "junyanz:"
HOSTS = ("https://efrosgans.eecs.berkeley.edu", "http://efrosgans.eecs.berkeley.edu")
FOLDERS = {"cyclegan": "cyclegan/pretrained_models", "pix2pix": "pix2pix/models-pytorch"}
MODELS = {
    "cyclegan": ("apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite", "horse2zebra",
                 "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh",
                 "sat2map", "map2sat", "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label",
                 "facades_label2photo", "iphone2dslr_flower"),
    "pix2pix": ("edges2shoes", "sat2map", "map2sat", "facades_label2photo", "day2night"),
}


def default_cache() -> Path:
    """Where downloads are kept: $XDG_CACHE_HOME/ganrt/pretrained (~/.cache/ganrt/pretrained)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ganrt" / "pretrained"


def is_pretrained_name(source: str) -> bool:
    """Whether SOURCE asks for a published generator (junyanz:KIND/NAME)."""
    return source.startswith(PREFIX)


def all_names() -> list[str]:
    """Every KIND/NAME this command knows."""
    return [f"{kind}/{name}" for kind, names in MODELS.items() for name in names]


def _split(name: str) -> tuple[str, str]:
    kind, _, model = name.removeprefix(PREFIX).partition("/")
    if model not in MODELS.get(kind, ()):
        raise UsageError(f"unknown pretrained generator {name!r}; choose one of: "
                         + ", ".join(PREFIX + n for n in all_names()))
    return kind, model


def artifact_name(source: str) -> str:
    """The default artifact name for a pretrained generator (junyanz-cyclegan-horse2zebra)."""
    kind, model = _split(source)
    return f"junyanz-{kind}-{model}"


def fetch(source: str, cache: Path | None = None) -> tuple[Path, dict[str, str]]:
    """The local file of a pretrained generator, downloaded once and sha256-checked on every re-use."""
    kind, model = _split(source)
    path = (cache or default_cache()) / "junyanz" / kind / f"{model}.pth"
    record = path.with_suffix(".json")
    if path.is_file() and record.is_file():
        try:
            saved = json.loads(record.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{record} (the sha256 recorded at download) is unreadable: {e}; delete it and "
                                  f"{path.name} to download again") from None
        actual = sha256_of(path)
        if actual != saved.get("sha256"):
            raise CheckpointError(f"{path} changed since it was downloaded from {saved.get('url')}: sha256 {actual}, "
                                  f"recorded {saved.get('sha256')}; delete it (and {record.name}) to download again")
        log.info("      %s: cached, sha256 %s as recorded at download", path, actual)
        return path, saved
    errors = []
    for host in HOSTS:
        url = f"{host}/{FOLDERS[kind]}/{model}.pth"
        try:
            download(url, path, progress=sys.stderr.isatty())
        except DataError as e:
            errors.append(str(e))
            continue
        if url.startswith("http:"):
            log.warning("      %s came over plain http (https failed): no published checksum vouches for it; "
                        "its sha256 is recorded from now on", model)
        saved = {"url": url, "sha256": sha256_of(path), "bytes": str(path.stat().st_size),
                 "downloaded": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        atomic_write_text(record, json.dumps(saved, indent=2) + "\n")
        log.info("      downloaded %s (sha256 %s)", url, saved["sha256"])
        return path, saved
    raise DataError(f"could not download {PREFIX}{kind}/{model} (are you offline?): " + " | ".join(errors)
                    + f"; fetch {model}.pth another way and pass the file: python -m export {model}.pth")


def main(argv: list[str] | None = None) -> int:
    """Download pretrained generators by name; print each file and its sha256."""
    p = argparse.ArgumentParser(prog="python -m export.importers.pretrained",
                                description="Download junyanz's published CycleGAN/pix2pix generators (then export "
                                            "one with: python -m export junyanz:KIND/NAME).")
    p.add_argument("names", nargs="*", metavar="KIND/NAME", help="e.g. cyclegan/horse2zebra, pix2pix/edges2shoes")
    p.add_argument("--list", action="store_true", help="list the names and exit")
    p.add_argument("--cache", type=Path, metavar="DIR", help=f"download folder (default: {default_cache()})")
    opts = p.parse_args(argv)
    if opts.list or not opts.names:
        print("\n".join(all_names()))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        for name in opts.names:
            path, saved = fetch(PREFIX + name.removeprefix(PREFIX), opts.cache)
            print(f"{path}  sha256 {saved['sha256']}  from {saved['url']}")
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
