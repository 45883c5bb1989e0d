"""The service's endpoints, one small function each, over the state one app shares (`Service`)."""
# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime
# (the generate handler's body model is a class built for each app).
from dataclasses import dataclass
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ganrt.errors import BadImage, UnsupportedOperation
from infer.api import Generator
from infer.batcher import DynamicBatcher
from infer.codecs import decode_image, encode_png, images_to_zip
from infer.options import ServiceOptions
from infer.samples import Samples
from infer.server import schemas
from infer.server.metrics import Metrics


@dataclass
class Service:
    """What the endpoints of one app share: the model, its batcher and metrics, the limits, the status."""

    model: Generator
    options: ServiceOptions
    max_batch: int
    batcher: DynamicBatcher
    metrics: Metrics
    status: str = "ok"

    @property
    def max_side(self) -> Optional[int]:
        """The longest side a translation runs at (None: no limit)."""
        return self.options.max_side or None


def add_generate(app: FastAPI, service: Service) -> None:
    """POST /v1/generate: n samples from noise, as a PNG grid, an npz or a zip of PNGs."""
    model, proc = service.model, service.model.processor
    GenerateRequest = schemas.generate_request(service.options.max_n, proc)

    async def generate(req: GenerateRequest) -> Response:
        if model.kind != "noise":
            raise UnsupportedOperation(f"{model.name} is an image-to-image model ({model.variant}): "
                                       "POST an image to /v1/translate instead")
        if proc.output.kind == "points" and req.format == "zip":
            raise UnsupportedOperation("this model outputs points, not images: use format npz or png (a scatter plot)")
        feeds, seed = proc.noise_feeds(req.n, req.labels, req.seed, req.codes)
        outputs = await service.batcher.infer_async(feeds)

        def encode() -> tuple[bytes, str]:
            samples = Samples.from_outputs(proc, feeds, seed, outputs)
            if req.format == "npz":
                return samples.to_npz(), "application/x-npz"
            if req.format == "zip":
                return images_to_zip(samples.values), "application/zip"
            return encode_png(samples.picture()), "image/png"

        body, media = await run_in_threadpool(encode)
        return Response(body, media_type=media, headers={"X-Seed": str(seed)})

    app.post("/v1/generate", summary="Sample images from noise", response_class=Response,
             responses=schemas.GENERATE_RESPONSES)(generate)


async def _image_and_domain(request: Request) -> tuple[bytes, Optional[str]]:
    """The image a request carries (multipart field `image` or its one file, or the raw body) and its target
    domain (form field or query parameter `domain`; None when neither names one)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    domain = request.query_params.get("domain")
    if ctype in ("", "application/octet-stream") or ctype.startswith("image/"):
        return await request.body(), domain
    if ctype != "multipart/form-data":
        raise StarletteHTTPException(415, f"content type {ctype!r}: send multipart/form-data (field `image`) "
                                          "or an image/* body")
    async with request.form(max_files=1, max_fields=8) as form:
        upload, field = form.get("image"), form.get("domain")
        if upload is None or isinstance(upload, str):
            files = [v for _, v in form.multi_items() if not isinstance(v, str)]
            if len(files) != 1:
                raise BadImage("multipart form has no file field `image`")
            upload = files[0]
        return await upload.read(), field if isinstance(field, str) else domain


def add_translate(app: FastAPI, service: Service) -> None:
    """POST /v1/translate: one image in, the translated image (PNG, same size) out."""
    model, proc = service.model, service.model.processor

    async def translate(request: Request) -> Response:
        if model.kind != "translate":
            raise UnsupportedOperation(f"{model.name} samples from noise ({model.variant}): it does not translate "
                                       "images; POST to /v1/generate instead")
        data, domain = await _image_and_domain(request)
        proc.domains(1, domain)  # a missing or unknown domain is refused before the image is decoded

        def prepare() -> Any:
            image = decode_image(data, max_pixels=service.options.max_pixels)
            return proc.images_to_feeds([image], max_side=service.max_side, side=service.options.size, domain=domain)

        feeds, plans = await run_in_threadpool(prepare)
        outputs = await service.batcher.infer_async(feeds)

        def finish() -> bytes:
            image = proc.to_uint8(outputs[proc.output.name])[0]
            return encode_png(proc.restore(image, plans[0]))

        return Response(await run_in_threadpool(finish), media_type="image/png")

    app.post("/v1/translate", summary="Translate one image", response_class=Response,
             openapi_extra=_translate_openapi(service),
             responses=schemas.translate_responses(*_translate_fit(service)))(translate)


def _translate_openapi(service: Service) -> dict[str, Any]:
    """The request body of /v1/translate, and its `domain` query parameter for a multi-domain model."""
    domain = schemas.domain_doc(service.model.processor)
    extra: dict[str, Any] = {"requestBody": schemas.translate_body(service.options.max_body_bytes,
                                                                  service.options.max_pixels, domain)}
    if domain:
        extra["parameters"] = [{"name": "domain", "in": "query", "required": False, "description": domain,
                                "schema": {"type": "string"}}]
    return extra


def _translate_fit(service: Service) -> tuple[str, tuple[int, int]]:
    """At which size /v1/translate runs images, for people, and the smallest image it takes."""
    proc = service.model.processor
    if service.model.kind != "translate":
        return "a noise model: it does not translate", (1, 1)
    side, cap = proc.long_side(service.options.size), service.max_side
    if side is None:
        return f"run at its own size{f', scaled down to at most {cap} pixels on the longer side' if cap else ''}", \
            proc.min_image_size
    return f"run with its longer side at {min(side, cap or side)} pixels, then resized back", proc.min_image_size


def add_health(app: FastAPI, service: Service) -> None:
    """GET /health: what is served, and whether it is ready (503 while stopping)."""
    model = service.model

    async def health() -> JSONResponse:
        ready = service.status == "ok"
        body = schemas.HealthResponse(
            status=service.status, ready=ready, artifact=model.name, variant=model.variant, kind=model.kind,
            backend=model.backend, max_batch=service.max_batch, max_n=service.options.max_n,
            queue_depth=service.batcher.queue_depth, queue_size=service.options.queue_size)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    app.get("/health", summary="Readiness and what is served", response_model=schemas.HealthResponse,
            responses=schemas.HEALTH_RESPONSES)(health)


def add_metrics(app: FastAPI, service: Service) -> None:
    """GET /metrics: Prometheus text."""
    async def prometheus_metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=schemas.METRICS_MEDIA_TYPE)

    app.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses=schemas.METRICS_RESPONSES)(prometheus_metrics)


ENDPOINTS = (add_generate, add_translate, add_health, add_metrics)
