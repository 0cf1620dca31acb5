"""Per-model dynamic batcher: requests queue, one onnxruntime run takes up to `max_batch_size` rows.

A worker task gathers queued requests (waiting at most `max_queue_delay` after the first for more),
concatenates their rows, runs the model once, and hands each caller its slice of the outputs. The queue is
bounded: a full queue rejects at once (503 + Retry-After) rather than letting latency grow without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from service.errors import InferenceFailed, NotReady, Overloaded
from service.metrics import ModelMetrics
from service.runtimes.base import RunResult, Tensors
from service.settings import BatchConfig

log = logging.getLogger(__name__)

RunFn = Callable[[Tensors], RunResult]


@dataclass
class _Pending:
    inputs: Tensors
    rows: int
    future: asyncio.Future[RunResult]
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    def __init__(
        self, model: str, run: RunFn, config: BatchConfig, metrics: ModelMetrics, *, inline: bool, retry_after_s: int
    ) -> None:
        self.model = model
        self.config = config
        self.inline = inline
        self._run_fn = run
        self._metrics = metrics
        self._retry_after_s = retry_after_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=config.max_queue_size)
        self._carry: _Pending | None = None
        self._executor = None if inline else ThreadPoolExecutor(1, thread_name_prefix=f"ort-{model}")
        self._worker: asyncio.Task[None] | None = None
        self._running = False  # a batch is being run

    @property
    def idle(self) -> bool:
        """Nothing queued and no batch running: stopping now fails no request."""
        return not self._running and self._carry is None and self._queue.empty()

    @property
    def serving(self) -> bool:
        """Started and not stopped."""
        return self._worker is not None and not self._worker.done()

    @property
    def queued(self) -> int:
        """Requests waiting for a run."""
        return self._queue.qsize() + (self._carry is not None)

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"batcher-{self.model}")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        pending = [self._carry] if self._carry else []
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for item in pending:
            if not item.future.done():
                item.future.set_exception(NotReady(f"model {self.model!r} is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, inputs: Tensors, rows: int, *, count_success: bool = True) -> RunResult:
        """Queue one request's rows; return its slice of the batch outputs and the batch's compute time.
        `count_success=False`: the caller counts the success itself once its whole answer is sent (an answer that
        also needs another model, or checks this result further, may still fail)."""
        item = _Pending(inputs, rows, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._metrics.rejected.inc()
            raise Overloaded(
                f"model {self.model!r} is overloaded: {self.config.max_queue_size} requests already queued; "
                f"retry after {self._retry_after_s}s",
                self._retry_after_s,
            ) from None
        result = await item.future
        if count_success:
            self._metrics.success.inc()
        return result

    async def _work(self) -> None:
        while True:
            batch = await self._gather()
            if batch:
                self._running = True
                try:
                    await self._run(batch)
                finally:
                    self._running = False

    async def _next(self, timeout: float | None) -> _Pending | None:
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        if timeout is None:
            return await self._queue.get()
        if not self._queue.empty() or timeout <= 0:
            return None if self._queue.empty() else self._queue.get_nowait()
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _gather(self) -> list[_Pending]:
        first = await self._next(None)
        assert first is not None
        batch, rows = [first], first.rows
        deadline = first.enqueued + self.config.max_queue_delay_s
        while rows < self.config.max_batch_size:
            item = await self._next(deadline - time.perf_counter())
            if item is None:
                break
            if rows + item.rows > self.config.max_batch_size:
                self._carry = item  # starts the next batch
                break
            batch.append(item)
            rows += item.rows
        return [p for p in batch if not p.future.done()]  # drop callers that went away

    async def _run(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        for p in batch:
            self._metrics.queue.observe(started - p.enqueued)
        names = batch[0].inputs.keys()
        feeds = batch[0].inputs if len(batch) == 1 else {n: np.concatenate([p.inputs[n] for p in batch]) for n in names}
        rows = sum(p.rows for p in batch)
        try:
            if self._executor is None:
                result = self._run_fn(feeds)
            else:
                result = await asyncio.get_running_loop().run_in_executor(self._executor, self._run_fn, feeds)
            if any(len(v) != rows for v in result.outputs.values()):
                raise ValueError(f"outputs do not have {rows} rows")
        except Exception as exc:  # a failing run fails only its own requests
            log.exception("model %r failed on a batch of %d rows", self.model, rows)
            self._fail(batch, InferenceFailed(f"model {self.model!r} failed to run a batch of {rows} rows: {exc}"))
            return
        self._metrics.batch_size.observe(rows)
        self._metrics.inference.observe(result.compute_s)
        offset = 0
        for p in batch:
            part = {k: v[offset : offset + p.rows] for k, v in result.outputs.items()}
            offset += p.rows
            if not p.future.done():
                p.future.set_result(RunResult(part, result.compute_s, rows))

    def _fail(self, batch: list[_Pending], error: Exception) -> None:
        for p in batch:
            if not p.future.done():
                p.future.set_exception(error)
        self._metrics.error.inc(len(batch))
