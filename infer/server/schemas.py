"""What the service's requests and responses look like: pydantic models and the OpenAPI documents of each endpoint."""
# No `from __future__ import annotations`: pydantic and FastAPI read these annotations at runtime,
# and GenerateRequest is built per app (its limits and label names come from the model served).
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, Field

from infer.prepost import Processor
from infer.server.metrics import MEDIA_TYPE as METRICS_MEDIA_TYPE

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/bmp", "image/gif", "image/tiff")


class ErrorResponse(BaseModel):
    """Every error the service itself returns."""

    detail: str = Field(description="What went wrong, in one sentence.")
    type: str = Field(description="Machine-readable kind: bad_image, image_too_small, payload_too_large, "
                                  "unknown_label, unsupported_operation, unsupported_media_type, busy, "
                                  "invalid_request, request_timeout, uri_too_long, headers_too_large, internal.")


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


def _labels_doc(processor: Processor) -> str:
    doc = "Class per sample: one value for all, or n values. Default: cycle through the classes."
    if not processor.num_classes:
        return doc + " This model is not conditional: leave it out."
    names = f" Names: {', '.join(processor.class_names)}." if processor.class_names else ""
    return doc + f" Integers 0..{processor.num_classes - 1} or class names.{names}"


def _codes_doc(processor: Processor) -> str:
    spec = processor.code_input
    if spec is None:
        return "Continuous latent codes: this model has none, leave it out."
    lo, hi = spec.range or (-1.0, 1.0)
    return (f"Continuous latent codes: {spec.shape[1]} numbers in [{lo:g}, {hi:g}] for all samples, or n rows of "
            f"{spec.shape[1]}. Default: drawn uniformly from the seed.")


def domain_doc(processor: Processor) -> str | None:
    """What the `domain` of POST /v1/translate is for a multi-domain model; None for one without."""
    if processor.label_input is None:
        return None
    names = f" ({', '.join(processor.class_names)})" if processor.class_names else ""
    return (f"The target domain (required): an index 0..{(processor.num_classes or 1) - 1} or a name{names}; "
            "a query parameter or a form field.")


def generate_request(max_n: int, processor: Processor) -> type[BaseModel]:
    """The body of POST /v1/generate for one served model: its n limit, labels and codes in the schema."""
    labels_doc, codes_doc = _labels_doc(processor), _codes_doc(processor)

    class GenerateRequest(BaseModel):
        """POST /v1/generate."""

        # Strict: `true` is not 1 and "3" is not 3 (nor is "٣", which lax int parsing reads as 3).
        model_config = {"extra": "forbid", "strict": True,
                        "json_schema_extra": {"examples": [{"n": 16, "seed": 0, "format": "png"}]}}
        n: int = Field(1, ge=1, le=max_n, description=f"Number of samples (1..{max_n}).")
        labels: Optional[Union[int, str, list[Union[int, str]]]] = Field(None, description=labels_doc)
        codes: Optional[Union[list[float], list[list[float]]]] = Field(None, description=codes_doc,
                                                                      max_length=max_n)
        seed: Optional[int] = Field(None, ge=0, le=2**63 - 1,
                                    description="Noise seed: the same seed gives the same samples. "
                                                "Default: random (returned in the X-Seed header).")
        format: Literal["png", "npz", "zip"] = Field(
            "png", description="png: one grid image; npz: arrays `images` (uint8 NHWC) or `points`, "
                               "`labels`, `codes`, `seed`; zip: one PNG per sample.")

    return GenerateRequest


# ---- OpenAPI documents ----------------------------------------------------------------------

def binary(*media_types: str) -> dict[str, Any]:
    """OpenAPI `content` of binary bodies in these media types."""
    return {t: {"schema": {"type": "string", "format": "binary"}} for t in media_types}


def error_doc(description: str) -> dict[str, Any]:
    """An OpenAPI response documented as an ErrorResponse."""
    return {"model": ErrorResponse, "description": description}


_BUSY = error_doc("Queue full: retry after the Retry-After header's seconds.")

GENERATE_RESPONSES: dict[Union[int, str], dict[str, Any]] = {
    200: {"description": "A PNG grid (format png; 2-pixel padding, ceil(sqrt(n)) columns), an npz (format npz) "
                         "or a zip of PNGs (format zip). Header X-Seed: the seed used.",
          "content": binary("image/png", "application/x-npz", "application/zip")},
    400: error_doc("This artifact translates images (use /v1/translate), or the format does not fit its output."),
    413: error_doc("Request body too large."),
    422: error_doc("Invalid request: n out of range, unknown label, wrong label count, codes out of range or "
                   "of the wrong count."),
    503: _BUSY,
}

HEALTH_RESPONSES: dict[Union[int, str], dict[str, Any]] = {
    503: {"model": HealthResponse, "description": "Not ready (stopping)."}}

METRICS_RESPONSES: dict[Union[int, str], dict[str, Any]] = {
    200: {"description": "Prometheus text exposition format.",
          "content": {METRICS_MEDIA_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}}


def translate_body(max_body_bytes: int, max_pixels: int, domain: str | None = None) -> dict[str, Any]:
    """The OpenAPI request body of POST /v1/translate (with a `domain` field when the model takes one)."""
    properties: dict[str, Any] = {"image": {"type": "string", "format": "binary"}}
    if domain:
        properties["domain"] = {"type": "string", "description": domain}
    form = {"schema": {"type": "object", "required": ["image"], "properties": properties}}
    return {"required": True,
            "description": f"An image (PNG, JPEG, WebP, BMP, ...; at most {max_body_bytes} bytes and {max_pixels} "
                           "pixels): a multipart form with the file in field `image`, or the raw bytes as the body.",
            "content": {"multipart/form-data": form, **binary(*IMAGE_TYPES, "application/octet-stream")}}


def translate_responses(fitted: str, min_image: tuple[int, int]) -> dict[Union[int, str], dict[str, Any]]:
    """The OpenAPI responses of POST /v1/translate; `fitted` says at which size the model runs."""
    return {
        200: {"description": f"The translated image as PNG, the same size as the input ({fitted}).",
              "content": binary("image/png")},
        400: error_doc("Bytes that are not a decodable image, a form without `image`, or a noise model "
                       "(use /v1/generate)."),
        413: error_doc("Body or image too large (bytes or pixels)."),
        415: error_doc("Content type is neither multipart/form-data nor an image."),
        422: error_doc(f"Image too small for this model: at least {min_image[0]}x{min_image[1]} pixels "
                       "(height x width); a missing or unknown domain (multi-domain models)."),
        503: _BUSY,
    }
