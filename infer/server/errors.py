"""Every error the service answers, as JSON `{"detail": message, "type": kind}` with its HTTP status."""
from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ganrt.errors import BadImage, ImageTooLarge, ImageTooSmall, InputError, UnknownLabel, UnsupportedOperation
from infer.batcher import BatcherClosed, Busy

log = logging.getLogger("ganrt.infer.server")

# Input errors, most specific first: (type, HTTP status, kind).
_INPUT_ERRORS = ((ImageTooLarge, 413, "payload_too_large"), (ImageTooSmall, 422, "image_too_small"),
                 (BadImage, 400, "bad_image"),
                 (UnsupportedOperation, 400, "unsupported_operation"), (UnknownLabel, 422, "unknown_label"),
                 (InputError, 422, "invalid_request"))
_HTTP_KINDS = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


def error_response(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON body every error of the service has."""
    return JSONResponse({"detail": message, "type": kind}, status_code=status, headers=headers)


async def _busy(request: Request, exc: Busy) -> JSONResponse:
    return error_response(503, "busy", str(exc), {"Retry-After": str(int(math.ceil(exc.retry_after_s)))})


async def _closed(request: Request, exc: BatcherClosed) -> JSONResponse:
    return error_response(503, "busy", "the service is shutting down", {"Retry-After": "5"})


def input_error_status(exc: InputError) -> tuple[int, str]:
    """(HTTP status, kind) of a bad input, as the service answers it (the WebSocket stream sends the kind)."""
    return next((s, k) for t, s, k in _INPUT_ERRORS if isinstance(exc, t))


async def _bad_input(request: Request, exc: InputError) -> JSONResponse:
    status, kind = input_error_status(exc)
    return error_response(status, kind, str(exc))


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = _HTTP_KINDS.get(exc.status_code, "invalid_request")
    return error_response(exc.status_code, kind, str(exc.detail), getattr(exc, "headers", None))


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    # The first problem as the one-line detail; all of them under "errors", where and what only: the
    # values the client sent are not echoed (NaN and Infinity have no JSON form, and a value can be large).
    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "invalid")),
               "type": str(e.get("type", ""))} for e in exc.errors()]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(p for p in first["loc"] if p != "body")
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    return JSONResponse({"detail": message, "type": "invalid_request", "errors": errors}, status_code=422)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error on %s", request.url.path)
    return error_response(500, "internal", f"internal error: {type(exc).__name__}")


def add_error_handlers(app: FastAPI) -> None:
    """Turn every exception an endpoint raises into its JSON error (a bug: 500, logged with its traceback)."""
    for exc_type, handler in ((Busy, _busy), (BatcherClosed, _closed), (InputError, _bad_input),
                              (StarletteHTTPException, _http), (RequestValidationError, _invalid),
                              (Exception, _internal)):
        app.add_exception_handler(exc_type, handler)  # type: ignore[arg-type]
