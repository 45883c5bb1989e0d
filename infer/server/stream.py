"""WS /v1/stream: live translation (or sampling) over a WebSocket, for the page at / and any other client.

Messages (text ones are JSON):
  server, on connect   {"type": "hello", "kind", "artifact", "variant", "backend", "label", "image", "max_frame_bytes",
                        "max_n"}: `label` is the model's label input ({"name", "num_classes", "class_names"}) or
                        null, whatever the model's kind: a conditional translator's domain is chosen the same way
  client               a binary message: one encoded frame (JPEG, PNG, WebP, ...), translated with the settings
                       {"type": "settings", "label": L}: the label (index or class name) for later frames
                       {"type": "sample", "n": N, "seed": S, "label": L}: noise models, one sample grid
  server, per job      {"type": "result", "seq", "server_ms", "dropped", "seed"?} then the image as a binary PNG
                       {"type": "error", "kind", "detail"}: bad input; the socket stays open

Nothing queues: a connection holds at most one waiting job, the newest, and a newer frame
replaces it (counted as dropped). A client that keeps sending before its answers arrive gets a
"flood" error (at most once a second) while only its newest frames run. Frames go through the
service's dynamic batcher, so streams and HTTP requests share model calls. A connection's state
lives in its handler and is released when the socket closes (ganrt_stream_connections counts them).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ganrt.errors import InputError, UnsupportedOperation
from infer.batcher import BatcherClosed, Busy
from infer.codecs import decode_image, encode_png
from infer.samples import Samples
from infer.server.endpoints import Service
from infer.server.errors import input_error_status

log = logging.getLogger("ganrt.infer.server")

PATH = "/v1/stream"
MAX_STREAMS = 16
MAX_TEXT_BYTES = 4096
FLOOD_WARNING_EVERY_S = 1.0
# WebSocket close code 1013: "try again later" (RFC 6455 registry).
TRY_AGAIN_LATER = 1013


@dataclass
class Job:
    """One unit of work of a stream: a frame to translate, or a sample grid to draw."""

    frame: bytes | None = None
    sample: dict[str, Any] | None = None


@dataclass
class Connection:
    """One stream's state: its settings and its one waiting job (the newest)."""

    label: Any = None
    pending: Job | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    seq: int = 0
    dropped: int = 0
    last_flood_warning: float = 0.0
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Streams:
    """The open streams of one app, and what they do with the service's model."""

    def __init__(self, service: Service):
        self.service = service
        self.proc = service.model.processor
        self.open: set[int] = set()
        service.metrics.streams.set_function(lambda: len(self.open))

    def hello(self) -> dict[str, Any]:
        """What a client needs to drive this model."""
        model, proc, options = self.service.model, self.proc, self.service.options
        label = proc.label_input
        fmt = proc.in_format
        return {"type": "hello", "kind": model.kind, "artifact": model.name, "variant": model.variant,
                "backend": model.backend,
                "label": None if label is None else {"name": label.name, "num_classes": label.num_classes,
                                                     "class_names": list(label.class_names or ()) or None},
                "image": None if fmt is None else {"channels": fmt.channels, "default_size": fmt.default_size,
                                                   "size_multiple": fmt.size_multiple, "max_side": self.service.max_side},
                "max_frame_bytes": options.max_body_bytes, "max_n": options.max_n}

    # ---- the socket ----------------------------------------------------------------------

    async def handle(self, ws: WebSocket) -> None:
        """Serve one connection until it closes; its state goes with it."""
        await ws.accept()
        if len(self.open) >= MAX_STREAMS:
            await ws.send_json({"type": "error", "kind": "busy", "detail": f"{MAX_STREAMS} streams are open already"})
            await ws.close(TRY_AGAIN_LATER)
            return
        conn = Connection()
        self.open.add(id(conn))
        worker = asyncio.create_task(self._work(ws, conn))
        try:
            await self._send(ws, conn, self.hello())
            await self._receive(ws, conn)
        except WebSocketDisconnect:
            pass
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            self.open.discard(id(conn))

    async def _receive(self, ws: WebSocket, conn: Connection) -> None:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await self._on_frame(ws, conn, message["bytes"])
            elif message.get("text") is not None:
                await self._on_text(ws, conn, message["text"])

    async def _on_frame(self, ws: WebSocket, conn: Connection, data: bytes) -> None:
        limit = self.service.options.max_body_bytes
        if len(data) > limit:
            await self._error(ws, conn, "payload_too_large", f"frame of {len(data)} bytes is larger than the limit "
                                                             f"of {limit} bytes")
            return
        if self.service.model.kind != "translate":
            await self._error(ws, conn, "unsupported_operation", f"{self.service.model.name} samples from noise: "
                                                                 'send {"type": "sample"} messages, not frames')
            return
        await self._offer(ws, conn, Job(frame=data))

    async def _on_text(self, ws: WebSocket, conn: Connection, text: str) -> None:
        if len(text) > MAX_TEXT_BYTES:
            await self._error(ws, conn, "payload_too_large", f"text messages are at most {MAX_TEXT_BYTES} bytes")
            return
        try:
            message = json.loads(text)
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "settings":
                self.proc.labels(1, message.get("label"))  # an unknown label is refused now, not per frame
                conn.label = message.get("label")
            elif kind == "sample":
                await self._offer(ws, conn, Job(sample=self._sample_request(message)))
            else:
                raise InputError('expected a JSON object with "type": "settings" or "sample"')
        except ValueError as e:  # json.JSONDecodeError and InputError are ValueErrors
            status_kind = input_error_status(e)[1] if isinstance(e, InputError) else "invalid_request"
            await self._error(ws, conn, status_kind, str(e) if isinstance(e, InputError) else f"not JSON: {e}")

    def _sample_request(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.service.model.kind != "noise":
            raise UnsupportedOperation(f"{self.service.model.name} translates images: send frames, not samples")
        n, seed, max_n = message.get("n", 16), message.get("seed"), self.service.options.max_n
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= max_n:
            raise InputError(f"n must be an integer in [1, {max_n}], not {n!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
            raise InputError(f"seed must be a non-negative integer, not {seed!r}")
        label = message.get("label")
        self.proc.labels(n, label)
        return {"n": n, "seed": seed, "label": label}

    async def _offer(self, ws: WebSocket, conn: Connection, job: Job) -> None:
        """Make `job` the connection's one waiting job; a job it replaces is dropped, never queued."""
        if conn.pending is not None:
            conn.dropped += 1
            self.service.metrics.stream_frames.labels("dropped").inc()
            now = time.monotonic()
            if now - conn.last_flood_warning >= FLOOD_WARNING_EVERY_S:
                conn.last_flood_warning = now
                await self._error(ws, conn, "flood", f"frames arrive faster than they are answered: {conn.dropped} "
                                                     "dropped so far (only the newest runs); send the next one "
                                                     "after the previous result")
        conn.pending = job
        conn.wake.set()

    # ---- the work ------------------------------------------------------------------------

    async def _work(self, ws: WebSocket, conn: Connection) -> None:
        while True:
            await conn.wake.wait()
            conn.wake.clear()
            job, conn.pending = conn.pending, None
            if job is None:
                continue
            t0 = time.perf_counter()
            try:
                image, extra = await (self._translate(job.frame, conn.label) if job.frame is not None
                                      else self._sample(job.sample or {}))
            except InputError as e:
                await self._error(ws, conn, input_error_status(e)[1], str(e))
                continue
            except Busy as e:
                await self._error(ws, conn, "busy", str(e))
                continue
            except BatcherClosed:
                await self._error(ws, conn, "busy", "the service is shutting down")
                return
            except Exception as e:  # a bug: logged with its traceback, answered, and the stream goes on
                log.exception("stream job failed")
                await self._error(ws, conn, "internal", f"internal error: {type(e).__name__}")
                continue
            conn.seq += 1
            self.service.metrics.stream_frames.labels("ok").inc()
            await self._send(ws, conn, {"type": "result", "seq": conn.seq, "dropped": conn.dropped,
                                        "server_ms": round((time.perf_counter() - t0) * 1000, 2), **extra}, image)

    async def _translate(self, data: bytes, label: Any) -> tuple[bytes, dict[str, Any]]:
        proc, service = self.proc, self.service

        def prepare() -> Any:
            image = decode_image(data, max_pixels=service.options.max_pixels)
            feeds, plans = proc.images_to_feeds([image], max_side=service.max_side)
            if proc.label_input is not None:  # a conditional translator: the chosen domain
                feeds[proc.label_input.name] = proc.labels(1, label).astype(proc.label_input.dtype)
            return feeds, plans

        feeds, plans = await run_in_threadpool(prepare)
        outputs = await service.batcher.infer_async(feeds)

        def finish() -> bytes:
            return encode_png(proc.restore(proc.to_uint8(outputs[proc.output.name])[0], plans[0]))

        return await run_in_threadpool(finish), {}

    async def _sample(self, request: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        feeds, seed = self.proc.noise_feeds(request["n"], request["label"], request["seed"])
        outputs = await self.service.batcher.infer_async(feeds)

        def draw() -> bytes:
            return encode_png(Samples.from_outputs(self.proc, feeds, seed, outputs).picture())

        return await run_in_threadpool(draw), {"seed": seed}

    # ---- sending -------------------------------------------------------------------------

    async def _send(self, ws: WebSocket, conn: Connection, message: dict[str, Any], image: bytes | None = None) -> None:
        # One sender at a time: the result's JSON and its image must stay adjacent.
        async with conn.send_lock:
            await ws.send_text(json.dumps(message))
            if image is not None:
                await ws.send_bytes(image)

    async def _error(self, ws: WebSocket, conn: Connection, kind: str, detail: str) -> None:
        if kind != "flood":
            self.service.metrics.stream_frames.labels("error").inc()
        await self._send(ws, conn, {"type": "error", "kind": kind, "detail": detail})


def add_stream(app: FastAPI, service: Service) -> None:
    """WS /v1/stream, and the open streams on app.state.streams."""
    streams = Streams(service)
    app.state.streams = streams
    app.websocket(PATH)(streams.handle)
