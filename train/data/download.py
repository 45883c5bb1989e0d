"""Download helpers for the real datasets: official URLs, checksums, atomic writes, clear offline errors.

Usage: python -m train.data.download {mnist,fashion-mnist,cyclegan/NAME,pix2pix/NAME,celeba} ROOT
(MNIST files go straight into ROOT; archives unpack to ROOT/NAME; CelebA is fetched by hand, see CELEBA_PAGE.)
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import socket
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from ganrt.errors import DataError

TIMEOUT_S = 60
_CHUNK = 1 << 20

# Mirrors are tried in order. PyTorch's S3 copy comes first because the original host
# has been known to refuse scripted downloads.
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
IDX_DATASETS = {"mnist": (MNIST_MIRRORS, MNIST_MD5), "fashion-mnist": (FASHION_MNIST_MIRRORS, FASHION_MNIST_MD5)}

CYCLEGAN_MIRRORS = (
    "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/",
    "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/",
)
# (bytes, sha256) as published by TensorFlow Datasets (url_checksums/cycle_gan.txt).
CYCLEGAN_ARCHIVES = {
    "apple2orange": (78456409, "845a191e9af8926408ea597001cd03a452e3300a1f44a79fe329b3d59f6e3eb8"),
    "cezanne2photo": (279885071, "3a6c10ca21f9485862f1cbd707744b9dc258954a04631271d23a3605eeb63cff"),
    "facades": (35135868, "9a31ebf3a31b9b5cd195dd5bf62e9308e00cb94604d1019e3889ac84248695c0"),
    "horse2zebra": (116867962, "a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1"),
    "iphone2dslr_flower": (339964458, "8fcb5e374d631b107e1d961b8c4cd0a186aa2a4ff3e279923f4c426128de7113"),
    "maps": (1476754427, "639534f69dbf9f36bef8d6292a7698006361221f83f0285d7c9ca78afe6e8a9e"),
    "monet2photo": (305231073, "88f91b00fc228f97c9411fbf1880ec1d119c98f1722e4cfcfaa2fb35fac05b04"),
    "summer2winter_yosemite": (132640856, "167fe1726807a9d22bd106b4a6c0bd7953b688af924ac1bf967439c4961e49f9"),
    "ukiyoe2photo": (292946532, "02a2a2fb5ecf425ca1bf86aca7304377da64a2a1d3b86df54eb65e4068bf3b08"),
    "vangogh2photo": (306590349, "362c3473e70be0944bda08d49d660eafdc2854df55d697835b8186d1d79caaff"),
}
PIX2PIX_MIRRORS = ("http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/",)
# No checksums are published for these; sizes where known. cityscapes is left out on
# purpose: it must come from its own site under its licence.
PIX2PIX_ARCHIVES: dict[str, int | None] = {
    "facades": 30168306,
    "maps": 250242400,
    "edges2shoes": None,
    "edges2handbags": None,
    "night2day": None,
}

# CelebA's official host is Google Drive, linked from the MMLAB page, behind its terms of use;
# Drive answers a scripted request for the 1.4 GB zip with a confirmation page, so it is fetched by
# hand. No checksums are verified here: torchvision's datasets/celeba.py lists md5s for these
# files, which could not be checked against the files from this machine.
CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CELEBA_FILES = ("list_attr_celeba.txt", "img_align_celeba/", "list_eval_partition.txt (optional)")


class _FetchError(DataError):
    """A URL that could not be fetched; keeps the URL and reason for the mirrors' summary."""

    def __init__(self, url: str, reason: str, dest: Path, hint: str = " (are you offline?)") -> None:
        self.url, self.reason = url, reason
        super().__init__(
            f"could not download {url}: {reason}{hint}; download it another way and put it at {dest} by hand"
        )


def _hash_names(md5: str | None, sha256: str | None) -> dict[str, str]:
    return {name: value.lower() for name, value in (("md5", md5), ("sha256", sha256)) if value}


