"""Latency of compact students beside the ResNet-9 teacher at 256x256, batch 1 (issue 14: widths by measured latency).

    flock /tmp/cpu.lock python scripts/compact_latency.py

Each network (random weights: latency does not depend on them) is exported to ONNX (opset 17) and timed
on ONNX Runtime's CPU provider (fp32) and OpenVINO's CPU plugin (fp32, bf16 hint), 2 threads each:
the median of 30 calls (5 for the teacher) after two warm-up calls. MACs: train/nets/macs.py.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from train.nets import CompactGenerator, ResnetGenerator
from train.nets.macs import count_macs

SIZE, THREADS = 256, 2
STUDENTS = [((8, 16, 32), 4), ((16, 32, 64), 6), ((16, 32, 96), 9), ((24, 48, 96), 9), ((16, 32, 128), 9),
            ((32, 64, 128), 9)]


def median_ms(call: Callable[[], object], n: int) -> float:
    call(), call()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def row(name: str, net: nn.Module, folder: Path) -> str:
    import onnxruntime as ort
    import openvino as ov

    net.eval()
    x = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    path = folder / "model.onnx"
    torch.onnx.export(net, (x,), str(path), input_names=["image"], output_names=["out"], opset_version=17,
                      dynamo=False)
    n = 5 if name.startswith("teacher") else 30
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = x.numpy()
    ms = {"ort fp32": median_ms(lambda: session.run(None, {"image": feed}), n)}
    for label, hint in (("ov fp32", "f32"), ("ov bf16", "bf16")):
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": THREADS,
                                                              "PERFORMANCE_HINT": "LATENCY",
                                                              "INFERENCE_PRECISION_HINT": hint})
        request = compiled.create_infer_request()
        ms[label] = median_ms(lambda: request.infer({0: feed}), n)
    gmacs = count_macs(net, x).input_grid / 1e9
    params = sum(p.numel() for p in net.parameters()) / 1e6
    return f"| {name} | {gmacs:.2f} | {params:.2f} | " + " | ".join(f"{v:.1f}" for v in ms.values()) + " |"


def main() -> None:
    torch.manual_seed(0)
    print("| network | G MACs | M params | ORT fp32 ms | OV fp32 ms | OV bf16 ms |\n|---|---:|---:|---:|---:|---:|")
    nets = [("teacher: ResNet-9, ngf 64", ResnetGenerator(3, 3, 64, 9))]
    nets += [(f"student {widths} x {blocks} blocks", CompactGenerator(3, 3, widths, blocks))
             for widths, blocks in STUDENTS]
    for name, net in nets:
        with tempfile.TemporaryDirectory() as tmp:
            print(row(name, net, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
