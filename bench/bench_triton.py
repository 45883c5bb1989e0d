"""ganrt's service beside a real Triton Inference Server: same model, same CPU, concurrency 1, 8 and 32.

One run, three rows per concurrency level, every server on 127.0.0.1 and sharing the machine's
cores with its client (as on a single host):

- `ganrt` + `ganrt-loadtest`: `python -m infer serve` (ort-cpu, fp32), POST /v1/translate with a
  64x64 PNG, the load of infer.loadtest (concurrent httpx clients in this process);
- `triton` + `perf_analyzer`: tritonserver 2.51 serving the artifact's `<name>_python` model (the
  same fp32 ONNX file on ONNX Runtime, Triton's dynamic batcher), 1x3x64x64 FP32 tensors over HTTP
  (binary), driven by Triton's own C++ load generator (three 3 s time windows per level);
- `triton` + `ganrt-loadtest`: the same Triton driven by the same httpx client as ganrt's row
  (KServe v2 with binary tensors): the fair read of server against server.

Both batchers hold a request at most 2 ms for company (Triton's max_queue_delay_microseconds
from export.triton; ganrt started with --max-delay-ms 2). Each row records requests/s, client
p50/p99, the mean batch each server ran, and where a request's time went on the server (Triton's
statistics: queue, input, infer, output; ganrt's /metrics: time inside the server and in model
calls), plus ganrt's decode/encode cost measured in process. The httpx client is Python in this
process: at high concurrency it takes CPU from the server it measures, perf_analyzer far less. perf_analyzer is the `bin/perf_analyzer` of the
tritonclient 2.51.0 wheel installed into the Triton environment (the `perf-analyzer` package is
an empty placeholder); plain `pytest` runs each row once with a few requests as a check.
"""
from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import machine
from bench.measure import machine_summary, time_calls

MODEL = "cyclegan-shipped"
SIDE = 64
CONCURRENCY = (1, 8, 32)
REQUESTS_PER_LEVEL = 200
# perf_analyzer measures time windows: three of this many ms per level (after its own warm-up window).
PA_WINDOW_MS = 3000
WARMUP_REQUESTS = 8
ROWS = (("ganrt", "ganrt-loadtest"), ("triton", "perf_analyzer"), ("triton", "ganrt-loadtest"))
# The sonames perf_analyzer links against, as nvidia-pytriton bundles them (auditwheel renamed them).
PERF_ANALYZER_LIBS = {"libb64.so.0d": "libb64-*.so.0d", "libcudart.so.12": "libcudart-*.so.12*"}
TIMING = ("client side, per request from send to full response, loopback; infer.loadtest's workers send a fixed "
          "number of requests per level after warm-up requests, perf_analyzer measures three time windows")


def _triton_install() -> Any:
    from ganrt.errors import BackendUnavailable
    from infer.tritonserver import TritonInstall

    try:
        return TritonInstall.find()
    except BackendUnavailable as e:
        pytest.skip(f"no Triton here: {e}")


@pytest.fixture(scope="module")
def artifact(artifact_of: Callable[..., Path]) -> Path:
    return artifact_of(MODEL)


@pytest.fixture(scope="module")
def ganrt_service(artifact: Path) -> Iterator[dict[str, Any]]:
    """`python -m infer serve` on the model, batching like Triton (2 ms), and ganrt's decode/encode cost."""
    from export.triton import MAX_QUEUE_DELAY_US
    from infer.loadtest import server_args
    from infer.server.process import ServerProcess

    delay_ms = MAX_QUEUE_DELAY_US / 1000
    with ServerProcess(server_args(artifact, "ort-cpu", queue_size=64, max_delay_ms=delay_ms)) as server:
        yield {"url": server.url, "pid": server.pid, "max_delay_ms": delay_ms, "codec_ms": _codec_ms(artifact)}


def _codec_ms(artifact: Path) -> dict[str, float]:
    """What ganrt does around the model for one 64x64 PNG request, timed in process (median of 50)."""
    from infer.api import load
    from infer.codecs import decode_image, encode_png

    png = encode_png(np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8))
    with load(artifact, backend="ort-cpu") as model:
        proc = model.processor
        feeds, plans = proc.images_to_feeds([decode_image(png)])
        y = model.run(feeds)[proc.output.name]

        def median_ms(fn: Callable[[], Any]) -> float:
            times = []
            for _ in range(50):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            return round(float(np.median(times)) * 1000, 3)

        return {"decode+prepare": median_ms(lambda: proc.images_to_feeds([decode_image(png)])),
                "model": median_ms(lambda: model.run(feeds)),
                "finish+encode": median_ms(lambda: encode_png(proc.restore(proc.to_uint8(y)[0], plans[0])))}


