"""What this machine has, found cheaply: its CPU (name, ISA extensions, cores) and GPUs (no library import for the count)."""
from __future__ import annotations

import ctypes
import functools
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

# The vector/matrix ISA extensions that decide which inference kernels a CPU runs.
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (with family/model for unnamed virtual CPUs)."""
    fields: dict[str, str] = {}
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", platform.processor() or platform.machine() or "unknown CPU")
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return name


def cpu_flags() -> list[str]:
    """Which of CPU_FEATURES this CPU has."""
    m = re.search(r"^flags\s*:(.*)$", _cpuinfo(), re.MULTILINE)
    have = set(m.group(1).split()) if m else set()
    return [f for f in CPU_FEATURES if f in have]


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask, as taskset or a container sets it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
