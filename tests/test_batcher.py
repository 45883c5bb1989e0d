"""The dynamic batcher under concurrent callers, with a plain numpy model that records its batches."""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from infer.batcher import BatcherClosed, Busy, DynamicBatcher


class RecordingModel:
    """y = 2x + 1 per item; remembers the batch sizes it saw; optionally slow or failing."""

    def __init__(self, delay_s: float = 0.0, fail_when: float | None = None):
        self.batch_sizes: list[int] = []
        self.delay_s = delay_s
        self.fail_when = fail_when
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, feeds):
        self.gate.wait(10)
        x = feeds["x"]
        self.batch_sizes.append(len(x))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_when is not None and np.any(x[:, 0] == self.fail_when):
            raise ValueError("poisoned item in this batch")
        return {"y": 2 * x + 1, "id": x[:, 0].astype(np.int64)}


def _request(caller: int, k: int) -> dict[str, np.ndarray]:
    # Each item carries (caller, index) so a mix-up between callers or a reordering shows.
    x = np.stack([np.array([caller * 1000 + i, i], np.float32) for i in range(k)])
    return {"x": x}


def test_concurrent_callers_get_their_own_results_in_order():
    model = RecordingModel(delay_s=0.002)
    with DynamicBatcher(model, max_batch=8, max_delay_ms=20, queue_size=1000) as b:
        def call(caller: int):
            k = 1 + caller % 4
            feeds = _request(caller, k)
            out = b(feeds, timeout=30)
            return caller, feeds, out

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(call, range(64)))
    for caller, feeds, out in results:
        assert out["y"].shape == feeds["x"].shape
        np.testing.assert_array_equal(out["y"], 2 * feeds["x"] + 1)
        np.testing.assert_array_equal(out["id"], [caller * 1000 + i for i in range(len(feeds["x"]))])
    assert sum(model.batch_sizes) == sum(1 + c % 4 for c in range(64))
    assert max(model.batch_sizes) <= 8
    # Concurrent callers were really grouped: fewer model calls than requests.
    assert len(model.batch_sizes) < 64
    assert b.stats.batches == len(model.batch_sizes)
    assert b.stats.items == sum(model.batch_sizes)


def test_max_batch_respected_and_large_requests_split():
    model = RecordingModel()
    model.gate.clear()  # hold the worker so everything queues up first
    with DynamicBatcher(model, max_batch=4, max_delay_ms=50, queue_size=100) as b:
        futures = [b.submit(_request(c, 3)) for c in range(5)]  # 15 items
        big = b.submit(_request(99, 10))  # more than max_batch: runs alone in chunks of 4
        model.gate.set()
        outs = [f.result(10) for f in futures]
        big_out = big.result(10)
    assert max(model.batch_sizes) <= 4
    assert sum(model.batch_sizes) == 25
    for c, out in enumerate(outs):
        np.testing.assert_array_equal(out["id"], [c * 1000, c * 1000 + 1, c * 1000 + 2])
    np.testing.assert_array_equal(big_out["id"], [99000 + i for i in range(10)])
    assert model.batch_sizes[-3:] == [4, 4, 2]


def test_incompatible_shapes_are_not_mixed():
    seen: list[tuple] = []

    def run(feeds):
        seen.append(feeds["x"].shape)
        return {"y": feeds["x"].sum(axis=tuple(range(1, feeds["x"].ndim)))}

    with DynamicBatcher(run, max_batch=8, max_delay_ms=30, queue_size=100) as b:
        small = [b.submit({"x": np.full((1, 2, 2), i, np.float32)}) for i in range(3)]
        large = [b.submit({"x": np.full((1, 3, 3), i, np.float32)}) for i in range(3)]
        assert [f.result(10)["y"][0] for f in small] == [0, 4, 8]
        assert [f.result(10)["y"][0] for f in large] == [0, 9, 18]
    assert all(s[1:] in {(2, 2), (3, 3)} for s in seen)
    assert sorted(s[0] for s in seen) == [3, 3]


def test_back_pressure_raises_busy_and_recovers():
    model = RecordingModel()
    model.gate.clear()
    with DynamicBatcher(model, max_batch=2, max_delay_ms=0, queue_size=4) as b:
        first = b.submit(_request(0, 2))  # taken by the worker, which then blocks on the gate
        deadline = time.monotonic() + 5
        while b.queue_depth and time.monotonic() < deadline:
            time.sleep(0.005)
        queued = [b.submit(_request(1, 2)), b.submit(_request(2, 2))]  # queue now full (4 items)
        assert b.queue_depth == 4
        with pytest.raises(Busy) as err:
            b.submit(_request(3, 1))
        assert err.value.retry_after_s >= 1
        assert b.stats.rejected == 1
        with pytest.raises(ValueError, match="never fit"):
            b.submit(_request(4, 5))
        model.gate.set()
        for f in [first, *queued]:
            f.result(10)
        # Room again once the worker catches up.
        assert b(_request(5, 1), timeout=10)["id"][0] == 5000


def test_exception_reaches_only_its_batch():
    model = RecordingModel(fail_when=7000)
    model.gate.clear()
    with DynamicBatcher(model, max_batch=2, max_delay_ms=0, queue_size=100) as b:
        futs = [b.submit(_request(c, 1)) for c in range(10)]  # batches of 2: (6, 7) fails
        model.gate.set()
        errors = {}
        for c, f in enumerate(futs):
            try:
                f.result(10)
            except ValueError as e:
                errors[c] = str(e)
    assert set(errors) == {6, 7}
    assert "poisoned" in errors[7]
    assert b.stats.failed_batches == 1


def test_bad_output_shape_is_an_error_for_the_callers():
    with DynamicBatcher(lambda feeds: {"y": np.zeros(3)}, max_batch=4, max_delay_ms=0) as b:
        with pytest.raises(RuntimeError, match="expected 1 items"):
            b({"x": np.zeros((1, 2))}, timeout=10)


def test_asyncio_wrapper_and_close():
    model = RecordingModel(delay_s=0.01)
    b = DynamicBatcher(model, max_batch=8, max_delay_ms=20, queue_size=100, name="async-test")

    async def main():
        outs = await asyncio.gather(*(b.infer_async(_request(c, 2)) for c in range(12)))
        return outs

    outs = asyncio.run(main())
    for c, out in enumerate(outs):
        np.testing.assert_array_equal(out["id"], [c * 1000, c * 1000 + 1])
    assert max(model.batch_sizes) <= 8 and len(model.batch_sizes) < 12

    # close(drain=False) fails what is still queued; later submits are refused; the thread ends.
    model.gate.clear()
    running = b.submit(_request(50, 1))
    time.sleep(0.1)
    queued = b.submit(_request(51, 1))
    closer = threading.Thread(target=b.close, kwargs={"drain": False})
    closer.start()
    time.sleep(0.05)
    model.gate.set()
    closer.join(10)
    assert running.result(10)["id"][0] == 50000
    with pytest.raises(BatcherClosed):
        queued.result(10)
    with pytest.raises(BatcherClosed):
        b.submit(_request(52, 1))
    assert not any(t.name == "ganrt-async-test" for t in threading.enumerate())


def test_on_batch_hook_sees_every_batch():
    seen = []
    with DynamicBatcher(lambda f: {"y": f["x"]}, max_batch=3, max_delay_ms=0,
                        on_batch=lambda items, reqs, s: seen.append((items, reqs))) as b:
        b({"x": np.zeros((7, 1))}, timeout=10)
    assert seen == [(3, 1), (3, 1), (1, 1)]
