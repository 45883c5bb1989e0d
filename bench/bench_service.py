"""End to end: the HTTP service (`python -m infer serve`) under a bounded loopback load.

The server runs in its own process (infer.server.process.ServerProcess, on a free loopback
port); the load comes from infer.loadtest.load_test (concurrent httpx clients in this process):
a fixed number of POST /v1/translate requests (a 64x64 PNG, the shipped model's size) per
concurrency level, so every level ends by itself. requests/s, p50/p99 latency (client side)
and the mean batch the server ran (its /metrics) are recorded. Client and server share the
machine's cores, as they do on a single-host deployment.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import machine
from bench.measure import machine_summary, time_calls

MODEL = "cyclegan-shipped"
CONCURRENCY = (1, 8, 32)
REQUESTS_PER_LEVEL = 200
WARMUP_REQUESTS = 8
# The served configurations on a CPU: ONNX Runtime fp32, and OpenVINO on the int8 QDQ model.
CPU_SERVED = (("ort-cpu", "fp32"), ("ov-cpu", "int8"))


def _served() -> list[Any]:
    from infer.runners import available_backends
    from infer.runners.devices import cuda_device_count

    if cuda_device_count() > 0:
        return [pytest.param(("auto", None), id="auto")]
    have = available_backends()
    return [pytest.param((b, p), id=f"{b}-{p}",
                         marks=[] if b in have else [pytest.mark.skip(reason=f"backend {b} is not available here")])
            for b, p in CPU_SERVED]


@pytest.fixture(scope="module", params=_served())
def service(request: pytest.FixtureRequest, artifact_of: Callable[..., Path]) -> Iterator[dict[str, Any]]:
    """A running server on the shipped model, and the parity of one of its answers."""
    import httpx

    from bench.parity import picture_gate
    from ganrt.compare import compare
    from ganrt.targets import target
    from infer.api import load
    from infer.codecs import decode_image, encode_png
    from infer.loadtest import server_args
    from infer.server.process import ServerProcess

    art = artifact_of(MODEL)
    backend, precision = request.param
    gate = picture_gate(target(backend, precision).tolerance if precision else target("ort-cpu", "fp32").tolerance)
    with ServerProcess(server_args(art, backend, precision, queue_size=64, max_delay_ms=5.0)) as server:
        url = server.url
        health = httpx.get(url + "/health", timeout=30).json()
        size = 64
        image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
        served = decode_image(httpx.post(url + "/v1/translate", content=encode_png(image),
                                         headers={"content-type": "image/png"}, timeout=60).content)
        with load(art, backend="torch", precision="fp32") as reference:
            expected = reference.translate(image)
        parity = compare(expected.astype(np.float64), served.astype(np.float64), value_range=255.0)
        yield {"url": url, "pid": server.pid, "health": health, "image_size": size, "backend": backend,
               "precision": precision or "auto",
               "parity": {**parity.to_json(), "on": "uint8 PNG response, peak 255", "gate": gate.to_json(),
                          "pass": gate.passes(parity),
                          "reference": "torch eager fp32 model, same image, in process"}}


@pytest.mark.parametrize("concurrency", CONCURRENCY)
def test_http_service(benchmark: Any, concurrency: int, service: dict[str, Any], measuring: bool) -> None:
    from infer.loadtest import load_test

    load_start = machine.load_average()
    requests = REQUESTS_PER_LEVEL if measuring else max(4, 2 * concurrency)
    rows: list[dict[str, Any]] = []

    def level() -> None:
        rows.extend(asyncio.run(load_test(service["url"], [concurrency], requests, "translate", 1,
                                          service["image_size"], warmup=WARMUP_REQUESTS if measuring else 1)))

    benchmark.group = f"http service {service['backend']} {service['precision']}"
    timing = time_calls(benchmark, level, rounds=1, min_rounds=1)
    row = rows[-1]
    health = service["health"]
    benchmark.extra_info.update({
        "kind": "service", "model": MODEL, "artifact": health["artifact"], "backend": health["backend"],
        "precision": service["precision"],
        "device": "gpu" if health["backend"] not in ("ort-cpu", "ov-cpu", "torch") else "cpu",
        "concurrency": concurrency, "requests": requests, "ok": row["ok"], "busy_503": row["busy_503"],
        "errors": row["errors"], "requests_per_s": row["rps"], "images_per_s": row["rps"],
        "latency_ms": {"p50": row["p50_ms"], "p99": row["p99_ms"]}, "mean_batch": row["mean_batch"],
        "image": f"{service['image_size']}x{service['image_size']} PNG", "endpoint": "/v1/translate",
        "server": {"max_delay_ms": 5.0, "queue_size": 64, "peak_rss_mb": machine.peak_rss_mb(service["pid"])},
        "parity": service["parity"],
        "timing": ("client side: each request from send to full response (httpx, loopback); the round is the whole "
                   "level, its warm-up requests and two /metrics reads included"),
        "measured": timing.measured, "machine": machine_summary(),
        "load_average": [load_start, machine.load_average()], "contention": timing.contention,
    })
    assert row["errors"] == 0, f"{row['errors']} requests failed: {row}"
    assert row["ok"] + row["busy_503"] == requests
    assert service["parity"]["pass"], f"served image vs torch fp32: {service['parity']}"
