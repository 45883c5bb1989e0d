"""The machine the benchmarks ran on: CPU/GPU, versions, load, memory, and its measured peak throughput.

The peak is measured, never taken from a data sheet: a oneDNN convolution and an ONNX Runtime
MatMul for fp32 (torch's fp32 matmul goes through MKL, which runs at less than half speed on
AMD CPUs: design.md section 8), a bf16 autocast convolution, torch._int_mm for int8, and the
same convolution compiled by OpenVINO in f32, bf16 and int8 (FakeQuantize on both operands).
The best of a few repetitions of each probe, and the best probe of each precision, is the
practical peak the reports divide by.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from export.provenance import package_version
from infer.runners.devices import cpu_flags, cpu_model

log = logging.getLogger("ganrt.bench")


def load_average() -> float:
    """1-minute load average (other work on the machine makes timings meaningless)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int | str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    return text[text.rfind(")") + 2:].split()


def _process_tree_cpu_s(root: int) -> float:
    """CPU seconds of `root` and its live descendants (and of children they have reaped)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(entry.name)
            if fields:
                parents[int(entry.name)] = int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        fields = _proc_stat(pid)
        if fields:  # utime, stime, cutime, cstime are fields 14-17 (11-14 after the name)
            total += sum(int(x) for x in fields[11:15])
    return total / _TICK


def _machine_cpu_s() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(x) for x in fields] + [0] * 8
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq) / _TICK, steal / _TICK


class Contention:
    """How much CPU other processes (and the hypervisor: steal) took while a block ran.

    The load average cannot tell: it counts the benchmark's own threads. Here the machine's
    busy time minus this process tree's CPU time, as a share of wall time x cores.
    """

    def __enter__(self) -> Contention:
        self.available = Path("/proc/stat").is_file()
        if self.available:
            self._t0 = time.perf_counter()
            self._busy0, self._steal0 = _machine_cpu_s()
            self._own0 = _process_tree_cpu_s(os.getpid())
        return self

    def __exit__(self, *exc: object) -> None:
        self.window_s = 0.0
        self.others_share: float | None = None
        self.steal_share: float | None = None
        if not self.available:
            return
        self.window_s = time.perf_counter() - self._t0
        wall = self.window_s * (os.cpu_count() or 1)
        busy, steal = _machine_cpu_s()
        own = _process_tree_cpu_s(os.getpid())
        if wall > 0:
            self.others_share = round(max(0.0, (busy - self._busy0) - (own - self._own0)) / wall, 3)
            self.steal_share = round((steal - self._steal0) / wall, 3)

    def to_json(self) -> dict[str, Any]:
        """Shares of the machine's CPU time taken by other processes and by steal during the block."""
        return {"others_cpu_share": self.others_share, "steal_share": self.steal_share,
                "window_s": round(getattr(self, "window_s", 0.0), 3)}


