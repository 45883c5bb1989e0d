"""`python -m infer serve`: the HTTP service (FastAPI + uvicorn), batched through the dynamic batcher.

Endpoints (the OpenAPI schema at /openapi.json, browsable at /docs):
  POST /v1/generate   {n, labels?, seed?, format: png|npz|zip} -> a PNG grid, or npz/zip of images
  POST /v1/translate  an image (multipart field `image`, or the raw body) -> PNG of the same size
  GET  /health        backend, artifact, variant, readiness
  GET  /metrics       Prometheus text (requests, latency, batch sizes, queue depth)

Errors are JSON `{"detail": message, "type": kind}`: 400 bad image bytes / wrong endpoint for
this model, 413 body or image too large (enforced while reading), 415 unsupported content
type, 422 invalid request (n too large, unknown label), 503 queue full (with Retry-After).
"""
# No `from __future__ import annotations`: FastAPI resolves the request model defined in
# create_app() from real annotations.
import ipaddress
import json
import logging
import math
import time
from contextlib import asynccontextmanager
from typing import Any, Literal, Optional, Union

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ganrt.errors import BadImage, ImageTooLarge, InputError, UnknownLabel, UnsupportedOperation
from infer.api import Generator
from infer.batcher import BatcherClosed, Busy, DynamicBatcher
from infer.prepost import (
    DEFAULT_MAX_PIXELS,
    arrays_to_npz,
    decode_image,
    encode_png,
    images_to_zip,
    make_grid,
    points_to_image,
)

log = logging.getLogger("ganrt.infer.server")

ENDPOINTS = ("/v1/generate", "/v1/translate", "/health", "/metrics", "/openapi.json", "/docs")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/bmp", "image/gif", "image/tiff")
DEFAULT_MAX_BODY = 10 * 1024 * 1024


class ErrorResponse(BaseModel):
    """Every error the service itself returns."""

    detail: str = Field(description="What went wrong, in one sentence.")
    type: str = Field(description="Machine-readable kind: bad_image, payload_too_large, unknown_label, "
                                  "unsupported_operation, unsupported_media_type, busy, invalid_request, internal.")


class HealthResponse(BaseModel):
    """GET /health."""

    status: Literal["ok", "starting", "stopping"]
    ready: bool
    artifact: str
    variant: str
    kind: Literal["translate", "noise"]
    backend: str
    max_batch: int
    max_n: int
    queue_depth: int
    queue_size: int


