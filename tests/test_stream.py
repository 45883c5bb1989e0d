"""WS /v1/stream and the page at / of `python -m infer serve` (a real server process on 127.0.0.1, tiny artifacts,
ort-cpu), driven by a real WebSocket client: translations, sample grids, bad input, floods, and state freed on close."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import pytest

from infer.codecs import decode_image, encode_png
from infer.server.process import ServerProcess

websockets = pytest.importorskip("websockets")

MAX_BODY_MB = 0.2
MAX_PIXELS = 40_000


@pytest.fixture(scope="module")
def translate_server(cyclegan_artifact: Path) -> Iterator[ServerProcess]:
    with ServerProcess([str(cyclegan_artifact), "--backend", "ort-cpu", "--max-body-mb", str(MAX_BODY_MB),
                        "--max-pixels", str(MAX_PIXELS)]) as server:
        yield server


@pytest.fixture(scope="module")
def noise_server(cgan_artifact: Path) -> Iterator[ServerProcess]:
    with ServerProcess([str(cgan_artifact), "--backend", "ort-cpu", "--max-n", "16"]) as server:
        yield server


def _ws_url(server: ServerProcess) -> str:
    return server.url.replace("http://", "ws://") + "/v1/stream"


def _frame(seed: int = 0, h: int = 40, w: int = 52) -> bytes:
    return encode_png(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


async def _answer(ws: Any) -> tuple[dict[str, Any], bytes | None]:
    """The next answer: a result and its image, or an error (no image)."""
    message = json.loads(await asyncio.wait_for(ws.recv(), 30))
    if message["type"] == "result":
        return message, await asyncio.wait_for(ws.recv(), 30)
    return message, None


def _streams_open(server: ServerProcess) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith("ganrt_stream_connections "):
            return float(line.split()[-1])
    raise AssertionError("no ganrt_stream_connections metric")


def test_page_and_its_files_are_served_with_no_outside_sources(translate_server: ServerProcess) -> None:
    page = httpx.get(translate_server.url + "/")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for name, kind in (("", "text/html"), ("static/app.js", "text/javascript"), ("static/style.css", "text/css")):
        r = httpx.get(f"{translate_server.url}/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        assert "http://" not in r.text and "https://" not in r.text  # works offline: nothing fetched from elsewhere
    assert httpx.get(translate_server.url + "/static/../app.py").status_code == 404
    assert httpx.get(translate_server.url + "/static/index.json").status_code == 404


def test_frames_are_translated_like_the_http_endpoint(translate_server: ServerProcess) -> None:
    frame = _frame(1)
    over_http = httpx.post(translate_server.url + "/v1/translate", content=frame,
                           headers={"content-type": "image/png"}, timeout=60).content

    async def run() -> list[tuple[dict[str, Any], bytes | None]]:
        async with websockets.connect(_ws_url(translate_server)) as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello" and hello["kind"] == "translate" and hello["label"] is None
            assert hello["artifact"] == "tiny-cyclegan" and hello["max_frame_bytes"] == int(MAX_BODY_MB * 2**20)
            answers = []
            for _ in range(3):  # one frame in flight at a time, as the page sends them
                await ws.send(frame)
                answers.append(await _answer(ws))
            return answers

    answers = asyncio.run(run())
    assert [m["seq"] for m, _ in answers] == [1, 2, 3] and all(m["dropped"] == 0 for m, _ in answers)
    for message, image in answers:
        assert message["type"] == "result" and message["server_ms"] > 0
        assert decode_image(image).shape == (40, 52, 3)
        np.testing.assert_array_equal(decode_image(image), decode_image(over_http))


def test_bad_input_gets_an_error_on_the_socket_which_stays_open(translate_server: ServerProcess) -> None:
    big_image = encode_png(np.zeros((300, 300, 3), np.uint8))  # 90,000 pixels > MAX_PIXELS, few bytes
    cases = [
        (b"not an image at all", "bad_image"),
        (b"\x89PNG" + bytes(int(MAX_BODY_MB * 2**20)), "payload_too_large"),  # over the frame byte limit
        (big_image, "payload_too_large"),
        ("{not json", "invalid_request"),
        (json.dumps({"type": "dance"}), "invalid_request"),
        (json.dumps([1, 2]), "invalid_request"),
        ("x" * 5000, "payload_too_large"),
        (json.dumps({"type": "sample", "n": 4}), "unsupported_operation"),
        (json.dumps({"type": "settings", "label": 3}), "invalid_request"),  # not a conditional model
    ]

    async def run() -> list[dict[str, Any]]:
        async with websockets.connect(_ws_url(translate_server), max_size=2**24) as ws:
            await ws.recv()
            errors = []
            for message, _ in cases:
                await ws.send(message)
                errors.append((await _answer(ws))[0])
            await ws.send(_frame(2))
            errors.append((await _answer(ws))[0])
            return errors

    answers = asyncio.run(run())
    for (message, kind), answer in zip(cases, answers):
        assert answer["type"] == "error" and answer["kind"] == kind, (message[:40], answer)
        assert answer["detail"]
    assert answers[-1]["type"] == "result"  # the same socket still translates
    assert httpx.get(translate_server.url + "/health").status_code == 200


def test_a_flood_runs_only_the_newest_frames_and_is_told_so(translate_server: ServerProcess) -> None:
    sent = 40

    async def run() -> list[Any]:
        async with websockets.connect(_ws_url(translate_server)) as ws:
            await ws.recv()
            for i in range(sent):  # without waiting for answers
                await ws.send(_frame(i))
            messages = []
            try:
                while True:
                    messages.append(await asyncio.wait_for(ws.recv(), 3))
            except asyncio.TimeoutError:
                pass
            return messages

    messages = [json.loads(m) if isinstance(m, str) else m for m in asyncio.run(run())]
    results = [m for m in messages if isinstance(m, dict) and m["type"] == "result"]
    floods = [m for m in messages if isinstance(m, dict) and m.get("kind") == "flood"]
    assert floods and "dropped" in floods[0]["detail"]
    # Every frame either ran or was replaced by a newer one: none waits in a queue.
    assert len(results) + results[-1]["dropped"] == sent and results[-1]["dropped"] > 0
    assert sum(isinstance(m, bytes) for m in messages) == len(results)
    assert httpx.get(translate_server.url + "/health").status_code == 200


def test_closing_a_socket_frees_its_state(translate_server: ServerProcess) -> None:
    async def run() -> tuple[float, float]:
        sockets = [await websockets.connect(_ws_url(translate_server)) for _ in range(3)]
        for ws in sockets:
            await ws.recv()
        open_now = _streams_open(translate_server)
        await sockets[0].send(_frame(3))  # one of them mid-work when it goes
        for ws in sockets:
            await ws.close()
        deadline = time.monotonic() + 10
        while _streams_open(translate_server) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return open_now, _streams_open(translate_server)

    assert asyncio.run(run()) == (3.0, 0.0)


def test_noise_models_stream_sample_grids_with_a_seed_and_label(noise_server: ServerProcess) -> None:
    expected = httpx.post(noise_server.url + "/v1/generate", json={"n": 4, "seed": 5, "labels": 3, "format": "png"},
                          timeout=60).content

    async def run() -> list[tuple[dict[str, Any], bytes | None]]:
        async with websockets.connect(_ws_url(noise_server)) as ws:
            hello = json.loads(await ws.recv())
            assert hello["kind"] == "noise" and hello["label"]["num_classes"] == 10 and hello["max_n"] == 16
            answers = []
            for message in ({"type": "sample", "n": 4, "seed": 5, "label": 3},
                            {"type": "sample", "n": 4, "label": 11}, {"type": "sample", "n": 17},
                            {"type": "sample", "n": 2, "seed": -1}):
                await ws.send(json.dumps(message))
                answers.append(await _answer(ws))
            await ws.send(_frame())
            answers.append(await _answer(ws))
            return answers

    (grid, image), *errors = asyncio.run(run())
    assert grid["type"] == "result" and grid["seed"] == 5 and image == expected
    assert [e["kind"] for e, _ in errors] == ["unknown_label", "invalid_request", "invalid_request",
                                             "unsupported_operation"]
