"""A bounded fuzz run against the real service (`python -m infer serve` in a subprocess, 127.0.0.1 only).

Thousands of generated requests, most of them hostile: valid and corrupted images of every
kind, decompression bombs, oversized and malformed HTTP, hostile JSON, slow and idle sockets,
clients that leave mid-body. What must hold: no 5xx other than 503 (from the client's side and
in the server's own metrics), every request answered within its deadline, no socket held past
its timeout, bounded memory growth, and a healthy service afterwards. The requests are drawn
from a fixed seed, so a failure can be replayed.
"""
from __future__ import annotations

import asyncio
import io
import json
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from infer.server.connection import LINGER_S
from infer.server.process import ServerProcess

SEED = 11
FAST_PROBES = 3000  # answered requests
SLOW_PROBES = 160   # sockets that stall (idle, half a head, half a body, kept alive): all open at once
CONCURRENCY = 24
HEAD_S, BODY_S, KEEP_ALIVE_S = 1.0, 2.0, 1.0
MAX_BODY_MB = 1
CLIENT_TIMEOUT_S = 30.0
# What the server's resident memory may grow by over the whole run.
MAX_RSS_GROWTH_MB = 150

SERVE_FLAGS = ["--backend", "ort-cpu", "--header-timeout", str(HEAD_S), "--body-timeout", str(BODY_S),
               "--keep-alive", str(KEEP_ALIVE_S), "--max-body-mb", str(MAX_BODY_MB), "--limit-concurrency", "64",
               "--no-warmup"]


@dataclass
class Probe:
    """One generated request: the bytes to send (in parts, with pauses), and the statuses that are right."""

    kind: str
    parts: list[bytes]
    expect: frozenset[int]         # acceptable statuses (empty: no reply expected, e.g. an idle socket)
    pause_s: float = 0.0           # between parts
    stall: bool = False            # stop sending and wait for the server to end it
    leave: bool = False            # close after sending, without reading


@dataclass
class Outcome:
    kind: str
    status: int | None             # None: no reply
    seconds: float
    closed_by_server: bool
    expected: bool


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)

    def by_kind(self) -> dict[str, Counter]:
        table: dict[str, Counter] = {}
        for o in self.outcomes:
            table.setdefault(o.kind, Counter())[o.status] += 1
        return table


# ---- request bytes -------------------------------------------------------------------------

