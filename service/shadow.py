"""Shadow traffic: a share of the requests the student answers also goes to the teacher, after the student's
answer has been sent, so that agreement and the speedup are measured on real traffic, without labels.

On the request path this is one addition and one comparison (`sample`), and, for a sampled request only, a job
put on a bounded queue once its response is out. One task per process takes the queued jobs in groups (the
teacher's batcher runs a group as one batch) and records, per job: agreement by class name in
`distill_agreement_total{source="shadow"}`, both compute times in `distill_shadow_compute_seconds`, the
teacher's run in its own request counts and, for rows with true labels, its online accuracy. Shadow work never
makes real teacher traffic wait behind it: while the teacher has requests of its own queued, jobs are dropped,
and so are jobs that find the queue full; `distill_shadow_requests_total{outcome}` counts each.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter

from service.errors import ServiceError
from service.loading import ServedModel
from service.metrics import Metrics
from service.preprocessing import PixelBatch
from service.repository import ModelRegistry
from service.runtimes.base import RunResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowJob:
    """A request the student answered: what the teacher needs to answer it too, and the student's answer."""

    student: ServedModel
    inputs: PixelBatch | np.ndarray  # friendly: the request's pixels; v2: the student's input tensor
    predicted: np.ndarray  # (N,) the student's class indices
    compute_s: float  # the student's compute time for it
    labels: list[int] | None  # true classes, when the request gave them


class Shadow:
    def __init__(self, rate: float, queue_size: int, registry: ModelRegistry, metrics: Metrics) -> None:
        self.rate = rate
        self.registry = registry
        self.metrics = metrics
        self._credit = 0.0
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(queue_size)
        self._outcomes: dict[str, Counter] = {}
        self._worker: asyncio.Task[None] | None = None
        self._warned: set[str] = set()

    @property
    def student(self) -> str | None:
        """The model whose requests are shadowed: the friendly routes' student."""
        return self.registry.pair.student.model

    def sample(self) -> bool:
        """Whether this request is shadowed: exactly `rate` of them, spread evenly."""
        self._credit += self.rate
        if self._credit < 1.0:
            return False
        self._credit -= 1.0
        return True

    def offer(self, job: ShadowJob) -> None:
        """Queue a sampled request once its answer has been sent; dropped (counted) when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.count("queue_full")

    def start(self) -> None:
        if self.rate > 0:
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="shadow")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    def count(self, outcome: str, n: int = 1) -> None:
        counter = self._outcomes.get(outcome)
        if counter is None:
            counter = self._outcomes[outcome] = self.metrics.shadow_requests.labels(outcome)
        counter.inc(n)

    async def _work(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            while not self._queue.empty() and len(jobs) < 64:
                jobs.append(self._queue.get_nowait())
            try:
                await self._run(jobs)
            except Exception:  # a bug here must not end shadowing for the rest of the process
                log.exception("shadow: a group of %d requests failed", len(jobs))
                self.count("failed", len(jobs))

    async def _run(self, jobs: list[ShadowJob]) -> None:
        try:
            teacher = self.registry.by_role("teacher")
        except ServiceError as exc:
            self._warn(f"shadow: no teacher to send requests to: {exc.message}")
            self.count("failed", len(jobs))
            return
        if teacher.batcher.queued:  # real teacher traffic waiting: shadow work would only delay it
            self.count("teacher_busy", len(jobs))
            return
        await asyncio.gather(*(self._shadow(teacher, job) for job in jobs))

    async def _shadow(self, teacher: ServedModel, job: ShadowJob) -> None:
        x = self._teacher_input(teacher, job)
        if x is None:
            self.count("failed")
            return
        try:
            result = await teacher.batcher.submit({teacher.card.input.name: x}, len(x), count_success=False)
        except ServiceError:  # the batcher counted the error; the student's client got its answer long ago
            self.count("failed")
            return
        self._record(teacher, job, result)

    def _teacher_input(self, teacher: ServedModel, job: ShadowJob) -> np.ndarray | None:
        """The teacher's input for the job's rows: made from the request's pixels, or the student's own tensor
        where both take the same tensor."""
        if isinstance(job.inputs, PixelBatch):
            try:
                return job.inputs.tensor(teacher.card.preprocessing, teacher.card.input.datatype)
            except (KeyError, ServiceError):
                self._warn(f"shadow: {teacher.name!r} takes other pixels than this request's: not shadowed")
                return None
        same = job.student.card.input.model_dump(exclude={"name"}) == teacher.card.input.model_dump(exclude={"name"})
        if not same or job.student.card.preprocessing != teacher.card.preprocessing:
            self._warn(
                f"shadow: v2 requests to {job.student.name!r} are not shadowed: {teacher.name!r} takes another input "
                "tensor (shape, datatype or preprocessing); /v1/classify requests are"
            )
            return None
        return job.inputs

    def _record(self, teacher: ServedModel, job: ShadowJob, result: RunResult) -> None:
        student = job.student
        teacher.metrics.success.inc()
        scores = result.outputs[teacher.card.output.name]  # (N, K)
        taught = scores.argmax(axis=1)
        agree = (np.asarray(student.card.labels)[job.predicted] == np.asarray(teacher.card.labels)[taught]).tolist()
        self.metrics.count_agreement(student.name, teacher.name, agree, source="shadow")
        compute = self.metrics.shadow_compute
        compute.labels(student.name, teacher.name, "student").observe(job.compute_s)
        compute.labels(student.name, teacher.name, "teacher").observe(result.compute_s)
        if job.labels is not None and all(0 <= v < len(teacher.card.labels) for v in job.labels):
            self.metrics.count_accuracy(teacher.name, taught.tolist(), job.labels)
        self.count("compared")

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)
