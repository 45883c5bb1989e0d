"""Reading a PyTorch weights file safely: `torch.load(weights_only=True)`, never a full unpickle.

A `.pth` from the internet can hold a pickle that runs code when loaded; the weights-only
unpickler refuses every global but tensors and plain containers, and we say which one it met.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from ganrt.errors import CheckpointError

# A zip archive (torch.save since 1.6), or a bare pickle of protocol 2 to 5 (older torch.save, pickle.dump).
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_MAGIC = tuple(bytes([0x80, protocol]) for protocol in range(2, 6))
TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".pkl")
# Checkpoints that wrap the generator's state_dict under one of these keys are unwrapped.
WRAPPER_KEYS = ("state_dict", "model", "generator", "netG", "G")


def is_torch_file(path: Path) -> bool:
    """Whether `path` is a torch.save/pickle file (by its name, else its first bytes), not a safetensors file."""
    suffix = path.suffix.lower()
    if suffix in TORCH_SUFFIXES or suffix == ".safetensors":
        return suffix != ".safetensors"
    with path.open("rb") as f:
        head = f.read(9)
    # safetensors starts with its header's length (8 bytes, little-endian) and then the JSON header.
    if head[8:9] == b"{":
        return False
    return head.startswith(ZIP_MAGIC) or head[:2] in PICKLE_MAGIC


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a saved state_dict, loaded without running code; CheckpointError says what is wrong."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f"the global {found.group(1)}" if found else "objects other than tensors"
        raise CheckpointError(f"refused {path}: loading it would unpickle {what}, which can run arbitrary code; "
                              f"weights-only loading does not (re-save it with torch.save(net.state_dict(), ...))") \
            from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"cannot read {path}: truncated or not a PyTorch file ({first[:160]})") from None
    return _tensors(_unwrap(loaded), path)


def _unwrap(loaded: object) -> object:
    if isinstance(loaded, dict):
        for key in WRAPPER_KEYS:
            inner = loaded.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
    return loaded


def _tensors(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(loaded, dict) or not loaded:
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not a generator's state_dict")
    bad = [k for k, v in loaded.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise CheckpointError(f"{path} is not a state_dict of tensors: {bad[0]!r} holds a "
                              f"{type(loaded[bad[0]]).__name__}")
    # nn.DataParallel saves every key under "module."; the layouts are written without it.
    if all(k.startswith("module.") for k in loaded):
        loaded = {k[len("module."):]: v for k, v in loaded.items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in loaded.items()}
