"""The service assembled: `create_app(model, options)` for tests and embedding, `serve` to run it on a socket."""
from __future__ import annotations

import functools
import ipaddress
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from infer.api import Generator
from infer.batcher import DynamicBatcher
from infer.options import ServeOptions, ServiceOptions
from infer.server.endpoints import ENDPOINTS, Service
from infer.server.errors import add_error_handlers
from infer.server.guard import Guard
from infer.server.metrics import Metrics
from infer.server.page import add_page
from infer.server.stream import add_stream

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("ganrt.infer.server")


def _description(service: Service) -> str:
    model, o = service.model, service.options
    use = "Use POST /v1/generate." if model.kind == "noise" else "Use POST /v1/translate."
    return (f"Serves artifact `{model.name}` (variant `{model.variant}`). {use} Model calls are grouped by a dynamic "
            f"batcher (max batch {service.max_batch}, max delay {o.max_delay_ms} ms, queue {o.queue_size} items).")


def create_app(model: Generator, options: ServiceOptions | None = None) -> FastAPI:
    """A FastAPI app serving `model` (which the caller keeps ownership of and closes)."""
    options = options or ServiceOptions()
    if options.max_n > options.queue_size:
        raise ValueError(f"max_n ({options.max_n}) cannot exceed queue_size ({options.queue_size}): "
                         "such requests could never run")
    max_batch = max(1, min(options.max_batch or model.max_batch, model.max_batch))
    metrics = Metrics(model)
    batcher = DynamicBatcher(model.run, max_batch=max_batch, max_delay_ms=options.max_delay_ms,
                             queue_size=options.queue_size, on_batch=metrics.on_batch, name="server-batcher")
    metrics.watch(batcher)
    service = Service(model, options, max_batch, batcher, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service.status = "stopping"
        await run_in_threadpool(batcher.close)

    app = FastAPI(title="ganrt inference service", version="1",
                  summary=f"{model.name} ({model.variant}, {model.kind}) on {model.backend}",
                  description=_description(service), lifespan=lifespan)
    app.add_middleware(Guard, max_body=options.max_body_bytes, metrics=metrics,
                       limit_concurrency=options.limit_concurrency)
    add_error_handlers(app)
    for add in (*ENDPOINTS, add_stream, add_page):
        add(app, service)
    return app


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_config(app: Any, options: ServeOptions, log_level: str = "info") -> "uvicorn.Config":
    """How uvicorn runs the service: h11 connections with deadlines (`GuardedH11Protocol`), and no limit on open
    connections (the app's Guard limits requests in progress instead)."""
    import uvicorn

    from infer.server.connection import Deadlines, GuardedH11Protocol

    protocol = functools.partial(GuardedH11Protocol, deadlines=Deadlines(options.header_timeout, options.body_timeout))
    return uvicorn.Config(app, host=options.host, port=options.port, log_level=log_level, http=protocol,  # type: ignore[arg-type]
                          timeout_keep_alive=options.keep_alive, timeout_graceful_shutdown=10)  # type: ignore[arg-type]


def serve(model: Generator, options: ServeOptions, log_level: str = "info") -> None:
    """Run the service until interrupted (uvicorn handles SIGINT/SIGTERM gracefully)."""
    import uvicorn

    if not is_loopback(options.host):
        log.warning("listening on %s: reachable from other machines, and there is no authentication", options.host)
    server = uvicorn.Server(server_config(create_app(model, options), options, log_level))
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # uvicorn shut down gracefully, then re-raised the Ctrl-C it caught (uvicorn.run swallows it too)
