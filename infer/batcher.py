"""A dynamic batcher: concurrent requests grouped into one model call.

Callers `submit(feeds)` (each feed's first axis holds that request's k items) and get a
`concurrent.futures.Future` of their own outputs, in their own order. One worker thread
waits until `max_batch` items are queued or the oldest request has waited `max_delay_ms`,
concatenates the feeds of compatible requests (same names, dtypes and per-item shapes),
calls `run(feeds) -> outputs` once, and splits the outputs back. Because only the worker
calls `run`, the model needs no thread safety.

The queue is bounded in items: a request that does not fit raises `Busy` at once
(back-pressure), so memory never grows with the offered load. A request of more than
`max_batch` items runs alone, in chunks of `max_batch`. An exception in `run` goes to the
callers of that batch only.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

log = logging.getLogger("ganrt.infer.batcher")

Feeds = dict[str, np.ndarray]
RunFn = Callable[[Feeds], Feeds]


class Busy(RuntimeError):
    """The queue is full: retry later (HTTP 503 with Retry-After)."""

    def __init__(self, message: str, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BatcherClosed(RuntimeError):
    """The batcher was shut down before this request could run."""


@dataclass
class _Request:
    feeds: Feeds
    items: int
    signature: tuple
    future: Future
    enqueued: float


@dataclass
class BatcherStats:
    """Running totals; read them for metrics (they are updated under the batcher's lock)."""

    requests: int = 0
    items: int = 0
    batches: int = 0
    rejected: int = 0
    failed_batches: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)  # items per batch -> count


def _signature(feeds: Feeds) -> tuple:
    return tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(feeds.items()))


