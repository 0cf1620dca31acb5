"""The outermost ASGI layer: admission and a deadline for every request.

Admission: past `max_inflight_requests` inference requests (POST) in the process, a new one is answered 503 +
Retry-After before its body is read. Under overload the bottleneck may be parsing bodies on the event loop, not
the model, and the batcher's bounded queue never fills; this bound keeps the accepted requests' latency bounded.

Deadline: each request until its response starts (a slow client's body, the batcher's queue, the model run)
runs under `request_timeout_s`. Past it, the request's task is cancelled (its queued rows are dropped by the
batcher) and the caller gets 504 with a message. A request still running when uvicorn's graceful shutdown gives
up gets 503.

Every request has the same timeout, so deadlines expire in arrival order: one watchdog task walks them from the
oldest every 0.1 s (or a tenth of the timeout if shorter). A timer per request (`asyncio.timeout`) cost 5-20 us of
the ~100 us our code spends on a binary request (cProfile here), and this path runs for every request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_response

log = logging.getLogger(__name__)


def endpoint_of(path: str) -> str:
    """The `endpoint` label of a POST path: infer, classify, compare or other."""
    if path.endswith("/infer"):
        return "infer"
    return {"/v1/classify": "classify", "/v1/compare": "compare"}.get(path, "other")


class RequestGuard:
    def __init__(self, app: ASGIApp, *, timeout_s: float, max_inflight: int, retry_after_s: int, shed: Counter) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.max_inflight = max_inflight
        self.retry_after = {"Retry-After": str(retry_after_s)}
        self.shed = shed
        self.inflight = 0
        self._tick_s = min(0.1, timeout_s / 10)  # how late past its deadline a request may be cancelled
        self._deadlines: dict[asyncio.Task[Any], float] = {}  # insertion (arrival) order is deadline order
        self._expired: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await self._within_deadline(scope, receive, send)
            return
        if self.inflight >= self.max_inflight:
            self.shed.labels(endpoint_of(scope["path"])).inc()
            message = f"overloaded: {self.max_inflight} requests in flight (max_inflight_requests); retry later"
            await error_response(503, message, self.retry_after)(scope, receive, send)
            return
        self.inflight += 1
        try:
            await self._within_deadline(scope, receive, send)
        finally:
            self.inflight -= 1

    async def _within_deadline(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        self._deadlines[task] = loop.time() + self.timeout_s
        if self._watchdog is None or self._watchdog.get_loop() is not loop:  # TestClient: a loop per request
            self._watchdog = loop.create_task(self._watch(), name="request-deadlines")
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self._deadlines.pop(task, None)  # answered: the deadline is met
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if task in self._expired:
                task.uncancel()  # our own cancellation, handled here: the task goes on to answer 504
                log.warning("%s %s took longer than %.3gs", scope["method"], scope["path"], self.timeout_s)
                if started:
                    raise TimeoutError from None  # too late for a 504: uvicorn closes the connection
                message = (
                    f"the request took longer than {self.timeout_s:g}s (request_timeout_s) and was abandoned: "
                    "the server is busy or the body arrived too slowly"
                )
                await error_response(504, message)(scope, receive, send)
                return
            if started:
                raise
            # uvicorn cancels what is still running when its graceful-shutdown timeout is over: say so rather than
            # letting it answer a bare 500, and end the task (which is what the cancellation asked for).
            message = "the server is shutting down and could not finish this request in time; retry"
            await error_response(503, message, self.retry_after)(scope, receive, send)
        finally:
            self._deadlines.pop(task, None)
            self._expired.discard(task)

    async def _watch(self) -> None:
        """Cancel the requests past their deadline, oldest first; end once no request is in flight."""
        loop = asyncio.get_running_loop()
        try:
            while self._deadlines:
                await asyncio.sleep(self._tick_s)
                now = loop.time()
                while self._deadlines:
                    task, deadline = next(iter(self._deadlines.items()))
                    if deadline > now:
                        break
                    del self._deadlines[task]
                    self._expired.add(task)
                    task.cancel()
        finally:
            self._watchdog = None
