"""The HTTP service over real HTTP on 127.0.0.1: uvicorn in a background thread, httpx as the client,
tiny real artifacts on the ort-cpu backend."""
from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
import zipfile

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from infer.api import load
from infer.codecs import encode_png
from infer.options import ServiceOptions
from infer.server.app import create_app

MAX_BODY_MB = 0.3
MAX_BODY = int(MAX_BODY_MB * 1024 * 1024)


class LiveServer:
    """uvicorn serving an app on a free loopback port, in a thread."""

    def __init__(self, app):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
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
    app = create_app(translator, ServiceOptions(max_batch=1, max_delay_ms=0, queue_size=1, max_n=1, max_side=0))
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