def _file_digests(path: Path, algorithms: Sequence[str]) -> dict[str, str]:
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def download(
    url: str,
    dest: Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
) -> Path:
    """Fetch url to the file dest (atomically), verifying size and checksums; keep a verified copy."""
    dest = Path(dest)
    expected = _hash_names(md5, sha256)
    if dest.is_file() and expected and _file_digests(dest, list(expected)) == expected:
        return dest  # already downloaded and verified
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        hashers = {name: hashlib.new(name) for name in expected}
        received = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                    announced = response.headers.get("Content-Length")
                    total = int(announced) if announced and announced.isdigit() else size
                    with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                        while chunk := response.read(_CHUNK):
                            out.write(chunk)
                            for h in hashers.values():
                                h.update(chunk)
                            received += len(chunk)
                            bar.update(len(chunk))
            except urllib.error.HTTPError as exc:
                raise _FetchError(url, f"HTTP {exc.code} {exc.reason}", dest, hint="") from None
            except (urllib.error.URLError, socket.timeout, ConnectionError, http.client.HTTPException) as exc:
                raise _FetchError(url, str(getattr(exc, "reason", exc)), dest) from None
            except OSError as exc:  # the local side: disk full, permissions
                raise DataError(f"could not write {url} to {dest.parent}: {exc}") from None
        if announced and announced.isdigit() and received != int(announced):
            raise DataError(f"download of {url} was cut short: got {received} of {announced} bytes")
        if size is not None and received != size:
            raise DataError(f"{dest.name} from {url} has {received} bytes, expected {size}")
        for name, want in expected.items():
            got = hashers[name].hexdigest()
            if got != want:
                raise DataError(f"{name} mismatch for {dest} (from {url}): expected {want}, got {got}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _download_from_mirrors(
    mirrors: Sequence[str], filename: str, dest: Path, *, progress: bool, **checks: object
) -> Path:
    errors = []
    for mirror in mirrors:
        try:
            return download(mirror + filename, dest, progress=progress, **checks)  # type: ignore[arg-type]
        except DataError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    tried = [f"{e.url}: {e.reason}" if isinstance(e, _FetchError) else str(e) for e in errors]
    offline = " (are you offline?)" if all(isinstance(e, _FetchError) for e in errors) else ""
    raise DataError(
        f"could not download {filename} from any of {len(errors)} mirrors{offline}; "
        f"put it at {dest} by hand. Tried: " + " | ".join(tried)
    )


def download_mnist(
    root: str | Path, which: str = "mnist", *, mirrors: Sequence[str] | None = None, progress: bool = True
) -> Path:
    """Fetch the four gzip IDX files of MNIST or Fashion-MNIST into root, md5-verified."""
    if which not in IDX_DATASETS:
        raise DataError(f"unknown IDX dataset {which!r}; choose one of {', '.join(IDX_DATASETS)}")
    default_mirrors, md5s = IDX_DATASETS[which]
    root = Path(root)
    for filename, md5 in md5s.items():
        _download_from_mirrors(mirrors or default_mirrors, filename, root / filename, md5=md5, progress=progress)
    return root


def _check_member_paths(names: Sequence[str], dest: Path, archive: Path) -> None:
    base = dest.resolve()
    for name in names:
        target = (dest / name).resolve()
        if target != base and base not in target.parents:
            raise DataError(f"refusing to extract {archive}: member {name!r} would land outside {dest}")