@pytest.fixture(scope="module")
def triton_service(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """tritonserver on the artifact's repository, its Python-backend model loaded."""
    from ganrt.artifact import Artifact
    from infer.server.process import free_port
    from infer.tritonserver import TritonServer, repository_of

    install = _triton_install()
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    with log.open("wb") as log_file, repository_of(Artifact.load(artifact)) as (repository, model), \
            TritonServer([repository], [model], http_port=free_port(), grpc_port=free_port(),
                         metrics_port=free_port(), log=log_file, install=install) as server:
        _check_parity(artifact, server.url, model)
        yield {"server": server, "model": model, "install": install, "pid": server.proc.pid}


def _check_parity(artifact: Path, url: str, model: str) -> None:
    """Triton's answer for one tensor against the same ONNX file in process, within the fp32 gate."""
    import tritonclient.http as http

    from ganrt.compare import assert_within
    from ganrt.targets import target
    from infer.api import load

    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, SIDE, SIDE)).astype(np.float32)
    tensor = http.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    with http.InferenceServerClient(url.split("://")[1]) as client:
        served = client.infer(model, [tensor]).as_numpy("image_out")
    with load(artifact, backend="ort-cpu") as reference:
        expected = reference.run({"image": x})["image_out"]
    assert_within(expected, served, target("ort-cpu", "fp32").tolerance, name="Triton vs ONNX Runtime in process")


def _kserve_request(model: str) -> Callable[..., Any]:
    """A request maker for infer.loadtest.run_level: one 1x3xSIDExSIDE FP32 tensor, KServe v2 binary extension."""
    tensor = np.random.default_rng(0).uniform(-1, 1, (1, 3, SIDE, SIDE)).astype(np.float32).tobytes()
    header = json.dumps({"inputs": [{"name": "image", "shape": [1, 3, SIDE, SIDE], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(tensor)}}],
                         "outputs": [{"name": "image_out", "parameters": {"binary_data": True}}]}).encode()
    headers = {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}

    async def infer(client: Any, url: str, i: int) -> Any:
        return await client.post(f"{url}/v2/models/{model}/infer", content=header + tensor, headers=headers)

    return infer


def _perf_analyzer(install: Any, folder: Path) -> tuple[str, dict[str, str]]:
    """perf_analyzer's path and environment (its libraries linked under the names it asks for)."""
    binary = os.environ.get("PERF_ANALYZER") or shutil.which("perf_analyzer", path=str(install.python.parent)) \
        or shutil.which("perf_analyzer")
    if not binary:
        pytest.skip("no perf_analyzer: install the tritonclient 2.51.0 wheel (it ships bin/perf_analyzer) into the "
                    "Triton environment: .venv-triton/bin/pip install --no-deps tritonclient==2.51.0")
    for soname, pattern in PERF_ANALYZER_LIBS.items():
        found = sorted(install.libs.glob(pattern))
        if found:
            (folder / soname).symlink_to(found[0])
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(folder),
                                                                          os.environ.get("LD_LIBRARY_PATH")]))}
    return binary, env