def request(method: str, path: str, headers: list[tuple[str, str]] | None = None, body: bytes = b"",
            length: bool = True) -> bytes:
    """An HTTP/1.1 request, closing its connection after the reply."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers or []]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def encoded(image: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def random_image(rng: np.random.Generator, low: int = 5, high: int = 96) -> bytes:
    h, w = (int(v) for v in rng.integers(low, high, 2))
    kind = rng.choice(["rgb", "grey", "rgba", "grey16", "rgb16"])
    if kind.endswith("16"):
        pixels = rng.integers(0, 65536, (h, w) if kind == "grey16" else (h, w, 3), dtype=np.uint16)
    else:
        pixels = rng.integers(0, 256, {"rgb": (h, w, 3), "grey": (h, w), "rgba": (h, w, 4)}[kind], dtype=np.uint8)
    ext = ".png" if kind in ("rgba", "grey16", "rgb16") else str(rng.choice([".png", ".jpg", ".webp", ".bmp"]))
    return encoded(pixels, ext)


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims to be width x height and has hardly any data (a decompression bomb's signature)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def multipart(fields: list[tuple[str, str | None, bytes]], boundary: str = "fuzzboundary") -> tuple[str, bytes]:
    body = b""
    for name, filename, data in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return f"multipart/form-data; boundary={boundary}", body + f"--{boundary}--\r\n".encode()


ANY_4XX = frozenset(range(400, 500))
OK = frozenset({200, 503})
HOSTILE_VALUES = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "true", "false", "null", '"\\u0663"', '"3"',
                  "3.5", "-1", "0", "99999999999999999999999", '"circle"', "[]", "{}", '"' + "x" * 5000 + '"',
                  "[" * 50 + "]" * 50, '"\\ud800"', "1", "4"]


def translate_probe(rng: np.random.Generator) -> Probe:
    """Hostile and valid requests for an image-to-image service."""
    kind = rng.choice(["valid", "valid_form", "tiny", "corrupt", "garbage", "bomb", "declared_huge", "chunked_huge",
                       "media_type", "form_odd", "generate_here"],
                      p=[.22, .08, .08, .14, .08, .05, .05, .04, .08, .12, .06])
    path = "/v1/translate"
    if kind == "valid":
        return Probe(kind, [request("POST", path, [("Content-Type", "image/png")], random_image(rng))], OK)
    if kind == "valid_form":
        ctype, body = multipart([("image", "photo.png", random_image(rng))])
        return Probe(kind, [request("POST", path, [("Content-Type", ctype)], body)], OK)
    if kind == "tiny":
        h, w = (int(v) for v in rng.integers(1, 5, 2))
        if rng.random() < 0.3:
            h, w = 1, int(rng.integers(5, 3000))
        body = encoded(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), ".png")
        return Probe(kind, [request("POST", path, [("Content-Type", "image/png")], body)], frozenset({422}))
    if kind == "corrupt":
        data = bytearray(random_image(rng))
        if rng.random() < 0.5:
            data = data[: int(rng.integers(1, len(data)))]
        for i in rng.integers(0, len(data), int(rng.integers(1, 20))):
            data[i] = int(rng.integers(0, 256))
        # Flipped bytes can still decode (200), decode to another size (413, 422) or not at all (400).
        return Probe(kind, [request("POST", path, [("Content-Type", "image/png")], bytes(data))],
                     frozenset({200, 400, 413, 422, 503}))
    if kind == "garbage":
        body = rng.integers(0, 256, int(rng.integers(0, 4000)), dtype=np.uint8).tobytes()
        return Probe(kind, [request("POST", path, [("Content-Type", "image/jpeg")], body)], frozenset({400}))
    if kind == "bomb":
        side = int(rng.integers(5000, 2**31 - 1))
        return Probe(kind, [request("POST", path, [("Content-Type", "image/png")], png_header(side, side))],
                     frozenset({413}))
    if kind == "declared_huge":
        head = request("POST", path, [("Content-Type", "image/png"), ("Content-Length", str(10**12))], length=False)
        return Probe(kind, [head], frozenset({413}))
    if kind == "chunked_huge":
        head = request("POST", path, [("Content-Type", "image/png"), ("Transfer-Encoding", "chunked")], length=False)
        chunk = b"%x\r\n" % 65536 + b"\0" * 65536 + b"\r\n"
        return Probe(kind, [head + chunk * (MAX_BODY_MB * 16 + 2) + b"0\r\n\r\n"], frozenset({413}))
    if kind == "media_type":
        ctype = str(rng.choice(["text/plain", "application/json", "application/x-www-form-urlencoded", "video/mp4"]))
        return Probe(kind, [request("POST", path, [("Content-Type", ctype)], b'{"image": "x"}')], frozenset({415}))
    if kind == "form_odd":
        variant = int(rng.integers(0, 5))
        if variant == 0:
            ctype, body = multipart([("other", None, b"text")])
        elif variant == 1:
            ctype, body = multipart([("a", "a.png", random_image(rng)), ("b", "b.png", random_image(rng))])
        elif variant == 2:
            ctype, body = "multipart/form-data; boundary=", b"--\r\n\r\n"
        elif variant == 3:
            ctype, body = multipart([(f"f{i}", None, b"v") for i in range(50)])
        else:
            ctype, body = "multipart/form-data; boundary=zz", rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
        return Probe(f"{kind}{variant}", [request("POST", path, [("Content-Type", ctype)], body)], ANY_4XX)
    body = json.dumps({"n": 1}).encode()
    return Probe(kind, [request("POST", "/v1/generate", [("Content-Type", "application/json")], body)],
                 frozenset({400}))


def generate_probe(rng: np.random.Generator) -> Probe:
    """Hostile and valid JSON for a noise-to-image service."""
    kind = rng.choice(["valid", "hostile", "deep", "not_json", "extra"], p=[.25, .5, .05, .1, .1])
    if kind == "valid":
        body = json.dumps({"n": int(rng.integers(1, 5)), "seed": int(rng.integers(0, 2**31)),
                           "labels": int(rng.integers(0, 10)), "format": str(rng.choice(["png", "npz", "zip"]))})
        expect = OK
    elif kind == "hostile":
        keys = rng.choice(["n", "seed", "labels", "format"], int(rng.integers(1, 4)), replace=False)
        body = "{" + ", ".join(f'"{k}": {rng.choice(HOSTILE_VALUES)}' for k in keys) + "}"
        # Some combinations are valid ({"labels": 1}, {"n": 1}, ...).
        expect = frozenset({200, 422, 503})
    elif kind == "deep":
        depth = int(rng.integers(1000, 200_000))
        body, expect = '{"labels": ' + "[" * depth + "]" * depth + "}", frozenset({400, 422})
    elif kind == "not_json":
        body, expect = rng.integers(0, 256, 300, dtype=np.uint8).tobytes().decode("latin-1"), frozenset({400, 422})
    else:
        body, expect = json.dumps({"n": 1, "debug": True}), frozenset({422})
    data = body.encode("utf-8", "surrogatepass")
    return Probe(kind, [request("POST", "/v1/generate", [("Content-Type", "application/json")], data)], expect)


MALFORMED = [
    b"\x00\x01\x02\x03\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"POST /v1/translate HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    b"POST /v1/translate HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 9\r\n\r\nhello",
    b"POST /v1/translate HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"G\xffT / HTTP/1.1\r\nHost: a\r\n\r\n", b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHo\x7fst: a\r\n\r\n", b" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n",
    b"POST /v1/translate HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
]


def http_probe(rng: np.random.Generator) -> Probe:
    """Requests that are odd at the HTTP level: any service."""
    kind = rng.choice(["malformed", "random_bytes", "long_url", "long_header", "many_headers", "paths", "leave"],
                      p=[.3, .15, .08, .08, .06, .25, .08])
    if kind == "malformed":
        return Probe(kind, [MALFORMED[int(rng.integers(len(MALFORMED)))]], ANY_4XX)
    if kind == "random_bytes":
        data = rng.integers(0, 256, int(rng.integers(1, 3000)), dtype=np.uint8).tobytes() + b"\r\n\r\n"
        return Probe(kind, [data], ANY_4XX)
    if kind == "long_url":
        return Probe(kind, [b"GET /" + b"a" * int(rng.integers(2**17, 2**20)) + b" HTTP/1.1\r\nHost: a\r\n\r\n"],
                     frozenset({414}))
    if kind == "long_header":
        head = request("GET", "/health", [("X-Padding", "a" * int(rng.integers(2**17, 2**20)))], length=False)
        return Probe(kind, [head], frozenset({431}))
    if kind == "many_headers":
        head = request("GET", "/health", [(f"X-H{i}", "v" * 40) for i in range(int(rng.integers(500, 3000)))],
                       length=False)
        return Probe(kind, [head], frozenset({431}))
    if kind == "leave":  # a body cut off by the client's leaving
        head = request("POST", "/v1/translate", [("Content-Type", "image/png"), ("Content-Length", "50000")],
                       length=False)
        return Probe(kind, [head + b"\x89PNG" * 10], frozenset(), leave=True)
    method = str(rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
    path = str(rng.choice(["/", "/health", "/metrics", "/docs", "/openapi.json", "/v1/translate", "/v1/generate",
                           "/../../etc/passwd", "/%00", "/%2e%2e/", "/v1/" + "x" * 2000, "/health?x=%ff%fe",
                           "/\u00e9t\u00e9".encode().decode("latin-1")]))
    return Probe("paths", [request(method, path)], frozenset({200, 307, 400, 404, 405, 413, 415, 422, 503}))


def slow_probe(rng: np.random.Generator) -> Probe:
    """A client that stops: the server must end it by its deadline."""
    kind = rng.choice(["idle", "half_head", "half_body", "kept_alive", "trickle"], p=[.2, .25, .25, .15, .15])
    if kind == "idle":
        return Probe(kind, [], frozenset(), stall=True)
    if kind == "half_head":
        return Probe(kind, [b"POST /v1/translate HTTP/1.1\r\nHost: a\r\nContent-"], frozenset({408}), stall=True)
    head = request("POST", "/v1/translate", [("Content-Type", "image/png"), ("Content-Length", "9000")],
                   length=False)
    if kind == "half_body":
        return Probe(kind, [head + b"\x89PNG\r\n"], frozenset({408}), stall=True)
    if kind == "trickle":  # a byte at a time: the body's deadline is a total, so this cannot stretch it
        return Probe(kind, [head] + [b"x"] * 12, frozenset({408}), pause_s=0.35, stall=True)
    return Probe(kind, [b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n"], frozenset({200}), stall=True)


# ---- sending ---------------------------------------------------------------------------------

async def read_reply(reader: asyncio.StreamReader) -> int | None:
    """The status of the first reply (its body read), None when the server closed without one."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    status = int(head.split(b" ", 2)[1])
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    try:
        await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        pass  # a reply to HEAD has a length and no body
    return status