def extract(archive: Path, dest: Path) -> None:
    """Unpack a .zip or .tar(.gz) archive into dest, refusing members that escape it."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _check_member_paths(zf.namelist(), dest, archive)
                zf.extractall(dest)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                _check_member_paths(tf.getnames(), dest, archive)
                tf.extractall(dest, filter="data")
        else:
            raise DataError(f"{archive} is neither a zip nor a tar archive (corrupt download?)")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"cannot extract {archive}: {exc} (corrupt download? delete it and retry)") from None


def fetch_archive(
    mirrors: Sequence[str],
    filename: str,
    root: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    keep_archive: bool = False,
    progress: bool = True,
) -> Path:
    """Download mirror+filename into root, verify it, extract it there; returns root."""
    root = Path(root)
    archive = root / filename
    _download_from_mirrors(mirrors, filename, archive, sha256=sha256, md5=md5, size=size, progress=progress)
    extract(archive, root)
    if not keep_archive:
        archive.unlink()
    return root


def _unknown(kind: str, name: str, names: Sequence[str]) -> DataError:
    return DataError(f"unknown {kind} dataset {name!r}; valid names: {', '.join(sorted(names))}")


def download_cyclegan(name: str, root: str | Path, *, progress: bool = True) -> Path:
    """Fetch and unzip a CycleGAN dataset (sha256-verified) to root/name/{trainA,trainB,testA,testB}."""
    if name not in CYCLEGAN_ARCHIVES:
        raise _unknown("CycleGAN", name, list(CYCLEGAN_ARCHIVES))
    target = Path(root) / name
    if all((target / d).is_dir() for d in ("trainA", "trainB", "testA", "testB")):
        return target
    size, sha256 = CYCLEGAN_ARCHIVES[name]
    fetch_archive(CYCLEGAN_MIRRORS, f"{name}.zip", Path(root), sha256=sha256, size=size, progress=progress)
    return target


def download_pix2pix(name: str, root: str | Path, *, progress: bool = True) -> Path:
    """Fetch and untar a pix2pix dataset (size-checked where known) to root/name/{train,val,test}."""
    if name not in PIX2PIX_ARCHIVES:
        raise _unknown("pix2pix", name, list(PIX2PIX_ARCHIVES))
    target = Path(root) / name
    if (target / "train").is_dir():
        return target
    fetch_archive(PIX2PIX_MIRRORS, f"{name}.tar.gz", Path(root), size=PIX2PIX_ARCHIVES[name], progress=progress)
    return target


def download_celeba(root: str | Path) -> Path:
    """root/celeba when it holds CelebA's attribute list and images; else a DataError saying where to get them."""
    target = Path(root) / "celeba"
    if (target / "list_attr_celeba.txt").is_file() and (target / "img_align_celeba").is_dir():
        return target
    raise DataError(
        f"CelebA is not downloaded by script: get img_align_celeba.zip and Anno/list_attr_celeba.txt (and "
        f"Eval/list_eval_partition.txt) from its official Google Drive, linked at {CELEBA_PAGE}, and unpack them "
        f"so that {target} holds {', '.join(CELEBA_FILES)}; then train with --data {target}"
    )


def dataset_names() -> list[str]:
    """Every name the command line accepts."""
    return (
        list(IDX_DATASETS)
        + [f"cyclegan/{n}" for n in CYCLEGAN_ARCHIVES]
        + [f"pix2pix/{n}" for n in PIX2PIX_ARCHIVES]
        + ["celeba"]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: download one dataset into a folder; exit 2 with one line on failure."""
    parser = argparse.ArgumentParser(prog="python -m train.data.download", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="one of: " + ", ".join(dataset_names()))
    parser.add_argument("root", type=Path, help="folder to put the dataset in")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    args = parser.parse_args(argv)
    try:
        if args.name in IDX_DATASETS:
            where = download_mnist(args.root, args.name, progress=args.progress)
        elif args.name.startswith("cyclegan/"):
            where = download_cyclegan(args.name.split("/", 1)[1], args.root, progress=args.progress)
        elif args.name.startswith("pix2pix/"):
            where = download_pix2pix(args.name.split("/", 1)[1], args.root, progress=args.progress)
        elif args.name == "celeba":
            where = download_celeba(args.root)
        else:
            raise DataError(f"unknown dataset {args.name!r}; valid names: {', '.join(dataset_names())}")
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
