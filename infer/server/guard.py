"""ASGI middleware in front of the app: the request body, read and limited here; the limit on requests in
progress; request metrics.

A request counts as in progress from its complete body to its response, and it is counted here,
not by uvicorn, which counts open connections: there, idle sockets and slow clients still
sending a head or a body would take the places of working requests and lock every client out
with 503. Slow and idle connections are the connection's business (`infer.server.connection`).
"""
from __future__ import annotations

import logging
import time
from typing import Any

from infer.server.errors import error_response
from infer.server.metrics import Metrics

log = logging.getLogger("ganrt.infer.server")

# Paths counted under their own name in the metrics; any other is "other" (bounded label values).
ENDPOINTS = ("/v1/generate", "/v1/translate", "/health", "/metrics", "/openapi.json", "/docs", "/")
# What uvicorn's HTTP/1 parsers put in scope["http_version"] for real clients; any other is refused.
HTTP_VERSIONS = ("1.0", "1.1")
# The status a request that its client abandoned is counted under (nginx's "client closed request").
CLIENT_CLOSED = 499


class PayloadTooLarge(Exception):
    """A body over the limit, detected while reading it."""


class Disconnected(Exception):
    """The client left before its body arrived."""


class ReceivingTooMuch(Exception):
    """The bodies being received at once would pass their memory budget."""


def _declared_length(scope: dict) -> int | None:
    """The Content-Length header (None when absent, -1 when it is not a number)."""
    length = dict(scope.get("headers") or []).get(b"content-length")
    try:
        return int(length) if length is not None else None
    except ValueError:
        return -1


class Guard:
    """Reads each request's body (413 past `max_body` bytes, declared or streamed), refuses requests beyond
    `limit_concurrency` in progress (503), and records every request's status and latency.

    Bodies still arriving hold no place among the requests in progress, but their bytes count:
    at most `limit_concurrency` bodies' worth (`limit_concurrency * max_body` bytes) is received at
    once, beyond it 503, so memory stays bounded however many uploads are open.
    """

    def __init__(self, app: Any, max_body: int, metrics: Metrics, limit_concurrency: int):
        self.app, self.max_body, self.metrics = app, max_body, metrics
        self.limit_concurrency = limit_concurrency
        self.in_progress = 0
        self.receiving = 0  # bytes of bodies being received now
        self.receive_budget = limit_concurrency * max(max_body, 1)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        status = [CLIENT_CLOSED]
        t0 = time.perf_counter()

        async def send_and_note_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._admit(scope, receive, send_and_note_status)
        finally:
            self.metrics.observe_request(path if path in ENDPOINTS else "other", scope.get("method", ""), status[0],
                                         time.perf_counter() - t0)

    async def _admit(self, scope: dict, receive: Any, send: Any) -> None:
        """The body first, then a place among the requests in progress, then the app."""
        version = scope.get("http_version", "1.1")
        if version not in HTTP_VERSIONS:
            # 505 would be the server's fault by its class; an invented version is the client's mistake.
            await error_response(400, "invalid_request", f"unsupported HTTP version {version!r}")(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared < 0:
            await error_response(400, "invalid_request", "bad Content-Length header")(scope, receive, send)
            return
        if declared is not None and declared > self.max_body:
            # Refuse before reading a byte of it.
            await error_response(413, "payload_too_large", f"request body of {declared} bytes is larger than "
                                 f"the limit of {self.max_body} bytes")(scope, receive, send)
            return
        try:
            body = await self._body(receive)
        except PayloadTooLarge:
            await error_response(413, "payload_too_large", f"request body larger than {self.max_body} bytes")(
                scope, receive, send)
            return
        except ReceivingTooMuch:
            await error_response(503, "busy", "too many request bodies are arriving at once",
                                 {"Retry-After": "1"})(scope, receive, send)
            return
        except Disconnected:
            # Not the service's fault, and nobody is left to answer: a note, not an error.
            log.info("%s %s: the client disconnected before its request body arrived", scope.get("method"),
                     scope.get("path"))
            return
        if self.in_progress >= self.limit_concurrency:
            await error_response(503, "busy", f"{self.limit_concurrency} requests are in progress already",
                                 {"Retry-After": "1"})(scope, receive, send)
            return
        self.in_progress += 1
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.in_progress -= 1

    async def _body(self, receive: Any) -> bytes:
        """The whole request body; PayloadTooLarge once more than `max_body` bytes have arrived."""
        chunks, size = [], 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Disconnected
                chunk = message.get("body", b"")
                if size + len(chunk) > self.max_body:
                    raise PayloadTooLarge
                if self.receiving + len(chunk) > self.receive_budget:
                    raise ReceivingTooMuch
                size += len(chunk)
                self.receiving += len(chunk)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        finally:
            self.receiving -= size


def _replay(body: bytes, receive: Any) -> Any:
    """A `receive` that hands the app the body already read, then whatever comes next (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay_receive() -> dict:
        return pending.pop() if pending else await receive()

    return replay_receive
