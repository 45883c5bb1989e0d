"""One HTTP/1.1 connection: uvicorn's h11 protocol with the deadlines it lacks, and answers for oversized heads.

uvicorn closes an idle connection only after a response (keep-alive); a socket that never
sends, or never finishes its head or body, would stay open for ever. Here every connection
runs against one deadline at a time:
- head: a new connection, or the next request on a kept-alive one, has `head_s` to deliver a
  complete request head (status line and headers). Silence is closed quietly; a partial head
  gets 408.
- body: from the head, the body has `body_s` to arrive in full (a total, so that trickling a
  byte at a time does not extend it). 408 if the app is still waiting for it, else a close.
A head longer than h11's limit (16 KiB by default) gets 414 (the request line) or 431 (the
headers), however it arrives, and an unparsable one 400. Error replies are followed by a
lingering close: the rest of the request is read and dropped for a moment, or the kernel's
reset could destroy the reply before the client reads it.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("ganrt.infer.server")

# How long an answered, refused request may keep sending before the socket is closed.
LINGER_S = 2.0


@dataclass(frozen=True)
class Deadlines:
    """Seconds a client has for each part of a request (`ServeOptions.header_timeout`, `body_timeout`)."""

    head_s: float
    body_s: float


def _reply(status: int, kind: str, message: str) -> tuple[h11.Response, bytes]:
    """An error reply in the service's JSON form, ending the connection."""
    body = json.dumps({"detail": message, "type": kind}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    return h11.Response(status_code=status, headers=headers, reason=HTTPStatus(status).phrase.encode()), body


class GuardedH11Protocol(H11Protocol):
    """An h11 connection that times out slow and idle clients (`Deadlines`) and answers oversized heads."""

    def __init__(self, *args: Any, deadlines: Deadlines, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadlines = deadlines
        # The longest head h11 buffers before giving up on it (what uvicorn gave its h11.Connection).
        self.head_limit = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        self._timer: asyncio.TimerHandle | None = None
        self._phase = ""  # "head" or "body": what the running timer waits for
        self._lingering = False

    # ---- the deadline follows the request's progress --------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of a refused request: dropped
        if self.conn.their_state is h11.IDLE and self._head_too_long(data):
            return
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._cancel()  # the WebSocket protocol takes the transport over, with its own pings and timeouts
        super().handle_websocket_upgrade(event)

    def _follow(self) -> None:
        """Arm the deadline of what the client owes now (a head, a body), or none while the app works."""
        if self.transport is None or self.transport.is_closing() or self._lingering:
            return
        state = self.conn.their_state
        phase = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else ""
        if phase == self._phase:
            return
        self._cancel()
        if phase:
            seconds = self.deadlines.head_s if phase == "head" else self.deadlines.body_s
            self._phase, self._timer = phase, self.loop.call_later(seconds, self._expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._phase = None, ""

    def _expired(self) -> None:
        phase, self._timer, self._phase = self._phase, None, ""
        if self.transport.is_closing():
            return
        if phase == "head":
            if not self.conn.trailing_data[0]:
                log.debug("closing an idle connection from %s", self.client)
                self.transport.close()
                return
            self._refuse(408, "request_timeout", f"the request head did not arrive within {self.deadlines.head_s:g} s")
            return
        cycle = self.cycle
        if cycle is None or cycle.response_started:
            self.transport.close()  # answered already; the rest of its body is not worth waiting for
            return
        # The app is still waiting for the body: answer for it, and hand it a disconnect.
        cycle.disconnected = True
        cycle.message_event.set()
        self._refuse(408, "request_timeout", f"the request body did not arrive within {self.deadlines.body_s:g} s")

    # ---- refusals -------------------------------------------------------------------------

    def _head_too_long(self, data: bytes) -> bool:
        """Refuse a request head longer than `head_limit` (h11 checks only heads that arrive in pieces)."""
        pending = self.conn.trailing_data[0] + data
        end = pending.find(b"\r\n\r\n")
        if (end + 4 if end >= 0 else len(pending)) <= self.head_limit:
            return False
        if b"\n" in pending[: self.head_limit]:  # the request line ended: the headers are too long
            self._refuse(431, "headers_too_large", f"request headers are longer than {self.head_limit} bytes")
        else:
            self._refuse(414, "uri_too_long", f"request line (URL) is longer than {self.head_limit} bytes")
        return True

    def send_400_response(self, msg: str) -> None:
        """h11 could not parse the head (uvicorn's name for this moment)."""
        self._refuse(400, "invalid_request", "malformed HTTP request")

    def _refuse(self, status: int, kind: str, message: str) -> None:
        """Send an error reply outside the app, then close once the client stops sending (or after LINGER_S)."""
        self._cancel()
        response, body = _reply(status, kind, message)
        try:
            self.transport.write(b"".join(self.conn.send(event) or b""
                                          for event in (response, h11.Data(data=body), h11.EndOfMessage())))
        except h11.LocalProtocolError:
            pass  # a state h11 cannot answer from: the close says it
        self._lingering = True
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)
