"""The outermost ASGI layer: admission and a deadline for every request.

Admission: past `max_inflight_requests` inference requests (POST) in the process, a new one is answered 503 +
Retry-After before its body is read. Under overload the bottleneck may be parsing bodies on the event loop, not
the model, and the batcher's bounded queue never fills; this bound keeps the accepted requests' latency bounded.

Deadline: the whole request (a slow client's body, the batcher's queue, the model run) runs under
`request_timeout_s`. Past it, the request's task is cancelled (its queued rows are dropped by the batcher) and the
caller gets 504 with a message, unless a response had already started (then the connection is closed). A request
still running when uvicorn's graceful shutdown gives up gets 503.
"""

from __future__ import annotations

import asyncio
import logging

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
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self.timeout_s):
                await self.app(scope, receive, tracked)
        except TimeoutError:
            log.warning("%s %s took longer than %.3gs", scope["method"], scope["path"], self.timeout_s)
            if started:
                raise
            message = (
                f"the request took longer than {self.timeout_s:g}s (request_timeout_s) and was abandoned: "
                "the server is busy or the body arrived too slowly"
            )
            await error_response(504, message)(scope, receive, send)
        except asyncio.CancelledError:
            # uvicorn cancels what is still running when its graceful-shutdown timeout is over: say so rather than
            # letting it answer a bare 500, and end the task (which is what the cancellation asked for).
            if started:
                raise
            message = "the server is shutting down and could not finish this request in time; retry"
            await error_response(503, message, self.retry_after)(scope, receive, send)