class DynamicBatcher:
    """Group concurrent requests into batches of at most `max_batch` items for `run`."""

    def __init__(self, run: RunFn, max_batch: int = 8, max_delay_ms: float = 5.0, queue_size: int = 64,
                 on_batch: Callable[[int, int, float], None] | None = None, name: str = "batcher"):
        """`queue_size` bounds the queued items; `on_batch(items, requests, seconds)` sees every batch."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, not {max_batch}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, not {queue_size}")
        if max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be >= 0, not {max_delay_ms}")
        self._run = run
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000.0
        self.queue_size = queue_size
        self._on_batch = on_batch
        self._pending: deque[_Request] = deque()
        self._depth = 0  # queued items (not requests)
        self._cond = threading.Condition()
        self._closed = False
        self.stats = BatcherStats()
        self._mean_batch_s = 0.0  # for Retry-After estimates
        self._thread = threading.Thread(target=self._worker, name=f"ganrt-{name}", daemon=True)
        self._thread.start()

    # ---- callers -------------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Items waiting (not yet taken into a batch)."""
        return self._depth

    def submit(self, feeds: Feeds) -> Future:
        """Queue one request; raises Busy when it does not fit, BatcherClosed after close()."""
        if not feeds:
            raise ValueError("empty feeds")
        arrays = {k: np.asarray(v) for k, v in feeds.items()}
        sizes = {v.shape[0] if v.ndim else -1 for v in arrays.values()}
        if len(sizes) != 1 or (k := sizes.pop()) < 1:
            raise ValueError(f"every feed needs the same positive first (batch) axis, got "
                             f"{ {n: v.shape for n, v in arrays.items()} }")
        if k > self.queue_size:
            raise ValueError(f"a request of {k} items can never fit a queue of {self.queue_size}")
        fut: Future = Future()
        req = _Request(arrays, k, _signature(arrays), fut, time.monotonic())
        with self._cond:
            if self._closed:
                raise BatcherClosed("the batcher is shut down")
            if self._depth + k > self.queue_size:
                self.stats.rejected += 1
                raise Busy(f"queue full ({self._depth}/{self.queue_size} items queued); retry later",
                           retry_after_s=self._retry_after())
            self._pending.append(req)
            self._depth += k
            self.stats.requests += 1
            self._cond.notify()
        return fut

    def __call__(self, feeds: Feeds, timeout: float | None = None) -> Feeds:
        """Submit and wait: the blocking form of `submit`."""
        return self.submit(feeds).result(timeout)

    async def infer_async(self, feeds: Feeds) -> Feeds:
        """Submit and await without blocking the event loop; cancelling drops a not-yet-run request."""
        return await asyncio.wrap_future(self.submit(feeds))

    def close(self, drain: bool = True, timeout: float | None = 30.0) -> None:
        """Stop accepting requests; run what is queued (drain) or fail it with BatcherClosed."""
        with self._cond:
            self._closed = True
            if not drain:
                while self._pending:
                    req = self._pending.popleft()
                    if req.future.set_running_or_notify_cancel():
                        req.future.set_exception(BatcherClosed("the batcher was shut down"))
                self._depth = 0
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> "DynamicBatcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _retry_after(self) -> float:
        # Time to work off the queue at the observed batch speed; at least a second.
        batches = self._depth / self.max_batch + 1
        return max(1.0, batches * self._mean_batch_s)

    # ---- worker --------------------------------------------------------------------------

    def _take(self) -> list[_Request] | None:
        """Wait for a batch and take it off the queue; None when closed and empty."""
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._pending[0]
            deadline = first.enqueued + self.max_delay_s
            while not self._closed:
                ready = sum(r.items for r in self._pending if r.signature == first.signature)
                remaining = deadline - time.monotonic()
                if ready >= self.max_batch or remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Request] = []
            total = 0
            kept: deque[_Request] = deque()
            for req in self._pending:
                # The oldest request always goes (alone when it exceeds max_batch); later ones
                # join if compatible and if they fit. Skipped ones keep their place in line.
                fits = not batch or (req.signature == first.signature and total + req.items <= self.max_batch)
                if fits and total < self.max_batch:
                    batch.append(req)
                    total += req.items
                else:
                    kept.append(req)
            self._pending = kept
            self._depth -= total
        # A caller that cancelled its future (e.g. a client that went away) is not run.
        return [r for r in batch if r.future.set_running_or_notify_cancel()]

    def _worker(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if batch:
                self._run_batch(batch)

    def _run_batch(self, batch: list[_Request]) -> None:
        total = sum(r.items for r in batch)
        feeds = batch[0].feeds if len(batch) == 1 else {
            name: np.concatenate([r.feeds[name] for r in batch]) for name in batch[0].feeds}
        try:
            outputs: dict[str, list[np.ndarray]] = {}
            for start in range(0, total, self.max_batch):
                n = min(self.max_batch, total - start)
                chunk = feeds if n == total else {k: v[start:start + n] for k, v in feeds.items()}
                t0 = time.perf_counter()
                out = self._run(chunk)
                dt = time.perf_counter() - t0
                for name, y in out.items():
                    y = np.asarray(y)
                    if y.ndim == 0 or y.shape[0] != n:
                        raise RuntimeError(f"model output {name!r} has shape {y.shape}; expected {n} items first")
                    outputs.setdefault(name, []).append(y)
                self._record(n, len(batch), dt)
        except BaseException as e:  # noqa: BLE001 - every failure goes to this batch's callers
            with self._cond:
                self.stats.failed_batches += 1
            log.debug("batch of %d items failed: %r", total, e)
            for r in batch:
                r.future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        merged = {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in outputs.items()}
        start = 0
        for r in batch:
            r.future.set_result({k: v[start:start + r.items] for k, v in merged.items()})
            start += r.items

    def _record(self, items: int, requests: int, seconds: float) -> None:
        with self._cond:
            s = self.stats
            s.batches += 1
            s.items += items
            s.batch_sizes[items] = s.batch_sizes.get(items, 0) + 1
            self._mean_batch_s = seconds if s.batches == 1 else 0.9 * self._mean_batch_s + 0.1 * seconds
        if self._on_batch is not None:
            try:
                self._on_batch(items, requests, seconds)
            except Exception:  # a metrics hook must never break inference
                log.exception("on_batch hook failed")
