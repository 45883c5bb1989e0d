"""The service's Prometheus metrics, on a registry of its own (several apps in one process do not collide)."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from infer.api import Generator
from infer.batcher import DynamicBatcher

MEDIA_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Requests, latency, batch sizes and durations, queue depth and rejections, and what is served."""

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
        self.streams = Gauge("ganrt_stream_connections", "Open WebSocket streams (WS /v1/stream)", registry=r)
        self.stream_frames = Counter("ganrt_stream_frames", "Stream jobs by result: ok, dropped (replaced by a newer "
                                     "one before it ran), error", ["result"], registry=r)
        info = Gauge("ganrt_model_info", "The model served (value 1)", ["artifact", "variant", "backend"], registry=r)
        info.labels(model.name, model.variant, model.backend).set(1)

    def watch(self, batcher: DynamicBatcher) -> None:
        """Read the queue gauges from `batcher` at scrape time."""
        self.queue_depth.set_function(lambda: batcher.queue_depth)
        self.rejected.set_function(lambda: batcher.stats.rejected)

    def on_batch(self, items: int, requests: int, seconds: float) -> None:
        """The batcher's callback after each model call."""
        self.batch_size.observe(items)
        self.batch_seconds.observe(seconds)

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one finished HTTP request and its latency."""
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