class PayloadTooLarge(StarletteHTTPException):
    """A body over the limit, detected while reading it (FastAPI re-raises HTTPExceptions as they are)."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body larger than {limit} bytes")


def _error(status: int, kind: str, message: str, headers: Optional[dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"detail": message, "type": kind}, status_code=status, headers=headers)


def _error_doc(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


class _Metrics:
    """Prometheus metrics on a per-app registry (several apps in one process do not collide)."""

    def __init__(self, model: Generator):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ganrt_http_requests", "HTTP requests by endpoint, method and status",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("ganrt_http_request_duration_seconds", "HTTP request latency", ["endpoint"],
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30), registry=r)
        self.batch_size = Histogram("ganrt_batch_size", "Items per model call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.batch_seconds = Histogram("ganrt_batch_duration_seconds", "Model call duration",
                                       buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), registry=r)
        self.queue_depth = Gauge("ganrt_queue_depth", "Items waiting for a batch", registry=r)
        self.rejected = Gauge("ganrt_queue_rejected", "Requests refused because the queue was full (total)",
                              registry=r)
        info = Gauge("ganrt_model_info", "The model served (value 1)", ["artifact", "variant", "backend"], registry=r)
        info.labels(model.name, model.variant, model.backend).set(1)

    def watch(self, batcher: DynamicBatcher) -> None:
        """Read the queue gauges from `batcher` at scrape time."""
        self.queue_depth.set_function(lambda: batcher.queue_depth)
        self.rejected.set_function(lambda: batcher.stats.rejected)

    def on_batch(self, items: int, requests: int, seconds: float) -> None:
        self.batch_size.observe(items)
        self.batch_seconds.observe(seconds)


class _Guard:
    """ASGI middleware: body-size limit enforced while reading, and request metrics."""

    def __init__(self, app: Any, max_body: int, metrics: _Metrics):
        self.app, self.max_body, self.metrics = app, max_body, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"
        status = [500]
        t0 = time.perf_counter()

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            try:
                declared = int(length) if length is not None else None
            except ValueError:
                declared = -1
            if declared is not None and declared < 0:
                await _error(400, "invalid_request", "bad Content-Length header")(scope, receive, send_wrapper)
            elif declared is not None and declared > self.max_body:
                # Refuse before reading a byte of it.
                await _error(413, "payload_too_large", f"request body of {declared} bytes is larger than "
                             f"the limit of {self.max_body} bytes")(scope, receive, send_wrapper)
            else:
                received = [0]

                async def limited_receive() -> dict:
                    message = await receive()
                    if message["type"] == "http.request":
                        received[0] += len(message.get("body", b""))
                        if received[0] > self.max_body:
                            raise PayloadTooLarge(self.max_body)
                    return message

                await self.app(scope, limited_receive, send_wrapper)
        finally:
            self.metrics.requests.labels(endpoint, scope.get("method", ""), str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)


def create_app(model: Generator, *, max_batch: Optional[int] = None, max_delay_ms: float = 5.0,
               queue_size: int = 64, max_body_bytes: int = DEFAULT_MAX_BODY, max_n: int = 64,
               max_side: Optional[int] = 1024, max_pixels: int = DEFAULT_MAX_PIXELS) -> FastAPI:
    """A FastAPI app serving `model` (which the caller keeps ownership of and closes)."""
    proc = model.processor
    max_batch = max(1, min(max_batch or model.max_batch, model.max_batch))
    if max_n > queue_size:
        raise ValueError(f"max_n ({max_n}) cannot exceed queue_size ({queue_size}): such requests could never run")
    metrics = _Metrics(model)
    batcher = DynamicBatcher(model.run, max_batch=max_batch, max_delay_ms=max_delay_ms, queue_size=queue_size,
                             on_batch=metrics.on_batch, name="server-batcher")
    metrics.watch(batcher)
    state = {"status": "ok"}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state["status"] = "stopping"
        await run_in_threadpool(batcher.close)

    app = FastAPI(
        title="ganrt inference service",
        version="1",
        summary=f"{model.name} ({model.variant}, {model.kind}) on {model.backend}",
        description=(f"Serves artifact `{model.name}` (variant `{model.variant}`). "
                     + ("Use POST /v1/generate." if model.kind == "noise" else "Use POST /v1/translate.")
                     + " Model calls are grouped by a dynamic batcher "
                       f"(max batch {max_batch}, max delay {max_delay_ms} ms, queue {queue_size} items)."),
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.metrics = metrics
    app.state.model = model
    app.add_middleware(_Guard, max_body=max_body_bytes, metrics=metrics)

    # ---- errors -> JSON -------------------------------------------------------------------

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> JSONResponse:
        return _error(503, "busy", str(exc), {"Retry-After": str(int(math.ceil(exc.retry_after_s)))})

    @app.exception_handler(BatcherClosed)
    async def _closed(request: Request, exc: BatcherClosed) -> JSONResponse:
        return _error(503, "busy", "the service is shutting down", {"Retry-After": "5"})

    @app.exception_handler(InputError)
    async def _bad_input(request: Request, exc: InputError) -> JSONResponse:
        if isinstance(exc, ImageTooLarge):
            return _error(413, "payload_too_large", str(exc))
        if isinstance(exc, BadImage):
            return _error(400, "bad_image", str(exc))
        if isinstance(exc, UnsupportedOperation):
            return _error(400, "unsupported_operation", str(exc))
        if isinstance(exc, UnknownLabel):
            return _error(422, "unknown_label", str(exc))
        return _error(422, "invalid_request", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {413: "payload_too_large", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code,
                                                                                           "invalid_request")
        return _error(exc.status_code, kind, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid request"))
        return JSONResponse({"detail": message, "type": "invalid_request",
                             "errors": json.loads(json.dumps(errors, default=str))}, status_code=422)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return _error(500, "internal", f"internal error: {type(exc).__name__}")

    # ---- endpoints -------------------------------------------------------------------------

    labels_doc = "Class per sample: one value for all, or n values. Default: cycle through the classes."
    if proc.num_classes:
        names = f" Names: {', '.join(proc.class_names)}." if proc.class_names else ""
        labels_doc += f" Integers 0..{proc.num_classes - 1} or class names.{names}"
    else:
        labels_doc += " This model is not conditional: leave it out."

    class GenerateRequest(BaseModel):
        """POST /v1/generate."""

        model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{"n": 16, "seed": 0, "format": "png"}]}}
        n: int = Field(1, ge=1, le=max_n, description=f"Number of samples (1..{max_n}).")
        labels: Optional[Union[int, str, list[Union[int, str]]]] = Field(None, description=labels_doc)
        seed: Optional[int] = Field(None, ge=0, le=2**63 - 1,
                                    description="Noise seed: the same seed gives the same samples. "
                                                "Default: random (returned in the X-Seed header).")
        format: Literal["png", "npz", "zip"] = Field(
            "png", description="png: one grid image; npz: arrays `images` (uint8 NHWC) or `points`, "
                               "`labels`, `seed`; zip: one PNG per sample.")

    @app.post(
        "/v1/generate",
        summary="Sample images from noise",
        response_class=Response,
        responses={
            200: {"description": "A PNG grid (format png; 2-pixel padding, ceil(sqrt(n)) columns), an npz "
                                 "(format npz) or a zip of PNGs (format zip). Header X-Seed: the seed used.",
                  "content": {"image/png": {"schema": {"type": "string", "format": "binary"}},
                              "application/x-npz": {"schema": {"type": "string", "format": "binary"}},
                              "application/zip": {"schema": {"type": "string", "format": "binary"}}}},
            400: _error_doc("This artifact translates images (use /v1/translate), or the format does "
                            "not fit its output."),
            413: _error_doc("Request body too large."),
            422: _error_doc("Invalid request: n out of range, unknown label, wrong label count."),
            503: _error_doc("Queue full: retry after the Retry-After header's seconds."),
        },
    )
    async def generate(req: GenerateRequest) -> Response:
        if model.kind != "noise":
            raise UnsupportedOperation(f"{model.name} is an image-to-image model ({model.variant}): "
                                       "POST an image to /v1/translate instead")
        if proc.output.kind == "points" and req.format == "zip":
            raise UnsupportedOperation("this model outputs points, not images: use format npz or png (a scatter plot)")
        feeds, seed = proc.noise_feeds(req.n, req.labels, req.seed)
        outputs = await batcher.infer_async(feeds)

        def encode() -> tuple[bytes, str]:
            result = proc.outputs_to_user(outputs)
            if req.format == "npz":
                arrays = {"points" if proc.output.kind == "points" else "images": result,
                          "seed": np.int64(seed)}
                if proc.label_input is not None:
                    arrays["labels"] = feeds[proc.label_input.name]
                return arrays_to_npz(**arrays), "application/x-npz"
            if req.format == "zip":
                return images_to_zip(result), "application/zip"
            image = points_to_image(result) if proc.output.kind == "points" else make_grid(result)
            return encode_png(image), "image/png"

        body, media = await run_in_threadpool(encode)
        return Response(body, media_type=media, headers={"X-Seed": str(seed)})

    translate_body = {
        "required": True,
        "description": f"An image (PNG, JPEG, WebP, BMP, ...; at most {max_body_bytes} bytes and {max_pixels} "
                       "pixels): a multipart form with the file in field `image`, or the raw bytes as the body.",
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                               "properties": {"image": {"type": "string", "format": "binary"}}}},
            **{t: {"schema": {"type": "string", "format": "binary"}} for t in (*IMAGE_TYPES, "application/octet-stream")},
        },
    }

    @app.post(
        "/v1/translate",
        summary="Translate one image",
        response_class=Response,
        openapi_extra={"requestBody": translate_body},
        responses={
            200: {"description": "The translated image as PNG, the same size as the input"
                                 + (f" (run at most {max_side} pixels on the longer side, then resized back)."
                                    if max_side else "."),
                  "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
            400: _error_doc("Bytes that are not a decodable image, a form without `image`, or a noise "
                            "model (use /v1/generate)."),
            413: _error_doc("Body or image too large (bytes or pixels)."),
            415: _error_doc("Content type is neither multipart/form-data nor an image."),
            503: _error_doc("Queue full: retry after the Retry-After header's seconds."),
        },
    )
    async def translate(request: Request) -> Response:
        if model.kind != "translate":
            raise UnsupportedOperation(f"{model.name} samples from noise ({model.variant}): it does not translate "
                                       "images; POST to /v1/generate instead")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            async with request.form(max_files=1, max_fields=8) as form:
                upload = form.get("image")
                if upload is None or isinstance(upload, str):
                    files = [v for _, v in form.multi_items() if not isinstance(v, str)]
                    if len(files) != 1:
                        raise BadImage("multipart form has no file field `image`")
                    upload = files[0]
                data = await upload.read()
        elif ctype in ("", "application/octet-stream") or ctype.startswith("image/"):
            data = await request.body()
        else:
            return _error(415, "unsupported_media_type",
                          f"content type {ctype!r}: send multipart/form-data (field `image`) or an image/* body")

        def prepare() -> Any:
            image = decode_image(data, max_pixels=max_pixels)
            return proc.images_to_feeds([image], max_side=max_side)

        feeds, plans = await run_in_threadpool(prepare)
        outputs = await batcher.infer_async(feeds)

        def finish() -> bytes:
            image = proc.to_uint8(outputs[proc.output.name])[0]
            return encode_png(proc.restore(image, plans[0]))

        return Response(await run_in_threadpool(finish), media_type="image/png")

    @app.get("/health", summary="Readiness and what is served", response_model=HealthResponse,
             responses={503: {"model": HealthResponse, "description": "Not ready (stopping)."}})
    async def health() -> JSONResponse:
        ready = state["status"] == "ok"
        body = HealthResponse(status=state["status"], ready=ready, artifact=model.name, variant=model.variant,
                              kind=model.kind, backend=model.backend, max_batch=max_batch, max_n=max_n,
                              queue_depth=batcher.queue_depth, queue_size=queue_size)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"description": "Prometheus text exposition format.",
                              "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}})
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(model: Generator, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          limit_concurrency: Optional[int] = 256, **app_options: Any) -> None:
    """Run the service until interrupted (uvicorn handles SIGINT/SIGTERM gracefully)."""
    import uvicorn

    if not is_loopback(host):
        log.warning("listening on %s: reachable from other machines, and there is no authentication", host)
    app = create_app(model, **app_options)
    uvicorn.run(app, host=host, port=port, log_level=log_level, limit_concurrency=limit_concurrency,
                timeout_graceful_shutdown=10)
