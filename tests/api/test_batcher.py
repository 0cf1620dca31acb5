"""The dynamic batcher with fake runs: routing of results, batch formation, failures, a bounded queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from service.batcher import DynamicBatcher
from service.errors import InferenceFailed, Overloaded
from service.metrics import Metrics
from service.runtimes.base import RunResult, Tensors
from service.settings import BatchConfig


class FakeModel:
    """Doubles its input and records every batch; fails a batch that holds a negative value."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[int] = []
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, feeds: Tensors) -> RunResult:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        x = feeds["x"]
        self.batches.append(len(x))
        if (x < 0).any():
            raise RuntimeError("negative input")
        return RunResult({"y": x * 2}, 0.001)


def make(
    fake: FakeModel, *, max_batch_size: int = 8, delay_s: float = 0.0, queue: int = 64, inline: bool = True
) -> tuple[DynamicBatcher, Metrics]:
    metrics = Metrics(CollectorRegistry())
    config = BatchConfig(max_batch_size=max_batch_size, max_queue_delay_s=delay_s, max_queue_size=queue)
    batcher = DynamicBatcher("fake", fake, config, metrics.for_model("fake", "student"), inline=inline, retry_after_s=3)
    return batcher, metrics


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 30))


def rows(value: float, n: int = 1) -> Tensors:
    return {"x": np.full((n, 3), value, dtype=np.float32)}


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.mark.parametrize("inline", [True, False])
def test_results_go_back_to_their_callers_in_order(inline: bool) -> None:
    fake = FakeModel()
    batcher, metrics = make(fake, max_batch_size=8, inline=inline)

    async def main() -> None:
        batcher.start()
        sizes = [1 + i % 3 for i in range(40)]
        results = await asyncio.gather(*(batcher.submit(rows(i, n), n) for i, n in enumerate(sizes)))
        await batcher.stop()
        for i, (n, result) in enumerate(zip(sizes, results, strict=True)):
            np.testing.assert_array_equal(result.outputs["y"], np.full((n, 3), 2.0 * i))
        assert max(fake.batches) <= 8 and len(fake.batches) < 40  # batched, never above the limit
        assert sum(fake.batches) == sum(sizes)

    run(main)
    assert sample(metrics, "distill_batch_size_count", model="fake") == len(fake.batches)
    assert sample(metrics, "distill_queue_duration_seconds_count", model="fake") == 40
    assert sample(metrics, "distill_inference_requests_total", model="fake", role="student", outcome="success") == 40


def test_waits_up_to_the_delay_then_runs_a_full_batch_at_once() -> None:
    fake = FakeModel()
    batcher, _ = make(fake, max_batch_size=3, delay_s=30.0)

    async def main() -> None:
        batcher.start()
        tasks = []
        for i in range(3):
            tasks.append(asyncio.create_task(batcher.submit(rows(i), 1)))
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)  # a full batch does not wait for the 30 s delay
        await batcher.stop()

    run(main)
    assert fake.batches == [3]


def test_no_delay_does_not_wait() -> None:
    fake = FakeModel()
    batcher, _ = make(fake, max_batch_size=8, delay_s=0.0)

    async def main() -> None:
        batcher.start()
        await batcher.submit(rows(1), 1)
        await batcher.submit(rows(2), 1)
        await batcher.stop()

    run(main)
    assert fake.batches == [1, 1]


def test_a_request_above_the_limit_runs_alone() -> None:
    fake = FakeModel()
    batcher, _ = make(fake, max_batch_size=4)

    async def main() -> None:
        batcher.start()
        results = await asyncio.gather(batcher.submit(rows(1, 2), 2), batcher.submit(rows(2, 6), 6))
        await batcher.stop()
        assert [len(r.outputs["y"]) for r in results] == [2, 6]

    run(main)
    assert fake.batches == [2, 6]


def test_a_failing_batch_fails_only_its_requests() -> None:
    fake = FakeModel()
    batcher, metrics = make(fake, max_batch_size=4)

    async def main() -> None:
        batcher.start()
        values = [0, 1, -1, 2, 3, 4, 5, 6]  # the first batch of four holds the bad row
        results = await asyncio.gather(*(batcher.submit(rows(v), 1) for v in values), return_exceptions=True)
        await batcher.stop()
        for result in results[:4]:
            assert isinstance(result, InferenceFailed) and "'fake'" in result.message
            assert result.status_code == 500
        for v, result in zip(values[4:], results[4:], strict=True):
            assert isinstance(result, RunResult)
            np.testing.assert_array_equal(result.outputs["y"], np.full((1, 3), 2.0 * v))

    run(main)
    assert fake.batches == [4, 4]
    assert sample(metrics, "distill_inference_requests_total", model="fake", role="student", outcome="error") == 4


def test_full_queue_rejects_at_once_with_retry_after() -> None:
    gate = threading.Event()
    fake = FakeModel(gate)
    batcher, metrics = make(fake, max_batch_size=1, queue=2, inline=False)

    async def main() -> None:
        batcher.start()
        running = asyncio.create_task(batcher.submit(rows(0), 1))
        await asyncio.to_thread(fake.entered.wait, 10)  # the worker took it and blocks on the gate
        queued = [asyncio.create_task(batcher.submit(rows(i), 1)) for i in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as rejected:
            await batcher.submit(rows(3), 1)
        assert rejected.value.status_code == 503 and rejected.value.headers == {"Retry-After": "3"}
        gate.set()
        await asyncio.gather(running, *queued)
        await batcher.stop()

    run(main)
    assert sample(metrics, "distill_inference_requests_total", model="fake", role="student", outcome="rejected") == 1


def test_cancelled_callers_are_skipped() -> None:
    fake = FakeModel()
    batcher, _ = make(fake, max_batch_size=8)

    async def main() -> None:
        gone = asyncio.create_task(batcher.submit(rows(1), 1))
        await asyncio.sleep(0)
        gone.cancel()
        batcher.start()
        result = await batcher.submit(rows(2), 1)
        await batcher.stop()
        np.testing.assert_array_equal(result.outputs["y"], np.full((1, 3), 4.0))

    run(main)
    assert fake.batches == [1]
