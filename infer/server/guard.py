"""ASGI middleware in front of the app: the request-body limit, enforced while reading, and request metrics."""
from __future__ import annotations

import time
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException

from infer.server.errors import error_response
from infer.server.metrics import Metrics

# Paths counted under their own name in the metrics; any other is "other" (bounded label values).
ENDPOINTS = ("/v1/generate", "/v1/translate", "/health", "/metrics", "/openapi.json", "/docs", "/")


class PayloadTooLarge(StarletteHTTPException):
    """A body over the limit, detected while reading it (FastAPI re-raises HTTPExceptions as they are)."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body larger than {limit} bytes")


def _declared_length(scope: dict) -> int | None:
    """The Content-Length header (None when absent, -1 when it is not a number)."""
    length = dict(scope.get("headers") or []).get(b"content-length")
    try:
        return int(length) if length is not None else None
    except ValueError:
        return -1


class Guard:
    """Refuses bodies over `max_body` bytes (declared or streamed), and records every request's status and latency."""

    def __init__(self, app: Any, max_body: int, metrics: Metrics):
        self.app, self.max_body, self.metrics = app, max_body, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        status = [500]
        t0 = time.perf_counter()

        async def send_and_note_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            declared = _declared_length(scope)
            if declared is not None and declared < 0:
                await error_response(400, "invalid_request", "bad Content-Length header")(
                    scope, receive, send_and_note_status)
            elif declared is not None and declared > self.max_body:
                # Refuse before reading a byte of it.
                await error_response(413, "payload_too_large", f"request body of {declared} bytes is larger than "
                                     f"the limit of {self.max_body} bytes")(scope, receive, send_and_note_status)
            else:
                await self.app(scope, self._limited(receive), send_and_note_status)
        finally:
            self.metrics.observe_request(path if path in ENDPOINTS else "other", scope.get("method", ""), status[0],
                                         time.perf_counter() - t0)

    def _limited(self, receive: Any) -> Any:
        """`receive` that raises PayloadTooLarge once more than `max_body` bytes have arrived."""
        received = [0]

        async def limited_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > self.max_body:
                    raise PayloadTooLarge(self.max_body)
            return message

        return limited_receive
