"""`python -m infer.loadtest`: a bounded loopback load run against the HTTP service.

Starts `python -m infer serve ARTIFACT` in a subprocess on a free port (or targets --url),
then, for each concurrency level, sends a fixed number of requests from that many concurrent
httpx clients and prints requests/s, p50/p99 latency and the mean batch size the server ran
(from its /metrics). Stops by itself; the server is shut down at the end.

    python -m infer.loadtest artifacts/cyclegan-photo2sketch --concurrency 1 8 32 --requests 200
    python -m infer.loadtest --url http://127.0.0.1:8000 --endpoint generate --n 4
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from infer.codecs import encode_png
from infer.server.process import ServerFailed, ServerProcess


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def run_level(client: httpx.AsyncClient, url: str, concurrency: int, total: int, make_request: Any) -> dict[str, Any]:
    """`total` requests from `concurrency` workers; latency of each, from the client's side."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = iter(range(total))

    async def worker() -> None:
        for i in next_index:
            t0 = time.perf_counter()
            try:
                r = await make_request(client, url, i)
                status = r.status_code
            except httpx.HTTPError:
                status = -1
            dt = time.perf_counter() - t0
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                latencies.append(dt)

    before = (await client.get(url + "/metrics")).text
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    after = (await client.get(url + "/metrics")).text
    batches = _metric(after, "ganrt_batch_size_count") - _metric(before, "ganrt_batch_size_count")
    items = _metric(after, "ganrt_batch_size_sum") - _metric(before, "ganrt_batch_size_sum")
    ms = np.array(latencies) * 1000
    return {
        "concurrency": concurrency, "requests": total, "ok": statuses.get(200, 0),
        "busy_503": statuses.get(503, 0), "errors": total - statuses.get(200, 0) - statuses.get(503, 0),
        "seconds": round(elapsed, 3), "rps": round(statuses.get(200, 0) / elapsed, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
        "mean_batch": round(items / batches, 2) if batches else None,
    }


def _request_maker(endpoint: str, n: int, image_size: int) -> Any:
    if endpoint == "translate":
        rng = np.random.default_rng(0)
        body = encode_png(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8))

        async def translate(client: httpx.AsyncClient, url: str, i: int) -> httpx.Response:
            return await client.post(url + "/v1/translate", content=body, headers={"content-type": "image/png"})
        return translate

    async def generate(client: httpx.AsyncClient, url: str, i: int) -> httpx.Response:
        return await client.post(url + "/v1/generate", json={"n": n, "seed": i, "format": "npz"})
    return generate


async def load_test(url: str, levels: list[int], requests: int, endpoint: str, n: int, image_size: int,
                    warmup: int = 5) -> list[dict[str, Any]]:
    """Run every concurrency level against `url`; returns one result row per level."""
    limits = httpx.Limits(max_connections=max(levels) + 2, max_keepalive_connections=max(levels) + 2)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        health = (await client.get(url + "/health")).json()
        if endpoint == "auto":
            endpoint = "translate" if health["kind"] == "translate" else "generate"
        make = _request_maker(endpoint, n, image_size)
        for i in range(warmup):
            await make(client, url, i)
        rows = []
        for level in levels:
            row = await run_level(client, url, level, requests, make)
            row.update(endpoint=endpoint, backend=health["backend"], artifact=health["artifact"])
            rows.append(row)
            print(_format(row), flush=True)
        return rows


def _format(row: dict[str, Any]) -> str:
    return (f"{row['endpoint']:9s} c={row['concurrency']:<3d} {row['ok']}/{row['requests']} ok, "
            f"{row['busy_503']} busy, {row['errors']} errors | {row['rps']:8.2f} req/s | "
            f"p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms | mean batch {row['mean_batch']}")


def server_args(artifact: Path | None = None, backend: str = "auto", precision: str | None = None,
                queue_size: int = 64, max_delay_ms: float = 5.0, max_batch: int | None = None) -> list[str]:
    """`python -m infer serve` arguments for a load run (ARTIFACT defaults to serve's own default)."""
    return [*([str(artifact)] if artifact else []), "--backend", backend,
            *(["--precision", precision] if precision else []), "--queue-size", str(queue_size),
            "--max-delay-ms", str(max_delay_ms), *(["--max-batch", str(max_batch)] if max_batch else [])]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start (or target) a server, run the levels, print (and save) the results."""
    p = argparse.ArgumentParser(prog="python -m infer.loadtest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", nargs="?", type=Path,
                   help="artifact to serve (default: serve's, the newest under artifacts/, else the shipped one)")
    p.add_argument("--url", help="test a running server instead of starting one")
    p.add_argument("--endpoint", choices=("auto", "generate", "translate"), default="auto",
                   help="auto: translate for image-to-image models, generate otherwise")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="levels (default: 1 8 32)")
    p.add_argument("--requests", type=int, default=200, help="requests per level (default: 200)")
    p.add_argument("--n", type=int, default=1, help="generate: samples per request (default: 1)")
    p.add_argument("--image-size", type=int, default=64, help="translate: side of the test image (default: 64)")
    p.add_argument("--backend", default="auto", help="server backend when starting one (default: auto)")
    p.add_argument("--precision", help="server --precision when starting one (default: the backend's)")
    p.add_argument("--max-batch", type=int, help="server --max-batch when starting one")
    p.add_argument("--max-delay-ms", type=float, default=5.0, help="server --max-delay-ms (default: 5)")
    p.add_argument("--queue-size", type=int, default=64, help="server --queue-size (default: 64)")
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = p.parse_args(argv)

    def run(url: str) -> list[dict[str, Any]]:
        return asyncio.run(load_test(url.rstrip("/"), args.concurrency, args.requests, args.endpoint, args.n,
                                     args.image_size))

    if args.url is not None:
        rows = run(args.url)
    else:
        try:
            with ServerProcess(server_args(args.artifact, args.backend, args.precision, args.queue_size,
                                           args.max_delay_ms, args.max_batch)) as server:
                rows = run(server.url)
        except ServerFailed as e:
            raise SystemExit(f"error: {e}") from None
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
