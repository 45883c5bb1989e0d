"""`python -m infer serve`: the HTTP service (FastAPI + uvicorn), batched through the dynamic batcher.

Endpoints (the OpenAPI schema at /openapi.json, browsable at /docs):
  POST /v1/generate   {n, labels?, seed?, format: png|npz|zip} -> a PNG grid, or npz/zip of images
  POST /v1/translate  an image (multipart field `image`, or the raw body) -> PNG of the same size
  GET  /health        backend, artifact, variant, readiness
  GET  /metrics       Prometheus text (requests, latency, batch sizes, queue depth, streams)
  GET  /              the live page: webcam (or a video file) translated in the browser, over WS /v1/stream
  WS   /v1/stream     frames in, translations (or sample grids) out; the newest frame only, never a queue

Errors are JSON `{"detail": message, "type": kind}`: 400 bad image bytes / wrong endpoint for
this model, 413 body or image too large (enforced while reading), 415 unsupported content
type, 422 invalid request (n too large, unknown label), 503 queue full (with Retry-After).

Modules: `app` (create_app, serve), `endpoints` (the handlers), `schemas` (request, response
and OpenAPI documents), `errors` (exceptions -> JSON), `guard` (body limit and request
metrics, ASGI), `metrics` (Prometheus), `stream` (the WebSocket), `page` (the page; its files
are in static/), `process` (the service in a subprocess, for load tests, benchmarks and CI).
Importing this package imports no FastAPI.
"""