def _status_kb(field: str, pid: int | str = "self") -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) so the next reading is the peak since now (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Peak resident set size (VmHWM) of a process in MiB, read from /proc (None off Linux)."""
    kb = _status_kb("VmHWM", pid)
    return round(kb / 1024, 1) if kb is not None else None


def rss_mb(pid: int | str = "self") -> float | None:
    """Current resident set size in MiB."""
    kb = _status_kb("VmRSS", pid)
    return round(kb / 1024, 1) if kb is not None else None


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, Any]:
    """Versions of everything a timing depends on."""
    found: dict[str, Any] = {p: package_version(p) for p in ("torch", "onnxruntime", "onnxruntime-gpu", "onnx", "openvino",
                                                      "tensorrt", "numpy", "opencv-python-headless",
                                                      "pytest-benchmark")}
    found = {k: v for k, v in found.items() if v is not None}
    try:
        import torch

        found["torch_threads"] = torch.get_num_threads()
        found["torch_cuda"] = torch.version.cuda
        found["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    except ImportError:
        pass
    try:
        import onnxruntime

        found["ort_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        pass
    return found


@functools.lru_cache(maxsize=1)
def machine_info() -> dict[str, Any]:
    """CPU, cores, memory and GPU of this machine."""
    info: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "cpu_flags": cpu_flags(),
                            "memory_gb": None, "gpu": None}
    kb = None
    try:
        m = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        kb = int(m.group(1)) if m else None
    except OSError:
        pass
    info["memory_gb"] = round(kb / 2**20, 1) if kb else None
    from infer.runners.devices import cuda_device_count, gpu_info

    if cuda_device_count() > 0:
        info["gpu"] = gpu_info()
    return info


def _best_seconds(fn: Callable[[], Any], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def _ort_matmul_gflops(n: int, repeats: int) -> float:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "peak",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "matmul.onnx"
        onnx.save(model, str(path))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"a": rng.standard_normal((n, n), dtype=np.float32), "b": rng.standard_normal((n, n), dtype=np.float32)}
    seconds = _best_seconds(lambda: session.run(None, feeds), repeats)
    return 2 * n**3 / seconds / 1e9


# A compute-bound 3x3 convolution: 4 x 256 x 64 x 64 output, 256 input channels (oneDNN in torch and OpenVINO).
CONV_INPUT = (4, 256, 64, 64)
CONV_WEIGHT = (256, 256, 3, 3)
CONV_FLOPS = 2 * 4 * 256 * 64 * 64 * 256 * 9


def _openvino_conv_peaks(repeats: int) -> dict[str, float]:
    """The probe convolution compiled by OpenVINO: f32 and bf16 (where the CPU has it), and int8."""
    import openvino as ov
    import openvino.opset13 as ops

    from infer.runners.openvino_runner import bf16_supported

    rng = np.random.default_rng(0)
    x = rng.standard_normal(CONV_INPUT, dtype=np.float32)

    def model(int8: bool) -> Any:
        data = ops.parameter(list(CONV_INPUT), np.float32, name="x")
        weight: Any = ops.constant(rng.standard_normal(CONV_WEIGHT, dtype=np.float32))
        a: Any = data
        if int8:  # FakeQuantize on both operands: OpenVINO's low-precision pass runs the convolution in int8
            def bound(v: float) -> Any:
                return ops.constant(np.float32(v))
            a = ops.fake_quantize(data, bound(-4), bound(4), bound(-4), bound(4), 256)
            weight = ops.fake_quantize(weight, bound(-4), bound(4), bound(-4), bound(4), 255)
        return ov.Model([ops.convolution(a, weight, [1, 1], [1, 1], [1, 1], [1, 1])], [data])

    probes = {"fp32_ov_conv_gflops": (False, "f32"), "int8_ov_conv_gops": (True, "f32")}
    if bf16_supported():
        probes["bf16_ov_conv_gflops"] = (False, "bf16")
    core = ov.Core()
    peaks = {}
    for key, (int8, hint) in probes.items():
        request = core.compile_model(model(int8), "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                          "PERFORMANCE_HINT": "LATENCY"}).create_infer_request()
        peaks[key] = round(CONV_FLOPS / _best_seconds(lambda r=request: r.infer({0: x}, share_inputs=True),
                                                      repeats) / 1e9, 1)
    return peaks


def _cpu_peaks(repeats: int) -> dict[str, Any]:
    import torch

    peaks: dict[str, Any] = {}
    x = torch.randn(*CONV_INPUT)
    w = torch.randn(*CONV_WEIGHT)
    with torch.inference_mode():
        conv = CONV_FLOPS / _best_seconds(lambda: torch.nn.functional.conv2d(x, w, padding=1), repeats) / 1e9
        peaks["fp32_conv_gflops"] = round(conv, 1)
        try:
            peaks["fp32_ort_matmul_gflops"] = round(_ort_matmul_gflops(2048, repeats), 1)
        except ImportError:
            pass
        n = 2048
        a, b = torch.randn(n, n), torch.randn(n, n)
        peaks["fp32_torch_matmul_gflops"] = round(2 * n**3 / _best_seconds(lambda: a @ b, repeats) / 1e9, 1)
        from infer.runners.torch_runner import bf16_supported

        if bf16_supported("cpu"):
            def bf16_conv() -> Any:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return torch.nn.functional.conv2d(x, w, padding=1)
            peaks["bf16_conv_gflops"] = round(CONV_FLOPS / _best_seconds(bf16_conv, repeats) / 1e9, 1)
        try:
            ai = torch.randint(-128, 127, (n, n), dtype=torch.int8)
            bi = torch.randint(-128, 127, (n, n), dtype=torch.int8)
            peaks["int8_int_mm_gops"] = round(2 * n**3 / _best_seconds(lambda: torch._int_mm(ai, bi), repeats) / 1e9, 1)
        except (RuntimeError, AttributeError):
            pass
    try:
        peaks.update(_openvino_conv_peaks(repeats))
    except ImportError:
        pass
    # Each precision's peak: the best of its probes (for fp32 not torch's matmul: design.md section 8).
    for precision, keys in (("fp32", ("fp32_conv_gflops", "fp32_ort_matmul_gflops", "fp32_ov_conv_gflops")),
                            ("bf16", ("bf16_conv_gflops", "bf16_ov_conv_gflops")),
                            ("int8", ("int8_int_mm_gops", "int8_ov_conv_gops"))):
        peaks[precision] = max((peaks[k] for k in keys if peaks.get(k)), default=None)
    # fp16 has no fast path on this kind of CPU (ORT runs fp16 models through casts): fp32's peak.
    peaks["fp16"] = peaks["fp32"]
    return peaks


def _gpu_peaks(repeats: int) -> dict[str, Any] | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    peaks: dict[str, Any] = {}
    n = 8192
    sync = torch.cuda.synchronize
    tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        for label, dtype, allow_tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                                         ("fp16", torch.float16, False), ("bf16", torch.bfloat16, False)):
            torch.backends.cuda.matmul.allow_tf32 = allow_tf32
            a = torch.randn(n, n, device="cuda", dtype=dtype)
            b = torch.randn(n, n, device="cuda", dtype=dtype)
            peaks[f"{label}_matmul_gflops"] = round(
                2 * n**3 / _best_seconds(lambda a=a, b=b: a @ b, repeats, sync) / 1e9, 1)
        ai = torch.randint(-128, 127, (n, n), dtype=torch.int8, device="cuda")
        bi = torch.randint(-128, 127, (n, n), dtype=torch.int8, device="cuda")
        peaks["int8_int_mm_gops"] = round(2 * n**3 / _best_seconds(lambda: torch._int_mm(ai, bi), repeats, sync) / 1e9, 1)
    except RuntimeError as e:
        log.warning("GPU peak probe incomplete: %s", e)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.cuda.empty_cache()
    # Convolutions in fp32 run on TF32 tensor cores by default in cuDNN: the fp32 row's peak is TF32's.
    peaks["fp32"] = peaks.get("tf32_matmul_gflops") or peaks.get("fp32_matmul_gflops")
    peaks["fp16"] = peaks.get("fp16_matmul_gflops")
    peaks["bf16"] = peaks.get("bf16_matmul_gflops")
    peaks["int8"] = peaks.get("int8_int_mm_gops")
    return peaks


def measure_peaks(repeats: int = 5) -> dict[str, Any]:
    """{"cpu": {...}, "gpu": {...} or None}: practical peaks (GFLOP/s, int8 GOP/s) measured now."""
    t0 = time.perf_counter()
    result = {"cpu": _cpu_peaks(repeats), "gpu": _gpu_peaks(repeats), "load_average": load_average()}
    result["probe_seconds"] = round(time.perf_counter() - t0, 1)
    log.info("measured peaks: %s", result)
    return result