def _run_perf_analyzer(triton: dict[str, Any], concurrency: int, window_ms: int) -> dict[str, Any]:
    """perf_analyzer at one concurrency: three time windows (its --request-count mode rounds its clock to seconds)."""
    with tempfile.TemporaryDirectory(prefix="ganrt-pa-") as tmp:
        binary, env = _perf_analyzer(triton["install"], Path(tmp))
        report = Path(tmp) / "report.csv"
        command = [binary, "-m", triton["model"], "-u", triton["server"].url.split("://")[1], "-i", "http",
                   "--concurrency-range", f"{concurrency}:{concurrency}", "--measurement-mode", "time_windows",
                   "--measurement-interval", str(window_ms), "--stability-percentage", "1000", "--max-trials", "3",
                   "--shape", f"image:3,{SIDE},{SIDE}", "--input-data", "random", "--percentile", "99",
                   "-f", str(report)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"perf_analyzer failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr}"
        row = next(csv.DictReader(report.open()))
    counted = [line.split(":")[1] for line in done.stdout.splitlines() if line.strip().startswith("Request count:")]
    return {"rps": round(float(row["Inferences/Second"]), 2), "p50_ms": round(float(row["p50 latency"]) / 1000, 1),
            "p99_ms": round(float(row["p99 latency"]) / 1000, 1), "ok": int(counted[0]) if counted else None,
            "errors": 0, "busy_503": 0,
            "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command) if c != str(report))}


def _triton_breakdown(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per request, from Triton's statistics: ms in its queue, input copy, ONNX Runtime, output copy; mean batch."""
    requests = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    stats_a, stats_b = after["inference_stats"], before["inference_stats"]
    per = {k: round((int(stats_a[k]["ns"]) - int(stats_b[k]["ns"])) / max(1, requests) / 1e6, 3)
           for k in ("queue", "compute_input", "compute_infer", "compute_output")}
    return {"mean_batch": round(requests / executions, 2) if executions else None, "server_ms_per_request": per}


def _ganrt_metrics(url: str) -> dict[str, float]:
    """The samples of ganrt's /metrics that say where a translate request's time went."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics", timeout=30).text
    samples = {(s.name, s.labels.get("endpoint")): s.value for family in text_string_to_metric_families(text)
               for s in family.samples}
    return {"batches": samples.get(("ganrt_batch_size_count", None), 0.0),
            "items": samples.get(("ganrt_batch_size_sum", None), 0.0),
            "model_s": samples.get(("ganrt_batch_duration_seconds_sum", None), 0.0),
            "server_s": samples.get(("ganrt_http_request_duration_seconds_sum", "/v1/translate"), 0.0)}


def _ganrt_breakdown(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, Any]:
    """Per request, from ganrt's /metrics: ms inside the server (middleware to response), of it in model calls."""
    delta = {k: after[k] - before[k] for k in after}
    return {"mean_batch": round(delta["items"] / delta["batches"], 2) if delta["batches"] else None,
            "server_ms_per_request": {"in_server": round(delta["server_s"] / max(1, requests) * 1000, 3),
                                      "model_call_per_item": round(delta["model_s"] / max(1, delta["items"]) * 1000,
                                                                   3)}}


def _load(url: str, concurrency: int, requests: int, warmup: int, make: Any = None) -> dict[str, Any]:
    """infer.loadtest's client: ganrt's translate requests, or `make`'s requests through the same workers."""
    import httpx

    from infer.loadtest import load_test, run_level

    if make is None:
        return asyncio.run(load_test(url, [concurrency], requests, "translate", 1, SIDE, warmup=warmup))[-1]

    async def run() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:
            for i in range(warmup):
                await make(client, url, i)
            return await run_level(client, url, concurrency, requests, make)

    return asyncio.run(run())


@pytest.mark.parametrize("concurrency", CONCURRENCY)
@pytest.mark.parametrize("server,client", ROWS, ids=[f"{s}-{c}" for s, c in ROWS])
def test_serving_side_by_side(benchmark: Any, server: str, client: str, concurrency: int, measuring: bool,
                              request: pytest.FixtureRequest) -> None:
    requests = REQUESTS_PER_LEVEL if measuring else max(4, 2 * concurrency)
    warmup = WARMUP_REQUESTS if measuring else 1
    service = request.getfixturevalue(f"{server}_service")
    rows: list[dict[str, Any]] = []
    breakdown: dict[str, Any] = {}
    load_start = machine.load_average()

    def level() -> None:
        if server == "ganrt":
            _load(service["url"], 1, warmup, 0)  # warm-up outside the metrics' before/after, as for Triton
            before = _ganrt_metrics(service["url"])
            rows.append(_load(service["url"], concurrency, requests, 0))
            breakdown.update(_ganrt_breakdown(before, _ganrt_metrics(service["url"]), requests))
            return
        triton = service["server"]
        if client == "perf_analyzer":
            before = triton.statistics(service["model"])
            rows.append(_run_perf_analyzer(service, concurrency, PA_WINDOW_MS if measuring else 300))
        else:
            make = _kserve_request(service["model"])
            _load(triton.url, 1, warmup, 0, make)
            before = triton.statistics(service["model"])
            rows.append(_load(triton.url, concurrency, requests, 0, make))
        breakdown.update(_triton_breakdown(before, triton.statistics(service["model"])))

    benchmark.group = "serving: ganrt vs Triton"
    timing = time_calls(benchmark, level, rounds=1, min_rounds=1)
    row = rows[-1]
    payload = (f"{SIDE}x{SIDE} RGB PNG in, PNG out (POST /v1/translate)" if server == "ganrt" else
               f"1x3x{SIDE}x{SIDE} FP32 tensor in and out, binary (POST /v2/models/<model>/infer)")
    benchmark.extra_info.update({
        "kind": "serving-compare", "model": MODEL, "server": server, "client": client, "concurrency": concurrency,
        "requests": row["ok"] if client == "perf_analyzer" else requests, "ok": row["ok"], "errors": row["errors"], "busy_503": row.get("busy_503", 0),
        "requests_per_s": row["rps"], "latency_ms": {"p50": row["p50_ms"], "p99": row["p99_ms"]},
        "mean_batch": breakdown.get("mean_batch"), "server_ms_per_request": breakdown.get("server_ms_per_request"),
        "payload": payload, "backend": "ONNX Runtime CPU fp32, the artifact's generator.onnx",
        "max_queue_delay_ms": 2.0, "command": row.get("command"),
        "codec_ms": service.get("codec_ms"), "server_peak_rss_mb": machine.peak_rss_mb(service["pid"]),
        "timing": TIMING, "measured": timing.measured, "machine": machine_summary(),
        "load_average": [load_start, machine.load_average()], "contention": timing.contention,
    })
    assert row["errors"] == 0 and (client == "perf_analyzer" or row["ok"] == requests), row

