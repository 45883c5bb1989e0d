"""What GPU this machine has, found cheaply (no torch/onnxruntime/tensorrt import for the count)."""
from __future__ import annotations

import ctypes
import functools
import re
import shutil
import subprocess
import sys


@functools.lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """GPUs the CUDA driver sees (honours CUDA_VISIBLE_DEVICES); 0 without a driver."""
    # CUDA driver API: cuInit(0) then cuDeviceGetCount(&n); both return CUDA_SUCCESS (0).
    for lib_name in ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so"):
        try:
            lib = ctypes.CDLL(lib_name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    return 0


def gpu_info(index: int = 0) -> dict[str, str]:
    """{"gpu": name, "compute_capability": "9.0"} of a GPU, via torch when it has CUDA, else nvidia-smi."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(index)
            return {"gpu": torch.cuda.get_device_name(index), "compute_capability": f"{major}.{minor}"}
    except ImportError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {"gpu": "unknown", "compute_capability": "unknown"}
    out = subprocess.run([smi, f"--id={index}", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=30)
    name, _, cc = out.stdout.strip().partition(",")
    return {"gpu": name.strip() or "unknown", "compute_capability": cc.strip() or "unknown"}


def gpu_slug(name: str) -> str:
    """A file-name-safe GPU name: "NVIDIA H100 80GB HBM3" -> "h100-80gb-hbm3"."""
    words = [w for w in re.findall(r"[a-z0-9]+", name.lower()) if w != "nvidia"]
    return "-".join(words) or "gpu"