async def send(port: int, probe: Probe) -> Outcome:
    """Send one probe and read its reply; a stalled one also waits for the server to end the connection.

    `seconds` runs from connecting to the reply, or for a stalled probe to the server's close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**16)
    t0 = time.monotonic()

    async def write_all() -> None:
        for i, part in enumerate(probe.parts):
            if i and probe.pause_s:
                await asyncio.sleep(probe.pause_s)
            writer.write(part)
            await writer.drain()

    sender = asyncio.create_task(write_all())
    status: int | None = None
    closed = False
    try:
        if not probe.stall:
            await sender
        if probe.leave:
            return Outcome(probe.kind, None, time.monotonic() - t0, False, True)
        status = await asyncio.wait_for(read_reply(reader), CLIENT_TIMEOUT_S)
        if probe.stall:
            while await asyncio.wait_for(reader.read(65536), CLIENT_TIMEOUT_S):
                pass
            closed = True
    except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError):
        closed = True
    except asyncio.TimeoutError:
        pass
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()
    expected = status in probe.expect if probe.expect else status is None
    return Outcome(probe.kind, status, time.monotonic() - t0, closed, expected)


async def flood(port: int, probes: list[Probe], concurrency: int) -> list[Outcome]:
    queue = iter(probes)
    outcomes: list[Outcome] = []

    async def worker() -> None:
        for probe in queue:
            outcomes.append(await send(port, probe))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


async def run(port: int, fast: list[Probe], slow: list[Probe]) -> tuple[list[Outcome], list[Outcome]]:
    """The slow sockets, all open at once, beside the flood of fast ones."""
    slow_task = asyncio.gather(*(send(port, p) for p in slow))
    fast_outcomes = await flood(port, fast, CONCURRENCY)
    return fast_outcomes, list(await slow_task)


# ---- what the server holds ---------------------------------------------------------------------

def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_connections(port: int) -> int:
    """Server-side TCP connections on `port` that a process still holds (not listening, not in TIME_WAIT)."""
    held = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if int(local.split(":")[1], 16) == port and state not in ("0A", "06"):  # LISTEN, TIME_WAIT
            held += 1
    return held


def five_hundreds(metrics: str) -> dict[str, float]:
    """Requests the server itself counted with a 5xx other than 503."""
    bad = {}
    for line in metrics.splitlines():
        if line.startswith("ganrt_http_requests_total{") and 'status="5' in line and 'status="503"' not in line:
            bad[line.split()[0]] = float(line.split()[1])
    return bad


def _probes(make: Callable[[np.random.Generator], Probe], rng: np.random.Generator, n: int) -> list[Probe]:
    return [make(rng) for _ in range(n)]


def _report(name: str, fast: list[Outcome], slow: list[Outcome]) -> str:
    lines = [f"{name}: {len(fast)} requests, {len(slow)} stalled sockets"]
    for kind, counts in sorted(Tally(fast + slow).by_kind().items()):
        lines.append(f"  {kind:16s} " + ", ".join(f"{s}: {c}" for s, c in sorted(counts.items(), key=str)))
    return "\n".join(lines)


@pytest.mark.parametrize("service", ["translate", "generate"])
def test_fuzzed_requests_leave_the_service_healthy(service, cyclegan_artifact, cgan_artifact):
    rng = np.random.default_rng([SEED, service == "generate"])
    artifact = cyclegan_artifact if service == "translate" else cgan_artifact
    own = translate_probe if service == "translate" else generate_probe
    fast = _probes(own, rng, FAST_PROBES * 2 // 3) + _probes(http_probe, rng, FAST_PROBES // 3)
    rng.shuffle(fast)  # type: ignore[arg-type]
    slow = _probes(slow_probe, rng, SLOW_PROBES)

    with ServerProcess([str(artifact), *SERVE_FLAGS]) as server:
        warm = [httpx.get(server.url + "/health") for _ in range(20)]
        assert all(r.status_code == 200 for r in warm)
        rss_before = rss_mb(server.pid)
        t0 = time.monotonic()
        fast_out, slow_out = asyncio.run(run(server.port, fast, slow))
        elapsed = time.monotonic() - t0
        print(_report(service, fast_out, slow_out), f"\n  {elapsed:.1f} s")

        # (1) Every reply is one that request deserves; never a 5xx other than 503.
        wrong = [o for o in fast_out if not o.expected]
        assert not [o for o in fast_out + slow_out if o.status and o.status >= 500 and o.status != 503]
        assert not wrong, Counter((o.kind, o.status) for o in wrong)
        # (2) Slow sockets were ended by their deadline (counted from connecting).
        for o in slow_out:
            deadline = {"idle": HEAD_S, "half_head": HEAD_S, "kept_alive": KEEP_ALIVE_S}.get(o.kind, BODY_S)
            assert o.closed_by_server and o.expected, o
            assert o.seconds <= deadline + LINGER_S + 3.0, o
        # (3) Valid requests were served while 160 sockets stalled (limit-concurrency 64).
        valid = [o for o in fast_out if o.kind in ("valid", "valid_form")]
        assert valid and sum(o.status == 200 for o in valid) >= 0.99 * len(valid)

        # (4) Nothing is held once the deadlines have passed; the server counted no 5xx either.
        deadline = time.monotonic() + BODY_S + LINGER_S + 5
        while open_connections(server.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert open_connections(server.port) == 0
        assert httpx.get(server.url + "/health").json()["ready"] is True
        assert five_hundreds(httpx.get(server.url + "/metrics").text) == {}
        # (5) Memory stayed bounded, and the service still does its job.
        growth = rss_mb(server.pid) - rss_before
        print(f"  RSS {rss_before:.0f} MB -> {rss_before + growth:.0f} MB")
        assert growth < MAX_RSS_GROWTH_MB, growth
        if service == "translate":
            photo = np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(photo).save(buf, format="PNG")
            r = httpx.post(server.url + "/v1/translate", content=buf.getvalue(),
                           headers={"content-type": "image/png"}, timeout=60)
            assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (52, 40)
        else:
            r = httpx.post(server.url + "/v1/generate", json={"n": 4, "seed": 1, "format": "npz"}, timeout=60)
            assert r.status_code == 200 and np.load(io.BytesIO(r.content))["images"].shape[0] == 4
