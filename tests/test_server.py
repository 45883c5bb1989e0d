"""The HTTP service over real HTTP on 127.0.0.1: uvicorn in a background thread, httpx as the client,
tiny real artifacts on the ort-cpu backend."""
from __future__ import annotations

import asyncio
import io
import logging
import socket
import threading
import time
import zipfile

import cv2
import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from infer.api import load
from infer.codecs import encode_png
from infer.options import ServeOptions, ServiceOptions
from infer.prepost import NATIVE
from infer.server.app import create_app, server_config

MAX_BODY_MB = 0.3
MAX_BODY = int(MAX_BODY_MB * 1024 * 1024)


class LiveServer:
    """uvicorn serving an app on a free loopback port, in a thread, configured as `python -m infer serve` does."""

    def __init__(self, app, **serve_options):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options = ServeOptions(host="127.0.0.1", port=self.port, **serve_options)
        self.server = uvicorn.Server(server_config(app, options, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        assert not self.thread.is_alive(), "uvicorn did not shut down"


@pytest.fixture(scope="module")
def translator(cyclegan_artifact):
    with load(cyclegan_artifact, backend="ort-cpu") as model:
        yield model


@pytest.fixture(scope="module")
def sampler(cgan_artifact):
    with load(cgan_artifact, backend="ort-cpu") as model:
        yield model


@pytest.fixture(scope="module")
def translate_server(translator):
    app = create_app(translator, ServiceOptions(max_batch=4, max_delay_ms=20, queue_size=16, max_body_mb=MAX_BODY_MB,
                                                max_n=8))
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="module")
def generate_server(sampler):
    app = create_app(sampler, ServiceOptions(max_batch=8, max_delay_ms=100, queue_size=64, max_n=16))
    with LiveServer(app) as server:
        yield server


def _png(shape, seed=0) -> bytes:
    return encode_png(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


def _error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["type"] == kind, body
    return body["detail"]


def test_health(translate_server, generate_server):
    h = httpx.get(f"{translate_server.url}/health").json()
    assert h["ready"] is True and h["kind"] == "translate" and h["backend"] == "ort-cpu"
    assert h["variant"] == "cyclegan" and h["artifact"]
    g = httpx.get(f"{generate_server.url}/health").json()
    assert g["kind"] == "noise" and g["variant"] == "cgan" and g["max_n"] == 16


def test_generate_png_grid_npz_zip_and_seed(generate_server, sampler):
    url = f"{generate_server.url}/v1/generate"
    r = httpx.post(url, json={"n": 5, "seed": 3, "labels": [0, 1, 2, 3, 4]})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-seed"] == "3"
    grid = Image.open(io.BytesIO(r.content))
    assert grid.size == (3 * 30 + 2, 2 * 30 + 2)  # 3 columns, 2 rows of 28 px + 2 px padding
    assert grid.mode == "L"
    again = httpx.post(url, json={"n": 5, "seed": 3, "labels": [0, 1, 2, 3, 4]})
    assert again.content == r.content

    r = httpx.post(url, json={"n": 4, "seed": 3, "labels": 7, "format": "npz"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-npz"
    data = np.load(io.BytesIO(r.content))
    assert data["images"].shape == (4, 28, 28, 1) and data["images"].dtype == np.uint8
    assert data["labels"].tolist() == [7, 7, 7, 7] and int(data["seed"]) == 3
    # The service returns what the Python API returns for the same seed and labels.
    np.testing.assert_array_equal(data["images"], sampler.sample(4, labels=7, seed=3))

    r = httpx.post(url, json={"n": 2, "format": "zip"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert zf.namelist() == ["000000.png", "000001.png"]
        assert Image.open(io.BytesIO(zf.read("000001.png"))).size == (28, 28)


def test_generate_bad_requests_are_422_or_400(generate_server, translate_server):
    url = f"{generate_server.url}/v1/generate"
    assert "less than or equal to 16" in _error(httpx.post(url, json={"n": 17}), 422, "invalid_request")
    _error(httpx.post(url, json={"n": 0}), 422, "invalid_request")
    assert "unknown label 10" in _error(httpx.post(url, json={"n": 2, "labels": [1, 10]}), 422, "unknown_label")
    _error(httpx.post(url, json={"n": 2, "labels": "hexagon"}), 422, "unknown_label")
    _error(httpx.post(url, json={"n": 3, "labels": [1, 2]}), 422, "invalid_request")
    _error(httpx.post(url, json={"n": 1, "format": "gif"}), 422, "invalid_request")
    _error(httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}), 422, "invalid_request")
    # Translate on a noise model, generate on a translation model: 400 saying what to use.
    assert "/v1/generate" in _error(httpx.post(f"{generate_server.url}/v1/translate", content=_png((8, 8, 3)),
                                               headers={"content-type": "image/png"}), 400, "unsupported_operation")
    assert "/v1/translate" in _error(httpx.post(f"{translate_server.url}/v1/generate", json={"n": 1}),
                                     400, "unsupported_operation")


def test_translate_multipart_and_raw(translate_server, translator):
    img = np.random.default_rng(5).integers(0, 256, (37, 50, 3), dtype=np.uint8)  # not a multiple of 4
    url = f"{translate_server.url}/v1/translate"
    r = httpx.post(url, files={"image": ("photo.png", encode_png(img), "image/png")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    out = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    assert out.shape == (37, 50, 3)
    np.testing.assert_array_equal(out, translator.translate(img))
    raw = httpx.post(url, content=encode_png(img), headers={"content-type": "image/png"})
    assert raw.status_code == 200 and raw.content == r.content
    # JPEG, greyscale and RGBA inputs decode too.
    jpg = io.BytesIO()
    Image.fromarray(img).save(jpg, format="JPEG")
    assert httpx.post(url, content=jpg.getvalue(), headers={"content-type": "image/jpeg"}).status_code == 200
    grey = io.BytesIO()
    Image.fromarray(img[..., 0]).convert("RGBA").save(grey, format="PNG")
    assert Image.open(io.BytesIO(httpx.post(url, files={"image": ("g.png", grey.getvalue())}).content)).size == (50, 37)


def test_translate_bad_inputs_and_limits(translate_server):
    url = f"{translate_server.url}/v1/translate"
    _error(httpx.post(url, content=b"this is not an image", headers={"content-type": "image/png"}), 400, "bad_image")
    _error(httpx.post(url, files={"image": ("x.png", b"\x89PNG\r\n\x1a\n garbage")}), 400, "bad_image")
    assert "no file field" in _error(httpx.post(url, files={"image": (None, b"not a file")}), 400, "bad_image")
    _error(httpx.post(url, data={"image": "x"}), 415, "unsupported_media_type")
    assert httpx.post(url, files={"a": ("x.png", b"a"), "b": ("y.png", b"b")}).status_code == 400
    _error(httpx.post(url, content=b"", headers={"content-type": "image/png"}), 400, "bad_image")
    _error(httpx.post(url, json={"image": "aGVsbG8="}), 415, "unsupported_media_type")
    big = _png((400, 400, 3))  # random pixels: ~480 KB of PNG > MAX_BODY
    assert len(big) > MAX_BODY
    # Declared too large: refused from the Content-Length header, before the body is read.
    _error(httpx.post(url, content=big, headers={"content-type": "image/png"}), 413, "payload_too_large")
    _error(httpx.post(url, files={"image": ("big.png", big, "image/png")}), 413, "payload_too_large")

    # No Content-Length (chunked): refused while reading, once the limit is passed.
    def chunks():
        for i in range(0, len(big), 16384):
            yield big[i:i + 16384]

    r = httpx.post(url, content=chunks(), headers={"content-type": "image/png"})
    assert "transfer-encoding" not in r.request.headers or r.request.headers["transfer-encoding"] == "chunked"
    _error(r, 413, "payload_too_large")


def test_queue_full_gives_503_with_retry_after(translator):
    # One item in flight plus one queued; the model takes long enough on a 512 x 512 image that
    # simultaneous requests find the queue full.
    app = create_app(translator, ServiceOptions(max_batch=1, max_delay_ms=0, queue_size=1, max_n=1, max_side=0,
                                                size=NATIVE))
    body = _png((512, 512, 3), seed=1)

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(url, content=body, headers={"content-type": "image/png"})
                                          for _ in range(8)))

    with LiveServer(app) as server:
        responses = asyncio.run(burst(f"{server.url}/v1/translate"))
        codes = sorted(r.status_code for r in responses)
        assert set(codes) <= {200, 503} and 200 in codes and 503 in codes, codes
        busy = next(r for r in responses if r.status_code == 503)
        assert int(busy.headers["retry-after"]) >= 1 and busy.json()["type"] == "busy"
        assert httpx.get(f"{server.url}/health").status_code == 200
        metrics = httpx.get(f"{server.url}/metrics").text
        assert f'status="503"}} {float(codes.count(503))}' in metrics


def test_concurrent_requests_are_batched(generate_server):
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(f"{generate_server.url}/v1/generate",
                                                      json={"n": 1, "seed": i, "format": "npz"}) for i in range(12)))

    before = _metric(httpx.get(f"{generate_server.url}/metrics").text, "ganrt_batch_size_count")
    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 12
    assert [r.headers["x-seed"] for r in responses] == [str(i) for i in range(12)]
    text = httpx.get(f"{generate_server.url}/metrics").text
    batches = _metric(text, "ganrt_batch_size_count") - before
    assert 1 <= batches < 12  # grouped: fewer model calls than requests


def _metric(text: str, name: str, labels: str = "") -> float:
    key = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return 0.0


def test_metrics_and_survival_after_bad_requests(translate_server):
    url = translate_server.url
    for _ in range(3):
        httpx.post(f"{url}/v1/translate", content=b"junk", headers={"content-type": "image/png"})
    httpx.post(f"{url}/v1/translate", content=_png((16, 16, 3)), headers={"content-type": "image/png"})
    httpx.get(f"{url}/nope")
    assert httpx.get(f"{url}/health").status_code == 200
    text = httpx.get(f"{url}/metrics").text
    assert _metric(text, "ganrt_http_requests_total", 'endpoint="/v1/translate",method="POST",status="400"') >= 3
    assert _metric(text, "ganrt_http_requests_total", 'endpoint="/v1/translate",method="POST",status="200"') >= 1
    assert _metric(text, "ganrt_http_requests_total", 'endpoint="other",method="GET",status="404"') >= 1
    assert _metric(text, "ganrt_batch_size_count") >= 1
    assert "ganrt_http_request_duration_seconds_bucket" in text
    assert _metric(text, "ganrt_queue_depth") == 0
    assert 'ganrt_model_info{artifact=' in text


def test_openapi_schema_is_accurate(translate_server, generate_server):
    spec = httpx.get(f"{generate_server.url}/openapi.json").json()
    assert {"/v1/generate", "/v1/translate", "/health", "/metrics"} <= set(spec["paths"])
    gen = spec["paths"]["/v1/generate"]["post"]
    ref = gen["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    props = spec["components"]["schemas"][ref]["properties"]
    assert props["n"]["maximum"] == 16 and props["n"]["minimum"] == 1
    assert set(props["format"]["enum"]) == {"png", "npz", "zip"}
    assert {"200", "400", "422", "503"} <= set(gen["responses"])
    assert {"image/png", "application/x-npz", "application/zip"} == set(gen["responses"]["200"]["content"])
    tr = httpx.get(f"{translate_server.url}/openapi.json").json()["paths"]["/v1/translate"]["post"]
    assert "multipart/form-data" in tr["requestBody"]["content"] and "image/png" in tr["requestBody"]["content"]
    assert {"200", "400", "413", "415", "503"} <= set(tr["responses"])
    health = spec["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert health["$ref"].endswith("/HealthResponse")


# ---- faults: odd and hostile requests (issue #11) -------------------------------------------

def _post_png(url: str, pixels: np.ndarray) -> httpx.Response:
    return httpx.post(f"{url}/v1/translate", content=encode_png(pixels), headers={"content-type": "image/png"},
                      timeout=60)


def test_images_below_the_models_minimum_get_422_saying_the_smallest(translate_server):
    for hw in ((1, 1), (2, 2), (3, 5), (4, 4), (1, 64), (1, 2000)):
        detail = _error(_post_png(translate_server.url, np.zeros((*hw, 3), np.uint8)), 422, "image_too_small")
        assert "at least 5x5" in detail, detail  # the tiny model runs from 8 x 8, which 5 pixels pad up to
    # Long and thin but not too thin: fitted to the model without going below its minimum.
    r = _post_png(translate_server.url, np.random.default_rng(0).integers(0, 256, (5000, 8, 3), dtype=np.uint8))
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (8, 5000)


@pytest.mark.parametrize("body", ['{"n": NaN}', '{"n": 1e400}', '{"n": Infinity}', '{"n": -Infinity}',
                                  '{"seed": NaN}', '{"seed": 1e400}', '{"labels": [NaN]}', '{"labels": Infinity}',
                                  '{"n": true}', '{"n": "\u0663"}', '{"n": "3"}', '{"n": 2.0}', '{"seed": false}',
                                  '{"labels": "\u0663"}', '{"labels": [true, 1]}'])
def test_non_finite_and_loosely_typed_json_is_422(generate_server, body):
    r = httpx.post(f"{generate_server.url}/v1/generate", content=body.encode(),
                   headers={"content-type": "application/json"})
    assert r.status_code == 422, (body, r.status_code, r.text)
    assert r.json()["type"] in ("invalid_request", "unknown_label")
    assert "NaN" not in r.text and "Infinity" not in r.text  # the values are not echoed


def test_strict_json_still_takes_what_the_schema_says(generate_server):
    r = httpx.post(f"{generate_server.url}/v1/generate", json={"n": 2, "labels": [3, "4"], "seed": 1, "format": "npz"})
    assert r.status_code == 200 and np.load(io.BytesIO(r.content))["labels"].tolist() == [3, 4]


def test_a_client_that_disconnects_is_a_quiet_note(translate_server, caplog):
    caplog.set_level(logging.INFO, logger="ganrt.infer.server")  # whatever an earlier CLI run set
    with socket.create_connection(("127.0.0.1", translate_server.port)) as s:
        s.sendall(b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                  b"Content-Length: 5000\r\n\r\n" + _png((8, 8, 3))[:40])
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while not any("disconnected" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.05)
    notes = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert notes and all(r.levelno == logging.INFO and r.exc_info is None for r in notes)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    assert httpx.get(f"{translate_server.url}/health").status_code == 200


def test_oversized_url_and_headers_get_414_and_431(translate_server):
    r = httpx.get(f"{translate_server.url}/health", headers={"x-padding": "a" * 2**20})
    assert _error(r, 431, "headers_too_large")
    with socket.create_connection(("127.0.0.1", translate_server.port)) as s:
        s.settimeout(10)
        s.sendall(b"GET /" + b"a" * 2**20 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 414 ")
    assert httpx.get(f"{translate_server.url}/health").status_code == 200


def test_16_bit_grey_png_is_scaled_like_its_8_bit_version(translate_server):
    deep = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))  # a 0..65535 gradient
    ok, png16 = cv2.imencode(".png", deep)
    r16 = httpx.post(f"{translate_server.url}/v1/translate", content=png16.tobytes(),
                     headers={"content-type": "image/png"})
    r8 = _post_png(translate_server.url, np.round(deep / 257).astype(np.uint8))
    assert r16.status_code == r8.status_code == 200
    assert r16.content == r8.content


def test_translations_run_at_the_trained_size_unless_told_otherwise(translator, translate_server):
    img = np.random.default_rng(3).integers(0, 256, (64, 80, 3), dtype=np.uint8)  # the model was trained at 32
    trained = np.asarray(Image.open(io.BytesIO(_post_png(translate_server.url, img).content)).convert("RGB"))
    np.testing.assert_array_equal(trained, translator.translate(img))
    native = translator.translate(img, side=NATIVE)
    assert not np.array_equal(trained, native)
    with LiveServer(create_app(translator, ServiceOptions(size=NATIVE))) as server:
        served = np.asarray(Image.open(io.BytesIO(_post_png(server.url, img).content)).convert("RGB"))
    np.testing.assert_array_equal(served, native)


# Short deadlines, so that slow clients show their effect in a second or two.
DEADLINES = {"header_timeout": 1.0, "body_timeout": 1.5, "keep_alive": 1.0}


@pytest.fixture(scope="module")
def strict_server(translator):
    app = create_app(translator, ServiceOptions(limit_concurrency=4, max_body_mb=MAX_BODY_MB))
    with LiveServer(app, **DEADLINES) as server:
        yield server


def _until_closed(sock: socket.socket, limit_s: float = 10.0) -> tuple[float, bytes]:
    """(seconds until the server closed `sock`, what it sent before)."""
    sock.settimeout(limit_s)
    t0, got = time.monotonic(), b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return time.monotonic() - t0, got


def _open(port: int, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    if data:
        sock.sendall(data)
    return sock


HEAD = b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n"


def test_idle_and_slow_clients_are_timed_out(strict_server):
    port = strict_server.port
    idle = _open(port)
    partial_head = _open(port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow")
    partial_body = _open(port, HEAD + b"\x89PNG")
    kept_alive = _open(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    held = {name: _until_closed(sock) for name, sock in
            (("idle", idle), ("partial head", partial_head), ("partial body", partial_body), ("kept alive", kept_alive))}
    for name, (seconds, _) in held.items():
        assert seconds < 5, (name, seconds)  # each deadline is 1-1.5 s; 10 s would be "never"
    assert held["idle"][1] == b""
    assert held["partial head"][1].startswith(b"HTTP/1.1 408 ") and b"request_timeout" in held["partial head"][1]
    assert held["partial body"][1].startswith(b"HTTP/1.1 408 ")
    assert held["kept alive"][1].startswith(b"HTTP/1.1 200 ")
    for sock in (idle, partial_head, partial_body, kept_alive):
        sock.close()


def test_a_trickled_body_does_not_extend_its_deadline(strict_server):
    sock = _open(strict_server.port, HEAD)
    t0, reply = time.monotonic(), b""
    sock.settimeout(0.2)
    for _ in range(40):  # one byte every 0.2 s: 8 s if the deadline moved with each byte
        try:
            sock.sendall(b"x")
            reply += sock.recv(4096)
        except (TimeoutError, BlockingIOError):
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
        if reply:
            break
    assert reply.startswith(b"HTTP/1.1 408 ") and time.monotonic() - t0 < 5
    sock.close()


def test_slow_clients_do_not_lock_others_out(strict_server):
    # --limit-concurrency 4, and 18 sockets idle or stuck in their head or body: once six idle
    # sockets were enough to get every other client a 503.
    port = strict_server.port
    stuck = [_open(port) for _ in range(6)] + [_open(port, b"GET /health HTTP/1.1\r\nHo") for _ in range(6)] \
        + [_open(port, HEAD + b"\x89PNG") for _ in range(6)]
    try:
        for _ in range(5):
            assert httpx.get(f"{strict_server.url}/health").status_code == 200
        r = _post_png(strict_server.url, np.zeros((40, 40, 3), np.uint8))
        assert r.status_code == 200
    finally:
        for sock in stuck:
            sock.close()


def test_bodies_arriving_at_once_have_a_memory_budget(translator):
    # limit 1 x 50 KB: one open upload of 40 KB leaves no room for another 30 KB, whatever the
    # number of requests in progress (none here).
    app = create_app(translator, ServiceOptions(limit_concurrency=1, max_body_mb=50 / 1024))
    junk = bytes(30 * 1024)
    with LiveServer(app, **DEADLINES) as server:
        with _open(server.port, HEAD.replace(b"1000", b"45000") + bytes(40 * 1024)):
            time.sleep(0.5)
            busy = httpx.post(f"{server.url}/v1/translate", content=junk, headers={"content-type": "image/png"})
            assert _error(busy, 503, "busy") and busy.headers["retry-after"] == "1"
        time.sleep(0.3)
        _error(httpx.post(f"{server.url}/v1/translate", content=junk, headers={"content-type": "image/png"}),
               400, "bad_image")
